"""The compiled kernels of this tree against those of another git revision, in one process.

    python benchmarks/bench_kernel_revisions.py --rev a7a4125 [--columns 10 64 384]
                                                [--rounds 15] [--json benchmarks/results/x.json]

A change to ``skoffice31/_kernels.py`` is judged by timing one training
step of a first layer (30,000 float32 inputs, batch 10, with the next
minibatch's forward product, as the estimator calls it) with the kernels of
the working tree and with the kernels of ``--rev``, taking turns in the same
process: the other revision's ``_kernels.py`` is read with ``git show`` and
loaded as a second module beside the package (same ``_team`` threads, same
numba). Comparing two processes run one after the other on a shared
virtual machine mixes the change with the machine's drift; taking turns
does not.

Layers of at most ``TRANSPOSED_MAX_COLUMNS`` columns are Fortran-ordered
(the transposed kernels, as the training plan lays them out), wider ones
C-ordered (the row kernels). For each solver (plain SGD, Adam, Nesterov
SGD), thread count (1, 2) and layer: ``--rounds`` rounds, each timing 20
consecutive calls of either revision (the order alternating per round);
medians in milliseconds and the ratio tree / revision, with the host steal
of the run.  Only the kernel module is swapped: the revision's kernels must
take the same arguments as this tree's (true since the transposed kernels,
2026-12-03).
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
from skoffice31 import _kernels  # noqa: E402
from skoffice31._plan import TRANSPOSED_MAX_COLUMNS  # noqa: E402

CALLS = 20
N_IN, BATCH = 30_000, 10


def load_revision(rev, directory):
    """``skoffice31/_kernels.py`` of git revision ``rev``, as a module."""
    source = subprocess.run(
        ["git", "show", f"{rev}:skoffice31/_kernels.py"], cwd=HERE.parent,
        capture_output=True, text=True, check=True,
    ).stdout
    path = Path(directory) / f"_kernels_{rev}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"skoffice31._kernels_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _steps(module, n_out, rng):
    """solver -> one step of a fresh layer through ``module``'s kernels."""
    order = "F" if n_out <= TRANSPOSED_MAX_COLUMNS else "C"
    W = np.array(rng.normal(0.0, 0.03, (N_IN, n_out)), np.float32, order=order)
    state = [np.zeros_like(W), np.zeros_like(W)]
    A = rng.random((BATCH, N_IN), dtype=np.float32) * 255
    delta = rng.normal(size=(BATCH, n_out)).astype(np.float32)
    X_next = rng.random((BATCH, N_IN), dtype=np.float32) * 255
    out = np.empty((BATCH, n_out), np.float32)
    fused = dict(X_next=X_next, out=out)
    return {
        "sgd": lambda n: module.sgd_update(W, A, delta, lr=1e-9, n_threads=n, **fused),
        "adam": lambda n: module.adam_update(W, A, delta, *state, lr=1e-9, eps=1e-8,
                                             n_threads=n, **fused),
        "nesterov": lambda n: module.sgd_update(W, A, delta, lr=1e-9, velocity=state[0],
                                                momentum=0.9, nesterov=True, n_threads=n,
                                                **fused),
    }


def measure(other, columns, rounds, seed=0):
    rows = []
    for n_out in columns:
        ours = _steps(_kernels, n_out, np.random.default_rng(seed))
        theirs = _steps(other, n_out, np.random.default_rng(seed))
        for solver in ours:
            for n_threads in (1, 2):
                times = {"tree": [], "rev": []}
                for f in (ours[solver], theirs[solver]):
                    f(n_threads), f(n_threads)  # compile or load, warm the threads
                for r in range(rounds):
                    order = (("tree", ours), ("rev", theirs))[:: 1 if r % 2 == 0 else -1]
                    for tag, steps in order:
                        step = steps[solver]
                        step(n_threads)
                        t0 = time.perf_counter()
                        for _ in range(CALLS):
                            step(n_threads)
                        times[tag].append((time.perf_counter() - t0) / CALLS * 1e3)
                tree, rev = np.median(times["tree"]), np.median(times["rev"])
                rows.append(dict(columns=n_out, solver=solver, threads=n_threads,
                                 tree_ms=float(tree), rev_ms=float(rev),
                                 ratio=float(tree / rev)))
                print(f"{n_out:4d} columns {solver:8s} {n_threads} thread(s): "
                      f"tree {tree:.3f} ms, revision {rev:.3f} ms, tree/revision "
                      f"{tree / rev:.2f}", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rev", required=True, help="git revision to compare against")
    p.add_argument("--columns", type=int, nargs="+", default=[10, 64, 384])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not _kernels.kernels_available():
        sys.exit("the kernels need numba: pip install -e '.[fast]'")
    with tempfile.TemporaryDirectory() as tmp:
        other = load_revision(args.rev, tmp)
        before = common.cpu_ticks()
        rows = measure(other, args.columns, args.rounds)
        steal = common.steal_share(before, common.cpu_ticks())
    tree = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE.parent,
                          capture_output=True, text=True).stdout.strip()
    print(f"host steal during the run: {steal if steal is None else round(steal, 3)}")
    if args.json:
        args.json.write_text(json.dumps(dict(
            command=" ".join(["python", "benchmarks/bench_kernel_revisions.py",
                              *(sys.argv[1:] if argv is None else argv)]),
            tree=tree, revision=args.rev, machine=common.machine_description(),
            steal=steal, batch=BATCH, n_in=N_IN, calls_per_round=CALLS,
            rounds=args.rounds, rows=rows,
        ), indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
