"""Tests of skoffice31.transfer: tasks, the k-shot split, the methods, the outputs.

On the built-in data at 8x8 with tiny networks, so that the file runs in
seconds.
"""

import copy
import csv
import json
import math
import sys

import numpy as np
import pytest

from skoffice31 import transfer
from skoffice31.datasets import load_office_digits
from skoffice31.transfer import (
    METHODS,
    OFFICE31_TASKS,
    SKADA_HINT,
    MethodContext,
    TransferProblem,
    default_estimator,
    default_methods,
    few_shot_split,
    format_transfer_table,
    plan_transfer,
    run_transfer,
    summarize_transfer,
    transfer_tasks,
    write_transfer,
)

TINY = dict(hidden=(16,), max_iter=3, batch_size=32)

# tiny networks for a fixed number of epochs: reaching max_iter is expected
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    data = load_office_digits(size=(8, 8))
    return data.data, data.target[:, 0], data.target[:, 1]


def _problem(digits, k=2, seed=0, source="product", target="dslr"):
    X, domain, obj = digits
    s, t = domain == source, domain == target
    labelled, test = few_shot_split(obj[t], k, random_state=seed)
    return TransferProblem(source, target, k, seed, X[s], obj[s], X[t], obj[t], labelled, test)


# ---------------------------------------------------------------- tasks


def test_the_six_office31_tasks_in_the_literature_order():
    assert transfer_tasks(["webcam", "amazon", "dslr"]) == list(OFFICE31_TASKS)
    assert [transfer.task_label(s, t) for s, t in OFFICE31_TASKS] == [
        "A->W", "D->W", "W->D", "A->D", "D->A", "W->A"]


def test_the_builtin_styles_stand_in_for_office31():
    tasks = transfer_tasks(["dslr", "product", "webcam"])
    assert tasks[0] == ("product", "webcam") and len(tasks) == 6
    assert {s for s, _ in tasks} == {"product", "dslr", "webcam"}


def test_other_domains_give_every_ordered_pair():
    assert transfer_tasks(["phone", "studio"]) == [("phone", "studio"), ("studio", "phone")]


@pytest.mark.parametrize("source, target, match", [
    ("amazon", "webcam", "unknown source domain 'amazon': the data has the domains dslr, "
                         "product, webcam"),
    ("product", "phone", "unknown target domain 'phone'"),
    ("dslr", "dslr", "the source and the target are both 'dslr'"),
])
def test_bad_tasks_are_clear_errors(source, target, match):
    with pytest.raises(ValueError, match=match):
        transfer_tasks(["dslr", "product", "webcam"], source, target)


def test_a_source_needs_a_target():
    with pytest.raises(ValueError, match="give both a source and a target"):
        transfer_tasks(["dslr", "product"], "dslr", None)


# ---------------------------------------------------------------- the split


def test_split_has_k_per_class_disjoint_and_covers_the_target(digits):
    _, domain, obj = digits
    y = obj[domain == "webcam"]
    labelled, test = few_shot_split(y, 3, random_state=0)
    labels, counts = np.unique(y[labelled], return_counts=True)
    assert labels.tolist() == np.unique(y).tolist() and set(counts) == {3}
    assert np.intersect1d(labelled, test).size == 0
    assert np.union1d(labelled, test).tolist() == list(range(len(y)))


def test_split_is_seeded_and_nested(digits):
    _, domain, obj = digits
    y = obj[domain == "dslr"]
    a, _ = few_shot_split(y, 3, random_state=1)
    b, _ = few_shot_split(y, 3, random_state=1)
    c, _ = few_shot_split(y, 3, random_state=2)
    one, _ = few_shot_split(y, 1, random_state=1)
    assert a.tolist() == b.tolist()
    assert a.tolist() != c.tolist()
    assert set(one) <= set(a)


def test_zero_shots_label_nothing(digits):
    _, domain, obj = digits
    y = obj[domain == "dslr"]
    labelled, test = few_shot_split(y, 0, random_state=0)
    assert labelled.size == 0 and test.tolist() == list(range(len(y)))


@pytest.mark.parametrize("k, match", [
    (-1, r"negative number of labelled target images per class \(-1\)"),
    (1.5, "must be an integer, got 1.5"),
    (True, "must be an integer, got True"),
    (4, "4 labelled target images per class is too many: the smallest class of the target "
        r"\('b'\) has 3 images .* use at most 2"),
])
def test_bad_shots_are_clear_errors(k, match):
    y = np.array(["a"] * 5 + ["b"] * 3)
    with pytest.raises(ValueError, match=match):
        few_shot_split(y, k)


# ---------------------------------------------------------------- inputs of the methods


def test_adversarial_inputs_label_the_domain_everywhere_and_the_object_when_known(digits):
    p = _problem(digits, k=2)
    X, y = p.adversarial_inputs()
    n_s = len(p.X_source)
    assert X.shape == (n_s + len(p.X_target), p.X_source.shape[1])
    assert set(y[:n_s, 0]) == {"product"} and set(y[n_s:, 0]) == {"dslr"}
    assert y[:n_s, 1].tolist() == p.y_source.tolist()
    known = n_s + p.labelled
    assert y[known, 1].tolist() == p.y_labelled.tolist()
    unknown = np.setdiff1d(np.arange(n_s, len(y)), known)
    assert all(v is None for v in y[unknown, 1])  # the test labels are not there


def test_skada_inputs_follow_skadas_convention(digits):
    p = _problem(digits, k=1)
    X, y, sample_domain, classes = p.skada_inputs()
    n_s = len(p.X_source)
    assert (sample_domain[:n_s] > 0).all() and (sample_domain[n_s:] < 0).all()
    assert classes[y[:n_s]].tolist() == p.y_source.tolist()
    assert classes[y[n_s + p.labelled]].tolist() == p.y_labelled.tolist()
    assert (np.delete(y[n_s:], p.labelled) == -1).all()


# ---------------------------------------------------------------- the methods


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_trains_and_predicts_target_labels(digits, name):
    if METHODS[name].requires:
        pytest.importorskip(METHODS[name].requires)
    p = _problem(digits, k=2)
    context = MethodContext(default_estimator(**TINY), 0, p.X_source, p.y_source,
                            few_max_iter=3)
    pred = METHODS[name].fit_predict(p, context)
    assert len(pred) == len(p.test)
    assert set(np.asarray(pred).tolist()) <= set(p.y_source.tolist())


def test_coral_ours_routes_sample_domain_even_with_routing_turned_off(digits):
    # importing skada turns metadata routing on; a user (or a test module)
    # may turn it off afterwards: the skada pipeline must still get its
    # sample_domain
    pytest.importorskip("skada")
    import sklearn

    p = _problem(digits, k=2)
    context = MethodContext(default_estimator(**TINY), 0, p.X_source, p.y_source,
                            few_max_iter=3)
    with sklearn.config_context(enable_metadata_routing=False):
        pred = METHODS["CORAL + ours"].fit_predict(p, context)
        assert not sklearn.get_config()["enable_metadata_routing"]
    assert len(pred) == len(p.test)


def test_fine_tuning_starts_from_the_source_model_and_leaves_it_alone(digits):
    p = _problem(digits, k=2)
    context = MethodContext(default_estimator(**TINY), 0, p.X_source, p.y_source,
                            few_max_iter=2)
    before = copy.deepcopy(context.source_model.coefs_)
    assert context.source_seconds > 0
    METHODS["fine-tune all"].fit_predict(p, context)
    for a, b in zip(before, context.source_model.coefs_):
        np.testing.assert_array_equal(a, b)


def test_fine_tuning_the_output_layer_keeps_the_trunk(digits):
    p = _problem(digits, k=2)
    context = MethodContext(default_estimator(**TINY), 0, p.X_source, p.y_source,
                            few_max_iter=3)
    trunk = context.source_model.coefs_[0].copy()
    seen = {}

    def watch(model):
        seen["model"] = model

    context.watch = watch
    METHODS["fine-tune output"].fit_predict(p, context)
    tuned = seen["model"]
    assert tuned is not context.source_model and tuned.n_frozen_layers == 1
    np.testing.assert_array_equal(tuned.coefs_[0], trunk)
    assert not np.array_equal(tuned.coefs_[1], context.source_model.coefs_[1])


def test_adversarial_network_trains_two_heads_without_the_target_labels(digits):
    p = _problem(digits, k=0)
    context = MethodContext(default_estimator(**TINY), 0, p.X_source, p.y_source,
                            adversarial=0.5)
    seen = {}
    context.watch = lambda model: seen.setdefault("model", model)
    pred = METHODS["adversarial"].fit_predict(p, context)
    model = seen["model"]
    assert model.adversarial_heads == {0: 0.5} and model.adversarial_schedule == "dann"
    assert [c.tolist() for c in model.classes_][0] == ["dslr", "product"]
    assert len(pred) == len(p.test) and set(pred) <= set(p.y_source)


def test_methods_needing_labels_skip_k0():
    assert not METHODS["target only"].applies(0) and METHODS["target only"].applies(1)
    assert METHODS["source only"].applies(0) and METHODS["adversarial"].applies(0)
    plan = plan_transfer([("product", "dslr")], [0, 1], [0],
                         [METHODS["source only"], METHODS["pooled"]])
    assert [(f["k"], f["method"]) for f in plan] == [
        (0, "source only"), (1, "source only"), (1, "pooled")]
    assert plan[-1]["label"] == "P->D k=1 seed 0 pooled"


def test_default_methods_include_skada_only_when_importable(monkeypatch):
    names = [m.name for m in default_methods(skada=True)]
    assert "CORAL + ours" in names and "CORAL + adversarial" in names
    assert not [m for m in default_methods(skada=False) if m.requires == "skada"]
    monkeypatch.setitem(sys.modules, "skada", None)  # "import skada" now fails
    assert not transfer.skada_available()
    assert not [m for m in default_methods() if m.requires == "skada"]
    assert 'pip install "skoffice31[skada]"' in SKADA_HINT


# ---------------------------------------------------------------- run_transfer


def test_run_transfer_rows(digits):
    X, domain, obj = digits
    rows = list(run_transfer(X, domain, obj, tasks=[("product", "dslr")], shots=[0, 1],
                             seeds=2, methods=["source only", "target only", "pooled"],
                             estimator=default_estimator(**TINY), few_max_iter=2,
                             features="pixels"))
    assert [(r["k"], r["method"], r["seed"]) for r in rows] == [
        (0, "source only", 0), (1, "source only", 0), (1, "target only", 0), (1, "pooled", 0),
        (0, "source only", 1), (1, "source only", 1), (1, "target only", 1), (1, "pooled", 1)]
    n_dslr = int((domain == "dslr").sum())
    for r in rows:
        assert r["status"] == "ok" and 0 <= r["accuracy"] <= 1 and r["fit_seconds"] > 0
        assert r["task"] == "P->D" and r["n_labelled"] == 10 * r["k"]
        assert r["n_test"] == n_dslr - r["n_labelled"]
    # the source model is fitted once per seed: both its rows share the fit
    assert rows[0]["fit_seconds"] == rows[1]["fit_seconds"]


def test_run_transfer_scores_against_the_target_labels(digits):
    X, domain, obj = digits
    relabelled = obj.copy()
    relabelled[domain == "dslr"] = "unseen"  # a class no source image has
    rows = list(run_transfer(X, domain, relabelled, tasks=[("product", "dslr")], shots=[0],
                             seeds=1, methods=["source only"],
                             estimator=default_estimator(**TINY), features="pixels"))
    (row,) = rows
    assert row["status"] == "ok" and row["accuracy"] == 0.0


def test_a_failing_method_is_a_row_not_an_exception(digits):
    X, domain, obj = digits

    def broken(problem, context):
        raise RuntimeError("no luck")

    method = transfer.TransferMethod("broken", broken)
    (row,) = run_transfer(X, domain, obj, tasks=[("product", "dslr")], shots=[0], seeds=1,
                          methods=[method], estimator=default_estimator(**TINY),
                          features="pixels")
    assert row["status"] == "failed: RuntimeError: no luck" and math.isnan(row["accuracy"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(tasks=[("product", "amazon")]), "unknown target domain 'amazon'"),
    (dict(tasks=[("dslr", "dslr")]), "both 'dslr'"),
    (dict(shots=[-2]), "negative number"),
    (dict(shots=[500]), "too many"),
    (dict(seeds=0), "seeds must be >= 1"),
    (dict(methods=["magic"]), "unknown method 'magic'"),
    (dict(features="sift"), "unknown features 'sift'"),
])
def test_run_transfer_bad_input(digits, kwargs, match):
    X, domain, obj = digits
    with pytest.raises(ValueError, match=match):
        list(run_transfer(X, domain, obj, **{"tasks": [("product", "dslr")], **kwargs}))


def test_run_transfer_rows_must_match(digits):
    X, domain, obj = digits
    with pytest.raises(ValueError, match="one domain and one label per image"):
        list(run_transfer(X, domain[:-1], obj))


# ---------------------------------------------------------------- outputs


def _rows():
    rows = []
    for task in ("A->W", "D->W"):
        for seed, acc in ((0, 0.2), (1, 0.4)):
            rows.append(dict(task=task, source="s", target="t", k=0, method="source only",
                             seed=seed, accuracy=acc + (task == "D->W") * 0.2,
                             fit_seconds=1.0, n_labelled=0, n_test=10, status="ok"))
            rows.append(dict(task=task, source="s", target="t", k=3, method="pooled",
                             seed=seed, accuracy=acc + 0.1, fit_seconds=2.0, n_labelled=3,
                             n_test=7, status="ok"))
    return rows


def test_summary_mean_and_std_over_seeds_and_the_mean_task():
    summary = {(e["task"], e["k"], e["method"]): e for e in summarize_transfer(_rows())}
    e = summary[("A->W", 0, "source only")]
    assert e["n_seeds"] == 2 and e["mean"] == pytest.approx(0.3) and e["std"] == pytest.approx(0.1)
    mean = summary[("mean", 0, "source only")]
    # per seed: the mean over the two tasks (0.3, 0.5), then over seeds
    assert mean["mean"] == pytest.approx(0.4) and mean["std"] == pytest.approx(0.1)


def test_table_cells_are_mean_pm_std_and_empty_where_a_method_does_not_apply():
    table = format_transfer_table(summarize_transfer(_rows()))
    lines = table.splitlines()
    assert lines[0] == "| task | method | k=0 | k=3 |"
    assert "| A->W | pooled |  | 0.400 ± 0.100 |" in lines
    assert "| A->W | source only | 0.300 ± 0.100 |  |" in lines
    assert lines[-1].startswith("| mean | source only |") or lines[-2].startswith("| mean |")


def test_write_transfer_csv_and_json(tmp_path):
    rows = _rows()
    rows[0] = dict(rows[0], accuracy=float("nan"), status="failed: boom")
    files = write_transfer(tmp_path, {"command": ["skoffice31", "transfer"]}, rows)
    assert files == ["transfer.csv", "transfer.json"]
    with open(tmp_path / "transfer.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == transfer.CSV_COLUMNS and len(table) == len(rows)
    assert table[0]["accuracy"] == "" and table[1]["accuracy"] == "0.3"
    doc = json.loads((tmp_path / "transfer.json").read_text())
    assert doc["command"] == ["skoffice31", "transfer"]
    assert doc["results"][0]["accuracy"] is None and len(doc["summary"]) == 6


def test_plot_transfer(tmp_path):
    pytest.importorskip("matplotlib")
    assert transfer.plot_transfer(tmp_path, summarize_transfer(_rows())) == ["transfer.png"]
    assert (tmp_path / "transfer.png").stat().st_size > 1000


def test_plot_transfer_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    assert transfer.plot_transfer(tmp_path, summarize_transfer(_rows())) == []
    assert not (tmp_path / "transfer.png").exists()
