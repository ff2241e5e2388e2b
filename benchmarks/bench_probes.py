"""Quick hardware probes (GEMM GFLOP/s, memory bandwidth) and the lower bounds
("floors") per configuration derived from them.

Two floors are reported per configuration, in seconds per epoch:

hardware floor
    One fused pass per step over every parameter array at two-thread memory
    bandwidth (Adam: read W, g, m, v and write W, m, v = 7 passes; SGD: read
    W, g and write W = 3 passes), or the GEMM FLOPs at the best two-thread
    GEMM rate, whichever is larger.  For (384,192,64,32,10) Adam at batch 10
    that is 329 steps x 7 x 46 MB / bandwidth.
NumPy floor
    What plain NumPy can reach: the first layer's GEMMs at the rates BLAS
    achieves for exactly those shapes (forward and weight gradient), the
    other layers' GEMMs at the best rate, plus the same 7 (or 3) passes at
    one-thread ufunc bandwidth (NumPy ufuncs run on one core).
"""

import time

import numpy as np

from bench_common import N_FEATURES, steps_per_epoch

ITEM = 4  # float32 bytes


def _median_time(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _limit_blas(n_threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n_threads, user_api="blas")


def gemm_rates(hidden_first=(384, 64, 10), batches=(10, 256), threads=(1, 2), repeats=7):
    """GFLOP/s of the first layer's forward (b x F) @ (F x h) and weight-gradient
    (F x b) @ (b x h) products, per thread count."""
    rng = np.random.default_rng(0)
    results = []
    for n_threads in threads:
        with _limit_blas(n_threads):
            for b in batches:
                X = rng.random((b, N_FEATURES), dtype=np.float32)
                for h in hidden_first:
                    W = rng.random((N_FEATURES, h), dtype=np.float32)
                    D = rng.random((b, h), dtype=np.float32)
                    out_f = np.empty((b, h), np.float32)
                    out_g = np.empty((N_FEATURES, h), np.float32)
                    flops = 2.0 * b * N_FEATURES * h
                    t_fwd = _median_time(lambda: np.matmul(X, W, out=out_f), repeats)
                    t_grad = _median_time(lambda: np.matmul(X.T, D, out=out_g), repeats)
                    results.append(
                        {
                            "threads": n_threads,
                            "batch": b,
                            "hidden": h,
                            "forward_s": t_fwd,
                            "wgrad_s": t_grad,
                            "forward_gflops": flops / t_fwd / 1e9,
                            "wgrad_gflops": flops / t_grad / 1e9,
                        }
                    )
    return results


def bandwidth(n_bytes=46_080_000, repeats=9):
    """GB/s of ``a += b`` on float32 arrays (2 reads + 1 write per element).

    One thread: NumPy ufunc; two threads: two Python threads over halves
    (NumPy releases the GIL in ufuncs) and numexpr (when installed).  The
    default size is the (30000 x 384) float32 first-layer weight.
    """
    from concurrent.futures import ThreadPoolExecutor

    a = np.ones(n_bytes // ITEM, dtype=np.float32)
    b = np.ones_like(a)
    moved = 3.0 * a.nbytes
    half = a.size // 2
    out = {"array_mb": a.nbytes / 1e6}
    out["one_thread_gbs"] = moved / _median_time(lambda: np.add(a, b, out=a), repeats) / 1e9

    with ThreadPoolExecutor(2) as pool:

        def two_halves():
            parts = [(a[:half], b[:half]), (a[half:], b[half:])]
            futures = [pool.submit(np.add, x, y, out=x) for x, y in parts]
            for f in futures:
                f.result()

        t = _median_time(two_halves, repeats)
    out["two_python_threads_gbs"] = moved / t / 1e9
    try:
        import numexpr as ne
    except ImportError:
        out["two_threads_gbs"] = None
        return out
    old = ne.set_num_threads(2)
    try:
        t = _median_time(lambda: ne.evaluate("a + b", local_dict={"a": a, "b": b}, out=a), repeats)
    finally:
        ne.set_num_threads(old)
    out["two_threads_gbs"] = moved / t / 1e9
    return out


def run_probes(quick=False):
    repeats = 3 if quick else 7
    return {"gemm": gemm_rates(repeats=repeats), "bandwidth": bandwidth(repeats=repeats + 2)}


# ---------------------------------------------------------------- floors ----


def layer_shapes(layout, n_features=N_FEATURES, n_outputs=(3, 31)):
    """(fan_in, fan_out) of every weight matrix: trunk, then one per head."""
    sizes = [n_features, *layout]
    shapes = list(zip(sizes[:-1], sizes[1:]))
    shapes += [(layout[-1], k) for k in n_outputs]
    return shapes


def n_params(layout):
    return sum(i * o + o for i, o in layer_shapes(layout))


def gemm_flops_per_step(layout, batch):
    """Forward + weight-gradient GEMMs for every layer, + input-gradient GEMMs
    for every layer but the first (no gradient for the network input)."""
    shapes = layer_shapes(layout)
    flops = 0.0
    for k, (fan_in, fan_out) in enumerate(shapes):
        passes = 2 if k == 0 else 3
        flops += passes * 2.0 * batch * fan_in * fan_out
    return flops


def _rate(gemm, threads, batch, hidden):
    for row in gemm:
        if row["threads"] == threads and row["batch"] == batch and row["hidden"] == hidden:
            return row
    return None


def sample_space_floor(cfg, probes, n_rows):
    """Per-epoch floor of a plain-SGD fit whose first layer trains in sample
    space (``skoffice31._dual``).

    Per step: the product ``G[b] @ R`` (``2 b n k`` FLOPs, reading ``R`` and
    ``b`` rows of ``G``), and the rest of the network as in :func:`floors`.
    The one-off products of the fit (``G = X X.T``, ``X @ W0``, the final
    ``X.T @ R``) are left out: they are large square GEMMs, faster than
    the rate the probes measure, so a floor from that rate would not be one.
    """
    layout, batch, solver = cfg["layout"], cfg["batch"], cfg["solver"]
    gemm, bw = probes["gemm"], probes["bandwidth"]
    best_2t = max(r["forward_gflops"] for r in gemm if r["threads"] == 2) * 1e9
    bw2 = max(bw["one_thread_gbs"], bw.get("two_threads_gbs") or 0,
              bw.get("two_python_threads_gbs") or 0) * 1e9
    passes = 7 if solver == "adam" else 3
    shapes = layer_shapes(layout)
    (d, k), rest = shapes[0], shapes[1:]
    n = n_rows
    rest_params = sum(a * b + b for a, b in rest) + k
    rest_flops = gemm_flops_per_step(layout, batch) - 2 * 2.0 * batch * d * k
    step_flops = 2.0 * batch * n * k + rest_flops
    step_bytes = ITEM * (n * k + batch * n + 2 * batch * k + passes * rest_params)
    return steps_per_epoch(n, batch) * max(step_flops / best_2t, step_bytes / bw2)


def floors(cfg, probes, n_rows):
    """Return (hardware_floor_s, numpy_floor_s) per epoch for one configuration."""
    layout, batch, solver = cfg["layout"], cfg["batch"], cfg["solver"]
    gemm, bw = probes["gemm"], probes["bandwidth"]
    steps = steps_per_epoch(n_rows, batch)
    passes = 7 if solver == "adam" else 3
    param_bytes = n_params(layout) * ITEM
    best_2t = max(r["forward_gflops"] for r in gemm if r["threads"] == 2) * 1e9
    bw2 = max(bw["one_thread_gbs"], bw.get("two_threads_gbs") or 0, bw.get("two_python_threads_gbs") or 0) * 1e9
    bw1 = bw["one_thread_gbs"] * 1e9

    flops = gemm_flops_per_step(layout, batch)
    hardware = steps * max(flops / best_2t, passes * param_bytes / bw2)

    first = _rate(gemm, 2, batch, layout[0])
    fan_in, fan_out = layer_shapes(layout)[0]
    first_flops = 2 * 2.0 * batch * fan_in * fan_out
    if first is not None:
        t_first = first["forward_s"] + first["wgrad_s"]
    else:
        t_first = first_flops / best_2t
    t_rest = (flops - first_flops) / best_2t
    numpy = steps * (t_first + t_rest + passes * param_bytes / bw1)
    return hardware, numpy
