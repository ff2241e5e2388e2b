"""Office-31 inside skada pipelines: what the domain head built from sample_domain adds.

All six Office-31 tasks, unlabelled target only (k = 0): the source rows are
labelled, the target rows' object labels are masked by skada (``-1``) and
every model is scored on the target rows against their true labels, which
no model saw. Features as in the skada issue: 32x32 RGB pixels, centred,
PCA to 100 components fitted on the task's source and target rows (no
labels used). Per task and seed:

* ``source only``: ``MultiHeadMLPClassifier`` on the source rows alone;
* ``CORAL + LR``: ``make_da_pipeline(CORALAdapter(), LogisticRegression())``;
* ``CORAL + ours (one head)``: ``make_da_pipeline(CORALAdapter(),
  MultiHeadMLPClassifier())``, the network given directly, which skada fits
  on the source rows only (it drops the masked target rows before an
  estimator that does not request ``sample_domain``);
* ``CORAL + DomainHead``: ``make_da_pipeline(CORALAdapter(),
  DomainHeadClassifier(MultiHeadMLPClassifier()))``, whose domain head is
  labelled on every row from ``sample_domain`` (target rows kept);
* ``CORAL + DomainHead adversarial``: the same with
  ``adversarial_heads={"domain": LAMBDA}, adversarial_schedule="dann"``.

Run (27 minutes on 2 cores shared with other work; the first decode of the
photos adds ~1)::

    python benchmarks/skada_pipeline.py --data /work/shared/data/office31

Results: ``benchmarks/results/skada_pipeline.{json,md}``.
"""

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

SIZE = 32
N_COMPONENTS = 100
HIDDEN = (512,)
MAX_ITER = 30
ALPHA = 1e-3
LAMBDA = 0.3
SEEDS = (0, 1, 2)
TASKS = [("amazon", "webcam"), ("dslr", "webcam"), ("webcam", "dslr"),
         ("amazon", "dslr"), ("dslr", "amazon"), ("webcam", "amazon")]
METHODS = ("source only", "CORAL + LR", "CORAL + ours (one head)", "CORAL + DomainHead",
           "CORAL + DomainHead adversarial")
RESULTS = Path(__file__).parent / "results"


def _net(seed, **params):
    from skoffice31 import MultiHeadMLPClassifier

    return MultiHeadMLPClassifier(hidden=HIDDEN, max_iter=MAX_ITER, alpha=ALPHA,
                                  random_state=seed, **params)


def _features(X, seed):
    from sklearn.decomposition import PCA

    X = X - X.mean(axis=0)
    return PCA(N_COMPONENTS, random_state=seed).fit_transform(X)


def run_task(X, obj, target, seed):
    """Target accuracy of every method on one task and seed."""
    from sklearn.linear_model import LogisticRegression
    from skada import CORALAdapter, make_da_pipeline

    from skoffice31.adaptation import DomainHeadClassifier

    sd = np.where(target, -2, 1)
    y = obj.copy()  # skada masks the target rows of the y it is given, in place
    models = {
        "CORAL + LR": make_da_pipeline(CORALAdapter(), LogisticRegression(max_iter=1000)),
        "CORAL + ours (one head)": make_da_pipeline(CORALAdapter(), _net(seed)),
        "CORAL + DomainHead": make_da_pipeline(
            CORALAdapter(), DomainHeadClassifier(_net(seed))),
        "CORAL + DomainHead adversarial": make_da_pipeline(
            CORALAdapter(), DomainHeadClassifier(_net(
                seed, adversarial_heads={"domain": LAMBDA}, adversarial_schedule="dann"))),
    }
    row = {}
    src = _net(seed).fit(X[~target], obj[~target])
    row["source only"] = float(np.mean(src.predict(X[target]) == obj[target]))
    for name, model in models.items():
        model.fit(X, y.copy(), sample_domain=sd)
        pred = model.predict(X[target], sample_domain=sd[target])
        row[name] = float(np.mean(pred == obj[target]))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Office-31 folder")
    parser.add_argument("--out", default=str(RESULTS / "skada_pipeline"),
                        help="results path without suffix")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import skada
    import sklearn

    from skoffice31 import __version__
    from skoffice31.datasets import load_office31

    data = load_office31(args.data, size=SIZE)
    domain, obj_names = data.target[:, 0], data.target[:, 1]
    classes, obj = np.unique(obj_names, return_inverse=True)  # integer labels for skada
    rows, start = [], time.perf_counter()
    for source, target_name in TASKS:
        keep = (domain == source) | (domain == target_name)
        for seed in SEEDS:
            rng = np.random.RandomState(seed)
            idx = rng.permutation(np.flatnonzero(keep))  # loader rows are sorted: shuffle
            X = _features(data.data[idx], seed)
            row = {"task": f"{source[0].upper()}->{target_name[0].upper()}", "seed": seed}
            row.update(run_task(X, obj[idx], domain[idx] == target_name, seed))
            print(row, flush=True)
            rows.append(row)
    seconds = time.perf_counter() - start

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    summary = {}
    for task in tasks + ["mean"]:
        sel = rows if task == "mean" else [r for r in rows if r["task"] == task]
        if task == "mean":  # mean over tasks of each seed, then over seeds
            per_seed = {m: [np.mean([r[m] for r in rows if r["seed"] == s]) for s in SEEDS]
                        for m in METHODS}
        else:
            per_seed = {m: [r[m] for r in sel] for m in METHODS}
        summary[task] = {m: (float(np.mean(v)), float(np.std(v))) for m, v in per_seed.items()}
    beats = {m: sum(summary[t][m][0] > summary[t]["source only"][0] for t in tasks)
             for m in METHODS if m != "source only"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "settings": {"size": SIZE, "n_components": N_COMPONENTS, "hidden": list(HIDDEN),
                     "max_iter": MAX_ITER, "alpha": ALPHA, "lambda": LAMBDA,
                     "seeds": list(SEEDS), "k": 0},
        "versions": {"skoffice31": __version__, "skada": skada.__version__,
                     "scikit-learn": sklearn.__version__, "python": platform.python_version()},
        "seconds": round(seconds, 1),
        "rows": rows, "summary": summary, "tasks_beating_source_only": beats,
    }
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Office-31 inside skada pipelines (k = 0, target accuracy, mean ± std over "
        f"{len(SEEDS)} seeds)", "",
        f"Command: `python benchmarks/skada_pipeline.py --data <office31>`; {seconds:.0f} s "
        f"on this machine; 32x32 pixels centred, PCA {N_COMPONENTS}, hidden={HIDDEN}, "
        f"max_iter={MAX_ITER}, alpha={ALPHA}, lambda={LAMBDA} (dann schedule).", "",
        "| task | " + " | ".join(METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    for task in tasks + ["mean"]:
        cells = [f"{summary[task][m][0]:.3f} ± {summary[task][m][1]:.3f}" for m in METHODS]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines += ["", "Tasks (of 6) where the method's mean beats source only: "
              + ", ".join(f"{m}: {n}" for m, n in beats.items()) + "."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
