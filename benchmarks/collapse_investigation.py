"""Why the old ``--preset tuned`` collapsed on the real photos (issue 12).

The old tuned preset (pixels scaled to 0..1 but not centred, Glorot-uniform
weights, SGD lr 0.01 with Nesterov momentum 0.9 / Adam lr 1e-3, batch 32)
left half of the grid at the majority domain and chance objects on
Office-31. This script trains the configurations that collapsed, epoch by
epoch (``partial_fit``), on the training part of the study's split (seed 0),
and after every epoch records, on 600 training rows: the fraction of dead
ReLU units of each hidden layer (zero output on every row), the training
loss and the training accuracy of each head. The test part is never used.

Each configuration is trained with the old preset and with one change at a
time: learning rate / 10, ``init="he"``, and per-image standardisation +
``StandardScaler`` (the inputs centred). For each input variant it also
records the mean input value and a "step gain": how far one step moves
an example's first-layer pre-activations. One SGD step on an example moves
them by ``lr * (|x|^2 + 1)`` times its back-propagated error, so the SGD
gain is ``lr * mean |x|^2``; Adam moves every weight by about ``lr``, in
the direction of its gradient, which for a single example moves the
pre-activation by up to ``lr * |x|_1``: the Adam gain is
``lr * mean |x|_1``. Both grow with the number of pixels and with the
inputs' offset from zero. And the mean cosine similarity between two
different training rows: a step taken for one example moves another
example's pre-activations in proportion to ``x_i . x_j``; with rows that all
point the same way (cosine near 1, un-centred pixels) one step moves *every*
image the same way, and a push below zero kills a unit for all of them.

Run (from the repository root; ~15 min on 2 busy cores)::

    nice -n 5 python benchmarks/collapse_investigation.py --data ../shared/data/office31

Results: ``benchmarks/results/collapse_investigation.json`` and ``.md``.
"""

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np

from skoffice31 import TrainingCollapseWarning
from skoffice31.study import StudySettings, load_study_data

OUT = Path(__file__).parent / "results"

#: The old tuned preset, as it was before issue 12 (for the record).
OLD_TUNED = dict(scale=1 / 255, init="glorot", momentum=0.9, nesterovs_momentum=True,
                 alpha=1e-4, learning_rate_init={"sgd": 0.01, "adam": 1e-3},
                 batch_size=32, epochs=40, standardize="none", image_stats=False,
                 scale_features=False, augment=1)

#: (size, hidden, solver, epochs): the rows of the issue that collapsed,
#: at the study's 100x100, and the same at 32x32.
CASES = [
    (100, (10,), "sgd", 6),
    (100, (64, 32, 10), "sgd", 6),
    (100, (384, 192, 64, 32, 10), "adam", 4),
    (32, (10,), "sgd", 6),
    (32, (64, 32, 10), "sgd", 6),
    (32, (384, 192, 64, 32, 10), "adam", 6),
]

VARIANTS = {
    "old tuned": {},
    "lr / 10": {"lr_factor": 0.1},
    'init="he"': {"init": "he"},
    "standardised inputs": {"standardize": "image", "scale_features": True},
}


def settings_for(size, variant, epochs):
    v = dict(VARIANTS[variant])
    factor = v.pop("lr_factor", 1.0)
    values = dict(OLD_TUNED, epochs=epochs, size=(size, size), **v)
    values["learning_rate_init"] = {k: lr * factor for k, lr in OLD_TUNED[
        "learning_rate_init"].items()}
    return StudySettings.from_preset("tuned", **values)


def hidden_outputs(clf, X):
    """ReLU outputs of every hidden layer."""
    out, a = [], X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        a = np.maximum(a @ W + b, 0)
        out.append(a)
    return out


def run_case(data, settings, hidden, solver, probe):
    model = settings.make_pipeline((hidden, solver))
    pre, clf = (model[:-1], model[-1]) if hasattr(model, "steps") else (None, model)
    X = data.X[data.train]
    Xp = X if pre is None else pre.fit(X).transform(X)
    X64 = Xp.astype(np.float64)
    norm = (np.mean(np.sum(X64 ** 2, axis=1)) if solver == "sgd"
            else np.mean(np.sum(np.abs(X64), axis=1)))
    y = data.y[data.train]
    epochs, messages = [], []
    for epoch in range(1, settings.epochs + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrainingCollapseWarning)
            clf.partial_fit(Xp, y, classes=list(data.classes))
        messages += [" ".join(str(w.message).split()) for w in caught
                     if issubclass(w.category, TrainingCollapseWarning)]
        layers = hidden_outputs(clf, Xp[probe])
        pred = np.asarray(clf.predict(Xp[probe]))
        epochs.append({
            "epoch": epoch,
            "loss": float(clf.loss_curve_[-1]),
            "dead_fraction": [float(np.mean(np.all(a == 0, axis=0))) for a in layers],
            "train_domain_acc": float(np.mean(pred[:, 0] == y[probe, 0])),
            "train_object_acc": float(np.mean(pred[:, 1] == y[probe, 1])),
        })
    P = X64[probe] / np.maximum(np.linalg.norm(X64[probe], axis=1, keepdims=True), 1e-12)
    cos = P @ P.T
    off_diagonal = cos[~np.eye(len(P), dtype=bool)]
    return {
        "mean_input": float(np.mean(Xp)),
        "row_cosine": float(np.mean(off_diagonal)),
        "row_norm": float(norm),  # mean |x|^2 (sgd) or mean |x|_1 (adam)
        "step_gain": settings.learning_rate(solver) * float(norm),
        "epochs": epochs,
        "warnings": messages,
    }


def write_markdown(results, path):
    lines = [
        "# Why the old tuned preset collapsed (benchmarks/collapse_investigation.py)",
        "",
        "Training part of the study's split (seed 0), 600 training rows probed after "
        "every epoch. *dead* = fraction of dead ReLU units per hidden layer after the "
        "last epoch; *step gain* = lr x mean |x|^2 (sgd) or lr x mean |x|_1 (adam): how far one "
        "step moves an example's first-layer pre-activations per unit of error; *row cosine* = "
        "mean cosine similarity of two different probed rows (inputs as the network sees them).",
        "",
        "| size | hidden | solver | variant | mean x | row cosine | step gain | epochs | "
        "loss first -> last | dead per layer (last epoch) | first epoch with a dead layer "
        "| train domain / object |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ep = r["epochs"]
        first_dead = next((e["epoch"] for e in ep if 1.0 in e["dead_fraction"]), "-")
        dead = ", ".join(f"{d:.2f}" for d in ep[-1]["dead_fraction"])
        lines.append(
            f"| {r['size']} | ({','.join(map(str, r['hidden']))}) | {r['solver']} | "
            f"{r['variant']} | {r['mean_input']:.3f} | {r['row_cosine']:.3f} | "
            f"{r['step_gain']:.3g} | {len(ep)} | "
            f"{ep[0]['loss']:.3f} -> {ep[-1]['loss']:.3f} | {dead} | {first_dead} | "
            f"{ep[-1]['train_domain_acc']:.3f} / {ep[-1]['train_object_acc']:.3f} |"
        )
    lines += ["", f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Office-31 folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 32])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--out", default=str(OUT / "collapse_investigation"))
    args = parser.parse_args()
    results = []
    out = Path(args.out)
    for size in args.sizes:
        data = load_study_data(settings_for(size, "old tuned", 1), args.data)
        probe = np.random.default_rng(0).choice(len(data.train), 600, replace=False)
        for csize, hidden, solver, epochs in CASES:
            if csize != size:
                continue
            for variant in args.variants:
                settings = settings_for(size, variant, epochs)
                t0 = time.perf_counter()
                r = run_case(data, settings, hidden, solver, probe)
                r.update(size=size, hidden=list(hidden), solver=solver, variant=variant,
                         settings=dataclasses.asdict(settings) | {"size": [size, size]},
                         seconds=time.perf_counter() - t0)
                results.append(r)
                last = r["epochs"][-1]
                print(f"{size} {hidden} {solver} {variant}: loss {last['loss']:.3f} dead "
                      f"{last['dead_fraction']} train {last['train_domain_acc']:.3f}/"
                      f"{last['train_object_acc']:.3f} gain {r['step_gain']:.3g} "
                      f"({r['seconds']:.0f} s)", flush=True)
                out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
                write_markdown(results, out.with_suffix(".md"))


if __name__ == "__main__":
    main()
