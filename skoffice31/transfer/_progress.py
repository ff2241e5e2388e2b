"""Progress of a transfer run, shown with the study's display."""

from ..callbacks import EpochReporter
from ..study._display import StudyProgress
from ..study._output import fmt_acc, fmt_seconds
from ..study._settings import Configuration

__all__ = ["TransferProgress"]


def _config(fit, hidden):
    # The study's display keys its lines on (hidden layout, label); here the
    # label is the fit's: "(256) A->W k=3 seed 0 pooled".
    return Configuration(tuple(hidden), fit["label"])


class TransferProgress(StudyProgress):
    """Show a :func:`~skoffice31.transfer.run_transfer` run on a stream (stderr).

    The study's :class:`~skoffice31.study.StudyProgress` (a line per running
    fit, redrawn in place on a terminal; first, last and every few seconds'
    epochs elsewhere; the ETA of the whole run) with one "done" line per
    fit: its target accuracy and seconds.

    Parameters
    ----------
    plan : list of dict
        From :func:`~skoffice31.transfer.plan_transfer`.
    hidden : tuple of int
        The network's hidden layout (shown on every line).
    costs : dict, default=None
        ``label`` -> expected cost; default: the same for every fit.
    stream, tty, interval
        As :class:`~skoffice31.study.StudyProgress`.
    """

    def __init__(self, plan, hidden, costs=None, stream=None, tty=None, interval=2.0):
        self.plan = list(plan)
        self.hidden = tuple(hidden)
        self._configs = {f["label"]: _config(f, hidden) for f in self.plan}
        configs = [self._configs[f["label"]] for f in self.plan]
        costs = costs or {}
        super().__init__(configs, {self._configs[f["label"]]: costs.get(f["label"], 1.0)
                                   for f in self.plan},
                         configs, 1, stream=stream, tty=tty, interval=interval)

    def watch(self, fit, model):
        """For ``run_transfer(watch=...)``: report the epochs of ``model``'s fit."""
        config = self._configs[fit["label"]]
        model.set_callbacks(EpochReporter(self.epoch, tag=(config.hidden, config.solver)))

    def done(self, row):
        """Record a finished fit (a :func:`~skoffice31.transfer.run_transfer` row)."""
        label = f"{row['task']} k={row['k']} seed {row['seed']} {row['method']}"
        config = self._configs[label]
        with self._lock:
            self._running.pop(config, None)
            seconds = row.get("fit_seconds")
            ok = row.get("status") == "ok" and seconds == seconds and seconds is not None
            self._done[config] = (float(seconds), self.costs.get(config, 0)) if ok else (0.0, 0.0)
            what = (f"target accuracy {fmt_acc(row['accuracy'])} in {fmt_seconds(seconds)}"
                    if row.get("status") == "ok" else row.get("status", "failed"))
            line = f"fit {self.index.get(config, 0)}/{self.n_total} done: {label} - {what}"
            if self.tty:
                self._redraw(permanent=[line])
            else:
                self.stream.write(line + "\n")
                self.stream.flush()
