"""The command line's failures: one clear line, the right exit code, nothing lost.

Issue 11, items 4-8, the CLI side of 10, 15 and 16 (the model-file items 1
and 9 are in test_persistence.py).
"""

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skoffice31 import MultiHeadMLPClassifier, _messages, cli, study
from skoffice31.study import _output

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "2", "--hidden", "10", "--size", "8", "--samples", "0"]


def lines_of(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_one_line_error(stderr, *words):
    lines = lines_of(stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "error" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def no_temporary_files(folder):
    return [p.name for p in Path(folder).rglob("*") if p.name.startswith(".")] == []


def make_office_folder(root, domains=("amazon", "webcam"), objects=("mug", "pen"), n=4):
    rng = np.random.RandomState(0)
    for d, dom in enumerate(domains):
        for o, obj in enumerate(objects):
            folder = root / dom / "images" / obj
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.full((12, 12, 3), 40 + 80 * o, np.uint8)
                img[:, :, d % 3] = 200
                img = np.clip(img + rng.randint(0, 20, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"frame_{i:04d}.jpg")
    return root


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fail the test if a command gets as far as loading data."""

    def load(*args, **kwargs):
        raise AssertionError("the bad option was not refused at parse time")

    monkeypatch.setattr(study, "load_study_data", load)


# --------------------------------------------------------------------------
# item 6: numbers are checked at parse time


@pytest.mark.parametrize("command", ["train", "reproduce"])
@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "inf"], ["bad --lr inf", "finite"]),
        (["--lr", "nan"], ["bad --lr nan"]),
        (["--lr", "-1"], ["bad --lr -1", "> 0"]),
        (["--alpha", "nan"], ["bad --alpha nan"]),
        (["--alpha", "-0.5"], ["bad --alpha", ">= 0"]),
        (["--hidden", "64,,32"], ["bad --hidden", "64,,32"]),
        (["--hidden", "0"], ["bad --hidden", "'none' for no hidden layer"]),
        (["--hidden", "64,"], ["bad --hidden"]),
        (["--epochs", "0"], ["bad --epochs 0"]),
        (["--epochs", "1.5"], ["invalid int value"]),
        (["--batch-size", "0"], ["bad --batch-size"]),
        (["--seed", "-3"], ["bad --seed"]),
        (["--train-size", "1.5"], ["bad --train-size", "between 0 and 1"]),
        (["--test-size", "nan"], ["bad --test-size"]),
        (["--blas-threads", "-1"], ["bad --blas-threads"]),
    ],
)
def test_bad_numbers_refused_at_parse_time(command, args, words, capsys, no_data_loading,
                                           tmp_path):
    out = ["--out", str(tmp_path / "o")] if command == "reproduce" else [
        "--out", str(tmp_path / "m.skops")]
    assert cli.main([command, *args, *out]) == 2
    assert_one_line_error(capsys.readouterr().err, *words)
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.skops").exists()


@pytest.mark.parametrize("args, words", [
    (["reproduce", "--n-jobs", "0"], ["bad --n-jobs 0", "-1 for all cores"]),
    (["reproduce", "--samples", "-1"], ["bad --samples"]),
    (["predict", "m.skops", "x.png", "--top", "0"], ["bad --top 0"]),
])
def test_other_bad_numbers(args, words, capsys, no_data_loading):
    assert cli.main(args) == 2
    assert_one_line_error(capsys.readouterr().err, *words)


def test_hidden_none_means_no_hidden_layer():
    args = cli.build_parser().parse_args(["train", "--hidden", "none"])
    assert list(cli.settings_from_args(args, grid=False).hidden) == [()]
    args = cli.build_parser().parse_args(["reproduce", "--hidden", "64, 32", "--hidden", "8"])
    assert list(cli.settings_from_args(args, grid=True).hidden) == [(64, 32), (8,)]


@pytest.mark.parametrize("preset,layouts", [("study", study.DEFAULT_HIDDEN),
                                            ("tuned", study.TUNED_HIDDEN)])
def test_reproduce_without_hidden_runs_the_presets_own_layouts(preset, layouts):
    args = cli.build_parser().parse_args(["reproduce", "--preset", preset])
    assert cli.settings_from_args(args, grid=True).hidden == tuple(layouts)
    # train keeps one layout
    args = cli.build_parser().parse_args(["train", "--preset", preset])
    assert cli.settings_from_args(args, grid=False).hidden == ((64, 32, 10),)


# --------------------------------------------------------------------------
# item 4 (and 7): train's ordinary failures are one line


def test_train_divergence_is_one_line_exit_1(tmp_path, capsys):
    model = tmp_path / "m.skops"
    code = cli.main(["train", "--preset", "study", "--lr", "1e30", "--epochs", "3",
                     "--hidden", "8", "--size", "8", "--out", str(model), "-q"])
    assert code == 1
    assert_one_line_error(capsys.readouterr().err, "skoffice31 train: error: training failed",
                          "diverged", "Lower learning_rate_init")
    assert not model.exists() and no_temporary_files(tmp_path)


def test_train_collapse_is_one_warning_line(tmp_path, capsys):
    """lr 10 on raw pixels: a finite but absurd loss; the estimator's warning, one line each."""
    model = tmp_path / "m.skops"
    code = cli.main(["train", "--preset", "study", "--lr", "10", "--epochs", "3",
                     "--hidden", "8", "--size", "8", "--out", str(model), "-q"])
    assert code == 0
    err = lines_of(capsys.readouterr().err)
    assert err and all(ln.startswith("warning: ") for ln in err), err
    assert any("collapsing" in ln or "dead ReLU" in ln for ln in err), err
    assert model.exists()


def test_reproduce_collapse_is_one_warning_line_per_message(tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--preset", "study", "--lr", "10", "--solver", "adam",
                     "--out", str(out), "-q"])
    assert code == 0
    err = lines_of(capsys.readouterr().err)
    assert err and all(ln.startswith("warning: hidden (10) adam: ") for ln in err), err
    import json

    doc = json.loads((out / "results.json").read_text())
    assert [f"warning: hidden (10) adam: {m}" for m in doc["results"][0]["warnings"]] == err


def test_train_single_domain_folder(tmp_path, capsys):
    data = make_office_folder(tmp_path / "one", domains=("dslr",))
    code = cli.main(["train", "--data", str(data), "--size", "8", "--epochs", "1",
                     "--out", str(tmp_path / "m.skops"), "-q", "--no-cache"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "only one domain (dslr)",
                          "two or more domain folders")
    assert not (tmp_path / "m.skops").exists()


def test_train_too_few_images(tmp_path, capsys):
    root = tmp_path / "few"
    for dom, obj in [("amazon", "mug"), ("webcam", "pen")]:  # one image each
        (root / dom / "images" / obj).mkdir(parents=True)
        Image.fromarray(np.full((12, 12, 3), 99, np.uint8)).save(
            root / dom / "images" / obj / "frame_0001.jpg")
    code = cli.main(["train", "--data", str(root), "--size", "8", "--epochs", "1",
                     "--out", str(tmp_path / "m.skops"), "-q", "--no-cache"])
    assert code == 2
    assert_one_line_error(capsys.readouterr().err, "too few images", "--train-size")


def test_train_disk_full_while_saving(tmp_path, capsys, monkeypatch):
    import skops.io as sio

    def full_disk(obj, file):
        Path(file).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio, "dump", full_disk)
    model = tmp_path / "m.skops"
    code = cli.main(["train", "--epochs", "1", "--hidden", "4", "--size", "8",
                     "--out", str(model), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, "cannot write model", "no space left")
    assert "Test accuracy" in captured.out  # the result was reported before saving
    assert list(tmp_path.iterdir()) == []


def test_train_ctrl_c_is_130(tmp_path, capsys, monkeypatch):
    def fit(self, X, y, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(MultiHeadMLPClassifier, "fit", fit)
    # the tuned preset trains epoch by epoch (new shifts every epoch): partial_fit
    monkeypatch.setattr(MultiHeadMLPClassifier, "partial_fit", fit)
    model = tmp_path / "m.skops"
    assert cli.main(["train", "--epochs", "1", "--size", "8", "--out", str(model), "-q"]) == 130
    assert lines_of(capsys.readouterr().err) == ["skoffice31: interrupted"]
    assert not model.exists()


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("something odd\nsecond line")

    monkeypatch.setattr(cli._models, "cmd_train", boom)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["train"]) == 1
    assert_one_line_error(capsys.readouterr().err, "RuntimeError: something odd",
                          cli.DEBUG_ENV)
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(RuntimeError):
        cli.main(["train"])


# --------------------------------------------------------------------------
# item 5: reproduce's exit status and last line


def test_reproduce_every_configuration_failed(tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--preset", "study", "--lr", "1e30",
                     "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    last = lines_of(captured.err)[-1]
    assert last.startswith("skoffice31 reproduce: error: no configuration succeeded")
    assert "0 of 2 configurations succeeded, 2 failed" in last and "diverged" in last
    assert (out / "results.csv").exists()  # the failures are recorded
    assert "Traceback" not in captured.err


def test_reproduce_partial_failure_says_how_many(tmp_path, capsys, monkeypatch):
    original = MultiHeadMLPClassifier.fit

    def fit(self, X, y, **kwargs):
        if self.solver == "adam":
            raise MemoryError("no room")
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(MultiHeadMLPClassifier, "fit", fit)
    assert cli.main(["reproduce", *TINY, "--out", str(tmp_path / "res"), "-q"]) == 0
    last = lines_of(capsys.readouterr().out)[-1]
    assert last.startswith("1 of 2 configurations succeeded, 1 failed")


def test_reproduce_all_ok_last_line(tmp_path, capsys):
    assert cli.main(["reproduce", *TINY, "--solver", "sgd", "--out", str(tmp_path), "-q"]) == 0
    assert lines_of(capsys.readouterr().out)[-1] == "1 of 1 configurations succeeded, 0 failed"


def test_reproduce_one_domain_data_fails_cleanly(tmp_path, capsys):
    data = make_office_folder(tmp_path / "one", domains=("webcam",))
    code = cli.main(["reproduce", *TINY, "--data", str(data), "--out", str(tmp_path / "o"),
                     "-q", "--no-cache"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    assert "no configuration succeeded" in lines_of(captured.err)[-1]
    assert "only one class" in lines_of(captured.err)[-1]


# --------------------------------------------------------------------------
# item 8: disk full or read-only --out during reproduce


def test_reproduce_disk_full_keeps_finished_rows(tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    real_open = open

    def atomic_write_text(path, text):
        """The real writer, whose 3rd and later files hit a full disk mid-write."""
        calls["n"] += 1
        if calls["n"] <= 2:  # results.csv and results.json of the 1st configuration
            return real_atomic(path, text)
        from skoffice31._fileio import atomic_path

        with atomic_path(path) as tmp:
            with real_open(tmp, "w") as f:
                f.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    real_atomic = _output.atomic_write_text
    monkeypatch.setattr(_output, "atomic_write_text", atomic_write_text)
    out = tmp_path / "res"
    args = ["--epochs", "1", "--hidden", "10", "--hidden", "6", "--solver", "sgd", "--size",
            "8", "--samples", "0", "--out", str(out), "-q"]
    code = cli.main(["reproduce", *args])
    captured = capsys.readouterr()
    assert code == 1
    assert_one_line_error(captured.err, "cannot write the results", "no space left",
                          "the 1 configuration(s) saved before are kept")
    assert no_temporary_files(out)
    import csv

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["status"] == "ok"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that root cannot be refused")
def test_reproduce_out_becomes_read_only(tmp_path, capsys, monkeypatch):
    out = tmp_path / "res"
    original = study.write_results

    def write_results(folder, info, rows, *, partial=False):
        original(folder, info, rows, partial=partial)
        os.chmod(folder, 0o555)  # read-only after the first snapshot

    monkeypatch.setattr(study, "write_results", write_results)
    try:
        code = cli.main(["reproduce", "--epochs", "1", "--hidden", "10", "--hidden", "6",
                         "--solver", "sgd", "--size", "8", "--samples", "0", "--out", str(out),
                         "-q"])
    finally:
        os.chmod(out, 0o755)
    assert code == 1
    assert_one_line_error(capsys.readouterr().err, "cannot write the results")
    assert no_temporary_files(out)


# --------------------------------------------------------------------------
# item 10, CLI side: --no-cache and the right folder


def test_cache_warning_names_the_cache_folder(tmp_path, capsys, monkeypatch):
    data = make_office_folder(tmp_path / "office")
    home = tmp_path / "home"
    home.write_text("a file where the data home should be")
    monkeypatch.setenv("SKOFFICE31_DATA", str(home))
    args = ["reproduce", *TINY, "--solver", "sgd", "--data", str(data), "--out",
            str(tmp_path / "o"), "-q"]
    assert cli.main(args) == 0
    err = lines_of(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("warning: cannot use the image cache in "), err
    assert str(home) in err[0] and "--no-cache" in err[0]
    assert cli.main([*args, "--no-cache"]) == 0
    assert lines_of(capsys.readouterr().err) == []


def test_os_error_names_the_failing_path(tmp_path, capsys, monkeypatch):
    data = make_office_folder(tmp_path / "office")
    where = str(tmp_path / "home" / "cache" / "office31-abc.npz")

    def load(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", where)

    monkeypatch.setattr(study, "load_study_data", load)
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "m.skops")]) == 2
    assert_one_line_error(capsys.readouterr().err, f"cannot read {where}", "Permission denied")


def test_no_cache_is_passed_to_the_loader(tmp_path, monkeypatch, capsys):
    from skoffice31 import datasets

    seen = []
    real = datasets.load_office31

    def load_office31(*args, **kwargs):
        seen.append(kwargs.get("cache", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_office31", load_office31)
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path / "home"))
    data = make_office_folder(tmp_path / "office")
    for extra in ([], ["--no-cache"]):
        assert cli.main(["train", "--data", str(data), "--size", "8", "--epochs", "1",
                         "--hidden", "4", "--out", str(tmp_path / "m.skops"), "-q",
                         *extra]) == 0
    assert seen == [True, False]
    capsys.readouterr()


# --------------------------------------------------------------------------
# item 16: the skipped files are named


def test_skipped_files_count_and_first_names(tmp_path, capsys, monkeypatch):
    data = make_office_folder(tmp_path / "office")
    broken = [data / "amazon" / "images" / "mug" / f"broken_{i}.jpg" for i in range(5)]
    for path in broken:
        path.write_text("not a jpeg")
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path / "home"))
    assert cli.main(["reproduce", *TINY, "--solver", "sgd", "--data", str(data),
                     "--out", str(tmp_path / "o"), "-q"]) == 0
    err = lines_of(capsys.readouterr().err)
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("warning: skipped 5 file(s)")
    shown = [p for p in broken if p.name in line]
    assert len(shown) == _messages.SHOW_SKIPPED and "and 2 more" in line


def test_skipped_files_line_unit():
    from skoffice31.datasets import SkippedFilesWarning

    w = SkippedFilesWarning("Skipped 2 file(s):\n  a.jpg: x\n  b.jpg: y",
                            files=["a.jpg", "caf\udce9.jpg"], reasons=["broken", "unreadable"])
    assert _messages.warning_line(w) == ("skipped 2 file(s) that could not be loaded: "
                                         "a.jpg (broken); caf\\xe9.jpg (unreadable)")


# --------------------------------------------------------------------------
# item 15: mixed label types, whatever comes first


@pytest.mark.parametrize("first", ["a", 1])
def test_mixed_label_types_clear_error(first):
    X = np.random.RandomState(0).rand(4, 3)
    other = 1 if first == "a" else "a"
    y = np.array([[first, 0], [other, 1], [first, 0], [2, 1]], dtype=object)
    with pytest.raises(ValueError, match="mixes label types"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MultiHeadMLPClassifier(max_iter=1).fit(X, y)


# --------------------------------------------------------------------------
# the console script: exit codes as seen by a shell


def test_exit_codes_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH",
                                                                                   "")]))
    res = subprocess.run([sys.executable, "-m", "skoffice31", "train", "--lr", "inf"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "bad --lr inf" in res.stderr
    bad = tmp_path / "m.joblib"
    bad.write_bytes(b"\x80\x04garbage")
    res = subprocess.run([sys.executable, "-m", "skoffice31", "predict", str(bad), "x.png"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2
    assert_one_line_error(res.stderr, "a pickle", "refused")
