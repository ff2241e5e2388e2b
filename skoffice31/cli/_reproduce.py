"""``skoffice31 reproduce``: its options; :func:`skoffice31.study.run_study`, printed."""

import contextlib
import sys
import time

from .. import study
from ..study import _results
from .._messages import first_line, os_reason
from ..study._output import fmt_augment, fmt_hidden, fmt_seconds
from ._common import (
    UsageError,
    _add_training_options,
    _load_data,
    _number,
    _output_folder,
    settings_from_args,
)


def _add_reproduce(sub):
    rep = sub.add_parser(
        "reproduce",
        help="re-run the study's grid (hidden layouts x solvers) and tabulate it",
        description="Re-run the two-head study: every hidden layout x solver fitted on one "
        "ShuffleSplit, the longest fit first; prints the table (and the study's own numbers "
        "with --preset study) and writes results.csv, results.json (after every finished "
        "configuration) and figures to --out.",
    )
    _add_training_options(rep, grid=True)
    rep.add_argument("--n-jobs", metavar="N",
                     type=_number(int, "--n-jobs", "use a positive number, or -1 for all cores",
                                  lambda v: v != 0),
                     help="configurations fitted at once (joblib n_jobs)")
    rep.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run the grid on dask: tcp://HOST:PORT of a running scheduler, "
        "or local:N for a LocalCluster of N workers (extra 'distributed')",
    )
    rep.add_argument("--seeds", type=_number(int, "--seeds", "must be >= 1", lambda v: v >= 1),
                     metavar="N",
                     help="run every configuration with N seeds (--seed, --seed + 1, ...; the "
                     "split and the weights follow the seed) and report mean and std per head")
    rep.add_argument("--out", metavar="DIR", default="skoffice31-results",
                     help="output folder (default: %(default)s)")
    rep.add_argument("--samples", type=_number(int, "--samples", "must be >= 0", lambda v: v >= 0),
                     default=3, metavar="K",
                     help="sample test predictions shown per configuration (default: %(default)s)")
    rep.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args):
    settings = settings_from_args(args, grid=True)
    if args.n_jobs is not None and args.n_jobs == 0:  # (also refused at parse time)
        raise UsageError("bad --n-jobs 0: use a positive number, or -1 for all cores")
    if args.samples < 0:
        raise UsageError(f"bad --samples {args.samples}: must be >= 0")
    if args.scheduler:
        _check_scheduler(args.scheduler)
    out = _output_folder(args.out)
    started = time.time()
    data = _load_data(args, settings)
    print(data.description, flush=True)
    configs = settings.configurations()
    print(_results.plan_line(settings, data, configs), flush=True)
    steps = settings.preprocessing_steps()
    if steps:
        print("Preprocessing: " + _results.preprocessing_line(steps), flush=True)
    if settings.augment > 1:
        print(f"Augmentation: {settings.augment} versions of every training photo "
              f"({fmt_augment(settings.augment, settings.shift_each_epoch)}); predictions "
              "average each photo and its mirror image", flush=True)
    seeds = settings.seed_values()
    if len(seeds) > 1:
        print(f"Seeds {', '.join(map(str, seeds))}: every configuration on the split and "
              "the initial weights of each seed", flush=True)
    info = study.run_info(settings, data, command=["skoffice31", *args.argv],
                          started=started, scheduler=args.scheduler)
    baselines = study.head_baselines(data.y[data.train], data.y[data.test], data.heads)
    info["baselines"] = baselines

    with contextlib.ExitStack() as stack:
        stack.enter_context(_results.sigterm_as_interrupt())
        if args.scheduler:
            _enter_scheduler(stack, args.scheduler, args.n_jobs, [data.X, data.y])
        shown = {}  # the progress display of the running seed

        def start_seed(seed, one, seed_data):
            if shown:
                shown.pop("progress").close()
            if len(seeds) > 1:
                print(f"Seed {seed} ({seeds.index(seed) + 1} of {len(seeds)}): split "
                      f"{len(seed_data.train)} train / {len(seed_data.test)} test", flush=True)
            if not args.quiet:
                shown["progress"] = _results.progress_display(one, seed_data, configs,
                                                                args.n_jobs)

        stack.callback(lambda: shown and shown.pop("progress").close())
        epoch = None if args.quiet else (lambda record: shown["progress"].epoch(record))
        if len(seeds) > 1:  # rows with a "seed"; the summary is written with them
            run = study.run_seeds(settings, data, n_jobs=args.n_jobs, n_samples=args.samples,
                                  progress=epoch, on_seed=start_seed)
        else:
            start_seed(settings.seed, settings, data)
            run = study.run_study(settings, data, n_jobs=args.n_jobs, n_samples=args.samples,
                                  progress=epoch)
        results = stack.enter_context(contextlib.closing(run))

        def show(row):
            if shown:
                shown["progress"].done(row)
            for message in row.get("warnings") or ():
                sys.stderr.write(f"warning: hidden {fmt_hidden(row['hidden'])} "
                                 f"{row['solver']}: {message}\n")

        kept = _results.keep_results(results, out, info, configs, on_row=show)
        error = kept.error
        if error is not None and args.scheduler:
            # while the scheduler's context is still open: only then can it
            # tell a lost scheduler from a failing task
            from ..parallel import as_scheduler_lost

            error = as_scheduler_lost(error)

    rows, interrupted, write_error, failure = kept.rows, kept.interrupted, kept.write_error, None
    if error is not None:
        failure = f"{type(error).__name__}: {first_line(error)}"
    if write_error is not None:
        failure = f"cannot write the results to {out}/: {os_reason(write_error)}"
    _results.finish_info(info, interrupted, failure)
    print("\n".join(_results.report_lines(rows, settings, baselines)))
    if len(seeds) > 1:
        print(f"\nMean \u00b1 std (ddof=1) over the seeds {', '.join(map(str, seeds))}:")
        print(study.format_seed_table(study.aggregate_seeds(rows)))
    files = []
    if write_error is None:
        try:
            files = _results.write_final_results(out, info, rows, data, settings, baselines)
        except OSError as exc:
            write_error = exc
            failure = f"cannot write the results to {out}/: {os_reason(exc)}"
    if len(seeds) > 1 and "results.json" in files:
        files.insert(files.index("results.json") + 1, "results_summary.csv")
    wall = fmt_seconds(time.time() - started)
    if files:
        print(f"\nWrote {', '.join(files)} to {out}/ (wall time {wall})")
    n_ok = sum(r.get("status") == "ok" for r in rows)
    n_failed = len(rows) - n_ok
    n_runs = len(configs) * len(seeds)
    n_missing = n_runs - len(rows)
    what = "configurations" if len(seeds) == 1 else "runs (configuration x seed)"
    summary = (f"{n_ok} of {n_runs} {what} succeeded, {n_failed} failed"
               + (f", {n_missing} not run" if n_missing else ""))
    if write_error is not None:
        saved = (f"the {kept.n_saved} configuration(s) saved before are kept in {out}/"
                if kept.n_saved else "no results file was written")
        sys.stderr.write(f"skoffice31 reproduce: error: {failure}; {saved} ({summary}, the "
                         "table above shows them all)\n")
        return 1
    if interrupted:
        sys.stderr.write(
            f"skoffice31: interrupted; {len(rows)} of {n_runs} {what} "
            f"finished and saved in {out}/ ({summary})\n"
        )
        return 130
    if failure:
        sys.stderr.write(f"skoffice31 reproduce: error: {failure}; {summary}; finished "
                         f"configurations saved in {out}/\n")
        return 1
    if n_ok == 0:
        first = next((r["status"] for r in rows if r.get("status", "ok") != "ok"), "")
        first = first[len("failed: "):] if first.startswith("failed: ") else first
        sys.stderr.write(f"skoffice31 reproduce: error: no configuration succeeded ({summary}; "
                         f"first error: {first}); see {out}/results.csv\n")
        return 1
    print(summary + (f" (see the status column of {out}/results.csv)" if n_failed else ""))
    return 0


def _check_scheduler(scheduler):
    """Validate ``--scheduler`` before any work (one-line error)."""
    from ..parallel import parse_scheduler

    try:
        parse_scheduler(scheduler)
    except ValueError as exc:
        raise UsageError(f"bad --scheduler: {first_line(exc)}") from None


def _enter_scheduler(stack, scheduler, n_jobs, scatter):
    """Run the study's joblib calls on dask (see :mod:`skoffice31.parallel`).

    ``X`` and ``y`` are scattered to the workers once, so the tasks do not
    ship the image matrix again.
    """
    from ..parallel import DistributedError, parallel_context

    try:
        stack.enter_context(parallel_context(scheduler, n_jobs, scatter=scatter))
    except ImportError as exc:
        raise UsageError(first_line(exc)) from None
    except (DistributedError, OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {scheduler}: {first_line(exc)}") from None
