"""A large minibatch through a narrow first layer, piece by piece: ours and PyTorch.

    python benchmarks/bench_batch_step.py [--batch 256] [--widths 10 64] [--repeats 40]
                                          [--json benchmarks/results/batch_step.json]

At batch 256 the small study layouts spend most of a step on three
operations on the first layer, whose input is the 30,000-pixel minibatch
(a 30 MB float32 block): gathering the minibatch's rows out of the training
matrix, the forward product ``A @ W`` and the weight gradient ``A.T @ delta``
(``delta`` of batch x width).  This script times each of them the way the
estimator does it and the way PyTorch does it, in the same process,
taking turns in rounds of consecutive calls, on the benchmark's synthetic data of the
study's shape (``bench_common``), all on two threads:

gather
    ``np.take(X, rows, axis=0, out=, mode="clip")`` (``_Network.gather``),
    ``skoffice31._kernels.gather_rows`` on two kernel threads (used for the
    next batch at batch 10; needs numba) and ``torch.index_select``;
forward
    ``A @ W`` in NumPy (OpenBLAS) and in PyTorch;
weight gradient
    ``A.T @ delta`` (the estimator's form) and ``(delta.T @ A).T`` in NumPy,
    and both forms in PyTorch.

Medians in milliseconds (``--repeats`` calls of each, in 5 rounds).  It explains where the batch-256 rows of
``benchmarks/run.py`` stand against PyTorch; it does not time a whole step
(``benchmarks/profile_training.py`` does, for the estimator).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
from skoffice31 import _kernels  # noqa: E402


#: Variants take turns in this many rounds of consecutive calls, each after
#: ``WARM_UP`` untimed calls: OpenBLAS's, PyTorch's OpenMP and the kernels'
#: threads each spin for a while after a call, so alternating them call by
#: call would charge every call for the other pools' spinning threads.
ROUNDS = 5
WARM_UP = 3


def _variants(X, rows, width, batch, rng):
    """name -> (operation, callable), the NumPy ones and, if installed, PyTorch's."""
    W = rng.normal(0.0, 0.03, (X.shape[1], width)).astype(np.float32)
    delta = rng.normal(size=(batch, width)).astype(np.float32)
    A = np.take(X, rows, axis=0)
    out = np.empty_like(A)
    variants = {
        "gather: np.take clip": lambda: np.take(X, rows, axis=0, out=out, mode="clip"),
        "forward: numpy A @ W": lambda: A @ W,
        "gradient: numpy A.T @ delta": lambda: A.T @ delta,
        "gradient: numpy (delta.T @ A).T": lambda: (delta.T @ A).T,
    }
    if _kernels.kernels_available():
        variants["gather: gather_rows, 2 kernel threads"] = (
            lambda: _kernels.gather_rows(X, rows, out, 2))
    try:
        import torch
    except ImportError:
        return variants
    torch.set_num_threads(2)
    tX, trows = torch.from_numpy(X), torch.from_numpy(rows.astype(np.int64))
    tA, tW, tdelta = torch.from_numpy(A), torch.from_numpy(W), torch.from_numpy(delta)
    tout = torch.from_numpy(out)
    variants.update({
        "gather: torch.index_select": lambda: torch.index_select(tX, 0, trows, out=tout),
        "forward: torch A @ W": lambda: tA @ tW,
        "gradient: torch A.T @ delta": lambda: tA.T @ tdelta,
        "gradient: torch (delta.T @ A).T": lambda: (tdelta.T @ tA).T,
    })
    return variants


def measure(X, width, batch, repeats, seed=0):
    """Median ms of every variant for one first-layer width, interleaved."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X))[:batch]
    variants = _variants(X, rows, width, batch, rng)
    times = {name: [] for name in variants}
    with threadpool_limits(2, user_api="blas"):
        for _ in range(ROUNDS):
            for name, fn in variants.items():
                for _ in range(WARM_UP):
                    fn()
                for _ in range(max(1, repeats // ROUNDS)):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--widths", type=int, nargs="+", default=[10, 64])
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    X, _ = common.load_synthetic(*common.ensure_synthetic())
    print(f"{common.cpu_model()}, {os.cpu_count()} CPUs; {len(X)} x {X.shape[1]} float32, "
          f"batch {args.batch}, median of {args.repeats}", flush=True)
    ticks = common.cpu_ticks()
    results = {"cpu": common.cpu_model(), "batch": args.batch, "repeats": args.repeats,
               "widths": {}}
    for width in args.widths:
        ms = measure(X, width, args.batch, args.repeats)
        results["widths"][str(width)] = ms
        print(f"\nfirst layer 30,000 x {width}:")
        for name, value in ms.items():
            print(f"  {name:40s} {value:7.2f} ms")
    results["host_steal"] = common.steal_share(ticks, common.cpu_ticks())
    if results["host_steal"] is not None:
        print(f"\nhost steal during the run: {results['host_steal']:.1%}")
    if args.json:
        from skoffice31._fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
