"""Micro-benchmark of the fused compiled kernels (skoffice31._kernels, issue 10).

    python benchmarks/bench_kernels.py                  # everything (~3-5 min on 2 cores)
    python benchmarks/bench_kernels.py --part steps     # per-step times only
    python benchmarks/bench_kernels.py --part crossover # by batch size, one thread each
    python benchmarks/bench_kernels.py --part small     # where the kernel stops paying
    python benchmarks/bench_kernels.py --part columns   # the plan's column thresholds
    python benchmarks/bench_kernels.py --part blocks    # the plan's large-batch block size
    python benchmarks/bench_kernels.py --part cache     # memory or arithmetic: which binds?
    python benchmarks/bench_kernels.py --part compile   # first-use compile / cache load, memory
    python benchmarks/bench_kernels.py --part loky      # do loky workers reuse the cache?
    python benchmarks/bench_kernels.py --part fit_threads  # kernel threads on small layers
    python benchmarks/bench_kernels.py --part fit_chunk    # inputs per transposed chunk
    python benchmarks/bench_kernels.py --part team         # spinning or sleeping helpers, one call
    python benchmarks/bench_kernels.py --part fit_spin     # the same in whole fits
    python benchmarks/bench_kernels.py --part fit_gather   # next batch gathered by two threads?

steps
    One optimizer step of a dense layer (weights W of n_in x n_out, float32,
    input A = the minibatch, raw 0..255 pixels), in ms, median over
    ``--repeats`` steps, all variants interleaved step by step in the same run:

    numpy           the real optimizer class (AdamOptimizer / SGDOptimizer with
                    an OuterGradient), set up as the estimator sets it: at
                    batch <= 64 one BLAS thread and n_threads=2 (and, for
                    plain SGD, the one-GEMM step ``fused_gemm``); above,
                    BLAS on 2 threads and n_threads=1
    kernel          adam_update / sgd_update, 2 threads
    numpy+fwd       numpy, then the next batch's forward product X_next @ W
    kernel+fwd      the kernel computing X_next @ W from the updated rows
    floor           a compiled 2-thread pass with exactly the step's memory
                    traffic and no arithmetic (Adam: read+write W, m, v;
                    SGD: read+write W), i.e. the one-pass bandwidth floor
    copy GB/s       2-thread copy bandwidth (compiled loop, b[:] = a)

crossover
    numpy vs kernel by batch size (10 ... 256) on one thread each, CPU time:
    where the kernel's simple gradient loop stops beating BLAS.

small
    numpy vs kernel (1 and 2 threads) for the smaller layers of the study
    layouts and for the intercept-sized vectors, batch 10 and 256.

columns
    The plan's column thresholds (``KERNEL_MIN_COLUMNS``,
    ``KERNEL_MIN_COLUMNS_SGD``, ``TRANSPOSED_MAX_COLUMNS``): one training
    step (update and next forward product) of a 30,000-row float32 layer of
    10 ... 384 columns at batch 10 -- the NumPy path as planned without the
    row kernels (BLAS on one thread, compiled block updates; plain SGD's
    one-GEMM step), the row kernels on a C-ordered layer and the transposed
    kernels on a Fortran-ordered one, for Adam, Nesterov SGD and plain SGD.

blocks
    The plan's ``LARGE_BATCH_BLOCK_SIZE``: one NumPy update (plain SGD, Adam)
    of a 30,000-row layer of 10, 64 and 384 columns at batch 256, BLAS on two
    threads, with row blocks of 2**16 ... 2**22 elements; and the minibatch
    gather ``np.take(X, rows, out=)`` in NumPy's default ``mode="raise"``
    (buffered) against ``mode="clip"`` (what ``_Network.gather`` uses).

cache
    Is a batch-10 kernel step bound by memory traffic or by its arithmetic?
    ns per weight of one kernel call on one thread (Adam, Nesterov SGD;
    with and without the next batch's forward product), for a layer whose
    W and moments stay in the caches (2,000 rows) and for one streamed from
    memory (30,000 rows), of 64 and 384 columns, interleaved; beside them a
    one-thread pass with the step's memory traffic and no arithmetic. If
    the times per weight are about equal in and out of cache, the step is
    bound by the arithmetic, not the bandwidth.

compile
    Fresh processes with an empty ``NUMBA_CACHE_DIR``: numba import time,
    first call (compile + run) per dtype, then the same in a new process
    (cache load), with the cache next to the source, and with a read-only
    package folder (a read-only bind mount in a private mount namespace,
    when run as root: root ignores file permissions). Also the time of the
    rest of the study runner's ``warm_up`` (float32 Adam and SGD, both
    layouts) after the first call, and the resident memory that importing
    numba and then loading every kernel add (MB, independent of the
    model's size).

fit_threads
    Whole fits (the study's settings, Adam, batch 10, synthetic data of the
    study's shape, 4 epochs) of ``--fit-layout`` (default 10), alternating
    fit by fit between every kernel call on the plan's two threads and on
    one (``kernel_parallel_min_size`` 2**62 or 1), ``--repeats // 3`` pairs
    (at least 3): median seconds per epoch (epochs 2-4), the ratio two /
    one within each pair and its median, which layers the plan's
    ``KERNEL_PARALLEL_MIN_SIZE`` shares, and the share of CPU time the host
    stole during each fit (a virtual machine's *steal*, ``/proc/stat``).

fit_chunk
    Paired whole fits as in *fit_threads* with the transposed kernels'
    ``COLUMN_CHUNK`` (inputs per chunk, read at every call) at 1024 (the
    package's), 512 and 2048.

team
    One float32 Adam call on a 30,000 x 10 transposed layer (the ``(10)``
    layout's first layer, four parts) with the next batch's product fused,
    batch 10, in ms, median over ``--repeats`` x 200 calls, the variants
    interleaved block by block: on the caller's thread alone, shared with a
    helper that spins between calls (the default ``SKOFFICE31_SPIN_US``),
    and shared with one that sleeps after every call (spin 0: each call
    wakes it, as a thread pool's worker). Between two calls the caller does
    0.3 ms of other NumPy work, as the rest of a training step, so the
    helper's core goes idle.

fit_spin
    Paired whole fits as in *fit_threads* (every kernel call shared by the
    plan's threads) with spinning helpers and with sleeping ones (spin 0).

fit_gather
    Paired whole fits as in *fit_threads*: the next batch's rows gathered by
    the kernel threads (``_kernels.gather_rows``, the package's choice for a
    narrow first layer) or by ``np.take`` on the caller's thread.

loky
    joblib/loky workers (n_jobs=2), first kernel call in each worker, with a
    cold cache, then in fresh workers with the cache written.

The machine is shared (2 cores, other jobs running): every figure is a
median of interleaved runs, and the load average is printed with it; treat
differences below ~20 % as noise.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from skoffice31 import _kernels  # noqa: E402
from skoffice31._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer  # noqa: E402

SMALL_BATCH = 64  # as skoffice31._multihead.SMALL_BATCH


def _load():
    return os.getloadavg()[0]


# ------------------------------------------------------------ probes ----

_PROBES = {}


def _probes():
    """Compiled serial passes over ``[lo, hi)``, run by two Python threads
    (the kernels' own threading; a numba ``parallel=True`` pool would leave
    OpenMP threads spinning into the next variant's BLAS calls)."""
    if not _PROBES:
        import numba

        jit = numba.njit(cache=True, nogil=True)

        @jit
        def touch1(a, lo, hi):  # read + write every element once
            for i in range(lo, hi):
                a[i] = a[i] + 1

        @jit
        def touch2(a, b, lo, hi):
            for i in range(lo, hi):
                a[i] = a[i] + 1
                b[i] = b[i] + 1

        @jit
        def touch3(a, b, c, lo, hi):
            for i in range(lo, hi):
                a[i] = a[i] + 1
                b[i] = b[i] + 1
                c[i] = c[i] + 1

        @jit
        def copy(src, dst, lo, hi):
            for i in range(lo, hi):
                dst[i] = src[i]

        _PROBES.update(touch1=touch1, touch2=touch2, touch3=touch3, copy=copy)
    return _PROBES


def _two_threads(fn, args, n):
    from concurrent.futures import ThreadPoolExecutor

    if "pool" not in _PROBES:
        _PROBES["pool"] = ThreadPoolExecutor(1)
    half = n // 2
    future = _PROBES["pool"].submit(fn, *args, half, n)
    fn(*args, 0, half)
    future.result()


def _touch_fn(arrays):
    """A 2-thread pass with the traffic of an update of ``arrays`` (read +
    write each once): the one-pass bandwidth floor of a step."""
    flat = [a.reshape(-1) for a in arrays]
    touch = _probes()["touch%d" % len(flat)]

    def run():
        _two_threads(touch, flat, flat[0].size)

    return run


def copy_bandwidth(n_bytes=46_080_000, repeats=9):
    """GB/s of a 2-thread compiled copy (1 read + 1 write per element)."""
    copy = _probes()["copy"]
    a = np.ones(n_bytes // 4, np.float32)
    b = np.empty_like(a)
    _two_threads(copy, (a, b), a.size)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _two_threads(copy, (a, b), a.size)
        times.append(time.perf_counter() - t0)
    return 2 * a.nbytes / float(np.median(times)) / 1e9


# ------------------------------------------------------------ steps ----


class Case:
    """The state of one variant: its own W (and moments), its own optimizer."""

    def __init__(self, solver, shape, batch, rng):
        self.solver, self.batch = solver, batch
        n_in, n_out = shape
        self.X = (rng.random((4 * batch, n_in), dtype=np.float32) * 255).astype(np.float32)
        self.D = [rng.normal(0, 1e-3, (batch, n_out)).astype(np.float32) for _ in range(4)]
        self.W = rng.normal(0, 0.03, shape).astype(np.float32)
        self.out = np.empty((batch, n_out), np.float32)
        self.k = 0
        if solver == "adam":
            self.opt = AdamOptimizer([self.W], 1e-4)
            self.m, self.v = self.opt.ms[0], self.opt.vs[0]
        else:
            self.opt = SGDOptimizer([self.W], 1e-4, momentum=0.0, nesterov=False)
        small = batch <= SMALL_BATCH
        self.opt.n_threads = 2 if small else 1
        if solver == "sgd":
            self.opt.fused_gemm = small
        self.blas_threads = 1 if small else 2

    def batches(self):
        j = self.k % 4
        self.k += 1
        A = self.X[j * self.batch:(j + 1) * self.batch]
        X_next = self.X[((j + 1) % 4) * self.batch:((j + 1) % 4 + 1) * self.batch]
        return A, self.D[j], X_next

    def numpy(self, forward=False):
        # BLAS threads are limited around the whole timing (see _blas): a
        # threadpool_limits per call costs milliseconds
        A, D, X_next = self.batches()
        self.opt.update_params([self.W], [OuterGradient(A, D, self.W, 0.0)])
        if forward:
            np.matmul(X_next, self.W, out=self.out)

    def kernel(self, forward=False):
        A, D, X_next = self.batches()
        extra = dict(X_next=X_next, out=self.out) if forward else {}
        if self.solver == "adam":
            self.opt._start_step()
            _kernels.adam_update(self.W, A, D, self.m, self.v, lr=self.opt.learning_rate,
                                 eps=self.opt._eps_t, flush=self.opt._flush, n_threads=2,
                                 **extra)
        else:
            _kernels.sgd_update(self.W, A, D, lr=self.opt.learning_rate, n_threads=2, **extra)


def _blas(batch):
    """BLAS threads as the estimator sets them: 1 for batches <= 64, else 2."""
    return threadpool_limits(1 if batch <= SMALL_BATCH else 2, user_api="blas")


def time_interleaved(fns, repeats, warmup=2, cpu=None):
    """Median wall seconds of each function, run in turn ``repeats`` times.

    With a dict ``cpu``, also fills it with the median CPU seconds (all
    threads of the process): on a loaded machine the CPU time is the steadier
    measure of the work, the wall time what a user waits.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    cpus = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    if cpu is not None:
        cpu.update({name: float(np.median(t)) for name, t in cpus.items()})
    return {name: float(np.median(t)) for name, t in times.items()}


def bench_steps(shapes, batches, solvers, repeats, forward=True):
    rng = np.random.default_rng(0)
    rows = []
    for shape in shapes:
        for batch in batches:
            for solver in solvers:
                cases = {name: Case(solver, shape, batch, rng) for name in
                         ("numpy", "kernel", "numpy+fwd", "kernel+fwd")}
                fns = {
                    "numpy": cases["numpy"].numpy,
                    "kernel": cases["kernel"].kernel,
                }
                if forward:
                    fns["numpy+fwd"] = lambda c=cases["numpy+fwd"]: c.numpy(forward=True)
                    fns["kernel+fwd"] = lambda c=cases["kernel+fwd"]: c.kernel(forward=True)
                W = cases["numpy"].W
                state = [W, cases["numpy"].m, cases["numpy"].v] if solver == "adam" else [W]
                floor_arrays = [a.copy() for a in state]
                fns["floor"] = _touch_fn(floor_arrays)
                load = _load()
                cpu = {}
                n_rep = repeats if batch <= SMALL_BATCH else max(3, repeats // 3)
                with _blas(batch):
                    med = time_interleaved(fns, n_rep, cpu=cpu)
                row = {"shape": list(shape), "batch": batch, "solver": solver, "load": load,
                       **{k: v * 1e3 for k, v in med.items()},
                       "cpu": {k: v * 1e3 for k, v in cpu.items()}}
                rows.append(row)
                print(_fmt_step(row), flush=True)
    return rows


def _fmt_step(row):
    cols = ["numpy", "kernel", "numpy+fwd", "kernel+fwd", "floor"]
    parts = [f"{c} {row[c]:7.2f}" for c in cols if c in row]
    ratio = row["numpy"] / row["kernel"]
    cpu = "  ".join(f"{c} {row['cpu'][c]:7.2f}" for c in cols if c in row["cpu"])
    return (f"{tuple(row['shape'])!s:13} b{row['batch']:<4d} {row['solver']:5s} ms/step wall: "
            + "  ".join(parts) + f"  | numpy/kernel {ratio:4.1f}x  (load {row['load']:.1f})\n"
            + " " * 25 + "CPU:  " + cpu)


# ------------------------------------------------------------ crossover ----


def bench_crossover(repeats, batches=(10, 16, 32, 64, 128, 256), shape=(30_000, 384)):
    """One thread each (BLAS 1 thread, n_threads=1): CPU ms per step of the
    NumPy path and the kernel by batch size. Single-threaded CPU time is the
    measure least disturbed by other jobs on the machine, and it is the work
    that two threads share."""
    rng = np.random.default_rng(2)
    rows = []
    for solver in ("adam", "sgd"):
        for batch in batches:
            c_np, c_k = Case(solver, shape, batch, rng), Case(solver, shape, batch, rng)
            c_np.opt.n_threads, c_np.blas_threads = 1, 1
            if solver == "sgd":
                c_np.opt.fused_gemm = False  # the blocked path (fused_gemm: see "steps")

            def kernel(c=c_k):
                A, D, _ = c.batches()
                if c.solver == "adam":
                    c.opt._start_step()
                    _kernels.adam_update(c.W, A, D, c.m, c.v, lr=c.opt.learning_rate,
                                         eps=c.opt._eps_t, n_threads=1)
                else:
                    _kernels.sgd_update(c.W, A, D, lr=1e-4, n_threads=1)

            fns = {"numpy": c_np.numpy, "kernel": kernel}
            if solver == "sgd":  # the estimator's plain-SGD path at batch <= 64
                c_gemm = Case(solver, shape, batch, rng)
                c_gemm.opt.n_threads, c_gemm.blas_threads = 1, 1
                c_gemm.opt.fused_gemm = True
                fns["numpy gemm step"] = c_gemm.numpy
            cpu = {}
            n_rep = repeats if batch <= SMALL_BATCH else max(3, repeats // 3)
            with threadpool_limits(1, user_api="blas"):
                time_interleaved(fns, n_rep, cpu=cpu)
            row = {"shape": list(shape), "batch": batch, "solver": solver, "load": _load(),
                   **{k: v * 1e3 for k, v in cpu.items()}}
            rows.append(row)
            print(f"{tuple(shape)!s:13} b{batch:<4d} {solver:5s} CPU ms/step, 1 thread: "
                  f"numpy {row['numpy']:8.2f}  kernel {row['kernel']:8.2f}  "
                  + (f"numpy gemm step {row['numpy gemm step']:8.2f}  " if solver == "sgd" else "")
                  + f"numpy/kernel {row['numpy'] / row['kernel']:5.2f}x  (load {row['load']:.1f})",
                  flush=True)
    return rows


# ------------------------------------------------------------ small ----


def _time_layer(fns, repeats, shape, batch, what, digits):
    """Time ``fns`` interleaved; print and return the layer's row (ms)."""
    ms = {k: 1e3 * t for k, t in time_interleaved(fns, repeats).items()}
    print(f"({shape[0]}, {shape[1]:3d}) b{batch}  ms/{what}: "
          + "  ".join(f"{k} {t:.{digits}f}" for k, t in ms.items()) + f"  (load {_load():.1f})",
          flush=True)
    return {"shape": list(shape), "batch": batch, "ms": ms, "load": _load()}


def bench_columns(repeats, columns=(10, 16, 32, 64, 128, 384), n_in=30_000, batch=10):
    """One training step of a first layer by number of columns, three ways.

    A step as the training loop runs it: the update and the next
    minibatch's forward product ``X_next @ W``. *numpy*: the optimizer's
    NumPy path as planned for layers the kernels do not take (BLAS on one
    thread, the compiled block updates for Adam and Nesterov, plain SGD's
    one-GEMM step), then the product as one GEMM; *rows*: the row kernels on
    a C-ordered ``W``, the product fused; *transposed*: the transposed
    kernels on a Fortran-ordered ``W`` (what ``TRANSPOSED_MAX_COLUMNS``
    chooses), the product fused. Kernels on two threads.
    """
    from skoffice31._plan import TrainingPlan

    rng = np.random.default_rng(0)
    A = (rng.random((batch, n_in)) * 255).astype(np.float32)
    X_next = (rng.random((batch, n_in)) * 255).astype(np.float32)
    rows = []
    for n_out in columns:
        W0 = rng.normal(0, 0.03, (n_in, n_out)).astype(np.float32)
        d = rng.normal(0, 1e-3, (batch, n_out)).astype(np.float32)
        out = np.empty((batch, n_out), np.float32)
        fns = {}
        for solver in ("adam", "nesterov", "sgd"):
            plan = TrainingPlan(blas_threads=1, update_threads=2, compiled_updates=True,
                                fused_gemm_sgd=solver == "sgd")
            W = W0.copy()
            if solver == "adam":
                opt = AdamOptimizer([W], 1e-4, plan=plan)
            else:
                opt = SGDOptimizer([W], 1e-4, momentum=0.9 if solver == "nesterov" else 0.0,
                                   nesterov=True, plan=plan)

            def numpy_step(opt=opt, W=W, g=OuterGradient(A, d, W, 1e-4)):
                opt.update_params([W], [g])
                np.matmul(X_next, W, out=out)

            fns[f"{solver} numpy"] = numpy_step
            for layout, order in (("rows", "C"), ("transposed", "F")):
                Wk = np.array(W0, order=order)
                state = [np.zeros_like(Wk), np.zeros_like(Wk)]
                if solver == "adam":
                    def step(W=Wk, m=state[0], v=state[1]):
                        _kernels.adam_update(W, A, d, m, v, lr=1e-4, eps=1e-8, l2=1e-4,
                                             X_next=X_next, out=out, n_threads=2)
                else:
                    def step(W=Wk, vel=state[0], mu=0.9 if solver == "nesterov" else 0.0):
                        _kernels.sgd_update(W, A, d, lr=1e-4, l2=1e-4, velocity=vel,
                                            momentum=mu, nesterov=True, X_next=X_next,
                                            out=out, n_threads=2)
                fns[f"{solver} {layout}"] = step
        with threadpool_limits(1, user_api="blas"):
            rows.append(_time_layer(fns, repeats, W0.shape, batch, "step", 2))
    return rows


def bench_cache(repeats, columns=(64, 384), rows=(2_000, 30_000), batch=10):
    """ns per weight of a one-thread kernel step, the layer in cache or streamed."""
    rng = np.random.default_rng(0)
    touch = _probes()
    out = []
    for n_out in columns:
        for n_in in rows:
            A = (rng.random((batch, n_in)) * 255).astype(np.float32)
            X_next = (rng.random((batch, n_in)) * 255).astype(np.float32)
            d = rng.normal(0, 1e-3, (batch, n_out)).astype(np.float32)
            W = rng.normal(0, 0.03, (n_in, n_out)).astype(np.float32)
            m, v, vel = np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
            acc = np.empty((batch, n_out), np.float32)
            flat3 = [a.reshape(-1) for a in (W.copy(), m.copy(), v.copy())]
            flat2 = flat3[:2]
            fns = {
                "adam": lambda: _kernels.adam_update(W, A, d, m, v, lr=1e-4, eps=1e-8,
                                                     n_threads=1),
                "adam+fwd": lambda: _kernels.adam_update(W, A, d, m, v, lr=1e-4, eps=1e-8,
                                                         n_threads=1, X_next=X_next, out=acc),
                "adam traffic": lambda: touch["touch3"](*flat3, 0, flat3[0].size),
                "nesterov": lambda: _kernels.sgd_update(W, A, d, lr=1e-4, velocity=vel,
                                                        momentum=0.9, nesterov=True,
                                                        n_threads=1),
                "nesterov+fwd": lambda: _kernels.sgd_update(
                    W, A, d, lr=1e-4, velocity=vel, momentum=0.9, nesterov=True, n_threads=1,
                    X_next=X_next, out=acc),
                "nesterov traffic": lambda: touch["touch2"](*flat2, 0, flat2[0].size),
            }
            ns = {k: 1e9 * t / W.size for k, t in time_interleaved(fns, repeats).items()}
            row = {"shape": [n_in, n_out], "MB": 3 * W.nbytes / 1e6, "ns_per_weight": ns,
                   "load": _load()}
            print(f"({n_in:6d}, {n_out:3d}) b{batch} W+m+v {row['MB']:5.1f} MB  ns/weight, "
                  "1 thread: " + "  ".join(f"{k} {t:.2f}" for k, t in ns.items())
                  + f"  (load {row['load']:.1f})", flush=True)
            out.append(row)
    return out


def bench_blocks(repeats, columns=(10, 64, 384), n_in=30_000, batch=256,
                 block_sizes=(1 << 16, 1 << 18, 1 << 20, 1 << 22)):
    """NumPy update time by row-block size at a wide minibatch."""
    from skoffice31._plan import TrainingPlan

    rng = np.random.default_rng(0)
    A = rng.random((batch, n_in), dtype=np.float32)
    # the minibatch gather of the training loop: np.take(out=) buffers in mode="raise"
    X = rng.random((3288, n_in), dtype=np.float32)
    picked, out = rng.permutation(len(X))[:batch], np.empty_like(A)
    gathers = {
        f"np.take(out=, mode={mode!r})": (
            lambda mode=mode: np.take(X, picked, axis=0, out=out, mode=mode))
        for mode in ("raise", "clip")
    }
    ms = {k: 1e3 * t for k, t in time_interleaved(gathers, repeats).items()}
    print(f"gather {batch} of {len(X)} rows x {n_in}: "
          + "  ".join(f"{k} {t:.1f} ms" for k, t in ms.items()), flush=True)
    rows = [{"gather": ms, "load": _load()}]
    for n_out in columns:
        W = rng.normal(0, 0.03, (n_in, n_out)).astype(np.float32)
        d = rng.normal(0, 1e-3, (batch, n_out)).astype(np.float32)
        g = OuterGradient(A, d, W, 0.0)
        fns = {}
        for bs in block_sizes:
            for name, opt in (
                ("sgd", SGDOptimizer([W], 1e-4, momentum=0.0, block_size=bs, plan=TrainingPlan())),
                ("adam", AdamOptimizer([W], 1e-4, block_size=bs, plan=TrainingPlan())),
            ):
                fns[f"{name} 2**{bs.bit_length() - 1}"] = lambda opt=opt: opt.update_params([W], [g])
        with threadpool_limits(2, user_api="blas"):
            rows.append(_time_layer(fns, repeats, W.shape, batch, "update", 1))
    return rows


def bench_small(repeats):
    """Per-parameter step time of numpy vs kernel for small layers / vectors."""
    rng = np.random.default_rng(1)
    shapes = [(3072, 512), (384, 192), (192, 64), (64, 32), (32, 34), (1, 384), (1, 34)]
    rows = []
    for batch in (10, 256):
        for solver in ("adam", "sgd"):
            for shape in shapes:
                c_np = Case(solver, shape, batch, rng)
                c_np.opt.n_threads = 1  # small parameters: the optimizer does not split them
                c_k1 = Case(solver, shape, batch, rng)
                c_k2 = Case(solver, shape, batch, rng)

                def k1(c=c_k1):
                    A, D, _ = c.batches()
                    if solver == "adam":
                        c.opt._start_step()
                        _kernels.adam_update(c.W, A, D, c.m, c.v, lr=c.opt.learning_rate,
                                             eps=c.opt._eps_t, n_threads=1)
                    else:
                        _kernels.sgd_update(c.W, A, D, lr=1e-4, n_threads=1)

                with _blas(batch):
                    med = time_interleaved({"numpy": c_np.numpy, "kernel 1 thr": k1,
                                            "kernel 2 thr": c_k2.kernel}, repeats)
                row = {"shape": list(shape), "batch": batch, "solver": solver,
                       **{k: v * 1e6 for k, v in med.items()}}
                rows.append(row)
                print(f"{tuple(shape)!s:12} b{batch:<4d} {solver:5s} us/step: "
                      + "  ".join(f"{k} {v:9.1f}" for k, v in med.items() for v in [v * 1e6])
                      + f"  | numpy/best kernel {med['numpy'] / min(med['kernel 1 thr'], med['kernel 2 thr']):5.2f}x",
                      flush=True)
    return rows


# ------------------------------------------------------------ compile ----

_COMPILE_SNIPPET = r"""
import json, resource, sys, time
import numpy as np
from skoffice31 import _kernels  # does not import numba
def rss_mb():  # resident set now (the peak of getrusage hides later growth)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:  # not Linux: the peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rss = {"rss_mb_package": rss_mb()}
t0 = time.perf_counter()
import numba
t_import = time.perf_counter() - t0
rss["rss_mb_numba_import"] = rss_mb() - rss["rss_mb_package"]
res = {"import_numba_s": t_import, "skoffice31_file": _kernels.__file__}
for dtype in (np.float32, np.float64):
    W = np.zeros((50, 7), dtype); A = np.ones((3, 50), dtype); D = np.ones((3, 7), dtype)
    t0, c0 = time.perf_counter(), time.process_time()
    _kernels.adam_update(W, A, D, np.zeros_like(W), np.zeros_like(W), lr=1e-3, eps=1e-8)
    res["first_call_s_" + np.dtype(dtype).name] = time.perf_counter() - t0
    res["first_call_cpu_s_" + np.dtype(dtype).name] = time.process_time() - c0
    t0 = time.perf_counter()
    _kernels.adam_update(W, A, D, np.zeros_like(W), np.zeros_like(W), lr=1e-3, eps=1e-8)
    res["second_call_s_" + np.dtype(dtype).name] = time.perf_counter() - t0
# what the study runner compiles before its workers start (float32 Adam and
# SGD, both layouts, block updates), beyond the float32 call above
t0 = time.perf_counter()
_kernels.warm_up((np.float32,), ("adam", "sgd"))
res["study_warm_up_s"] = time.perf_counter() - t0
# the whole runtime: numba, llvmlite and every kernel of both dtypes and layouts
# loaded or compiled (the arrays above are a few kB)
_kernels.warm_up((np.float32, np.float64), ("adam", "sgd", "momentum"))
rss["rss_mb_kernels"] = rss_mb() - rss["rss_mb_package"] - rss["rss_mb_numba_import"]
res.update(rss)
print("RESULT" + json.dumps(res))
"""


def _run_snippet(env, cwd, read_only=None):
    """Run the compile snippet in a fresh process; with ``read_only`` (a
    folder), inside a mount namespace where that folder is mounted read-only
    (root ignores file permissions, so chmod would prove nothing)."""
    script = Path(cwd) / "snippet.py"
    script.write_text(_COMPILE_SNIPPET)
    cmd = [sys.executable, str(script)]
    if read_only is not None:
        ro = str(read_only)
        cmd = ["unshare", "-m", "sh", "-c",
               f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} {ro} && "
               f"exec {sys.executable} {script}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    return {"error": proc.stderr.strip().splitlines()[-3:]}


def _cache_files(folder):
    files = sorted(Path(folder).rglob("*_kernels*.nb*"))
    return f"{len(files)} files in {sorted({str(p.parent.relative_to(folder)) for p in files})}"


def bench_compile():
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. a private copy of the package, cache in a fresh NUMBA_CACHE_DIR
        pkg = tmp / "src"
        shutil.copytree(ROOT / "skoffice31", pkg / "skoffice31",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ, PYTHONPATH=str(pkg), NUMBA_CACHE_DIR=str(tmp / "cache"))
        env.pop(_kernels.ENV_VAR, None)
        rows["cold (empty NUMBA_CACHE_DIR)"] = _run_snippet(env, tmp)
        rows["warm (new process, same cache)"] = _run_snippet(env, tmp)
        rows["cache files"] = _cache_files(tmp / "cache")
        # 2. no NUMBA_CACHE_DIR: the cache goes next to the source (__pycache__)
        env_tree = dict(env)
        env_tree.pop("NUMBA_CACHE_DIR")
        rows["in-tree cold"] = _run_snippet(env_tree, tmp)
        rows["in-tree warm"] = _run_snippet(env_tree, tmp)
        rows["in-tree cache files"] = _cache_files(pkg)
        # 3. read-only package folder, no NUMBA_CACHE_DIR
        ro = tmp / "ro"
        shutil.copytree(ROOT / "skoffice31", ro / "skoffice31",
                        ignore=shutil.ignore_patterns("__pycache__"))
        home = tmp / "home"
        home.mkdir()
        env_ro = dict(env_tree, PYTHONPATH=str(ro), HOME=str(home),
                      XDG_CACHE_HOME=str(home / ".cache"), PYTHONDONTWRITEBYTECODE="1")
        if os.geteuid() == 0 and shutil.which("unshare"):
            rows["read-only package, cold"] = _run_snippet(env_ro, tmp, read_only=ro)
            rows["read-only package, warm"] = _run_snippet(env_ro, tmp, read_only=ro)
            rows["read-only: files in package"] = _cache_files(ro)
            rows["read-only: files in user cache"] = _cache_files(home)
        else:
            rows["read-only package"] = "skipped (needs root and unshare for a read-only mount)"
    for name, value in rows.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in value.items() if k != "skoffice31_file")
        print(f"{name:34s} {value}", flush=True)
    return rows


# ------------------------------------------------------------ loky ----


def _worker_first_call(dtype_name):
    import time as _time

    t0 = _time.perf_counter()
    from skoffice31 import _kernels as k

    k.kernels_available()
    t_import = _time.perf_counter() - t0
    dtype = np.dtype(dtype_name)
    W = np.zeros((50, 7), dtype)
    A, D = np.ones((3, 50), dtype), np.ones((3, 7), dtype)
    t0 = _time.perf_counter()
    k.sgd_update(W, A, D, lr=1e-3)
    return {"pid": os.getpid(), "import_s": t_import, "first_call_s": _time.perf_counter() - t0}


def bench_loky():
    from joblib import Parallel, delayed
    from joblib.externals.loky import get_reusable_executor

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("NUMBA_CACHE_DIR")
        os.environ["NUMBA_CACHE_DIR"] = tmp  # loky workers inherit the environment
        try:
            for label in ("cold cache", "cache written, fresh workers"):
                get_reusable_executor().shutdown(wait=True)
                rows[label] = Parallel(n_jobs=2, backend="loky")(
                    delayed(_worker_first_call)("float32") for _ in range(2)
                )
            rows["same workers again"] = Parallel(n_jobs=2, backend="loky")(
                delayed(_worker_first_call)("float32") for _ in range(2)
            )
            get_reusable_executor().shutdown(wait=True)
        finally:
            if old is None:
                os.environ.pop("NUMBA_CACHE_DIR")
            else:
                os.environ["NUMBA_CACHE_DIR"] = old
    for name, value in rows.items():
        print(f"{name:30s} " + "; ".join(
            f"pid {r['pid']} import {r['import_s']:.2f} s first call {r['first_call_s']:.2f} s"
            for r in value), flush=True)
    return rows


# ------------------------------------------------------------ fit_threads ----


def _paired_fits(n_pairs, layout, variants):
    """Whole fits of ``layout`` (the study's settings, Adam, batch 10, the
    synthetic data of the study's shape, 4 epochs), alternating fit by fit
    between the ``variants`` (name -> function that sets the variant up and
    returns a function undoing it). Returns seconds per epoch (median of
    epochs 2-4), the host's steal share of each fit and the plan's
    ``(kernel_threads, kernel_parallel_min_size)`` per variant."""
    import bench_common as common
    from skoffice31.study import StudySettings

    X, y = common.load_synthetic(*common.ensure_synthetic(common.N_ROWS))
    settings = StudySettings.from_preset("study", epochs=4, batch_size=10)
    rows = {name: [] for name in variants}
    steal = {name: [] for name in variants}  # the host's share of the CPU time
    threads = {}
    for pair in range(n_pairs):
        for name, set_up in variants.items():
            undo = set_up()
            try:
                est = settings.make_estimator((layout, "adam"))
                ticks = common.cpu_ticks()
                _, epoch_times = common.timed_fit(est, X, y)
            finally:
                undo()
            steal[name].append(common.steal_share(ticks, common.cpu_ticks()))
            plan = est._optimizer.plan
            threads[name] = (plan.kernel_threads, plan.kernel_parallel_min_size)
            rows[name].append(float(np.median(epoch_times[1:])))  # epochs 2..
            shown = "" if steal[name][-1] is None else f", steal {steal[name][-1]:.0%}"
            print(f"pair {pair + 1} {name:14s} {rows[name][-1]:.3f} s/epoch{shown}", flush=True)
    return rows, steal, threads


def _summary(layout, rows, steal, threads, n_pairs):
    """Medians, and each variant's ratio to the first one pair by pair."""
    names = list(rows)
    out = {"layout": list(layout), "threads_and_min_size": threads, "s_per_epoch": rows,
           "steal_share": steal,
           "median_s_per_epoch": {k: float(np.median(v)) for k, v in rows.items()},
           "load": _load()}
    for name in names[1:]:
        ratios = [a / b for a, b in zip(rows[name], rows[names[0]])]
        out[f"ratio {name} / {names[0]}"] = ratios
        out[f"median ratio {name} / {names[0]}"] = float(np.median(ratios))
        print(f"{layout}: {name} / {names[0]}, median of {n_pairs} pairs: "
              f"{np.median(ratios):.2f} ({sum(r < 1 for r in ratios)} of {n_pairs} pairs "
              f"faster)", flush=True)
    return out


def _setting(owner, name, value):
    """A variant that sets ``owner.name = value`` for one fit."""
    def set_up():
        saved = getattr(owner, name)
        setattr(owner, name, value)
        return lambda: setattr(owner, name, saved)
    return set_up


def bench_fit_threads(n_pairs, layout=(10,)):
    """Paired whole fits: every kernel call on the plan's (two) threads, or on
    one, whatever the layer's size."""
    import bench_common as common
    from skoffice31 import _plan

    variants = {"one thread": _setting(_plan, "KERNEL_PARALLEL_MIN_SIZE", 1 << 62),
                "two threads": _setting(_plan, "KERNEL_PARALLEL_MIN_SIZE", 1)}
    rows, steal, threads = _paired_fits(n_pairs, layout, variants)
    out = _summary(layout, rows, steal, threads, n_pairs)
    out["ratio_two_over_one"] = out["ratio two threads / one thread"]
    out["median_ratio"] = out["median ratio two threads / one thread"]
    shapes = [(common.N_FEATURES, layout[0])] + list(zip(layout[:-1], layout[1:]))
    out["plan_shares_layers"] = [int(np.prod(s)) >= _plan.KERNEL_PARALLEL_MIN_SIZE
                                 for s in shapes]
    return out


def bench_fit_chunk(n_pairs, layout=(10,), chunks=(1024, 512, 2048)):
    """Paired whole fits with the transposed kernels' ``COLUMN_CHUNK`` (inputs
    per chunk) at each of ``chunks``, the first being the package's."""
    variants = {f"chunk {c}": _setting(_kernels, "COLUMN_CHUNK", c) for c in chunks}
    rows, steal, threads = _paired_fits(n_pairs, layout, variants)
    return _summary(layout, rows, steal, threads, n_pairs)


# ------------------------------------------------------------ team ----


def _use_team(spin_us):
    """A variant that installs a fresh kernel team spinning ``spin_us``."""
    from skoffice31 import _team

    def set_up():
        _kernels._kernel()
        saved = dict(_team._TEAM)
        _team._TEAM.update(team=_team.Team(_kernels._STATE["sync"], spin_us), pid=os.getpid())
        return lambda: (_team._TEAM.clear(), _team._TEAM.update(saved))
    return set_up


def bench_team(repeats, n_calls=200):
    """One (10)-layout first-layer Adam call: alone, spinning or sleeping helper."""
    from skoffice31 import _team

    rng = np.random.default_rng(0)
    shape = (30_000, 10)
    W = np.asfortranarray(rng.normal(0, 0.03, shape).astype(np.float32))
    m, v = np.zeros_like(W), np.zeros_like(W)
    A = (rng.random((10, shape[0])) * 255).astype(np.float32)
    X_next = (rng.random((10, shape[0])) * 255).astype(np.float32)
    delta = rng.normal(0, 1e-2, (10, shape[1])).astype(np.float32)
    out = np.empty((10, shape[1]), np.float32)
    busy = np.ones(300_000, np.float32)
    variants = {"one thread": (1, None), "spinning helper": (2, _team.SPIN_US),
                "sleeping helper": (2, 0)}
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (n_threads, spin_us) in variants.items():
            undo = _use_team(spin_us)() if spin_us is not None else (lambda: None)
            try:
                total = 0.0
                for _ in range(n_calls):
                    for _ in range(10):  # the rest of a step: ~0.3 ms of ufuncs
                        busy *= np.float32(1.0000001)
                    t0 = time.perf_counter()
                    _kernels.adam_update(W, A, delta, m, v, lr=1e-4, eps=1e-8, X_next=X_next,
                                         out=out, n_threads=n_threads)
                    total += time.perf_counter() - t0
            finally:
                undo()
            times[name].append(total / n_calls * 1e3)
    out_ = {name: float(np.median(t)) for name, t in times.items()}
    for name, ms in out_.items():
        print(f"30,000 x 10 Adam call, {name:16s} {ms:.3f} ms", flush=True)
    return {"ms_per_call": out_, "all_ms": times, "load": _load()}


def bench_fit_spin(n_pairs, layout=(10,)):
    """Paired whole fits, every kernel call shared: spinning or sleeping helpers."""
    from skoffice31 import _plan, _team

    shared = _setting(_plan, "KERNEL_PARALLEL_MIN_SIZE", 1)

    def both(spin_us):
        def set_up():
            undo_shared, undo_team = shared(), _use_team(spin_us)()
            return lambda: (undo_team(), undo_shared())
        return set_up

    variants = {"spinning": both(_team.SPIN_US), "sleeping": both(0)}
    rows, steal, threads = _paired_fits(n_pairs, layout, variants)
    return _summary(layout, rows, steal, threads, n_pairs)


def bench_fit_gather(n_pairs, layout=(10,)):
    """Paired whole fits: the next batch gathered by the kernel threads or by np.take."""
    variants = {"kernel threads": lambda: (lambda: None),
                "np.take": _setting(_kernels, "gather_rows", lambda *args: False)}
    rows, steal, threads = _paired_fits(n_pairs, layout, variants)
    return _summary(layout, rows, steal, threads, n_pairs)


# ------------------------------------------------------------ main ----


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = ["steps", "crossover", "small", "columns", "cache", "blocks", "compile", "loky",
             "fit_threads", "fit_chunk", "team", "fit_spin", "fit_gather"]
    p.add_argument("--part", nargs="+", default=parts, choices=parts)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--fit-layout", default="10",
                   help="fit_threads, fit_chunk, fit_spin: hidden layout, e.g. 64,32,10")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if not _kernels.kernels_available():
        sys.exit("numba is not installed (or SKOFFICE31_KERNELS=0): nothing to measure.")
    import numba

    print(f"numba {numba.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, load {_load():.1f}", flush=True)
    results = {}
    if "steps" in args.part:
        print(f"copy bandwidth, 2 threads: {copy_bandwidth():.1f} GB/s", flush=True)
        results["steps"] = bench_steps([(30_000, 384), (3_072, 512)], [10, 256],
                                       ["adam", "sgd"], args.repeats)
        results["copy_gbs"] = copy_bandwidth()
        print(f"copy bandwidth, 2 threads: {results['copy_gbs']:.1f} GB/s", flush=True)
    if "crossover" in args.part:
        results["crossover"] = bench_crossover(args.repeats)
    if "small" in args.part:
        results["small"] = bench_small(max(args.repeats, 30))
    if "columns" in args.part:
        results["columns"] = bench_columns(args.repeats)
    if "cache" in args.part:
        results["cache"] = bench_cache(args.repeats)
    if "blocks" in args.part:
        results["blocks"] = bench_blocks(max(3, args.repeats // 2))
    if "compile" in args.part:
        results["compile"] = bench_compile()
    if "loky" in args.part:
        results["loky"] = bench_loky()
    if "team" in args.part:
        results["team"] = bench_team(args.repeats)
    # paired whole fits of --fit-layout, --repeats // 3 pairs
    layout = tuple(int(h) for h in args.fit_layout.split(","))
    fits = {"fit_threads": bench_fit_threads, "fit_chunk": bench_fit_chunk,
            "fit_spin": bench_fit_spin, "fit_gather": bench_fit_gather}
    for name, bench in fits.items():
        if name in args.part:
            results[name] = bench(max(3, args.repeats // 3), layout)
    if args.json:
        from skoffice31._fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
