"""Tests of skoffice31.study: settings, one configuration, the runner, the display."""

import dataclasses
import io
import json
import os
import math
import time
import warnings

import pytest

from skoffice31 import study
from skoffice31.metrics import exact_match_scorer, head_accuracy_scorer
from skoffice31.study import Configuration, StudySettings
from skoffice31.study._display import _eta


@pytest.fixture(scope="module")
def tiny():
    settings = StudySettings.from_preset("study", epochs=2, hidden=[(10,), (6, 4)], size=(8, 8))
    return settings, study.load_study_data(settings)


# ------------------------------------------------------------------ settings


def test_presets_and_overrides():
    s = StudySettings.from_preset("study")
    assert (s.scale, s.init, s.momentum, s.alpha, s.batch_size, s.epochs) == (
        1.0, "normal", 0.0, 0.0, 10, 50)
    assert s.hidden == study.DEFAULT_HIDDEN and s.solvers == ("sgd", "adam")
    assert set(study.STUDY_RESULTS) == set(s.configurations())
    t = StudySettings.from_preset("tuned", learning_rate_init=0.05, epochs=3, seed=None)
    assert t.learning_rate("sgd") == t.learning_rate("adam") == 0.05 and t.seed == 0
    assert StudySettings.from_preset("tuned", learning_rate_init={"adam": 0.1}).learning_rate(
        "sgd") == study.PRESETS["tuned"]["learning_rate_init"]["sgd"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.epochs = 3
    assert dataclasses.replace(s, epochs=3).epochs == 3
    json.dumps(s.to_dict())


@pytest.mark.parametrize("change, words", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"hidden": [(64, 0)]}, "positive layer sizes"),
    ({"solvers": ["lbfgs"]}, "unknown solver"),
    ({"train_size": 0.9, "test_size": 0.2}, "sum <= 1"),
    ({"learning_rate_init": -1.0}, "must be > 0"),
    ({"size": (8,)}, "(width, height)"),
])
def test_settings_are_validated(change, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        StudySettings.from_preset("study", **change)


def test_estimator_params_run_every_epoch():
    s = StudySettings.from_preset("study", epochs=7)
    clf = s.make_estimator(((64, 32, 10), "adam"))
    assert clf.hidden == (64, 32, 10) and clf.solver == "adam"
    assert clf.max_iter == clf.n_iter_no_change == 7 and clf.random_state == 0
    assert clf.learning_rate_init == 1e-4 and clf.batch_size == 10 and clf.init == "normal"


def test_order_by_cost_is_longest_first_and_stable(tiny):
    settings, data = tiny
    order = study.order_by_cost(settings.configurations(), data, settings)
    assert order == [Configuration((10,), "sgd"), Configuration((10,), "adam"),
                     Configuration((6, 4), "sgd"), Configuration((6, 4), "adam")]
    n_out = data.n_outputs
    assert study.expected_cost(Configuration((10,), "sgd"), 192, n_out, 100, 2) == (
        (192 * 10 + 10 * n_out) * 2 * 100)


# ------------------------------------------------------------------ one configuration


def test_fit_and_evaluate_is_the_estimators_fit_and_scorers(tiny):
    settings, data = tiny
    row = study.fit_and_evaluate(settings, ((6, 4), "adam"), data.X, data.y, data.train,
                                 data.test, n_samples=3)
    assert row["status"] == "ok" and row["error"] is None
    import pandas as pd

    y = pd.DataFrame(data.y, columns=list(study.HEADS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = settings.make_estimator(((6, 4), "adam")).fit(data.X[data.train],
                                                              y.iloc[data.train])
    Xt, yt = data.X[data.test], y.iloc[data.test]
    assert row["domain_acc"] == head_accuracy_scorer("domain")(clf, Xt, yt)
    assert row["object_acc"] == head_accuracy_scorer("object")(clf, Xt, yt)
    assert row["both_acc"] == exact_match_scorer(clf, Xt, yt)
    assert row["loss_curve"] == clf.loss_curve_ and row["n_iter"] == 2
    assert row["head_loss_curves"] == clf.head_loss_curves_
    pred = clf.predict(data.X[data.test[:3]])
    assert [s["predicted"] for s in row["samples"]] == pred.tolist()
    assert [s["row"] for s in row["samples"]] == data.test[:3].tolist()
    assert row["fit_seconds"] > 0 and row["started"] < row["finished"]
    assert "study_domain_acc" not in row  # (6, 4) is not in the study's table


def test_a_failed_fit_is_a_row_with_the_exception(tiny):
    settings, data = tiny
    bad = dataclasses.replace(settings, init_scale=1e30)  # overflows: a non-finite loss
    row = study.fit_and_evaluate(bad, ((10,), "sgd"), data.X, data.y, data.train, data.test)
    assert isinstance(row["error"], ValueError)
    assert row["status"].startswith("failed: ValueError: The training loss became")
    assert math.isnan(row["domain_acc"]) and row["samples"] == []


def test_grid_search_with_the_packages_scorers_gives_the_same_numbers(tiny):
    """The study is a grid of scikit-learn estimators: GridSearchCV agrees."""
    import pandas as pd
    from sklearn.model_selection import GridSearchCV

    settings, data = tiny
    rows = {(tuple(r["hidden"]), r["solver"]): r for r in study.run_study(settings, data)}
    scoring = {"domain": head_accuracy_scorer("domain"), "object": head_accuracy_scorer("object"),
               "both": exact_match_scorer}
    first = settings.configurations()[0]
    search = GridSearchCV(settings.make_estimator(first), settings.param_grid(), scoring=scoring,
                          cv=data.cv(), refit=False, return_train_score=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(data.X, pd.DataFrame(data.y, columns=list(study.HEADS)))
    res = search.cv_results_
    for i, params in enumerate(res["params"]):
        row = rows[(params["hidden"], params["solver"])]
        for name in ("domain", "object", "both"):
            assert res[f"split0_test_{name}"][i] == row[f"{name}_acc"]
            assert res[f"split0_train_{name}"][i] == row[f"train_{name}_acc"]


# ------------------------------------------------------------------ the runner


def test_runner_starts_the_longest_fit_first_and_streams_rows():
    """n_jobs=2: the two costliest start first; the short fits stream out before the long ends."""
    settings = StudySettings.from_preset(
        "study", epochs=4, size=(8, 8), solvers=["sgd"],
        hidden=[(4,), (768, 768), (8,), (6,)],
    )
    data = study.load_study_data(settings)
    records, received = [], {}
    rows = []
    for row in study.run_study(settings, data, n_jobs=2, n_samples=0, progress=records.append):
        received[tuple(row["hidden"])] = time.time()
        rows.append(row)
    assert all(r["status"] == "ok" for r in rows)
    by_start = [tuple(r["hidden"]) for r in sorted(rows, key=lambda r: r["started"])]
    expected = [tuple(c.hidden) for c in study.order_by_cost(settings.configurations(), data,
                                                              settings)]
    assert expected[0] == (768, 768)
    # two workers: the first two of the queue start together, the others in order
    assert set(by_start[:2]) == set(expected[:2]) and by_start[2:] == expected[2:]
    longest = next(r for r in rows if tuple(r["hidden"]) == (768, 768))
    short = [h for h in received if h != (768, 768)]
    # streaming: the short fits were in the caller's hands before the longest fit ended
    assert max(received[h] for h in short) < longest["finished"]
    assert tuple(rows[-1]["hidden"]) == (768, 768)
    # every epoch of every fit was reported in this process, tagged with its configuration
    tags = {(tuple(r["tag"][0]), r["tag"][1]) for r in records}
    assert tags == set(settings.configurations())
    assert len(records) == 4 * len(rows)


def test_runner_reports_failures_from_worker_processes(tiny):
    settings, data = tiny
    bad = dataclasses.replace(settings, init_scale=1e30)
    rows = list(study.run_study(bad, data, n_jobs=2, n_samples=0))
    assert len(rows) == 4
    # the exception object itself comes back from the worker process
    assert all(isinstance(r["error"], ValueError) for r in rows)
    assert all(r["status"].startswith("failed: ValueError: The training loss") for r in rows)


# ------------------------------------------------------------------ display


def test_eta_schedules_the_queue_on_the_workers():
    assert _eta([10.0, 2.0], [5.0], 2) == 10.0  # the 5 s fit goes beside the long one
    assert _eta([10.0, 2.0], [5.0, 6.0], 2) == 13.0
    assert _eta([4.0], [3.0, 3.0], 1) == 10.0
    assert _eta([], [], 2) == 0.0


def _record(config, epoch, max_iter=4, elapsed=1.0):
    return {"tag": config, "epoch": epoch, "max_iter": max_iter, "loss": 1.5,
            "head_losses": {"domain": 0.5, "object": 1.0}, "elapsed": elapsed}


def test_progress_appends_lines_when_not_a_terminal():
    a, b = Configuration((10,), "sgd"), Configuration((64, 32, 10), "adam")
    out = io.StringIO()
    p = study.StudyProgress([a, b], {a: 1.0, b: 9.0}, [b, a], 2, stream=out, tty=False)
    for e in (1, 2, 3, 4):
        p.epoch(_record(a, e, elapsed=0.1 * e))
    p.done({"hidden": [10], "solver": "sgd", "status": "ok", "domain_acc": 0.5,
            "object_acc": 0.25, "both_acc": 0.125, "fit_seconds": 0.4})
    lines = out.getvalue().splitlines()
    # epoch 1 and the last epoch always, the ones in between at most every 2 s
    assert [ln.split(": epoch ")[1][:3] for ln in lines[:-1]] == ["1/4", "4/4"]
    assert lines[0].startswith("config 1/2 (10) sgd: epoch 1/4 loss 1.5000 (domain 0.5000")
    assert "elapsed" in lines[0] and "ETA" in lines[0] and "\033" not in out.getvalue()
    assert lines[-1] == ("config 1/2 done: hidden (10) sgd - domain 0.500, object 0.250, "
                         "both 0.125 in 0.4s")


def test_progress_redraws_one_line_per_running_configuration(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=None: os.terminal_size((40, 24)))
    a, b = Configuration((10,), "sgd"), Configuration((384, 192, 64, 32, 10), "adam")
    out = io.StringIO()
    p = study.StudyProgress([a, b], {a: 1.0, b: 9.0}, [b, a], 2, stream=out, tty=True)
    p.epoch(_record(b, 1, elapsed=1.0))
    p.epoch(_record(a, 4, elapsed=0.5))  # the last epoch: always drawn
    p.done({"hidden": [10], "solver": "sgd", "status": "ok", "domain_acc": 0.5,
            "object_acc": 0.25, "both_acc": 0.125, "fit_seconds": 0.4})
    p.close()
    frames = out.getvalue().split("\033[J")
    assert len(frames) == 5 and frames[0] == ""  # "\033[J": clear to the end of the screen
    assert frames[1].splitlines()[0].startswith("config 2/2")
    # frame 2: both running configurations, each cut to the terminal width - 1
    live = frames[2].split("\033[")[0].splitlines()
    assert [ln[:10] for ln in live] == ["config 1/2", "config 2/2"]
    assert all(len(ln) <= 39 for ln in live)
    assert frames[2].endswith("\033[2F")  # back to the first live line for the next frame
    # frame 3: the done line (permanent) and the one still running
    lines = frames[3].split("\033[")[0].splitlines()
    assert lines[0].startswith("config 1/2 done") and lines[1].startswith("config 2/2")
    assert frames[3].endswith("\033[1F")
    assert frames[-1] == ""  # closing removes the live line and writes nothing else
