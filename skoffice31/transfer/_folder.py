"""A transfer run written to a folder as it goes (what ``skoffice31 transfer`` runs)."""

import time
from datetime import datetime, timezone
from pathlib import Path

from ._output import plot_transfer, summarize_transfer, write_transfer
from ._run import run_transfer

__all__ = ["finish_transfer", "run_transfer_to_folder", "transfer_info"]


def _iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def transfer_info(data, *, command=None, started=None, **settings):
    """The provenance of a run: ``transfer.json`` without its results.

    Parameters
    ----------
    data : Bunch
        From :func:`~skoffice31.transfer.load_transfer_data`.
    command : list of str, default=None
        The command line.
    started : float, default=None
        ``time.time()`` of the start; default now.
    **settings
        The arguments of :func:`~skoffice31.transfer.run_transfer` (tasks,
        shots, seeds, methods, estimator, features, ...), recorded as text
        where they are objects.

    Returns
    -------
    info : dict
    """
    from ..study._output import _machine, _versions

    started = time.time() if started is None else started

    def plain(v):
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if hasattr(v, "name") and hasattr(v, "fit_predict"):  # a TransferMethod
            return v.name
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        return repr(v)

    versions = _versions()
    try:
        import importlib.metadata as md

        versions["skada"] = md.version("skada")
    except Exception:  # not installed
        versions["skada"] = None
    return {
        "command": list(command) if command else None,
        "started": _iso(started),
        "started_time": started,
        "data": {"description": data.description, "n_images": int(len(data.X)),
                 "image_size": [int(data.size), int(data.size)]},
        "settings": {k: plain(v) for k, v in settings.items()},
        "protocol": "k labelled target images per class (few_shot_split, seeded by the seed), "
                    "tested on the other target images; every target image is available "
                    "unlabelled (transductive); the preprocessing is fitted per task on both "
                    "domains' images without labels",
        "versions": versions,
        "machine": _machine(),
    }


def run_transfer_to_folder(out, info, data, **run_kwargs):
    """:func:`~skoffice31.transfer.run_transfer` with its files rewritten after each fit.

    Parameters
    ----------
    out : path-like
        An existing folder.
    info : dict
        From :func:`transfer_info`.
    data : Bunch
        From :func:`~skoffice31.transfer.load_transfer_data`.
    **run_kwargs
        Passed to :func:`~skoffice31.transfer.run_transfer`.

    Returns
    -------
    rows : generator of dict
        The arguments are checked when it is called (``ValueError``); each
        row is yielded after it has been written (as a ``partial``
        snapshot).
    """
    return _written(out, info, run_transfer(data.X, data.domains, data.y, **run_kwargs))


def _written(out, info, results):
    rows = []
    for row in results:
        rows.append(row)
        write_transfer(out, _public(info), rows, partial=True)
        yield row


def _public(info):
    return {k: v for k, v in info.items() if k != "started_time"}


def finish_transfer(out, info, rows, *, interrupted=False):
    """Write the final ``transfer.csv``, ``transfer.json`` and the figure ``transfer.png``.

    Parameters
    ----------
    out : path-like
        An existing folder.
    info : dict
        From :func:`transfer_info`; ``finished``, ``wall_seconds`` and
        ``interrupted`` are added.
    rows : list of dict
    interrupted : bool, default=False

    Returns
    -------
    files : list of str
        The files written (``transfer.png`` only with matplotlib).
    """
    now = time.time()
    info = dict(info, finished=_iso(now),
                wall_seconds=round(now - info.get("started_time", now), 1))
    if interrupted:
        info["interrupted"] = True
    files = write_transfer(Path(out), _public(info), rows)
    files += plot_transfer(out, summarize_transfer(rows))
    return files
