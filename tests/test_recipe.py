"""Issue 12: the preprocessing of the presets, the tuned preset, results over several seeds."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skoffice31 import ImageStandardizer, MultiHeadMLPClassifier
from skoffice31 import study
from skoffice31.study import StudySettings


def test_study_preset_has_no_preprocessing():
    s = StudySettings.from_preset("study")
    assert s.preprocessing_steps() == []
    assert isinstance(s.make_pipeline(((10,), "sgd")), MultiHeadMLPClassifier)
    assert (s.init, s.scale, s.standardize, s.seeds) == ("normal", 1.0, "none", 1)


def test_tuned_preset_builds_the_preprocessing_pipeline():
    from skoffice31.augmentation import AugmentedClassifier

    s = StudySettings.from_preset("tuned")
    augmented = s.make_pipeline(((64, 32, 10), "adam"))
    # stages 10, 11 and 17 of the search: four versions of each photo, 16 epochs, on
    # the first 512 principal components and 24 image statistics
    assert (s.augment, s.epochs, s.pca, s.statistics) == (4, 16, 512, True)
    assert isinstance(augmented, AugmentedClassifier) and augmented.copies == s.augment
    assert augmented.random_state == s.seed and augmented.image_shape is None  # square
    model = augmented.estimator
    assert isinstance(model, Pipeline)
    names = [name for name, _ in model.steps]
    assert names[-1] == "multiheadmlpclassifier" and names[:-1] == [
        name for name, _ in s.preprocessing_steps()]
    clf = model[-1]
    assert clf.get_params() == s.make_estimator(((64, 32, 10), "adam")).get_params()
    # what benchmarks/tune_recipe.py chose (benchmarks/results/tune_recipe.md)
    assert (s.init, s.standardize, s.scale_features, s.photo_size) == ("glorot", "none", True, 32)
    # its own wide layouts, none with the study's 10-unit bottleneck
    assert s.hidden == study.TUNED_HIDDEN and min(h[-1] for h in s.hidden) > 31
    assert s.image_size(real_photos=True) == (32, 32) and s.image_size(False) == (32, 32)
    assert clf.init == s.init and clf.learning_rate_init == s.learning_rate("adam")
    union = model.named_steps["features"]
    pixels, statistics = (t for _, t in union.transformer_list)
    assert [n for n, _ in statistics.steps] == ["imagestatistics", "standardscaler"]
    if s.standardize != "none":
        st = pixels.named_steps["imagestandardizer"]
        assert isinstance(st, ImageStandardizer)
        assert st.per_channel == (s.standardize == "channel")
        assert st.append_stats == s.image_stats and st.n_channels == 3
    assert isinstance(pixels.named_steps.get("standardscaler"), StandardScaler) == s.scale_features
    assert [n for n, _ in pixels.steps] == ["standardscaler", "principalcomponents"]
    # a new pipeline every call: fitting one does not fit the next
    assert s.make_pipeline(((10,), "sgd")) is not s.make_pipeline(((10,), "sgd"))


def test_tuned_preset_is_what_the_committed_search_chose():
    """The preset and benchmarks/results/tune_recipe.json agree (rerun the search to change it)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "tune_recipe.json"
    chosen = json.loads(path.read_text())["chosen"]
    preset = study.PRESETS["tuned"]
    assert sorted(tuple(h) for h in chosen["hidden"]) == sorted(preset["hidden"])
    assert tuple(chosen["size"]) == (preset["photo_size"],) * 2
    assert chosen["learning_rate_init"] == preset["learning_rate_init"]
    assert chosen["scale"] == pytest.approx(preset["scale"])
    for key in ("init", "momentum", "nesterovs_momentum", "alpha", "batch_size", "epochs",
                "standardize", "image_stats", "scale_features", "augment"):
        assert chosen[key] == preset[key], key
    assert chosen.get("pca", 0) == preset.get("pca", 0)
    for key in ("shift_each_epoch", "statistics"):
        assert chosen.get(key, False) == preset.get(key, False), key


@pytest.mark.parametrize("standardize,stats,scale,steps", [
    ("none", False, True, ["standardscaler"]),
    ("image", False, False, ["imagestandardizer"]),
    ("channel", True, True, ["imagestandardizer", "standardscaler"]),
])
def test_preprocessing_steps_follow_the_settings(standardize, stats, scale, steps):
    s = StudySettings.from_preset("study", standardize=standardize, image_stats=stats,
                                  scale_features=scale)
    assert [name for name, _ in s.preprocessing_steps()] == steps
    assert s.to_dict()["standardize"] == standardize


def test_pca_projects_the_scaled_features_inside_the_augmentation():
    from skoffice31 import PrincipalComponents

    s = StudySettings.from_preset("study", scale_features=True, pca=7, seed=3, augment=2)
    steps = s.preprocessing_steps()
    assert [name for name, _ in steps] == ["standardscaler", "principalcomponents"]
    pca = steps[1][1]
    assert isinstance(pca, PrincipalComponents) and pca.n_components == 7
    assert pca.random_state == 3
    model = s.make_pipeline(((8,), "sgd"))
    # the copies are made of the pixels; the projection is fitted on them
    assert [name for name, _ in model.estimator.steps] == [
        "standardscaler", "principalcomponents", "multiheadmlpclassifier"]
    assert s.to_dict()["pca"] == 7
    assert StudySettings.from_preset("study").pca == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pca_network_has_one_input_per_component():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (40, 4 * 4 * 3)).astype(np.float32)
    y = np.column_stack([np.arange(40) % 2, np.arange(40) % 3])
    s = StudySettings.from_preset("tuned", pca=5, epochs=2, size=(4, 4), augment=2,
                                  statistics=False)
    model = s.make_pipeline(((6,), "adam")).fit(X, y)
    clf = study.final_classifier(model, fitted=True)
    assert clf.n_features_in_ == 5 and clf.coefs_[0].shape == (5, 6)
    pca = model.estimator_.named_steps["principalcomponents"]
    # fitted on the 80 training copies (each photo and its mirror image)
    assert pca.pca_.n_samples_ == 80
    assert np.asarray(model.predict(X)).shape == (40, 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_with_preprocessing_gives_another_classifier_the_same_inputs():
    """A one-head scikit-learn network sees what the preset's network sees."""
    from sklearn.neural_network import MLPClassifier

    from skoffice31.augmentation import AugmentedClassifier

    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (40, 4 * 4 * 3)).astype(np.float32)
    y = np.arange(40) % 3
    s = StudySettings.from_preset("tuned", pca=5, epochs=2, size=(4, 4), augment=2, seed=4,
                                  statistics=False)
    model = s.with_preprocessing(MLPClassifier((3,), max_iter=5, random_state=0))
    assert isinstance(model, AugmentedClassifier)
    assert (model.copies, model.random_state) == (2, 4)
    assert [name for name, _ in model.estimator.steps] == [
        "standardscaler", "principalcomponents", "mlpclassifier"]
    # the same wrapping as the preset's own network, step for step
    own = s.make_pipeline(((6,), "adam"))
    assert [type(t) for _, t in own.estimator.steps[:-1]] == [
        type(t) for _, t in model.estimator.steps[:-1]]
    assert own.get_params()["copies"] == model.get_params()["copies"]
    model.fit(X, y)
    assert model.estimator_[-1].n_features_in_ == 5
    assert model.estimator_.named_steps["principalcomponents"].pca_.n_samples_ == 80
    pred = model.predict(X)
    assert pred.shape == (40,) and set(pred) <= {0, 1, 2}
    # nothing to add: the classifier itself
    plain = MLPClassifier()
    assert StudySettings.from_preset("study").with_preprocessing(plain) is plain


@pytest.mark.parametrize("overrides,match", [
    ({"standardize": "pixel"}, "standardize must be one of"),
    ({"image_stats": True}, "image_stats=True .* set standardize"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"pca": -1}, "pca must be an integer >= 0"),
    ({"pca": 2.5, "scale_features": True}, "pca must be an integer >= 0"),
    ({"pca": 16}, "pca projects the standardised features: set scale_features=True"),
    ({"statistics": 1}, "statistics must be True or False"),
])
def test_bad_preprocessing_or_seeds_are_refused(overrides, match):
    with pytest.raises(ValueError, match=match):
        StudySettings.from_preset("study", **overrides)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_and_evaluate_fits_the_pipeline():
    s = StudySettings.from_preset("tuned", epochs=2, hidden=[(8,)], solvers=["adam"],
                                  size=(8, 8))
    data = study.load_study_data(s)
    row = study.fit_and_evaluate(s, ((8,), "adam"), data.X, data.y, data.train, data.test)
    assert row["status"] == "ok", row["status"]
    assert row["n_iter"] == 2 and len(row["loss_curve"]) == 2
    # the same numbers as fitting the pipeline by hand
    model = s.make_pipeline(((8,), "adam")).fit(data.X[data.train], data.y[data.train])
    pred = np.asarray(model.predict(data.X[data.test]))
    assert row["domain_acc"] == pytest.approx(np.mean(pred[:, 0] == data.y[data.test, 0]))
    assert row["object_acc"] == pytest.approx(np.mean(pred[:, 1] == data.y[data.test, 1]))


# --------------------------------------------------------------- seeds


def _row(hidden, solver, seed, **values):
    row = {"hidden": list(hidden), "solver": solver, "seed": seed, "status": "ok"}
    row.update({m: values.get(m, 0.5) for m in study._seeds.SEED_METRICS})
    return row


def test_aggregate_seeds_matches_numpy():
    rng = np.random.default_rng(0)
    acc = rng.uniform(size=(2, 3, 2))  # config x seed x head
    rows = [_row(h, "sgd", seed, domain_acc=acc[c, k, 0], object_acc=acc[c, k, 1],
                 fit_seconds=float(k + 1))
            for k, seed in enumerate((5, 6, 7)) for c, h in enumerate([(10,), (4, 2)])]
    summary = study.aggregate_seeds(rows)
    assert [s["hidden"] for s in summary] == [[10], [4, 2]]
    for c, s in enumerate(summary):
        assert s["seeds"] == [5, 6, 7] and s["n_seeds"] == 3 and s["n_failed"] == 0
        for h, name in enumerate(("domain_acc", "object_acc")):
            assert s[f"{name}_mean"] == pytest.approx(np.mean(acc[c, :, h]))
            assert s[f"{name}_std"] == pytest.approx(np.std(acc[c, :, h], ddof=1))
        assert s["fit_seconds_mean"] == pytest.approx(2.0)
        assert s["fit_seconds_std"] == pytest.approx(1.0)


def test_aggregate_seeds_counts_failures_and_one_seed_has_no_std():
    rows = [_row((10,), "adam", 0, domain_acc=0.7), _row((10,), "adam", 1)]
    rows[1]["status"] = "failed: ValueError: boom"
    (s,) = study.aggregate_seeds(rows)
    assert (s["n_seeds"], s["n_failed"], s["seeds"]) == (1, 1, [0])
    assert s["domain_acc_mean"] == 0.7 and math.isnan(s["domain_acc_std"])
    table = study.format_seed_table([s])
    assert "0.700 |" in table and "1 (1 failed)" in table


def test_seed_table_shows_mean_and_std():
    rows = [_row((10,), "sgd", k, domain_acc=a) for k, a in enumerate((0.8, 0.9))]
    table = study.format_seed_table(study.aggregate_seeds(rows))
    assert "0.850 ± 0.071" in table.splitlines()[2]


def test_resplit_follows_the_seed_like_load_study_data():
    s = StudySettings.from_preset("study", size=(8, 8))
    data = study.load_study_data(s)
    for seed in (0, 3):
        one = dataclasses.replace(s, seed=seed)
        expected = study.load_study_data(one)
        got = study.resplit(data, one)
        np.testing.assert_array_equal(got.train, expected.train)
        np.testing.assert_array_equal(got.test, expected.test)
    assert not np.array_equal(study.resplit(data, dataclasses.replace(s, seed=1)).test,
                              data.test)


def test_run_seeds_runs_every_configuration_for_every_seed(tmp_path):
    s = StudySettings.from_preset("tuned", epochs=1, hidden=[(4,)], solvers=["sgd", "adam"],
                                  size=(8, 8), seed=3, seeds=2)
    assert s.seed_values() == [3, 4]
    data = study.load_study_data(s)
    seen = []
    rows = list(study.run_seeds(s, data, n_samples=0,
                                on_seed=lambda seed, one, d: seen.append((seed, one.seed,
                                                                          len(d.test)))))
    assert seen == [(3, 3, len(data.test)), (4, 4, len(data.test))]
    assert sorted((r["seed"], r["solver"]) for r in rows) == [
        (3, "adam"), (3, "sgd"), (4, "adam"), (4, "sgd")]
    # seed 3's rows are the one-seed run with seed 3: same split, same weights
    one = list(study.run_study(dataclasses.replace(s, seeds=1), data, n_samples=0))
    by_solver = {r["solver"]: r for r in rows if r["seed"] == 3}
    for r in one:
        assert by_solver[r["solver"]]["loss_curve"] == r["loss_curve"]
    summary = study.aggregate_seeds(rows)
    study.write_results(tmp_path, {"command": None}, rows, summary=summary)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "seed"
    lines = (tmp_path / "results_summary.csv").read_text().splitlines()
    assert lines[0].startswith("hidden,solver,n_seeds,n_failed,seeds,domain_acc_mean")
    assert len(lines) == 3 and ",3 4," in lines[1]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["summary"]) == 2 and len(doc["results"]) == 4


# --------------------------------------------------------------- the command line

TINY = ["--epochs", "2", "--hidden", "6", "--size", "8", "--samples", "0", "-q"]


def _csv(path):
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cli_reproduce_seeds_2_reports_mean_and_std(tmp_path, capsys):
    from skoffice31 import cli

    out = tmp_path / "res"
    code = cli.main(["reproduce", *TINY, "--solver", "sgd", "--solver", "adam", "--seeds", "2",
                     "--seed", "4", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Seeds 4, 5: every configuration" in captured.out
    assert "4 of 4 runs (configuration x seed) succeeded" in captured.out
    rows = _csv(out / "results.csv")
    assert sorted((r["seed"], r["solver"]) for r in rows) == [
        ("4", "adam"), ("4", "sgd"), ("5", "adam"), ("5", "sgd")]
    summary = _csv(out / "results_summary.csv")
    assert [(s["hidden"], s["solver"], s["seeds"]) for s in summary] == [
        ("(6)", "sgd", "4 5"), ("(6)", "adam", "4 5")]
    for s in summary:
        acc = [float(r["object_acc"]) for r in rows if r["solver"] == s["solver"]]
        assert float(s["object_acc_mean"]) == pytest.approx(np.mean(acc), abs=1e-6)
        assert float(s["object_acc_std"]) == pytest.approx(np.std(acc, ddof=1), abs=1e-6)
        cell = f"{np.mean(acc):.3f} ± {np.std(acc, ddof=1):.3f}"
        line = next(ln for ln in captured.out.splitlines()
                    if ln.startswith(f"| (6) | {s['solver']} | ") and "±" in ln)
        assert cell in line
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["seeds"] == 2 and len(doc["summary"]) == 2
    # the two seeds' splits differ
    tests = {r["seed"]: r["samples"] for r in doc["results"]}
    assert set(tests) == {4, 5}


def test_cli_reproduce_one_seed_keeps_the_study_files(tmp_path, capsys):
    from skoffice31 import cli

    out = tmp_path / "res"
    assert cli.main(["reproduce", *TINY, "--solver", "sgd", "--out", str(out)]) == 0
    capsys.readouterr()
    assert "seed" not in _csv(out / "results.csv")[0]
    assert not (out / "results_summary.csv").exists()


@pytest.mark.parametrize("overrides,pixels", [
    ({"scale_features": True, "pca": 7}, ["standardscaler", "principalcomponents"]),
    ({}, "passthrough"),
])
def test_statistics_go_next_to_the_preprocessed_pixels(overrides, pixels):
    from sklearn.pipeline import FeatureUnion

    from skoffice31 import ImageStatistics

    s = StudySettings.from_preset("study", statistics=True, size=(6, 4), **overrides)
    (name, union), = s.preprocessing_steps()
    assert name == "features" and isinstance(union, FeatureUnion)
    parts = dict(union.transformer_list)
    assert list(parts) == ["pixels", "statistics"]
    if pixels == "passthrough":
        assert parts["pixels"] == "passthrough"
    else:
        assert [n for n, _ in parts["pixels"].steps] == pixels
        # the same steps as without the statistics
        without = dataclasses.replace(s, statistics=False).preprocessing_steps()
        assert [n for n, _ in without] == pixels
    stats = parts["statistics"]
    assert [n for n, _ in stats.steps] == ["imagestatistics", "standardscaler"]
    # size is (width, height); the transformer takes (height, width)
    assert isinstance(stats[0], ImageStatistics) and stats[0].image_shape == (4, 6)
    assert StudySettings.from_preset("study", statistics=True).preprocessing_steps()[0][1] \
        .transformer_list[1][1][0].image_shape is None  # square, inferred
    assert s.to_dict()["statistics"] is True
    assert StudySettings.from_preset("study").statistics is False


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_statistics_network_reads_the_components_and_the_statistics(tmp_path):
    from skoffice31.persistence import load_model, save_model

    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, (40, 4 * 4 * 3)).astype(np.float32)
    y = np.column_stack([np.arange(40) % 2, np.arange(40) % 3])
    s = StudySettings.from_preset("tuned", pca=5, epochs=2, size=(4, 4), augment=4,
                                  statistics=True)
    model = s.make_pipeline(((6,), "adam")).fit(X, y)
    clf = study.final_classifier(model, fitted=True)
    assert clf.n_features_in_ == 5 + 24
    union = model.estimator_.named_steps["features"]
    # the statistics' scaler was fitted on the 160 training copies, like the projection
    assert union.transformer_list[1][1][-1].n_samples_seen_ == 160
    Z = union.transform(X)
    stats, scaler = union.transformer_list[1][1]
    np.testing.assert_allclose(Z[:, 5:], scaler.transform(stats.transform(X)), rtol=1e-6)
    loaded = load_model(save_model(model, tmp_path / "stats.skops"))
    for a, b in zip(loaded.predict_proba(X), model.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_cli_statistics_flag_reaches_the_settings():
    from skoffice31.cli import _common
    from skoffice31 import cli

    parser = cli.build_parser()
    args = parser.parse_args(["train", "--statistics"])
    assert _common.settings_from_args(args, grid=False).statistics is True
    args = parser.parse_args(["train", "--preset", "tuned", "--no-statistics"])
    assert _common.settings_from_args(args, grid=False).statistics is False


def test_cli_train_saves_the_preprocessing(tmp_path, capsys):
    from skoffice31 import cli
    from skoffice31.datasets import load_office_digits
    from skoffice31.persistence import load_model

    model = tmp_path / "m.skops"
    assert cli.main(["train", "--epochs", "2", "--hidden", "8", "--size", "8", "--standardize",
                     "channel", "--image-stats", "--scale-features", "--augment", "1",
                     "--pca", "0", "--no-statistics", "--model", str(model), "-q"]) == 0
    capsys.readouterr()
    pipe = load_model(model)
    assert [n for n, _ in pipe.steps] == ["imageflattener", "imagestandardizer",
                                          "standardscaler", "multiheadmlpclassifier"]
    assert pipe.named_steps["imagestandardizer"].per_channel
    assert pipe[-1].n_features_in_ == 8 * 8 * 3 + 6
    images = load_office_digits(size=8).images[:5]
    by_hand = pipe[-1].predict(pipe[:-1].transform(images))
    np.testing.assert_array_equal(pipe.predict(images), by_hand)


def test_grid_search_over_the_tuned_pipeline_gives_the_runners_numbers():
    import warnings

    from sklearn.model_selection import GridSearchCV

    from skoffice31.metrics import head_accuracy_scorer

    s = StudySettings.from_preset("tuned", epochs=2, hidden=[(6,), (5, 3)], solvers=["adam"],
                                  size=(8, 8))
    data = study.load_study_data(s)
    rows = {tuple(r["hidden"]): r for r in study.run_study(s, data, n_samples=0)}
    first = s.configurations()[0]
    # the tuned preset's model: AugmentedClassifier(Pipeline(StandardScaler, classifier))
    prefix = "estimator__multiheadmlpclassifier__"
    assert s.param_grid() == s.param_grid(prefix=prefix)
    search = GridSearchCV(s.make_pipeline(first), s.param_grid(),
                          scoring={"object": head_accuracy_scorer(1)}, cv=data.cv(),
                          refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(data.X, data.y)
    for i, params in enumerate(search.cv_results_["params"]):
        row = rows[params[prefix + "hidden"]]
        assert search.cv_results_["split0_test_object"][i] == pytest.approx(row["object_acc"])


def test_search_stage_17_tries_the_statistics_for_the_chosen_epochs_and_four_fifths():
    """benchmarks/tune_recipe.py's last stage: its candidates, and the tie rule's choice."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "tune_recipe.py"
    spec = importlib.util.spec_from_file_location("tune_recipe", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)

    def record(name, values, score, seconds):
        fold = {"hidden": [8], "solver": "adam", "fold": 0, "domain": score,
                "object": score, "fit_seconds": seconds}
        return {"name": name, "values": values, "score": score, "folds": [fold]}

    class FakeSearch:
        def run(self, stage, candidates):
            self.asked = (stage, candidates)
            # 20 epochs score a hair higher than 16, within the tie, at more cost
            return {name: record(name, v, 0.7520 if v["epochs"] == 20 else 0.7515,
                                 10.0 * v["epochs"]) for name, v in candidates.items()}

    current = record("previous", {"epochs": 20, "statistics": False}, 0.739, 150.0)
    search = FakeSearch()
    chosen = recipe.stage17(search, current)
    stage, candidates = search.asked
    assert stage == 17
    assert sorted(candidates) == ["image statistics, 16 epochs", "image statistics, 20 epochs"]
    assert all(v["statistics"] is True for v in candidates.values())
    # within the tie (1e-3) of the best, the cheaper grid wins
    assert chosen["name"] == "image statistics, 16 epochs"
