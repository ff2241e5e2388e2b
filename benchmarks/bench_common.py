"""Shared pieces of the benchmark suite: study configurations, synthetic data,
machine description and memory measurement.

The synthetic data has the study's shape: 3,288 training rows (80 % of the
4,110 Office-31 images) x 30,000 float32 inputs (100 x 100 RGB), raw
0..255 pixel values, and two heads: domain (3 classes) and object (31).
"""

import math
import os
import platform
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

N_ROWS = 3288
N_FEATURES = 30_000
N_DOMAINS = 3
N_OBJECTS = 31
SEED = 0

# The study's settings come from the study module (lr 1e-4, momentum 0, no
# L2, normal(0, 0.03) initialisation, raw 0..255 pixels, its grid).
from skoffice31.study import StudySettings  # noqa: E402

STUDY = StudySettings.from_preset("study")
LAYOUTS = list(STUDY.hidden)
SOLVERS = list(STUDY.solvers)
BATCHES = [STUDY.batch_size, 256]
LEARNING_RATE = STUDY.learning_rate("sgd")
INIT_SCALE = STUDY.init_scale

CACHE_DIR = Path(os.environ.get("SKOFFICE31_BENCH_CACHE", "/tmp/skoffice31_bench"))


def study_configs():
    """All (layout, solver, batch) configurations of the benchmark table."""
    return [
        {"layout": list(layout), "solver": solver, "batch": batch}
        for layout in LAYOUTS
        for solver in SOLVERS
        for batch in BATCHES
    ]


def config_label(cfg):
    layout = ",".join(str(h) for h in cfg["layout"])
    return f"({layout}) {cfg['solver']} b{cfg['batch']}"


def trains_in_sample_space(solver, layout, n_rows, epochs):
    """Whether our plan trains a plain-SGD (no momentum, float32) fit of this
    layout's first layer in sample space (``skoffice31._dual``)."""
    from skoffice31._plan import wants_sample_space

    return bool(layout) and wants_sample_space(solver, 0.0, "float32",
                                               (N_FEATURES, layout[0]), n_rows, epochs)


def steps_per_epoch(n_rows, batch):
    return math.ceil(n_rows / batch)


def make_synthetic(n_rows=N_ROWS, n_features=N_FEATURES, seed=SEED):
    """Class-structured raw-pixel data: prototype per object + per domain + noise.

    1 % of the columns are constant (a white border, as in many Amazon
    images), so that weights with an exactly zero gradient exist, as in the
    real data (this is what drives float32 Adam moments to subnormals).
    """
    rng = np.random.default_rng(seed)
    y_domain = rng.integers(0, N_DOMAINS, n_rows)
    y_object = rng.integers(0, N_OBJECTS, n_rows)
    obj_proto = rng.random((N_OBJECTS, n_features), dtype=np.float32) * 255
    dom_proto = rng.random((N_DOMAINS, n_features), dtype=np.float32) * 255
    X = np.empty((n_rows, n_features), dtype=np.float32)
    for start in range(0, n_rows, 256):
        stop = min(start + 256, n_rows)
        noise = rng.random((stop - start, n_features), dtype=np.float32) * 255
        chunk = X[start:stop]
        np.multiply(obj_proto[y_object[start:stop]], 0.5, out=chunk)
        chunk += 0.25 * dom_proto[y_domain[start:stop]]
        chunk += 0.25 * noise
        np.rint(chunk, out=chunk)
    X[:, : n_features // 100] = 255.0
    y = np.column_stack([y_domain, y_object])
    return X, y


def synthetic_paths(n_rows=N_ROWS):
    tag = f"{n_rows}x{N_FEATURES}_seed{SEED}"
    return CACHE_DIR / f"X_{tag}.npy", CACHE_DIR / f"y_{tag}.npy"


def ensure_synthetic(n_rows=N_ROWS):
    """Create the synthetic data once and keep it as .npy files; return paths."""
    x_path, y_path = synthetic_paths(n_rows)
    if not (x_path.exists() and y_path.exists()):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        X, y = make_synthetic(n_rows)
        np.save(x_path, X)
        np.save(y_path, y)
    return x_path, y_path


def load_synthetic(x_path, y_path):
    return np.load(x_path), np.load(y_path)


def rss_mb():
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb():
    """Peak resident set size of this process in MB.

    On Linux the high-water mark of this process's own memory (``VmHWM`` in
    /proc/self/status). Not ``getrusage``'s ``ru_maxrss``: Linux carries it
    over from the parent across fork and exec, so a worker started by a
    large parent (``run.py`` holding its probes' arrays) reports the
    parent's size as its own peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # ru_maxrss is in KiB


def cpu_model():
    """The CPU's name, with its family and model numbers when /proc/cpuinfo
    has them (virtual machines often give only a generic name, and machines
    of one name differ in speed)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip():
                    break  # the first processor is enough
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def _version(module_name):
    try:
        module = __import__(module_name)
    except Exception:
        return None
    return getattr(module, "__version__", "?")


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "num_threads", "version", "architecture", "prefix")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def machine_description():
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "sklearn": _version("sklearn"),
        "torch": _version("torch"),
        "numexpr": _version("numexpr"),
        "skoffice31": _version("skoffice31"),
        "blas": blas_info(),
        "blas_env": env,
    }


def timed_fit(est, X, y):
    """Fit ``est``; return (wall seconds, seconds of each epoch).

    The epoch times come from an :class:`skoffice31.callbacks.EpochReporter`
    (scikit-learn's callback API), so one fit gives them all.
    """
    from skoffice31.callbacks import EpochReporter

    stamps = []
    est.set_callbacks(EpochReporter(lambda _: stamps.append(time.perf_counter() - t0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
        wall = time.perf_counter() - t0
    est.set_callbacks()
    return wall, np.diff([0.0, *stamps]).tolist()


def cpu_ticks():
    """``(steal, total)`` CPU ticks of the whole machine so far (Linux
    ``/proc/stat``), or None elsewhere. On a virtual machine *steal* is the
    time the host ran something else while a vCPU wanted to run."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def steal_share(before, after):
    """Share of the CPU time between two :func:`cpu_ticks` readings that the
    host stole (0..1), or None when unknown."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])

