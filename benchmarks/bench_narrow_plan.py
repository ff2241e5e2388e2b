"""Narrow layers at wide minibatches: the transposed kernels or BLAS's GEMMs?

    python benchmarks/bench_narrow_plan.py [--layouts 10 16 32 64,32,10]
        [--batches 64 256 1024] [--solvers sgd adam] [--rounds 3]
        [--max-columns N] [--json benchmarks/results/narrow_plan_model207.json]

Whole fits of :class:`skoffice31.MultiHeadMLPClassifier` with the study's
settings (from :mod:`skoffice31.study`) on the benchmark's synthetic data
of the study's shape, through the public ``fit``, for two training plans
taking turns in one process (this machine drifts between processes):

- *kernels*: the plan as it is (:func:`skoffice31._plan.plan_training`):
  a network whose every large layer has at most
  ``NARROW_KERNEL_MAX_COLUMNS`` columns takes the transposed kernels at
  minibatches of up to ``NARROW_KERNEL_MAX_BATCH`` rows, BLAS on one thread;
- *BLAS*: the same plan with that rule switched off
  (``NARROW_KERNEL_MAX_COLUMNS = 0``), i.e. the wide-minibatch NumPy plan
  (BLAS left alone, GEMMs for the weight gradient and the forward product).

For layouts the rule does not take (wider than the limit), both variants
make the same plan (``plan`` in the output says so), unless
``--max-columns`` raises the limit for the *kernels* variant, to measure
what the rule would do for wider layers. Seconds per epoch are
medians over epochs 2..N of each fit; each round runs every variant once.
Needs numba (``pip install 'skoffice31[fast]'``).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
from skoffice31 import _kernels, _plan  # noqa: E402
from skoffice31.study import StudySettings  # noqa: E402

VARIANTS = ("kernels", "BLAS")


def fit_seconds(layout, solver, batch, X, y, epochs, variant, max_columns=None):
    """Median seconds per epoch (epoch 1 dropped) of one fit, and its plan."""
    settings = StudySettings.from_preset("study", epochs=epochs, batch_size=batch)
    est = settings.make_estimator((layout, solver))
    saved = _plan.NARROW_KERNEL_MAX_COLUMNS
    if variant == "BLAS":
        _plan.NARROW_KERNEL_MAX_COLUMNS = 0
    elif max_columns is not None:
        _plan.NARROW_KERNEL_MAX_COLUMNS = max_columns
    try:
        _, epochs_s = common.timed_fit(est, X, y)
    finally:
        _plan.NARROW_KERNEL_MAX_COLUMNS = saved
    plan = est._optimizer.plan
    kind = "kernels" if plan.kernels else f"BLAS threads {plan.blas_threads}"
    return float(np.median(epochs_s[1:] if len(epochs_s) > 1 else epochs_s)), kind


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layouts", nargs="+", default=["10", "16", "32", "64,32,10"])
    p.add_argument("--batches", nargs="+", type=int, default=[64, 256, 1024])
    p.add_argument("--solvers", nargs="+", default=common.SOLVERS)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-columns", type=int,
                   help="NARROW_KERNEL_MAX_COLUMNS for the kernels variant (default: the plan's)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not _kernels.kernels_available():
        sys.exit("bench_narrow_plan needs numba: pip install 'skoffice31[fast]'")
    _kernels.warm_up(solvers=("adam", "sgd"))
    X, y = common.make_synthetic()
    rows = []
    limit = _plan.NARROW_KERNEL_MAX_COLUMNS if args.max_columns is None else args.max_columns
    print(f"CPU: {common.cpu_model()}; NARROW_KERNEL_MAX_COLUMNS = {limit} for the "
          f"kernels variant; s/epoch over {args.rounds} rounds")
    for text in args.layouts:
        layout = tuple(int(w) for w in text.split(","))
        for batch in args.batches:
            for solver in args.solvers:
                times = {v: [] for v in VARIANTS}
                plans = {}
                for _ in range(args.rounds):
                    for variant in VARIANTS:
                        seconds, plans[variant] = fit_seconds(
                            layout, solver, batch, X, y, args.epochs, variant,
                            args.max_columns)
                        times[variant].append(seconds)
                ratio = np.median(times["kernels"]) / np.median(times["BLAS"])
                row = {"layout": list(layout), "batch": batch, "solver": solver,
                       "seconds_per_epoch": times, "plan": plans,
                       "kernels_over_blas": float(ratio)}
                rows.append(row)
                label = common.config_label({"layout": layout, "solver": solver, "batch": batch})
                print(f"{label:28s} "
                      + "  ".join(f"{v} {' '.join(f'{t:.3f}' for t in times[v])} "
                                  f"({plans[v]})" for v in VARIANTS)
                      + f"  ratio {ratio:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "cpu": common.cpu_model(), "argv": sys.argv[1:],
            "narrow_kernel_max_columns": limit,
            "epochs": args.epochs, "rounds": args.rounds, "rows": rows,
        }, indent=1))


if __name__ == "__main__":
    main()
