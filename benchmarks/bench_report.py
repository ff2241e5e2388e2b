"""Summaries, target checks and the markdown / JSON report."""

import json
import statistics

from bench_common import config_label

from skoffice31._fileio import atomic_write_text

#: Implementations in the order they run for each configuration (interleaved:
#: every configuration measures all of them back to back).
IMPLS = ["ours", "ours_numpy", "ours_weights", "sklearn", "torch", "torch_ftz", "torch_fused", "torch_fused_ftz"]
TORCH = ["torch", "torch_ftz", "torch_fused", "torch_fused_ftz"]
LARGEST = [384, 192, 64, 32, 10]


def summarize(epoch_times):
    """Median over epochs 2.. (epoch 1 holds initialisation), epoch 1, epoch 10."""
    if not epoch_times:
        return None
    steady = epoch_times[1:] or epoch_times
    return {
        "median": statistics.median(steady),
        "n_epochs": len(epoch_times),
        "epoch1": epoch_times[0],
        "epoch10": epoch_times[9] if len(epoch_times) >= 10 else None,
        "last": epoch_times[-1],
    }


def _ratio(a, b):
    return a / b if a and b else None


def best_torch(row):
    """(median, variant) of the fastest PyTorch variant measured for this row."""
    medians = [(row[i]["median"], i) for i in TORCH if (row.get(i) or {}).get("median")]
    return min(medians) if medians else (None, None)


def check_targets(row):
    """Issue 10's speed targets for one row; returns a list of (target, ok, detail)."""
    ours = (row.get("ours") or {}).get("median")
    if ours is None:
        return []
    sk = (row.get("sklearn") or {}).get("median")
    torch, _ = best_torch(row)
    fused_ftz = (row.get("torch_fused_ftz") or {}).get("median")
    checks = []

    def add(name, value, limit, larger_is_ok):
        if value is None:
            return
        ok = value >= limit if larger_is_ok else value <= limit
        checks.append({"target": name, "ok": ok, "value": round(value, 2), "limit": limit})

    if row["batch"] == 10:
        add("ours/best torch <= 0.6", _ratio(ours, torch), 0.6, False)
        if row["layout"] == LARGEST and row["solver"] == "adam":
            add("ours/torch fused FTZ <= 0.5", _ratio(ours, fused_ftz), 0.5, False)
            add("ours/hardware floor <= 1.5", _ratio(ours, row["floor_hardware"]), 1.5, False)
    else:
        add("ours/best torch <= 1.0", _ratio(ours, torch), 1.0, False)
        add("sklearn/ours >= 1.5", _ratio(sk, ours), 1.5, True)
    return checks


def _fmt(x, digits=2):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def _median_of(row, impl):
    return (row.get(impl) or {}).get("median")


def _over_data(res):
    if not res or res.get("peak_rss_mb") is None:
        return None
    return res["peak_rss_mb"] - res["rss_after_data_mb"]


def _floor_of(row, ours):
    """The floor of what ours ran: on the weights, or in sample space."""
    if ours.get("sample_space") and row.get("floor_sample_space") is not None:
        return row["floor_sample_space"]
    return row["floor_hardware"]


def _floor_cell(row, ours):
    if ours.get("sample_space") and row.get("floor_sample_space") is not None:
        return (f"{_fmt(row['floor_sample_space'])} sample space "
                f"({_fmt(row['floor_hardware'])} on the weights)")
    return _fmt(row["floor_hardware"])


def results_table(rows):
    head = (
        "| configuration | ours s/ep | kernels | ours ep1 / last | ours NumPy path "
        "| ours on the weights | sklearn "
        "| torch | torch FTZ | torch fused | torch fused FTZ | ours/NumPy path | ours/best torch "
        "| ours/fused FTZ | ours/sklearn | hardware floor | ours/hw floor "
        "| peak RSS above data, MB: ours / NumPy path / torch FTZ |"
    )
    lines = [head, "|" + "---|" * 18]
    for row in rows:
        ours = row.get("ours") or {}
        ours_m = _median_of(row, "ours")
        ep = f"{_fmt(ours.get('epoch1'))} / {_fmt(ours.get('last'))}" if ours else "–"
        kernels = {True: "yes", False: "no"}.get(ours.get("kernels"), "–")
        if ours.get("sample_space"):
            kernels += ", sample space"
        torch, variant = best_torch(row)
        rss = " / ".join(_fmt(_over_data(row.get(i)), 0) for i in ("ours", "ours_numpy", "torch_ftz"))
        cells = [config_label(row), _fmt(ours_m), kernels, ep]
        cells += [_fmt(_median_of(row, i)) for i in ("ours_numpy", "ours_weights", "sklearn",
                                                      *TORCH)]
        cells += [
            _fmt(_ratio(ours_m, _median_of(row, "ours_numpy"))),
            _fmt(_ratio(ours_m, torch)) + (f" ({variant})" if variant else ""),
            _fmt(_ratio(ours_m, _median_of(row, "torch_fused_ftz"))),
            _fmt(_ratio(ours_m, _median_of(row, "sklearn"))),
            _floor_cell(row, ours),
            _fmt(_ratio(ours_m, _floor_of(row, ours))),
            rss,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epochs_table(rows):
    """Every per-epoch time, to show late slowdowns (e.g. subnormal Adam moments)."""
    lines = ["| configuration | implementation | host steal | seconds per epoch (epoch 1, 2, ...) |",
             "|---|---|---|---|"]
    for row in rows:
        for impl in IMPLS:
            res = row.get(impl)
            if res and res.get("epoch_times"):
                times = ", ".join(_fmt(t) for t in res["epoch_times"])
                steal = res.get("steal_share")
                shown = "–" if steal is None else f"{steal:.0%}"
                lines.append(f"| {config_label(row)} | {impl} | {shown} | {times} |")
    return "\n".join(lines)


def machine_section(machine, probes):
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('num_threads')} threads)"
        for b in machine["blas"]
    )
    bw = probes["bandwidth"]
    gemm = probes["gemm"]
    best = max(g["forward_gflops"] for g in gemm)
    b10 = [g for g in gemm if g["batch"] == 10 and g["hidden"] == 384 and g["threads"] == 2]
    lines = [
        f"- CPU: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB",
        f"- Python {machine['python']}, numpy {machine['numpy']}, scipy {machine['scipy']}, "
        f"scikit-learn {machine['sklearn']}, torch {machine['torch']}, numexpr {machine['numexpr']}",
        f"- BLAS: {blas}",
        f"- BLAS environment: {machine['blas_env'] or 'none set'}",
        f"- GEMM probe: best {best:.0f} GFLOP/s (batch 256, 2 threads); "
        + (
            f"(10x30000)@(30000x384) {b10[0]['forward_gflops']:.0f} GFLOP/s, "
            f"weight gradient (30000x10)@(10x384) {b10[0]['wgrad_gflops']:.0f} GFLOP/s"
            if b10
            else ""
        ),
        f"- Bandwidth probe (a += b, {bw['array_mb']:.0f} MB float32): one NumPy thread "
        f"{bw['one_thread_gbs']:.1f} GB/s, two Python threads {_fmt(bw.get('two_python_threads_gbs'), 1)} GB/s, "
        f"numexpr 2 threads {_fmt(bw.get('two_threads_gbs'), 1)} GB/s",
    ]
    return "\n".join(lines)


def targets_section(rows):
    lines = []
    for row in rows:
        for c in row.get("targets", []):
            mark = "met" if c["ok"] else "MISSED"
            lines.append(f"- {config_label(row)}: {c['target']}: {c['value']} ({mark})")
    return "\n".join(lines) or "- (no estimator results)"


def _reuse_note(meta):
    reuse = meta.get("reused_from")
    if not reuse:
        return ""
    return (f"\n**Peer results marked reused come from an earlier run** ({reuse['date']}, "
            f"`{reuse['path']}`), only the other implementations were measured now.")


def write_markdown(path, meta, rows):
    text = f"""# skoffice31 training benchmark

Generated by `{meta.get('command', 'python benchmarks/run.py')}` on {meta['date']}
(total run {meta['wall_s'] / 60:.1f} min).
Machine load: before `{meta.get('uptime_before', '?')}`; after `{meta.get('uptime_after', '?')}`.

Synthetic data of the study's shape: {meta['n_rows']} rows x 30,000 float32 raw 0..255 inputs,
heads domain (3) + object (31); lr 1e-4, momentum 0, alpha 0, normal(0, 0.03) init.
scikit-learn fits the single 31-class object head (float32). *ours* lets the training plan
choose the numba kernels and sample-space SGD (column *kernels*), *ours NumPy path* forces
`SKOFFICE31_KERNELS=0`, *ours on the weights* forces `SKOFFICE31_SAMPLE_SPACE=0` (measured only
where the plan chooses sample space: plain SGD then reads rows of the Gram matrix, not the
weights, so the weight-streaming *hardware floor* does not bound it);
*FTZ* rows call `torch.set_flush_denormal(True)` (the fair strongest PyTorch; without it float32
Adam moments decay into subnormals and late epochs slow down, see *Every epoch*); *best torch*
is the fastest PyTorch variant of the row. Seconds per epoch are medians over
epochs 2..N (epoch 1 includes initialisation); epochs run: ours {meta['epochs']['ours']},
sklearn {meta['epochs']['sklearn']}, torch {meta['epochs']['torch']}. Each implementation runs in
its own fresh process; the table's memory column is the peak RSS above the process's RSS
after importing the library and loading the {meta['x_mb']:.0f} MB training matrix (so a copy of X
shows as ~{meta['x_mb']:.0f} MB); the JSON also has the total peak RSS.
The machine is shared with other developers' test runs, so timings are noisy (the JSON has the
1-minute load average before and after every measurement; *host steal* in *Every epoch* is the
share of the machine's CPU time a virtual machine's host took for something else during the
measurement, from `/proc/stat`: two-thread work waits for a stolen core).{_reuse_note(meta)}

## Machine

{machine_section(meta['machine'], meta['probes'])}

## Seconds per epoch

{results_table(rows)}

Floors (see `bench_probes.py`): *hardware* = one fused pass per step over all parameters
(Adam 7 x, SGD 3 x the parameter bytes) at the best two-thread bandwidth, or the GEMM FLOPs at
the best GEMM rate, whichever is larger; *NumPy* = the first layer's GEMMs at the rates BLAS
reaches for those shapes + the same passes at one-thread ufunc bandwidth.

## Targets (issue 10)

{targets_section(rows)}

## Every epoch

{epochs_table(rows)}
"""
    atomic_write_text(path, text)


def write_json(path, meta, rows):
    atomic_write_text(path, json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
