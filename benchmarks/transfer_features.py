"""Office-31 amazon -> webcam with the transfer features: missing labels,
an adversarial domain head, frozen layers.

The target domain (webcam) keeps its domain labels but has its object labels
marked missing; the object accuracy is measured on the webcam photos against
their true labels, which no model saw. Three models per seed:

* ``source only``: one object head, fitted on the amazon rows alone;
* ``two heads``: domain head on every row, object head on amazon only
  (the webcam rows' object labels missing);
* ``two heads + adversarial``: the same with
  ``adversarial_heads={0: LAMBDA}`` (the domain head), ``adversarial_schedule="dann"``.

Then the fine-tuning cost: ``FINE_TUNE_EPOCHS`` epochs of a warm start
with ``n_frozen_layers=1`` (output layer only) against the same with
``n_frozen_layers=0``, timed on this machine, and a check that the frozen
layer stayed bit-identical.

Run (about 15 minutes on 2 cores; the first decode of the photos adds ~1)::

    python benchmarks/transfer_features.py --data /work/shared/data/office31

Results: ``benchmarks/results/transfer_features.{json,md}``.
"""

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.datasets import load_office31

SIZE = 32
HIDDEN = (256,)
MAX_ITER = 40
LAMBDA = 0.3
SEEDS = (0, 1)
FINE_TUNE_EPOCHS = 10
SOURCE, TARGET = "amazon", "webcam"
RESULTS = Path(__file__).parent / "results"


def _model(seed, **params):
    params = {"hidden": HIDDEN, "max_iter": MAX_ITER, "random_state": seed, **params}
    return MultiHeadMLPClassifier(**params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the Office-31 folder")
    parser.add_argument("--out", default=str(RESULTS / "transfer_features"),
                        help="results path without suffix")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = load_office31(args.data, size=SIZE, domains=[SOURCE, TARGET],
                         shuffle=True, random_state=0)
    X, y = data.data, data.target
    X = X - X.mean(axis=0)  # centred pixels in [-1, 1]
    target = y[:, 0] == TARGET
    y_semi = y.copy()
    y_semi[target, 1] = None
    rows = []
    for seed in SEEDS:
        row = {"seed": seed}
        src = _model(seed).fit(X[~target], y[~target, 1])
        row["source only"] = float(np.mean(src.predict(X[target]) == y[target, 1]))
        two = _model(seed).fit(X, y_semi)
        row["two heads"] = float(np.mean(two.predict(X[target])[:, 1] == y[target, 1]))
        row["two heads, source (training) photos"] = float(
            np.mean(two.predict(X[~target])[:, 1] == y[~target, 1]))
        adv = _model(seed, adversarial_heads={0: LAMBDA},  # head 0: domain
                     adversarial_schedule="dann").fit(X, y_semi)
        row["two heads + adversarial"] = float(
            np.mean(adv.predict(X[target])[:, 1] == y[target, 1]))
        print(row, flush=True)
        rows.append(row)

    timing = {}
    for k in (0, 1):
        clf = _model(0, max_iter=5).fit(X, y_semi)
        clf.set_params(warm_start=True, n_frozen_layers=k, max_iter=FINE_TUNE_EPOCHS,
                       n_iter_no_change=np.inf)
        first = clf.coefs_[0].copy()
        start = time.perf_counter()
        clf.fit(X, y_semi)
        timing[f"n_frozen_layers={k}"] = {
            "seconds_per_epoch": (time.perf_counter() - start) / FINE_TUNE_EPOCHS,
            "first_layer_unchanged": bool(np.array_equal(clf.coefs_[0], first)),
        }
    print(timing, flush=True)

    names = ["source only", "two heads", "two heads + adversarial",
             "two heads, source (training) photos"]
    summary = {n: {"mean": float(np.mean([r[n] for r in rows])),
                   "std": float(np.std([r[n] for r in rows]))} for n in names}
    out = {
        "command": "python benchmarks/transfer_features.py --data <office31>",
        "setting": {"size": SIZE, "hidden": HIDDEN, "max_iter": MAX_ITER, "lambda": LAMBDA,
                    "source": SOURCE, "target": TARGET, "n_source": int((~target).sum()),
                    "n_target": int(target.sum())},
        "machine": platform.platform(),
        "per_seed": rows, "summary": summary, "fine_tune_timing": timing,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Office-31 {SOURCE} -> {TARGET}: object accuracy on the unlabelled target",
        "",
        f"`python benchmarks/transfer_features.py --data <office31>`; {SIZE}x{SIZE} RGB, "
        f"centred, hidden={HIDDEN}, Adam, max_iter={MAX_ITER}, seeds {list(SEEDS)}; "
        f"{int((~target).sum())} source and {int(target.sum())} target photos.",
        "",
        "| model | " + " | ".join(f"seed {r['seed']}" for r in rows) + " | mean (std) |",
        "|---|" + "---|" * (len(rows) + 1),
    ]
    for n in names:
        cells = " | ".join(f"{r[n]:.3f}" for r in rows)
        lines.append(f"| {n} | {cells} | {summary[n]['mean']:.3f} ({summary[n]['std']:.3f}) |")
    lines += ["", f"Fine-tuning, {FINE_TUNE_EPOCHS} warm-start epochs on all "
              f"{len(X)} rows ({platform.platform()}):", "",
              "| setting | s / epoch | first layer unchanged |", "|---|---|---|"]
    for k, v in timing.items():
        lines.append(f"| {k} | {v['seconds_per_epoch']:.3f} | {v['first_layer_unchanged']} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
