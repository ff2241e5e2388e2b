"""End-to-end timing of the study on the real Office-31, with the study's runner.

    python benchmarks/study_timing.py [--path /work/shared/data/office31] [--n-jobs 2]
    python benchmarks/study_timing.py --epochs 1 --hidden 10 --out /tmp/t   # smoke test

Runs :func:`skoffice31.study.run_study` -- what ``skoffice31 reproduce
--data PATH --n-jobs N`` runs -- with the study preset's settings from
:mod:`skoffice31.study` (hidden layouts (10), (64,32,10),
(384,192,64,32,10) x sgd / adam, lr 1e-4, batch 10, 50 epochs, raw pixels,
80 % / 15 % split, seed 0) and reports:

- the wall time of the run (loading apart), next to the longest single fit
  (the lower bound with enough workers) and the sum of all fits (serial);
- what the previous runner (one search per batch of ``n_jobs``
  configurations, in the grid's order, a barrier between batches) would
  have taken with the same fit times: the sum of the batch maxima;
- each configuration's fit time, when it started and ended (seconds after
  the runner began), per-epoch seconds, its accuracies and the study's own
  numbers;
- each configuration's *hardware floor* (``bench_probes.floors``: one fused
  pass per step over all parameters at the two-thread bandwidth measured
  before the run, or the GEMM FLOPs at the best GEMM rate) times its
  epochs, and their sum: on a 2-core machine both cores share one memory
  bus, so no schedule of the six fits beats that sum (``--no-floors`` skips
  the ~20 s of probes). A plain-SGD fit whose first layer trains in sample
  space (``skoffice31._dual``) has its own floor
  (``bench_probes.sample_space_floor``: the steps' ``G[b] @ R`` products
  and the rest of the network; the one-off Gram and weight products, a few
  seconds, are not in it).

Writes ``<out>/study_timing.md`` and ``.json`` (default: benchmarks/results)
after every finished configuration. The machine may be shared: the load
average before and after is in the report.
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
import bench_probes  # noqa: E402
from skoffice31._fileio import atomic_write_text  # noqa: E402
from skoffice31.study import (  # noqa: E402
    StudySettings,
    load_study_data,
    run_study,
)

DEFAULT_PATH = HERE.parent.parent / "shared" / "data" / "office31"


def batched_wall(rows, configs, n_jobs):
    """Sum of the batch maxima: the old runner's wall time for these fit times."""
    seconds = {(tuple(r["hidden"]), r["solver"]): r["fit_seconds"] for r in rows}
    times = [seconds.get(tuple(c), 0.0) for c in configs]
    return sum(max(times[i:i + n_jobs]) for i in range(0, len(times), n_jobs))


def summarize(rows, configs, n_jobs, t_start, epochs_seen):
    out = []
    for r in sorted(rows, key=lambda r: r["started"]):
        key = (tuple(r["hidden"]), r["solver"])
        stamps = epochs_seen.get(key, [])
        out.append({
            "hidden": r["hidden"], "solver": r["solver"], "status": r["status"],
            "fit_seconds": r["fit_seconds"],
            "started_s": r["started"] - t_start, "finished_s": r["finished"] - t_start,
            "epoch_seconds": np.diff([0.0, *stamps]).round(3).tolist(),
            "domain_acc": r["domain_acc"], "object_acc": r["object_acc"], "both_acc": r["both_acc"],
            "study_domain_acc": r.get("study_domain_acc"), "study_object_acc": r.get("study_object_acc"),
            "study_seconds": r.get("study_seconds"),
        })
    fits = [r["fit_seconds"] for r in rows if r["fit_seconds"] == r["fit_seconds"]]
    return out, {
        "longest_fit_s": max(fits, default=float("nan")),
        "sum_of_fits_s": sum(fits),
        "batched_runner_s": batched_wall(rows, configs, n_jobs),
    }


def fit_floors(configs, n_rows, epochs, batch):
    """Hardware floor (seconds) of each configuration's whole fit, from probes
    measured now; see ``bench_probes.floors``."""
    probes = bench_probes.run_probes(quick=True)
    floors = {}
    for c in configs:
        cfg = {"layout": list(c.hidden), "batch": batch, "solver": c.solver}
        if common.trains_in_sample_space(c.solver, c.hidden, n_rows, epochs):
            # the one-off Gram and weight products left out (see the function)
            floors[(tuple(c.hidden), c.solver)] = (
                bench_probes.sample_space_floor(cfg, probes, n_rows) * epochs)
        else:
            floors[(tuple(c.hidden), c.solver)] = (
                bench_probes.floors(cfg, probes, n_rows)[0] * epochs)
    return floors, probes["bandwidth"]


def _floor_line(meta):
    floors = meta.get("floors")
    if not floors:
        return ""
    total = sum(f["seconds"] for f in floors)
    return (f"Sum of the fits' hardware floors: **{total:.1f} s** (two-thread bandwidth "
            f"{meta['bandwidth_gbs']:.1f} GB/s measured before the run): no schedule of these "
            "fits on this machine's two cores can take less.")


def write_report(out_dir, meta, runs, totals):
    lines = [
        "| hidden | solver | fit s | hardware floor s | start..end s | s/epoch (median) "
        "| domain / object acc | study's domain / object | study's laptop s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ep = r["epoch_seconds"]
        med = float(np.median(ep[1:] or ep)) if ep else float("nan")
        study = (f"{r['study_domain_acc']:.3f} / {r['study_object_acc']:.3f}"
                 if r["study_domain_acc"] is not None else "")
        floor = r.get("floor_seconds")
        lines.append(
            f"| ({','.join(map(str, r['hidden']))}) | {r['solver']} | {r['fit_seconds']:.1f} "
            f"| {'' if floor is None else f'{floor:.1f}'} "
            f"| {r['started_s']:.1f}..{r['finished_s']:.1f} | {med:.2f} "
            f"| {r['domain_acc']:.3f} / {r['object_acc']:.3f} | {study} | {r['study_seconds'] or ''} |"
        )
    text = f"""# Study timing: `skoffice31.study.run_study` on the real Office-31

Generated by `python benchmarks/study_timing.py {' '.join(meta['argv'])}` on {meta['date']}.
Data: {meta['n_train']} training / {meta['n_test']} test images, {meta['size']} px RGB, loaded in
{meta['load_seconds']:.1f} s. Settings: preset study, {meta['epochs']} epochs, n_jobs {meta['n_jobs']}.
Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; load average
{meta['load_before']:.1f} before, {meta.get('load_after', float('nan')):.1f} after (a shared machine
makes the times noisy).

**Wall time of the runner: {meta.get('wall_seconds', float('nan')):.1f} s** (+ {meta['load_seconds']:.1f} s loading);
longest single fit {totals['longest_fit_s']:.1f} s; all fits one after the other {totals['sum_of_fits_s']:.1f} s;
the previous batch-by-batch runner with these fit times: {totals['batched_runner_s']:.1f} s.
{_floor_line(meta)}

{chr(10).join(lines)}
"""
    atomic_write_text(out_dir / "study_timing.md", text)
    atomic_write_text(out_dir / "study_timing.json",
                      json.dumps({"meta": meta, "totals": totals, "runs": runs}, indent=1) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", default=str(DEFAULT_PATH), help="Office-31 folder")
    p.add_argument("--epochs", type=int, help="default: the study's 50")
    p.add_argument("--hidden", action="append", help="a layout such as 64,32,10 (repeat); "
                   "default: the study's three")
    p.add_argument("--solver", action="append", choices=["sgd", "adam"])
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--no-floors", action="store_true", help="skip the bandwidth/GEMM probes")
    args = p.parse_args(argv)
    if not Path(args.path).is_dir():
        sys.exit(f"Office-31 not found at {args.path}")
    hidden = [tuple(int(h) for h in s.split(",")) for s in args.hidden] if args.hidden else None
    settings = StudySettings.from_preset("study", epochs=args.epochs, hidden=hidden,
                                         solvers=args.solver)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    data = load_study_data(settings, args.path, n_jobs=args.n_jobs)
    meta = {
        "argv": list(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "epochs": settings.epochs, "n_jobs": args.n_jobs,
        "n_train": len(data.train), "n_test": len(data.test),
        "size": "x".join(map(str, settings.image_size(True))),
        "load_seconds": time.perf_counter() - t0, "load_before": load_before,
        "machine": common.machine_description(),
    }
    print(data.description, f"(loaded in {meta['load_seconds']:.1f} s)", flush=True)
    configs = settings.configurations()
    floors = {}
    if not args.no_floors:
        floors, bw = fit_floors(configs, len(data.train), settings.epochs, settings.batch_size)
        meta["floors"] = [{"hidden": list(k[0]), "solver": k[1], "seconds": v}
                          for k, v in floors.items()]
        meta["bandwidth_gbs"] = max(bw["one_thread_gbs"], bw.get("two_threads_gbs") or 0,
                                    bw.get("two_python_threads_gbs") or 0)
    epochs_seen = {}

    def progress(record):
        key = (tuple(record["tag"][0]), record["tag"][1])
        epochs_seen.setdefault(key, []).append(record["elapsed"])

    rows = []
    t_start = time.time()
    t1 = time.perf_counter()
    for row in run_study(settings, data, n_jobs=args.n_jobs, n_samples=0, progress=progress):
        rows.append(row)
        meta.update(wall_seconds=time.perf_counter() - t1, load_after=os.getloadavg()[0],
                    complete=len(rows) == len(configs))
        runs, totals = summarize(rows, configs, args.n_jobs, t_start, epochs_seen)
        for r in runs:
            r["floor_seconds"] = floors.get((tuple(r["hidden"]), r["solver"]))
        write_report(out_dir, meta, runs, totals)
        print(f"{row['hidden']} {row['solver']}: {row['status']}, fit {row['fit_seconds']:.1f} s, "
              f"domain {row['domain_acc']:.3f} object {row['object_acc']:.3f} "
              f"(at {meta['wall_seconds']:.1f} s)", flush=True)
    print(f"wall {meta['wall_seconds']:.1f} s; longest fit {totals['longest_fit_s']:.1f} s; "
          f"sum of fits {totals['sum_of_fits_s']:.1f} s; batch-by-batch runner "
          f"{totals['batched_runner_s']:.1f} s; report in {out_dir}/study_timing.md")


if __name__ == "__main__":
    main()
