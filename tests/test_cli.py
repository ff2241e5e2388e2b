"""Tests of the ``skoffice31`` command line (reproduce, train, predict).

Tiny settings throughout (8x8 images, 2 epochs, small layouts) so the whole
file runs in well under a minute.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skoffice31 import cli
from skoffice31.datasets import load_office_digits

TINY = ["--epochs", "2", "--hidden", "10", "--size", "8", "--samples", "2"]
REPO = Path(__file__).resolve().parents[1]
OFFICE31 = REPO.parent / "shared" / "data" / "office31"


def _env(**extra):
    env = dict(os.environ)
    env.update({"MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def run_cli(args, **kwargs):
    """Run ``python -m skoffice31 ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "skoffice31", *map(str, args)],
        capture_output=True, text=True, env=_env(), timeout=300, **kwargs,
    )


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_predict_csv_is_the_pipelines(model, pipe, paths, capsys):
    """``predict MODEL PATHS --format csv`` prints what the loaded ``pipe`` predicts."""
    assert cli.main(["predict", str(model), *map(str, paths), "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    expected = pipe.predict([str(p) for p in paths])
    assert [[r["domain"], r["object"]] for r in rows] == [[str(v) for v in e] for e in expected]


def assert_one_line_error(stderr, *words):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert "error" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def office_folder(tmp_path_factory):
    """A tiny folder in the Office-31 layout: 2 domains x 3 objects x 4 images."""
    root = tmp_path_factory.mktemp("office31")
    rng = np.random.RandomState(0)
    for d, dom in enumerate(["amazon", "webcam"]):
        for o, obj in enumerate(["mug", "pen", "stapler"]):
            folder = root / dom / "images" / obj
            folder.mkdir(parents=True)
            for i in range(4):
                img = np.full((12, 12, 3), 40 + 80 * o, np.uint8)
                img[:, :, d] = 200
                img = np.clip(img + rng.randint(0, 20, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"frame_{i:04d}.jpg")
    return root


# --------------------------------------------------------------------------
# reproduce


def test_reproduce_augment_says_so_and_trains_on_the_copies(tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(["reproduce", "--preset", "tuned", "--epochs", "2", "--hidden", "6",
                     "--solver", "sgd", "--size", "8", "--samples", "1", "--augment", "3",
                     "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert ("Augmentation: 3 versions of every training photo (the photo, its mirror image, "
            "shifted copies drawn anew every epoch)") in captured.out
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["augment"] == 3 and doc["settings"]["shift_each_epoch"] is True
    row = doc["results"][0]
    assert row["status"] == "ok" and row["n_iter"] == 2 and len(row["loss_curve"]) == 2
    code = cli.main(["reproduce", "--preset", "tuned", "--epochs", "1", "--hidden", "6",
                     "--solver", "sgd", "--size", "8", "--augment", "1", "--out",
                     str(tmp_path / "plain"), "-q"])
    assert code == 0 and "Augmentation" not in capsys.readouterr().out
    code = cli.main(["reproduce", "--preset", "tuned", "--epochs", "1", "--hidden", "6",
                     "--solver", "sgd", "--size", "8", "--augment", "3", "--no-shift-each-epoch",
                     "--out", str(tmp_path / "once"), "-q"])
    out = capsys.readouterr().out
    assert code == 0 and "shifted copies)" in out and "anew" not in out


def test_reproduce_builtin_study_preset(tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--hidden", "6,4", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    # first line says which data is used
    assert lines[0].startswith("Data: built-in office-digits dataset")
    assert "Office-31" in lines[0]
    # table in the study's form, with the study's own figures beside ours
    header = next(ln for ln in lines if ln.startswith("| hidden"))
    for col in ["solver", "domain acc", "object acc", "both right", "train s", "study domain"]:
        assert col in header
    assert any(ln.startswith("| (10) | sgd |") and "0.661" in ln for ln in lines)
    assert any(ln.startswith("| (6,4) | adam |") for ln in lines)
    # sample predictions
    samples = [ln for ln in lines if "\u2192 predicted (" in ln]
    assert len(samples) == 4 * 2 and samples[0].strip().startswith("true (")
    # progress on stderr: config i of n, epoch, loss, elapsed, ETA
    assert "config 1/4" in captured.err and "config 4/4" in captured.err
    assert "epoch 2/2" in captured.err and "ETA" in captured.err and "elapsed" in captured.err

    rows = read_csv(out / "results.csv")
    assert [(r["hidden"], r["solver"]) for r in rows] == [
        ("(10)", "sgd"), ("(10)", "adam"), ("(6,4)", "sgd"), ("(6,4)", "adam")]
    for r in rows:
        assert r["status"] == "ok"
        assert 0 <= float(r["domain_acc"]) <= 1 and 0 <= float(r["object_acc"]) <= 1
        assert float(r["both_acc"]) <= min(float(r["domain_acc"]), float(r["object_acc"]))
        assert float(r["fit_seconds"]) > 0
    assert rows[0]["study_domain_acc"] == "0.661" and rows[2]["study_domain_acc"] == ""

    doc = json.loads((out / "results.json").read_text())
    assert doc["interrupted"] is False and "partial" not in doc
    s = doc["settings"]
    assert s["preset"] == "study" and s["scale"] == 1.0 and s["init"] == "normal"
    assert s["momentum"] == 0.0 and s["alpha"] == 0.0 and s["batch_size"] == 10
    assert s["learning_rate_init"] == {"sgd": 1e-4, "adam": 1e-4}
    assert doc["split"]["train_size"] == 0.8 and doc["split"]["test_size"] == 0.15
    assert doc["versions"]["scikit-learn"] and doc["machine"]["cpu_count"]
    assert doc["data"]["source"] == "builtin:load_office_digits"
    for r in doc["results"]:
        assert len(r["loss_curve"]) == 2
        assert set(r["head_loss_curves"]) == {"domain", "object"}
        assert all(len(c) == 2 for c in r["head_loss_curves"].values())
        assert len(r["samples"]) == 2
        smp = r["samples"][0]
        assert len(smp["true"]) == 2 and len(smp["predicted"]) == 2
        assert all(0 < p <= 1 for p in smp["probability"])
    # figures (matplotlib is in the test extra)
    for name in ["accuracy.png", "loss_curves.png", "samples.png"]:
        assert (out / name).stat().st_size > 1000


def test_reproduce_samples_are_the_models_predictions(tmp_path, capsys):
    """The sample predictions reported equal a refit model's predictions."""
    from sklearn.model_selection import ShuffleSplit
    from threadpoolctl import threadpool_limits

    from skoffice31 import MultiHeadMLPClassifier

    out = tmp_path / "res"
    assert cli.main(["reproduce", *TINY, "--solver", "adam", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    doc = json.loads((out / "results.json").read_text())
    data = load_office_digits(size=8)
    X = data.images.reshape(len(data.images), -1).astype(np.float32)
    y = data.target.astype(str)
    train, test = next(ShuffleSplit(1, train_size=0.8, test_size=0.15,
                                    random_state=0).split(X, y))
    params = cli.settings_from_args(cli.build_parser().parse_args(["reproduce", *TINY]),
                                    grid=True).estimator_params(((10,), "adam"))
    with threadpool_limits(1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        clf = MultiHeadMLPClassifier(**params).fit(X[train], y[train])
    row = doc["results"][0]
    pred = clf.predict(X[test[:2]])
    assert [s["predicted"] for s in row["samples"]] == pred.tolist()
    assert [s["true"] for s in row["samples"]] == y[test[:2]].tolist()
    assert row["domain_acc"] == pytest.approx(np.mean(clf.predict(X[test])[:, 0] == y[test, 0]))


    # the confusion matrices and per-class accuracies are this model's on the test rows
    from sklearn.metrics import confusion_matrix

    full = clf.predict(X[test])
    per_class = read_csv(out / "per_class.csv")
    for h, head in enumerate(["domain", "object"]):
        cm = row["confusion"][head]
        assert cm["labels"] == [str(c) for c in clf.classes_[h]]
        assert np.array_equal(cm["matrix"], confusion_matrix(y[test, h], full[:, h],
                                                             labels=clf.classes_[h]))
        mine = [r for r in per_class if r["head"] == head and r["solver"] == "adam"]
        for r, label in zip(mine, clf.classes_[h]):
            rows_k = y[test, h] == label
            assert r["class"] == label and int(r["support"]) == rows_k.sum()
            assert int(r["correct"]) == np.sum(full[rows_k, h] == label)
        assert (out / f"confusion_{head}.png").stat().st_size > 1000
    # majority-class levels: what DummyClassifier(strategy="most_frequent") scores
    from sklearn.dummy import DummyClassifier

    for h, head in enumerate(["domain", "object"]):
        dummy = DummyClassifier(strategy="most_frequent").fit(X[train], y[train, h])
        base = doc["baselines"][head]
        assert base["majority"] == pytest.approx(dummy.score(X[test], y[test, h]))
        assert base["chance"] == pytest.approx(1 / len(np.unique(y[:, h])))


def test_accuracy_figure_marks_majority_and_chance_levels(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skoffice31 import study

    captured = []
    monkeypatch.setattr(plt, "close", lambda fig: captured.append(fig))
    row = {"hidden": [4], "solver": "adam", "status": "ok", "domain_acc": 0.7,
           "object_acc": 0.2, "both_acc": 0.1}
    base = {"domain": {"majority": 0.48, "chance": 1 / 3, "majority_class": "product"},
            "object": {"majority": 0.11, "chance": 0.1, "majority_class": "three"}}
    assert study.plot_results(tmp_path, [row], None, baselines=base) == ["accuracy.png"]
    ax = captured[0].axes[0]
    levels = {line.get_label(): (line.get_ydata()[0], line.get_linestyle())
              for line in ax.get_lines()}
    assert levels["domain majority class (0.48)"] == (0.48, "--")
    assert levels["domain chance (0.33)"] == (pytest.approx(1 / 3), ":")
    assert levels["object majority class (0.11)"] == (0.11, "--")
    assert levels["object chance (0.10)"] == (0.1, ":")


def test_reproduce_tuned_preset_and_overrides(tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--preset", "tuned", "--solver", "sgd",
                     "--lr", "0.05", "--batch-size", "16", "--seed", "3", "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""  # -q: no progress
    assert "study domain" not in captured.out
    doc = json.loads((out / "results.json").read_text())
    s = doc["settings"]
    assert s["preset"] == "tuned" and s["init"] == "glorot"
    assert s["scale"] == pytest.approx(1 / 255)
    assert s["learning_rate_init"]["sgd"] == 0.05 and s["batch_size"] == 16 and s["seed"] == 3
    assert s["epochs"] == 2 and s["hidden"] == [[10]] and s["solvers"] == ["sgd"]
    assert doc["split"]["random_state"] == 3
    rows = read_csv(out / "results.csv")
    assert len(rows) == 1 and rows[0]["learning_rate_init"] == "0.05"


def test_reproduce_n_jobs_matches_serial(tmp_path, capsys):
    args = [*TINY, "--hidden", "6,4", "-q"]
    assert cli.main(["reproduce", *args, "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["reproduce", *args, "--n-jobs", "2", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a = read_csv(tmp_path / "a" / "results.csv")
    b = read_csv(tmp_path / "b" / "results.csv")
    keys = ["hidden", "solver", "domain_acc", "object_acc", "both_acc", "final_loss"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


def test_reproduce_with_data_folder(office_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path / "home"))
    res = run_cli(["reproduce", "--data", office_folder, *TINY, "--solver", "sgd",
                   "--out", tmp_path / "res"])
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("Data: Office-31 photos from") and "24 images" in first
    assert "2 domains, 3 objects" in first
    doc = json.loads((tmp_path / "res" / "results.json").read_text())
    assert doc["data"]["classes"]["object"] == ["mug", "pen", "stapler"]
    assert doc["data"]["n_features"] == 8 * 8 * 3


def test_reproduce_interrupted_keeps_finished_rows(tmp_path, capsys, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) during the 2nd configuration."""
    from skoffice31 import MultiHeadMLPClassifier

    original = MultiHeadMLPClassifier.fit

    def fit(self, X, y, **kwargs):
        if self.solver == "adam":
            raise KeyboardInterrupt
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(MultiHeadMLPClassifier, "fit", fit)
    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 130
    assert "interrupted; 1 of 2 configurations finished" in captured.err
    assert "Traceback" not in captured.err
    rows = read_csv(out / "results.csv")
    assert [(r["hidden"], r["solver"], r["status"]) for r in rows] == [("(10)", "sgd", "ok")]
    doc = json.loads((out / "results.json").read_text())
    assert doc["interrupted"] is True and len(doc["results"]) == 1
    assert "| (10) | sgd |" in captured.out  # the finished part of the table


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_reproduce_sigint_subprocess(tmp_path):
    """A real SIGINT after the first configuration finished.

    The longest fit, (512,256) = config 2/2, runs first; the signal comes
    while (256,128) runs.
    """
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skoffice31", "reproduce", "--size", "8", "--hidden", "256,128",
         "--hidden", "512,256", "--solver", "sgd", "--epochs", "50", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        # a background shell may have set SIGINT to "ignore"; the child must see it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            if "config 1/2" in line and "done" not in line:
                break
            assert time.monotonic() < deadline, "no progress"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "1 of 2 configurations finished" in stderr
    rows = read_csv(out / "results.csv")
    assert [(r["hidden"], r["status"]) for r in rows] == [("(512,256)", "ok")]
    assert json.loads((out / "results.json").read_text())["interrupted"] is True


def test_reproduce_failed_configuration_is_reported(tmp_path, capsys, monkeypatch):
    from skoffice31 import MultiHeadMLPClassifier

    original = MultiHeadMLPClassifier.fit

    def fit(self, X, y, **kwargs):
        if self.solver == "adam":
            raise ValueError("boom: diverged")
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(MultiHeadMLPClassifier, "fit", fit)
    out = tmp_path / "res"
    assert cli.main(["reproduce", *TINY, "--out", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    rows = read_csv(out / "results.csv")
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"].startswith("failed") and "boom: diverged" in rows[1]["status"]
    assert "failed" in captured.out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--data", "{tmp}/nope"], ["data folder not found", "nope"]),
        (["--data", "{empty}"], ["not an Office-31 folder"]),
        (["--data", "{file}"], ["must be a folder"]),
        (["--hidden", "64,x"], ["bad --hidden", "64,x"]),
        (["--hidden", "64,0"], ["bad --hidden"]),
        (["--out", "{file}/sub"], ["cannot write to output folder"]),
        (["--epochs", "0"], ["bad --epochs"]),
        (["--scheduler", "nonsense"], ["bad --scheduler"]),
        (["--solver", "lbfgs"], ["invalid choice"]),
        (["--epochs", "two"], ["invalid int value"]),
    ],
)
def test_reproduce_user_errors(tmp_path, capsys, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    (tmp_path / "file").write_text("x")
    fmt = {"tmp": tmp_path, "empty": tmp_path / "empty", "file": tmp_path / "file"}
    args = [a.format(**fmt) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    assert cli.main(["reproduce", *TINY, *args]) == 2
    assert_one_line_error(capsys.readouterr().err, *words)


def test_user_error_exit_code_in_subprocess(tmp_path):
    res = run_cli(["reproduce", "--data", tmp_path / "missing", "--out", tmp_path / "o"])
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "data folder not found")
    assert res.stdout == ""


def test_help_and_version(capsys):
    res = run_cli(["--help"])  # python -m skoffice31
    assert res.returncode == 0 and "reproduce" in res.stdout and "predict" in res.stdout
    assert cli.main(["reproduce", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ["--data", "--preset", "--epochs", "--lr", "--batch-size", "--hidden",
                 "--solver", "--seed", "--n-jobs", "--out", "--scheduler", "-q"]:
        assert flag in out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("skoffice31 ")
    assert cli.main([]) == 2


def test_console_script_installed():
    import shutil

    exe = shutil.which("skoffice31")
    if exe is None:
        pytest.skip("package not installed (pip install -e .)")
    res = subprocess.run([exe, "predict", "--help"], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert res.returncode == 0 and "IMAGE" in res.stdout


@pytest.mark.skipif(not OFFICE31.is_dir(), reason="Office-31 not present in ../shared/data")
def test_reproduce_real_office31_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path / "home"))
    res = run_cli(["reproduce", "--data", OFFICE31, "--size", "12", "--epochs", "1",
                   "--hidden", "10", "--solver", "sgd", "--n-jobs", "2", "--out",
                   tmp_path / "res", "-q"])
    assert res.returncode == 0, res.stderr
    assert "4110 images, 3 domains, 31 objects" in res.stdout.splitlines()[0]
    row = read_csv(tmp_path / "res" / "results.csv")[0]
    assert row["study_domain_acc"] == "0.661"


# --------------------------------------------------------------------------
# train / predict


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model = folder / "model.skops"
    code = cli.main(["train", "--epochs", "3", "--hidden", "16", "--size", "8",
                     "--model", str(model), "-q"])
    assert code == 0
    images = load_office_digits(size=8)
    paths = []
    for i in (0, 1, 2):
        path = folder / f"img{i}.png"
        Image.fromarray(images.images[i * 500]).save(path)
        paths.append(path)
    (folder / "broken.jpg").write_text("not an image")
    return model, paths, folder


def test_train_saves_a_pipeline(trained_model, capsys):
    from skoffice31.persistence import load_model

    model, paths, _ = trained_model
    from skoffice31.study import final_classifier

    pipe = load_model(model)  # train saves the safe .skops format
    # the tuned preset's preprocessing and augmentation are part of the saved model
    assert [name for name, _ in pipe.steps] == ["imageflattener", "augmentedclassifier"]
    assert pipe[-1].copies == 4
    assert [name for name, _ in pipe[-1].estimator_.steps] == [
        "features", "multiheadmlpclassifier"]
    union = pipe[-1].estimator_.named_steps["features"]
    (_, pixels), (_, statistics) = union.transformer_list
    assert [name for name, _ in pixels.steps] == ["standardscaler", "principalcomponents"]
    assert [name for name, _ in statistics.steps] == ["imagestatistics", "standardscaler"]
    clf = final_classifier(pipe, fitted=True)
    # the network reads the components and the 24 image statistics
    assert clf.n_features_in_ == pixels[-1].n_components_ + 24
    assert clf.hidden == (16,) and clf.solver == "adam" and clf.max_iter == 3
    assert pipe[0].scale == pytest.approx(1 / 255)  # tuned preset by default
    pred = pipe.predict([str(p) for p in paths])
    assert pred.shape == (3, 2)


def test_train_prints_data_line_and_accuracy(tmp_path, capsys):
    model = tmp_path / "m.skops"
    assert cli.main(["train", "--epochs", "1", "--hidden", "4", "--size", "8", "--preset",
                     "study", "--solver", "sgd", "--model", str(model)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0].startswith("Data: built-in office-digits dataset")
    assert "Test accuracy" in out.out and "domain" in out.out
    assert "epoch 1/1" in out.err
    assert model.exists()


def test_predict(trained_model, capsys):
    """The default output is an aligned table: a header, one row per image."""
    from skoffice31.persistence import load_model

    model, paths, _ = trained_model
    code = cli.main(["predict", str(model), *map(str, paths), "--top", "2"])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["path", "domain", "object"]
    columns = [lines[0].index(" domain") + 1, lines[0].index(" object") + 1]
    pipe = load_model(model)
    proba = pipe.predict_proba([str(p) for p in paths])
    for i, (path, line) in enumerate(zip(paths, lines[1:])):
        assert line.startswith(f"{path} ")
        for col in columns:  # aligned: every head's cell starts under its header
            assert line[col - 2:col] == "  " and line[col] != " "
        assert line.count("(") == 4  # two labels with probabilities per head
        for h in range(2):  # the first label shown is the most probable one
            best = pipe[-1].classes_[h][np.argmax(proba[h][i])]
            assert f" {best} ({proba[h][i].max():.2f})" in line


def test_predict_bad_images_are_reported_and_others_predicted(trained_model, capsys):
    model, paths, folder = trained_model
    code = cli.main(["predict", str(model), str(paths[0]), str(folder / "missing.png"),
                     str(folder / "broken.jpg"), str(paths[1])])
    out = capsys.readouterr()
    assert code == 1
    rows = out.out.splitlines()[1:]
    assert [ln.split()[0] for ln in rows] == [str(paths[0]), str(folder / "missing.png"),
                                              str(folder / "broken.jpg"), str(paths[1])]
    assert "error: no such file" in rows[1] and "error: " in rows[2]
    assert "error" not in rows[0] and "error" not in rows[3]
    err = out.err.splitlines()
    assert len(err) == 2 and "Traceback" not in out.err
    assert "missing.png" in err[0] and "broken.jpg" in err[1]


def test_predict_csv_and_json_formats_agree_with_the_model(trained_model, tmp_path, capsys):
    from skoffice31.persistence import load_model

    model, paths, folder = trained_model
    images = [str(p) for p in paths] + [str(folder / "broken.jpg")]
    assert cli.main(["predict", str(model), *images, "--format", "csv"]) == 1
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert list(rows[0]) == ["path", "domain", "domain_probability", "object",
                             "object_probability", "error"]
    out = tmp_path / "pred.json"
    assert cli.main(["predict", str(model), *images, "--format", "json", "--out", str(out)]) == 1
    assert capsys.readouterr().out == ""  # --out: nothing on stdout
    doc = json.loads(out.read_text())
    pipe = load_model(model)
    pred, proba = pipe.predict(images[:3]), pipe.predict_proba(images[:3])
    assert [r["path"] for r in doc] == [r["path"] for r in rows] == images
    for i in range(3):
        assert doc[i]["error"] is None and rows[i]["error"] == ""
        for h, head in enumerate(["domain", "object"]):
            assert doc[i][head] == rows[i][head] == pred[i, h]
            assert doc[i][f"{head}_probability"] == pytest.approx(proba[h][i].max(), abs=1e-6)
            assert float(rows[i][f"{head}_probability"]) == pytest.approx(proba[h][i].max(),
                                                                          abs=1e-6)
    assert doc[3]["domain"] is None and "broken.jpg" in doc[3]["error"]
    assert rows[3]["domain"] == "" and rows[3]["error"]


def test_predict_takes_folders(trained_model, capsys):
    model, paths, folder = trained_model
    assert cli.main(["predict", str(model), str(folder), "--format", "json"]) == 1  # broken.jpg
    doc = json.loads(capsys.readouterr().out)
    listed = sorted(str(p) for p in folder.iterdir() if p.suffix in (".png", ".jpg"))
    assert [r["path"] for r in doc] == listed  # images only, sorted; model.skops ignored
    assert [r["error"] is None for r in doc] == [not p.endswith("broken.jpg") for p in listed]


def test_train_model_is_a_deprecated_alias_of_out(tmp_path, capsys):
    out = tmp_path / "a.skops"
    assert cli.main(["train", "--epochs", "1", "--hidden", "4", "--size", "8", "-q",
                     "--out", str(out)]) == 0
    assert out.exists() and "deprecated" not in capsys.readouterr().err
    old = tmp_path / "b.skops"
    assert cli.main(["train", "--epochs", "1", "--hidden", "4", "--size", "8", "-q",
                     "--model", str(old)]) == 0
    assert old.exists() and "--model is deprecated; use --out" in capsys.readouterr().err
    assert cli.main(["train", "--out", str(out), "--model", str(old)]) == 2
    assert_one_line_error(capsys.readouterr().err, "--out")


def test_train_writes_per_class_accuracies_and_confusion_figures(tmp_path, capsys):
    from skoffice31.persistence import load_model

    out = tmp_path / "m.skops"
    assert cli.main(["train", "--epochs", "2", "--hidden", "8", "--size", "8", "-q",
                     "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "majority class" in text and "chance" in text
    rows = read_csv(tmp_path / "m_per_class.csv")
    for head in ("domain", "object"):
        assert (tmp_path / f"m_confusion_{head}.png").stat().st_size > 0
        mine = [r for r in rows if r["head"] == head]
        assert [r["class"] for r in mine] == [str(c) for c in
                                              load_model(out)[-1].classes_[head == "object"]]
        for r in mine:
            assert int(r["correct"]) <= int(r["support"])
            if int(r["support"]):
                assert float(r["accuracy"]) == pytest.approx(int(r["correct"]) / int(r["support"]),
                                                    abs=1e-6)
    # the per-class rows add up to the printed test accuracy of each head
    for head in ("domain", "object"):
        mine = [r for r in rows if r["head"] == head]
        acc = sum(int(r["correct"]) for r in mine) / sum(int(r["support"]) for r in mine)
        assert f"{head} {acc:.3f} (majority class" in text


def test_train_predict_console_script_roundtrip(tmp_path, office_folder):
    model = tmp_path / "m.skops"
    res = run_cli(["train", "--data", office_folder, "--epochs", "2", "--hidden", "8",
                   "--size", "8", "--model", model, "-q"])
    assert res.returncode == 0, res.stderr
    image = next(office_folder.glob("webcam/images/pen/*.jpg"))
    res = run_cli(["predict", model, image])
    assert res.returncode == 0, res.stderr
    header, line = res.stdout.strip().splitlines()
    assert header.split() == ["path", "domain", "object"]
    assert line.startswith(str(image))
    assert any(d in line for d in ("amazon", "webcam"))


def test_train_augment_saves_a_model_that_predicts_and_has_no_display(trained_model, tmp_path,
                                                                      capsys):
    """``train --augment 3``: the copies are made after the flattener, before the scaler."""
    from skoffice31.augmentation import AugmentedClassifier
    from skoffice31.persistence import load_model
    from skoffice31.study import final_classifier

    _, paths, _ = trained_model
    model = tmp_path / "aug.skops"
    assert cli.main(["train", "--epochs", "2", "--hidden", "8", "--size", "8", "--augment", "3",
                     "--model", str(model)]) == 0
    out = capsys.readouterr()
    assert "epoch 2/2" in out.err and "Test accuracy" in out.out
    assert ("(each in 3 versions: the photo, its mirror image, shifted copies drawn anew every "
            "epoch)") in out.out
    pipe = load_model(model)
    assert [name for name, _ in pipe.steps] == ["imageflattener", "augmentedclassifier"]
    aug = pipe[-1]
    assert isinstance(aug, AugmentedClassifier) and aug.copies == 3 and aug.shift_each_epoch
    assert aug.image_shape == (8, 8, 3)
    assert [name for name, _ in aug.estimator_.steps] == [
        "features", "multiheadmlpclassifier"]
    pixels = aug.estimator_[0].transformer_list[0][1]
    assert [name for name, _ in pixels.steps] == ["standardscaler", "principalcomponents"]
    # the preset's 512 components, at most what 8x8 RGB photos have
    assert pixels[1].n_components_ == 8 * 8 * 3
    clf = final_classifier(pipe, fitted=True)
    assert clf.n_iter_ == 2 and not getattr(clf, "_skl_callbacks", None)
    assert_predict_csv_is_the_pipelines(model, pipe, paths, capsys)
    assert cli.main(["train", "--augment", "0"]) == 2
    assert_one_line_error(capsys.readouterr().err, "bad --augment 0", "must be >= 1")


def test_train_shift_each_epoch_saves_it_and_reports_every_epoch(trained_model, tmp_path,
                                                                 capsys):
    from skoffice31.persistence import load_model
    from skoffice31.study import final_classifier

    _, paths, _ = trained_model
    model = tmp_path / "fresh.skops"
    assert cli.main(["train", "--epochs", "3", "--hidden", "8", "--size", "8", "--augment", "3",
                     "--shift-each-epoch", "--out", str(model)]) == 0
    out = capsys.readouterr()
    assert "epoch 1/3" in out.err and "epoch 3/3" in out.err
    assert "shifted copies drawn anew every epoch" in out.out
    pipe = load_model(model)
    assert pipe[-1].shift_each_epoch is True
    assert len(final_classifier(pipe, fitted=True).loss_curve_) == 3
    assert_predict_csv_is_the_pipelines(model, pipe, paths, capsys)
    once = tmp_path / "once.skops"
    assert cli.main(["train", "--epochs", "1", "--hidden", "8", "--size", "8", "--augment", "3",
                     "--no-shift-each-epoch", "--out", str(once)]) == 0
    assert "anew" not in capsys.readouterr().out
    assert load_model(once)[-1].shift_each_epoch is False


def test_train_pca_saves_the_projection_and_refuses_bad_values(trained_model, tmp_path, capsys):
    """``train --pca N``: the saved model projects the scaled features before the network."""
    from skoffice31 import PrincipalComponents
    from skoffice31.persistence import load_model
    from skoffice31.study import final_classifier

    _, paths, _ = trained_model
    model = tmp_path / "pca.skops"
    assert cli.main(["train", "--epochs", "2", "--hidden", "8", "--size", "8", "--pca", "6",
                     "--model", str(model)]) == 0
    capsys.readouterr()
    pipe = load_model(model)
    inner = pipe[-1].estimator_
    assert [name for name, _ in inner.steps] == ["features", "multiheadmlpclassifier"]
    pixels = inner[0].transformer_list[0][1]
    assert [name for name, _ in pixels.steps] == ["standardscaler", "principalcomponents"]
    assert isinstance(pixels[1], PrincipalComponents) and pixels[1].n_components_ == 6
    # 6 components and the tuned preset's 24 image statistics
    assert final_classifier(pipe, fitted=True).coefs_[0].shape == (6 + 24, 8)
    assert_predict_csv_is_the_pipelines(model, pipe, paths, capsys)
    assert cli.main(["train", "--pca", "-1"]) == 2
    assert_one_line_error(capsys.readouterr().err, "bad --pca -1", "must be >= 0")
    assert cli.main(["train", "--pca", "6", "--no-scale-features", "--epochs", "1"]) == 2
    assert_one_line_error(capsys.readouterr().err, "bad settings",
                          "set scale_features=True")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["predict", "{tmp}/none.skops", "x.png"], ["model file not found"]),
        (["predict", "{bad}", "x.png"], ["cannot load model"]),
        (["train", "--out", "{tmp}/no/such/dir/m.skops"], ["cannot write model"]),
        (["train", "--data", "{tmp}/empty.csv"], ["cannot load --data", "empty"]),
        (["predict", "{tmp}/none.skops", "x.png", "--out", "{tmp}/no/dir/p.csv"],
         ["cannot write", "does not exist"]),
        (["train", "--hidden", "8", "--hidden", "16"], ["one --hidden"]),
        (["train", "--hidden", "abc"], ["bad --hidden"]),
        (["train", "--data", "{tmp}/missing"], ["data folder not found"]),
    ],
)
def test_train_predict_user_errors(tmp_path, capsys, argv, words):
    (tmp_path / "bad.skops").write_text("garbage")
    (tmp_path / "empty.csv").write_text("")
    argv = [a.format(tmp=tmp_path, bad=tmp_path / "bad.skops") for a in argv]
    assert cli.main(argv) == 2
    assert_one_line_error(capsys.readouterr().err, *words)


def test_reproduce_rewrites_the_results_after_every_configuration(tmp_path, capsys, monkeypatch):
    """The files follow the run: one snapshot per finished configuration, then the final one."""
    from skoffice31 import study

    snapshots = []
    original = study.write_results

    def write_results(out, info, rows, *, partial=False):
        original(out, info, rows, partial=partial)
        doc = json.loads((Path(out) / "results.json").read_text())
        snapshots.append((partial, len(rows), doc.get("partial", False), len(read_csv(
            Path(out) / "results.csv"))))

    monkeypatch.setattr(study, "write_results", write_results)
    args = ["--epochs", "2", "--hidden", "10", "--hidden", "6,4", "--size", "8", "--samples", "0"]
    assert cli.main(["reproduce", *args, "--out", str(tmp_path / "o"), "-q"]) == 0
    assert snapshots == [(True, 1, True, 1), (True, 2, True, 2), (True, 3, True, 3),
                         (True, 4, True, 4), (False, 4, False, 4)]
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]  # no temp files


def test_an_interrupt_inside_a_finalizer_is_not_reported_by_the_command(monkeypatch):
    """The console script drops Python's "Exception ignored" report of a Ctrl-C
    that landed in a finalizer (it says "interrupted" itself); nothing else."""
    import types

    from skoffice31.cli import _ignore_interrupts_in_finalizers

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    _ignore_interrupts_in_finalizers()
    _ignore_interrupts_in_finalizers()  # once per process: no second wrapper
    hook = sys.unraisablehook
    assert hook is not seen.append and hook._skoffice31
    interrupt = types.SimpleNamespace(exc_type=KeyboardInterrupt, exc_value=KeyboardInterrupt(),
                                      exc_traceback=None, err_msg=None, object=None)
    other = types.SimpleNamespace(exc_type=ValueError, exc_value=ValueError("x"),
                                  exc_traceback=None, err_msg=None, object=None)
    hook(interrupt)
    hook(other)
    assert seen == [other]
    # the real mechanism: a finalizer raising KeyboardInterrupt, with and without the hook
    code = ("import weakref, sys\n"
            "from skoffice31.cli import _ignore_interrupts_in_finalizers\n"
            "if sys.argv[1] == 'hook': _ignore_interrupts_in_finalizers()\n"
            "class A: pass\n"
            "def stop(): raise KeyboardInterrupt\n"
            "a = A(); weakref.finalize(a, stop); del a\n"
            "class B:\n    def __del__(self): raise ValueError('reported')\n"
            "b = B(); del b\n")
    for mode in ("hook", "plain"):
        res = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                             env=_env(), timeout=60)
        assert res.returncode == 0, res.stderr
        assert ("KeyboardInterrupt" in res.stderr) == (mode == "plain"), res.stderr
        assert "ValueError: reported" in res.stderr  # other errors are still reported


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_reproduce_ctrl_c_with_worker_processes(tmp_path):
    """Ctrl-C on a terminal (SIGINT to the process group) while a loky worker fits."""
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "skoffice31", "reproduce", "--size", "8", "--hidden", "6",
         "--hidden", "512,512", "--solver", "sgd", "--epochs", "40", "--n-jobs", "2",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # (6) finishes while (512,512), started first, still runs
            if "config 1/2 done" in line:
                break
            assert time.monotonic() < deadline, "no progress"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "1 of 2 configurations finished" in stderr
    assert [(r["hidden"], r["status"]) for r in read_csv(out / "results.csv")] == [("(6)", "ok")]
    assert json.loads((out / "results.json").read_text())["interrupted"] is True
