"""Benchmark: loading the full Office-31 at 100x100 RGB.

Compares a plain Pillow loop (open, convert, resize, one image after the
other) with :func:`skoffice31.datasets.load_office31` decoding in JPEG draft
mode, sequentially and with joblib over ``--n-jobs`` workers (process and
thread backends), and reading from the on-disk cache.

"Cold" means not in skoffice31's cache: every JPEG is decoded. The OS file
cache is warm after the first pass (88 MB), which is the situation of
repeated runs; a first run after a reboot adds the disk read time.

Usage::

    python3 benchmarks/bench_loading.py                 # 3 repeats
    python3 benchmarks/bench_loading.py --repeats 5 --path /data/office31

Prints the medians and writes ``benchmarks/results/loading.md``.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_PATH = HERE.parents[1] / "shared" / "data" / "office31"


def plain_pillow_loop(path, size):
    """The naive baseline: full decode, convert, resize, one by one."""
    from PIL import Image

    files = sorted(Path(path).glob("*/images/*/*.jpg"))
    out = np.empty((len(files), size[1], size[0], 3), dtype=np.uint8)
    for i, p in enumerate(files):
        with Image.open(p) as im:
            out[i] = np.asarray(im.convert("RGB").resize(size, Image.BILINEAR))
    return out.reshape(len(files), -1).astype(np.float32) / 255.0


def _children_cpu():
    """CPU seconds used so far by the live child processes (Linux only)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    try:
        pids = []
        for task in Path("/proc/self/task").iterdir():
            pids += (task / "children").read_text().split()
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except OSError:
        return float("nan")
    return total


def timed(fn, repeats):
    """Wall times and CPU times (this process + live workers) of ``fn()``."""
    times, cpus = [], []
    for _ in range(repeats):
        c0 = time.process_time() + _children_cpu()
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() + _children_cpu() - c0)
        del res
    return times, cpus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(DEFAULT_PATH),
                        help="Office-31 folder (default: ../shared/data/office31)")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "loading.md"))
    args = parser.parse_args(argv)

    import joblib
    import PIL

    from skoffice31.datasets import load_office31

    path = Path(args.path)
    if not path.is_dir():
        print(f"Office-31 not found at {path}; nothing to benchmark.", file=sys.stderr)
        return 1
    size = (args.size, args.size)
    r = args.repeats
    home = tempfile.mkdtemp(prefix="skoffice31-bench-")
    rows = []  # (label, times, note)

    def load(**kw):
        return load_office31(path, size=size, data_home=home, **kw)

    # warm the OS file cache so that every variant reads from memory
    plain = plain_pillow_loop(path, size)
    n = plain.shape[0]
    rows.append(("plain Pillow loop (full decode, 1 core)",
                 timed(lambda: plain_pillow_loop(path, size), r), "baseline"))
    rows.append(("load_office31, draft decoding, n_jobs=1",
                 timed(lambda: load(cache=False, n_jobs=1), r), "cold"))
    # first parallel call pays the worker start-up; reported separately
    with joblib.parallel_config(backend="loky"):
        first = timed(lambda: load(cache=False, n_jobs=args.n_jobs), 1)
        rows.append((f"load_office31, draft, n_jobs={args.n_jobs} (processes), "
                     "first call", first, "cold, includes worker start-up"))
        rows.append((f"load_office31, draft, n_jobs={args.n_jobs} (processes)",
                     timed(lambda: load(cache=False, n_jobs=args.n_jobs), r),
                     "cold, workers running"))
    with joblib.parallel_config(backend="threading"):
        rows.append((f"load_office31, draft, n_jobs={args.n_jobs} (threads)",
                     timed(lambda: load(cache=False, n_jobs=args.n_jobs), r), "cold"))
    holder = {}
    rows.append((f"load_office31, n_jobs={args.n_jobs}, writing the cache",
                 timed(lambda: holder.setdefault("b", load(cache=True,
                                                           n_jobs=args.n_jobs)), 1),
                 "cold + cache write"))
    b = holder.pop("b")
    assert b.data.shape[0] == n
    np.testing.assert_allclose(b.data[:5].mean(), plain[:5].mean(), atol=0.05)
    del b
    rows.append(("load_office31 from the cache",
                 timed(lambda: load(cache=True), r), "warm"))

    print(f"Office-31 at {size[0]}x{size[1]} RGB: {n} images; medians of {r} runs")
    width = max(len(label) for label, _, _ in rows)
    for label, (times, cpus), note in rows:
        print(f"  {label:<{width}}  {statistics.median(times):7.2f} s wall "
              f"{statistics.median(cpus):7.2f} s CPU  ({note})")

    load_avg = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [
        "# Loading Office-31 (benchmarks/bench_loading.py)",
        "",
        f"{n} JPEGs (amazon 300x300, dslr 1000x1000, webcam ~423-570 px) to "
        f"{size[0]}x{size[1]} RGB float32, `data` of shape ({n}, "
        f"{size[0] * size[1] * 3}). Median wall time of {r} runs (single runs "
        "where the column says 1) and the CPU time of this process plus its "
        "joblib workers. The OS file cache is warm; \"cold\" means not in "
        "skoffice31's cache. Wall times depend on what else runs on the "
        "machine (see the load average below); CPU times much less.",
        "",
        "| variant | median wall (s) | median CPU (s) | runs | all runs, wall (s) | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for label, (times, cpus), note in rows:
        lines.append(
            f"| {label} | {statistics.median(times):.2f} | "
            f"{statistics.median(cpus):.2f} | {len(times)} | "
            + ", ".join(f"{t:.2f}" for t in times) + f" | {note} |"
        )
    base_wall, base_cpu = (statistics.median(v) for v in rows[0][1])
    if base_wall > 1.3 * base_cpu:
        lines += [
            "",
            f"Note: the single-core baseline took {base_wall / base_cpu:.1f}x its "
            "CPU time in wall time, so other processes were competing for the "
            "CPUs during this run and the wall times above are inflated. On an "
            "idle machine a single-process variant takes about its CPU time and "
            "an n_jobs=2 variant about half of it (plus the one-off worker "
            "start-up of the first call).",
        ]
    lines += [
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, Pillow {PIL.__version__}, joblib "
        f"{joblib.__version__}."
        + (f" Load average during the run: {load_avg[0]:.1f} (1 min), "
           f"{load_avg[1]:.1f} (5 min)." if load_avg else ""),
        "",
        "Command: `python3 benchmarks/bench_loading.py"
        + (f" --repeats {r}" if r != 3 else "") + "`",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
