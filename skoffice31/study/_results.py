"""Run the study's grid with its results kept on disk: what ``skoffice31 reproduce`` does.

:func:`keep_results` consumes the rows of :func:`skoffice31.study.run_study`
and rewrites ``results.csv`` and ``results.json`` after every finished
configuration, so that an interruption (Ctrl-C, or SIGTERM inside
:func:`sigterm_as_interrupt`), a lost scheduler or a full disk loses no
finished row. :func:`write_final_results` writes the complete files and
figures at the end; :func:`plan_line` and :func:`report_lines` are the text
the command prints before and after the run.
"""

import contextlib
import dataclasses
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import study
from ._output import fmt_hidden


@dataclasses.dataclass
class KeptResults:
    """What :func:`keep_results` did.

    Attributes
    ----------
    rows : list of dict
        The finished rows, in the order of the grid.
    n_saved : int
        How many rows the results files on disk hold.
    interrupted : bool
        The run stopped on a ``KeyboardInterrupt``.
    error : Exception or None
        The exception that stopped the run (e.g. the scheduler went away).
    write_error : OSError or None
        The results could not be written (disk full, read-only folder); the
        run stopped there.
    """

    rows: list
    n_saved: int = 0
    interrupted: bool = False
    error: Exception | None = None
    write_error: OSError | None = None


def check_output_folder(out):
    """Make the folder ``out`` (and its parents) and check that a file can be written in it.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    OSError
        The folder cannot be made or written to.
    """
    path = Path(out).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
        pass
    return path


def _fmt_scale(scale):
    if scale == 1.0:
        return "raw 0..255 pixels"
    if abs(scale - 1 / 255) < 1e-12:
        return "pixels scaled to 0..1"
    return f"pixels x {scale:.4g}"


def plan_line(settings, data, configs):
    """One line: the preset, the grid's size, the training settings and the split."""
    return (
        f"Preset {settings.preset}: {len(configs)} configuration"
        f"{'s' if len(configs) != 1 else ''}, {settings.epochs} epochs, "
        f"batch {settings.batch_size}, lr "
        + ", ".join(f"{k} {settings.learning_rate(k):g}" for k in settings.solvers)
        + f", {_fmt_scale(settings.scale)}, init {settings.init}; "
        f"split {len(data.train)} train / {len(data.test)} test (seed {settings.seed})"
    )


def preprocessing_line(steps):
    """One line naming the preprocessing ``steps`` (``Pipeline`` steps), e.g.
    ``StandardScaler(), PrincipalComponents(random_state=0)``; a ``FeatureUnion``'s
    parts as ``pixels: ...; statistics: ...``.

    >>> from skoffice31.study import StudySettings
    >>> preprocessing_line(StudySettings.from_preset("study", statistics=True).preprocessing_steps())
    'pixels: passthrough; statistics: ImageStatistics(), StandardScaler()'
    """
    def name(step):
        if isinstance(step, str):
            return step
        if hasattr(step, "transformer_list"):
            return "; ".join(f"{part}: {name(t)}" for part, t in step.transformer_list)
        if hasattr(step, "steps"):
            return preprocessing_line(step.steps)
        return repr(step)

    return ", ".join(name(step) for _, step in steps)


def report_lines(rows, settings, baselines):
    """The report after the run: the table, sample predictions, the baselines."""
    is_study = settings.preset == "study"
    lines = [""]
    if is_study:
        lines.append("Our run (left) next to the study's own figures (right; Office-31, "
                     "100x100 RGB, a laptop):")
    lines.append(study.format_table(rows, study=is_study))
    for r in rows:
        if not r.get("samples"):
            continue
        lines.append(f"\nSample test predictions, hidden {fmt_hidden(r['hidden'])} "
                     f"{r['solver']}:")
        for smp in r["samples"]:
            t, p = smp["true"], smp["predicted"]
            mark = "ok" if t == p else ("half" if t[0] == p[0] or t[1] == p[1] else "wrong")
            lines.append(f"  true ({t[0]}, {t[1]}) \u2192 predicted ({p[0]}, {p[1]})  [{mark}]")
    lines.append("Baselines on the test rows: " + "; ".join(
        f"{head} majority class {b['majority']:.3f} ({b['majority_class']}), "
        f"chance {b['chance']:.3f}" for head, b in baselines.items()))
    return lines


def finish_info(info, interrupted, failure):
    """Record in ``info`` (from :func:`~skoffice31.study.run_info`) the end of the run."""
    end = time.time()
    info["finished"] = datetime.fromtimestamp(end, tz=timezone.utc).isoformat(timespec="seconds")
    info["wall_seconds"] = round(end - info["started_time"], 3)
    info["interrupted"] = bool(interrupted)
    if failure:
        info["error"] = failure


def keep_results(results, out, info, configs, *, on_row=None):
    """Consume ``results``, rewriting the results files after every row.

    Parameters
    ----------
    results : iterable of dict
        The rows of :func:`skoffice31.study.run_study`, as they finish.
    out : pathlib.Path
        The results folder.
    info : dict
        From :func:`skoffice31.study.run_info`; its end is updated.
    configs : list of Configuration
        The grid, in the order the rows are written.
    on_row : callable, default=None
        Called with each row as it arrives, before it is written.

    Returns
    -------
    kept : KeptResults
        A ``KeyboardInterrupt`` or another exception of the run, and an
        ``OSError`` writing the files, stop the run and are reported in it.
    """
    position = {c: i for i, c in enumerate(configs)}

    def grid_order(rows):
        return sorted(rows, key=lambda r: position[(tuple(r["hidden"]), r["solver"])])

    rows, kept = [], KeptResults([])
    try:
        for row in results:
            rows.append(row)
            if on_row is not None:
                on_row(row)
            finish_info(info, False, None)
            try:
                study.write_results(out, info, grid_order(rows), partial=True)
                kept.n_saved = len(rows)
            except OSError as exc:  # disk full, out became read-only: stop here
                kept.write_error = exc
                break
    except KeyboardInterrupt:
        kept.interrupted = True
    except Exception as exc:
        kept.error = exc
    kept.rows = grid_order(rows)
    return kept


def write_final_results(out, info, rows, data, settings, baselines):
    """Write ``results.csv``, ``results.json``, ``per_class.csv`` and the figures.

    Returns
    -------
    files : list of str
        The names of the files written to ``out``.

    Raises
    ------
    OSError
        A file could not be written.
    """
    study.write_results(out, info, rows)
    files = ["results.csv", "results.json"]
    per_class = [(r["hidden"], r["solver"], r["confusion"]) for r in rows if r.get("confusion")]
    if per_class:
        study.write_per_class(out / "per_class.csv", per_class)
        files.append("per_class.csv")
    files += study.plot_results(out, rows, data.images, study=settings.preset == "study",
                                baselines=baselines)
    return files


def progress_display(settings, data, configs, n_jobs):
    """The :class:`~skoffice31.study.StudyProgress` of a run of ``configs``."""
    import joblib

    order = study.order_by_cost(configs, data, settings)
    costs = {c: study.expected_cost(c, data.X.shape[1], data.n_outputs, len(data.train),
                                    settings.epochs) for c in configs}
    n_workers = min(max(1, joblib.effective_n_jobs(n_jobs)), len(configs))
    return study.StudyProgress(configs, costs, order, n_workers)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C inside the block (finished rows are kept).

    Only in the main thread, where signal handlers can be set; elsewhere the
    block runs unchanged.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - unusual platforms
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
