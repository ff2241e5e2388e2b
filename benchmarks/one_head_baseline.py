"""One-head scikit-learn networks beside two-head networks on Office-31 (issue 12).

Does sharing a trunk help or hurt each head? For each of 3 seeds (the
study's 80/15 split of that seed, the weights' seed too) this script trains,
on the same inputs (the ``tuned`` preset's image size, preprocessing and
augmented copies, made and fitted on the training rows, and its averaging
over each test photo and its mirror image: ``StudySettings.with_preprocessing``):

- scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`, one network
  per head (domain, object), with the settings a small search chose for
  that head;
- one two-head :class:`~skoffice31.MultiHeadMLPClassifier` with the same
  hidden layout and L2 as the object head's scikit-learn network (the same
  architecture; the only difference is one trunk for two heads);
- beside them, the best configuration of the ``tuned`` preset's grid (by the
  training-part cross-validation of ``benchmarks/tune_recipe.py``), read
  from ``benchmarks/results/office31_tuned/results.json`` (the same seeds,
  hence the same splits; the preset's epochs and augmentation, named in its
  row), not fitted again.

The search (2-fold shuffled CV inside the training part of seed 0's split;
the test part is never used to choose) covers ``hidden`` x ``alpha`` for each
head; every network here is Adam with lr 1e-3, batch 32 and the preset's
epochs.

Run (from the repository root; ~6 min on 2 cores)::

    nice -n 5 python benchmarks/one_head_baseline.py --data ../shared/data/office31 --n-jobs 2

Results: ``benchmarks/results/one_head_baseline.json`` and ``.md``. After the
tuned preset changes, ``--refresh-tuned`` (no fitting) reads its rows again
from the committed tuned run; the other networks stay as fitted.
"""

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.study import HEADS, StudySettings, load_study_data, resplit
from skoffice31.study._output import fmt_augment
from skoffice31.study._results import preprocessing_line

OUT = Path(__file__).parent / "results"
HIDDEN = ((512,), (64, 32, 10))
EPOCHS = StudySettings.from_preset("tuned").epochs
ALPHAS = (1e-4, 1e-2)
SEEDS = (0, 1, 2)


def sklearn_mlp(settings, hidden, alpha, seed):
    return MLPClassifier(hidden_layer_sizes=hidden, alpha=alpha, solver="adam",
                         learning_rate_init=1e-3, batch_size=settings.batch_size,
                         max_iter=EPOCHS, n_iter_no_change=EPOCHS,
                         random_state=seed)


def fit_score(model, X, y, train, test, head=None):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train], y[train] if head is None else y[train, head])
    seconds = time.perf_counter() - t0
    pred = np.asarray(model.predict(X[test]))
    if head is not None:
        return {HEADS[head]: float(np.mean(pred == y[test, head])), "fit_seconds": seconds}
    return {h: float(np.mean(pred[:, k] == y[test, k])) for k, h in enumerate(HEADS)} | {
        "fit_seconds": seconds}


def best_tuned_configuration():
    """The grid's best configuration by the search's CV (benchmarks/results/tune_recipe.json)."""
    doc = json.loads((OUT / "tune_recipe.json").read_text())
    chosen = doc["chosen"]
    rec = next(r for r in doc["results"] if r["values"] == chosen)
    groups = {}
    for f in rec["folds"]:
        groups.setdefault((tuple(f["hidden"]), f["solver"]), []).append(
            (f["domain"] + f["object"]) / 2)
    return max(groups, key=lambda k: np.mean(groups[k]))


def tuned_rows(config):
    """The rows of ``config`` in the committed 3-seed tuned run (same seeds, same splits)."""
    doc = json.loads((OUT / "office31_tuned" / "results.json").read_text())
    epochs = doc["settings"]["epochs"]
    copies = doc["settings"].get("augment", 1)
    each_epoch = doc["settings"].get("shift_each_epoch", False)
    pca = doc["settings"].get("pca", 0)
    trained = f"{epochs} epochs" + (
        f" on {copies} versions of every photo ({fmt_augment(copies, each_epoch)})"
        if copies > 1 else "")
    if pca:
        trained += f", {pca} principal components"
    if doc["settings"].get("statistics", False):
        trained += ", image statistics"
    name = (f"two-head tuned preset, best of the grid by CV "
            f"({','.join(map(str, config[0]))}) {config[1]}, {trained} (office31_tuned)")
    rows = [r for r in doc["results"] if (tuple(r["hidden"]), r["solver"]) == tuple(config)
            and r["seed"] in SEEDS]
    assert sorted(r["seed"] for r in rows) == list(SEEDS), "rerun the 3-seed tuned run first"
    return [{"seed": r["seed"], "model": name, "domain": r["domain_acc"],
             "object": r["object_acc"], "fit_seconds": r["fit_seconds"], "epochs": epochs}
            for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Office-31 folder")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default=str(OUT / "one_head_baseline"))
    parser.add_argument("--refresh-tuned", action="store_true",
                        help="fit nothing: replace the tuned rows of the results file by those "
                        "of the committed tuned run (after the tuned preset changed)")
    args = parser.parse_args()
    if args.refresh_tuned:
        refresh_tuned(Path(args.out))
        return
    settings = StudySettings.from_preset("tuned")
    data = load_study_data(settings, args.data)
    X, y = data.X, data.y
    parallel = joblib.Parallel(n_jobs=args.n_jobs)

    # 1. the small search, per head, inside seed 0's training part
    train0 = data.train
    folds = [(train0[a], train0[b]) for a, b in
             KFold(2, shuffle=True, random_state=0).split(train0)]
    grid = [(h, hidden, alpha) for h in range(len(HEADS)) for hidden in HIDDEN
            for alpha in ALPHAS]
    t0 = time.perf_counter()
    cv = parallel(joblib.delayed(fit_score)(
        settings.with_preprocessing(sklearn_mlp(settings, hidden, alpha, 0)), X, y, tr, va, h)
        for h, hidden, alpha in grid for tr, va in folds)
    search = []
    for k, (h, hidden, alpha) in enumerate(grid):
        scores = [c[HEADS[h]] for c in cv[2 * k: 2 * k + 2]]
        search.append({"head": HEADS[h], "hidden": list(hidden), "alpha": alpha,
                       "cv_mean": float(np.mean(scores)), "cv_std": float(np.std(scores))})
    best = {name: max((s for s in search if s["head"] == name), key=lambda s: s["cv_mean"])
            for name in HEADS}
    print("search", round(time.perf_counter() - t0), "s; best:", best, flush=True)

    # 2. each seed: its split, the three kinds of network
    tuned_config = best_tuned_configuration()
    obj = best["object"]
    tasks = []
    for seed in SEEDS:
        one = dataclasses.replace(settings, seed=seed)
        d = resplit(data, one)
        for h, name in enumerate(HEADS):
            b = best[name]
            est = sklearn_mlp(settings, tuple(b["hidden"]), b["alpha"], seed)
            tasks.append((seed, f"scikit-learn MLPClassifier, {name} head only "
                          f"({','.join(map(str, b['hidden']))}), alpha {b['alpha']:g}",
                          one.with_preprocessing(est), d, h))
        two = MultiHeadMLPClassifier(**dict(
            one.estimator_params((tuple(obj["hidden"]), "adam")), alpha=obj["alpha"],
            learning_rate_init=1e-3, max_iter=EPOCHS, n_iter_no_change=EPOCHS))
        tasks.append((seed, f"two-head MultiHeadMLPClassifier, same layout "
                      f"({','.join(map(str, obj['hidden']))}), alpha {obj['alpha']:g}, adam 1e-3",
                      one.with_preprocessing(two), d, None))
    scores = parallel(joblib.delayed(fit_score)(clone(m), X, y, d.train, d.test, h)
                      for _, _, m, d, h in tasks)
    runs = [{"seed": seed, "model": name, **s} for (seed, name, *_), s in zip(tasks, scores)]
    for r in runs:
        r["epochs"] = EPOCHS
    runs += tuned_rows(tuned_config)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(
        {"settings": settings.to_dict(), "inputs": describe_inputs(settings),
         "search": search, "best": best,
         "tuned_configuration": [list(tuned_config[0]), tuned_config[1]],
         "runs": runs, "summary": summarize(runs)}, indent=1))
    write_markdown(json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md"))


def summarize(runs):
    summary = {}
    for r in runs:
        summary.setdefault(r["model"], []).append(r)
    table = []
    for name, rs in summary.items():
        row = {"model": name}
        for m in (*HEADS, "fit_seconds"):
            vals = [r[m] for r in rs if m in r]
            if vals:
                row[m] = (float(np.mean(vals)), float(np.std(vals, ddof=1)))
        table.append(row)
    return table


def refresh_tuned(out):
    """The results file with its tuned rows read again from the committed tuned run.

    The one-head and two-head networks of the file are kept as they were
    fitted (their settings are in the file); only the tuned grid's CV-best
    configuration and its 3-seed rows are read again.
    """
    doc = json.loads(out.with_suffix(".json").read_text())
    tuned_config = best_tuned_configuration()
    old = {r["model"] for r in doc["runs"] if r["model"].startswith("two-head tuned preset")}
    for r in doc["runs"]:
        if r["model"] not in old:
            r.setdefault("epochs", EPOCHS)
    doc["runs"] = [r for r in doc["runs"] if r["model"] not in old] + tuned_rows(tuned_config)
    doc["tuned_configuration"] = [list(tuned_config[0]), tuned_config[1]]
    doc["summary"] = summarize(doc["runs"])
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    write_markdown(doc, out.with_suffix(".md"))


#: What a results file written before the copies came with the preprocessing had.
INPUTS_BEFORE = "the tuned preset's preprocessing (no augmented copies)"


def describe_inputs(settings):
    """The inputs of the networks of :func:`main`, in words, for the report."""
    steps = preprocessing_line(settings.preprocessing_steps())
    words = f"the tuned preset's preprocessing ({steps or 'none'})"
    if settings.augment > 1:
        words += (f" on {settings.augment} versions of every training photo "
                  f"({fmt_augment(settings.augment, settings.shift_each_epoch)}), predictions "
                  "averaged with the mirror image")
    return words


def write_markdown(doc, path):
    """The Markdown report of the JSON ``doc`` written by :func:`main`."""
    side = doc["settings"]["photo_size"]
    lines = ["# One-head scikit-learn networks vs two-head networks "
             "(benchmarks/one_head_baseline.py)", "",
             f"Office-31, the study's 80/15 split, seeds {', '.join(map(str, SEEDS))} (mean ± "
             f"std, ddof=1); inputs: {side}x{side}, {doc.get('inputs', INPUTS_BEFORE)}; every "
             f"network Adam lr 1e-3, batch {doc['settings']['batch_size']}, {EPOCHS} epochs "
             "(the tuned row: its preset's settings and epochs, named in the row).", "",
             "| model | domain acc | object acc | train s |", "|---|---|---|---|"]

    def pm(v):
        return "-" if v is None else f"{v[0]:.3f} ± {v[1]:.3f}"

    for row in doc["summary"]:
        lines.append(f"| {row['model']} | {pm(row.get('domain'))} | {pm(row.get('object'))} | "
                     f"{row['fit_seconds'][0]:.1f} |")
    lines += ["", "Search (2-fold CV inside seed 0's training part), accuracy of the head:", "",
              "| head | hidden | alpha | CV accuracy |", "|---|---|---|---|"]
    for s in doc["search"]:
        lines.append(f"| {s['head']} | ({','.join(map(str, s['hidden']))}) | {s['alpha']:g} | "
                     f"{s['cv_mean']:.3f} ± {s['cv_std']:.3f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
