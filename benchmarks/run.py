"""Training-speed benchmark: skoffice31 vs scikit-learn vs PyTorch vs the hardware.

    python benchmarks/run.py            # full run (~20-30 min on 2 cores)
    python benchmarks/run.py --quick    # fewer epochs (~5-10 min)

Measures, in one run on the same synthetic data of the study's shape, the
seconds per epoch of every study layout x solver x batch size for
skoffice31.MultiHeadMLPClassifier (with the numba kernels where the plan
chooses them, and forced onto the NumPy path), sklearn's MLPClassifier (one
31-class head) and PyTorch CPU (plain and fused Adam, each with and without
``torch.set_flush_denormal(True)``, when torch is installed), plus
GEMM / bandwidth probes and the floors derived from them.  Writes
benchmarks/results/latest.md and latest.json.  See benchmarks/README.md.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

import bench_common as common  # noqa: E402
import bench_probes as probes_mod  # noqa: E402
import bench_report as report  # noqa: E402

RESULT_TAG = "BENCH_RESULT_JSON:"


# ---------------------------------------------------------------- worker ----


def worker_main(spec_json):
    """Run one implementation on one configuration; print the result as JSON."""
    spec = json.loads(spec_json)
    import importlib

    import bench_runners

    importlib.import_module(bench_runners.IMPORTS[spec["impl"]])  # library memory is not "training"
    X, y = common.load_synthetic(spec["x_path"], spec["y_path"])
    rss_data = common.rss_mb()
    result = bench_runners.RUNNERS[spec["impl"]](X, y, spec["cfg"], spec["epochs"])
    result["rss_after_data_mb"] = rss_data
    result["peak_rss_mb"] = common.peak_rss_mb()
    result["load_avg_1min_after"] = os.getloadavg()[0]
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_worker(impl, cfg, epochs, paths, timeout):
    load_before = os.getloadavg()[0]
    ticks = common.cpu_ticks()
    spec = {"impl": impl, "cfg": cfg, "epochs": epochs, "x_path": str(paths[0]), "y_path": str(paths[1])}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return {**json.loads(line[len(RESULT_TAG):]), "load_avg_1min_before": load_before,
                    "steal_share": common.steal_share(ticks, common.cpu_ticks())}
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}


# ------------------------------------------------------------- planning ----


def available_impls(requested):
    impls = []
    for impl in requested:
        module = "torch" if impl.startswith("torch") else {
            "ours": "skoffice31", "ours_numpy": "skoffice31", "ours_weights": "skoffice31",
            "sklearn": "sklearn"}[impl]
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
            print(f"skipping {impl}: cannot import {module} ({exc})", flush=True)
            continue
        impls.append(impl)
    return impls


def select_configs(args):
    configs = common.study_configs()
    if args.layouts:
        wanted = {tuple(int(h) for h in s.split(",")) for s in args.layouts}
        configs = [c for c in configs if tuple(c["layout"]) in wanted]
    if args.solvers:
        configs = [c for c in configs if c["solver"] in args.solvers]
    if args.batches:
        configs = [c for c in configs if c["batch"] in args.batches]
    return configs


def epochs_for(impl, args):
    return {"ours": args.epochs, "ours_numpy": args.epochs, "ours_weights": args.epochs,
            "sklearn": args.sklearn_epochs}.get(impl, args.torch_epochs)


def applies(impl, cfg, args):
    if impl == "ours_weights":  # only where ours trains the first layer in sample space
        return common.trains_in_sample_space(cfg["solver"], cfg["layout"], args.rows,
                                             epochs_for(impl, args))
    return not (impl.startswith("torch_fused") and cfg["solver"] != "adam")


# ----------------------------------------------------------------- main ----


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="fewer epochs (ours 3, peers 2) and shorter probes")
    p.add_argument("--epochs", type=int, help="epochs for ours (default 12, quick 3)")
    p.add_argument("--torch-epochs", type=int, help="epochs for PyTorch (default 10, quick 2)")
    p.add_argument("--sklearn-epochs", type=int, help="epochs for sklearn (default 3, quick 2)")
    p.add_argument("--impl", nargs="+", default=report.IMPLS, choices=report.IMPLS)
    p.add_argument("--layouts", nargs="+", help="e.g. 10 64,32,10 384,192,64,32,10")
    p.add_argument("--solvers", nargs="+", choices=common.SOLVERS)
    p.add_argument("--batches", nargs="+", type=int)
    p.add_argument("--rows", type=int, default=common.N_ROWS, help="training rows (default 3288)")
    p.add_argument("--out", default=str(HERE / "results"), help="output directory")
    p.add_argument("--name", default="latest", help="file stem of the report")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    p.add_argument(
        "--reuse",
        metavar="JSON",
        help="take results of implementations not in --impl from an earlier report "
        "(e.g. re-measure only ours after a change; the report says so)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    q = args.quick
    args.epochs = args.epochs or (3 if q else 12)
    args.torch_epochs = args.torch_epochs or (2 if q else 10)
    args.sklearn_epochs = args.sklearn_epochs or (2 if q else 3)
    return args


def build_row(cfg, probes, n_rows, epochs):
    hw, np_floor = probes_mod.floors(cfg, probes, n_rows)
    row = {**cfg, "floor_hardware": hw, "floor_numpy": np_floor}
    if common.trains_in_sample_space(cfg["solver"], cfg["layout"], n_rows, epochs):
        row["floor_sample_space"] = probes_mod.sample_space_floor(cfg, probes, n_rows)
    return row


def load_reused(path, impls):
    """Rows of an earlier JSON report, keyed by configuration, without ``impls``."""
    if not path:
        return {}
    rows = json.loads(Path(path).read_text())["rows"]
    reused = {}
    for row in rows:
        key = (tuple(row["layout"]), row["solver"], row["batch"])
        reused[key] = {k: v for k, v in row.items() if k in report.IMPLS and k not in impls}
    return reused


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average %.2f %.2f %.2f" % os.getloadavg()


def write_reports(out_dir, name, meta, rows):
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "wall_s": time.perf_counter() - meta["_t0"], "uptime_after": _uptime()}
    meta.pop("_t0", None)
    report.write_json(out_dir / f"{name}.json", meta, rows)
    report.write_markdown(out_dir / f"{name}.md", meta, rows)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    t0 = time.perf_counter()
    impls = available_impls(args.impl)
    print("preparing synthetic data ...", flush=True)
    paths = common.ensure_synthetic(args.rows)
    print("probing GEMM and memory bandwidth ...", flush=True)
    probes = probes_mod.run_probes(quick=args.quick)
    meta = {
        "_t0": t0,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "quick": args.quick,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "uptime_before": _uptime(),
        "n_rows": args.rows,
        "x_mb": args.rows * common.N_FEATURES * 4 / 1e6,
        "epochs": {"ours": args.epochs, "sklearn": args.sklearn_epochs, "torch": args.torch_epochs},
        "machine": common.machine_description(),
        "probes": probes,
    }
    reused = load_reused(args.reuse, impls)
    if args.reuse:
        meta["reused_from"] = {"path": args.reuse, "date": json.loads(Path(args.reuse).read_text())["meta"]["date"]}
    rows = []
    for cfg in select_configs(args):
        row = build_row(cfg, probes, args.rows, epochs_for("ours", args))
        for impl, res in reused.get((tuple(cfg["layout"]), cfg["solver"], cfg["batch"]), {}).items():
            row[impl] = {**res, "reused": True}
        rows.append(row)
        for impl in impls:
            if not applies(impl, cfg, args):
                continue
            print(f"{common.config_label(cfg):32s} {impl:12s}", end=" ", flush=True)
            res = run_worker(impl, cfg, epochs_for(impl, args), paths, args.timeout)
            if "error" in res:
                print("ERROR", res["error"], flush=True)
                row[impl] = {"error": res["error"]}
                continue
            summary = report.summarize(res["epoch_times"])
            row[impl] = {**res, **summary}
            print(
                f"median {summary['median']:.3f} s/epoch  epoch1 {summary['epoch1']:.3f}  "
                f"last {summary['last']:.3f}  peak RSS {res['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        row["targets"] = report.check_targets(row)
        write_reports(Path(args.out), args.name, meta, rows)
    print(f"wrote {Path(args.out) / (args.name + '.md')}")


if __name__ == "__main__":
    main()
