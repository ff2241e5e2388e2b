"""Progress of a running study on stderr: one line per running configuration."""

import shutil
import sys
import threading
import time

from ._output import fmt_acc, fmt_hidden, fmt_seconds
from ._settings import Configuration

__all__ = ["StudyProgress"]


def _eta(remaining_running, queued, n_workers):
    """Seconds until all work is done when it runs on ``n_workers`` in this order.

    ``remaining_running``: seconds left of the fits running now (one worker
    each); ``queued``: expected seconds of each fit not started yet, in the
    order they will start. Each starts on the worker that frees up first.
    """
    loads = sorted(remaining_running)
    loads += [0.0] * max(0, n_workers - len(loads))
    for seconds in queued:
        loads.sort()
        loads[0] += seconds
    return max(loads, default=0.0)


class StudyProgress:
    """Show a study's progress on a stream (stderr).

    On a terminal, one line per running configuration is redrawn in place
    (cut to the terminal's width, finished ones removed) under the
    permanent "done" lines. Elsewhere (a file, a pipe) plain lines are
    appended: the first and last epoch of each configuration and at most one
    line every ``interval`` seconds per configuration in between.

    The ETA is the end of the whole run: the seconds per unit of
    :func:`~skoffice31.study.expected_cost` measured so far (running and
    finished fits, so the slow-down of fits sharing the cores is included)
    times the work left, scheduled like the runner does: the fits not
    started yet go, longest first, to the worker that frees up first.

    Parameters
    ----------
    configs : list of Configuration
        The grid, in its order (``config i/n`` refers to it).
    costs : dict
        Configuration -> expected cost (all epochs).
    order : list of Configuration
        The order in which the runner starts them.
    n_workers : int
        Fits running at once.
    stream : file, default=sys.stderr
    tty : bool, default=None
        Redraw in place; default: whether ``stream`` is a terminal.
    interval : float, default=2.0
        Seconds between appended lines of one configuration (not a terminal).
    """

    def __init__(self, configs, costs, order, n_workers, stream=None, tty=None, interval=2.0):
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty() if tty is None else tty
        self.index = {Configuration(*c): i + 1 for i, c in enumerate(configs)}
        self.n_total = len(configs)
        self.costs = {Configuration(*c): float(v) for c, v in costs.items()}
        self.order = [Configuration(*c) for c in order]
        self.n_workers = max(1, int(n_workers))
        self.interval = interval
        self._running = {}  # config -> latest record
        self._done = {}  # config -> (seconds, cost)
        self._last_line = {}
        self._drawn = 0
        self._last_draw = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ estimates

    def _rate(self):
        seconds = sum(s for s, _ in self._done.values())
        cost = sum(c for _, c in self._done.values())
        for config, rec in self._running.items():
            seconds += rec["elapsed"]
            cost += self.costs.get(config, 0) * rec["epoch"] / max(rec["max_iter"], 1)
        return seconds / cost if cost > 0 else None

    def eta(self):
        """Seconds left for the whole run, or ``None`` before any measurement."""
        rate = self._rate()
        if rate is None:
            return None
        running = [
            self.costs.get(c, 0) * rate * (1 - rec["epoch"] / max(rec["max_iter"], 1))
            for c, rec in self._running.items()
        ]
        queued = [self.costs.get(c, 0) * rate for c in self.order
                  if c not in self._running and c not in self._done]
        return _eta(running, queued, self.n_workers)

    # ------------------------------------------------------------ events

    def _line(self, config, rec):
        heads = ", ".join(f"{k} {v:.4f}" for k, v in rec.get("head_losses", {}).items())
        eta = self.eta()
        return (
            f"config {self.index.get(config, 0)}/{self.n_total} {config.label}: "
            f"epoch {rec['epoch']}/{rec['max_iter']} loss {rec['loss']:.4f}"
            + (f" ({heads})" if heads else "")
            + f" elapsed {fmt_seconds(rec['elapsed'])} ETA {fmt_seconds(eta)}"
        )

    def epoch(self, record):
        """Record one epoch (an :class:`~skoffice31.callbacks.EpochReporter` record)."""
        config = Configuration(tuple(record["tag"][0]), record["tag"][1])
        with self._lock:
            if config in self._done:
                return
            self._running[config] = record
            now = time.monotonic()
            if self.tty:
                final = record["epoch"] >= record["max_iter"]
                if final or now - self._last_draw >= 0.2:
                    self._redraw()
                return
            last = self._last_line.get(config)
            first_or_last = record["epoch"] == 1 or record["epoch"] >= record["max_iter"]
            if first_or_last or last is None or now - last >= self.interval:
                self._last_line[config] = now
                self.stream.write(self._line(config, record) + "\n")
                self.stream.flush()

    def done(self, row):
        """Record a finished configuration (a result row) and print its line."""
        config = Configuration(tuple(row["hidden"]), row["solver"])
        with self._lock:
            self._running.pop(config, None)
            seconds = row.get("fit_seconds")
            if seconds == seconds and seconds is not None:  # not NaN
                self._done[config] = (float(seconds), self.costs.get(config, 0))
            else:
                self._done[config] = (0.0, 0.0)
            what = (
                f"domain {fmt_acc(row['domain_acc'])}, object {fmt_acc(row['object_acc'])}, "
                f"both {fmt_acc(row['both_acc'])} in {fmt_seconds(row['fit_seconds'])}"
                if row.get("status") == "ok" else row.get("status", "failed")
            )
            line = (f"config {self.index.get(config, 0)}/{self.n_total} done: hidden "
                    f"{fmt_hidden(config.hidden)} {config.solver} - {what}")
            if self.tty:
                self._redraw(permanent=[line])
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self):
        """Remove the live lines (a terminal); the permanent lines stay."""
        with self._lock:
            if self.tty and self._drawn:
                self._redraw(live=False)

    def _redraw(self, permanent=(), live=True):
        width = max(20, shutil.get_terminal_size((80, 24)).columns) - 1
        parts = []
        if self._drawn:
            parts.append(f"\033[{self._drawn}F")  # to the first live line
        parts.append("\033[J")  # clear it and everything below: no stale rows
        parts += [line[:width] + "\n" for line in permanent]
        lines = []
        if live:
            lines = [self._line(c, r)[:width] for c, r in
                     sorted(self._running.items(), key=lambda kv: self.index.get(kv[0], 0))]
        parts += [line + "\n" for line in lines]
        self.stream.write("".join(parts))
        self.stream.flush()
        self._drawn = len(lines)
        self._last_draw = time.monotonic()
