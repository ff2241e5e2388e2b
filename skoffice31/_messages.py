"""One-line messages for the library's exceptions and warnings.

The ``skoffice31`` command reports every problem in one line that names it
and says what to do; these functions write that line for an exception or a
warning of the loaders, the estimator or the file system.
"""

from pathlib import Path

#: How many skipped file names the skipped-files warning line shows.
SHOW_SKIPPED = 3

_LAYOUT_NAMES = {"folder": "ImageFolder layout <class>/<image>.jpg",
                 "table": "a CSV/TSV file path,<head1>,<head2>,...",
                 "office31": "Office-31 layout"}


def first_line(exc):
    """The first line of ``str(exc)``, or the exception's type name when empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def os_reason(exc):
    """The reason of an ``OSError`` in words, with what to do for the usual ones."""
    import errno

    if getattr(exc, "errno", None) == errno.ENOSPC:
        return "no space left on the disk (free some space or choose another folder)"
    if getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{exc.strerror} (choose a writable folder)"
    return exc.strerror or first_line(exc)


def warning_line(message):
    """One line for a warning of the loaders or the estimator."""
    from . import TrainingCollapseWarning
    from .datasets import CacheWarning, SkippedFilesWarning
    from .datasets._base import printable

    if isinstance(message, SkippedFilesWarning) and message.files:
        files, reasons = message.files, message.reasons
        shown = "; ".join(
            f"{printable(f)} ({r})" if r else printable(f)
            for f, r in zip(files[:SHOW_SKIPPED], list(reasons[:SHOW_SKIPPED])
                            + [""] * SHOW_SKIPPED)
        )
        more = f"; and {len(files) - SHOW_SKIPPED} more" if len(files) > SHOW_SKIPPED else ""
        return f"skipped {len(files)} file(s) that could not be loaded: {shown}{more}"
    if isinstance(message, CacheWarning):
        error = f" ({message.error})" if message.error else ""
        return (f"cannot use the image cache in {printable(message.path)}{error}; loaded "
                "without it (point SKOFFICE31_DATA to a writable folder, or pass --no-cache)")
    if isinstance(message, TrainingCollapseWarning):
        return " ".join(str(message).split())  # the estimator's advice, on one line
    return first_line(message)


def load_error(exc, data, layout):
    """The line for an ``OSError`` or ``ValueError`` of :func:`~skoffice31.study.load_study_data`.

    Parameters
    ----------
    exc : OSError or ValueError
        Raised by the loader.
    data : str or None
        The ``--data`` given.
    layout : {"office31", "folder", "table"}
        The layout it was loaded as.
    """
    def not_office31():
        return (f"{data} is not an Office-31 folder "
                f"(expected <domain>/images/<object>/<image>.jpg): {first_line(exc)}")

    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        if data is not None and not Path(data).expanduser().exists():
            return first_line(exc)
        if layout != "office31":
            return f"cannot load --data {data}: {first_line(exc)}"
        if data is not None and not Path(data).expanduser().is_dir():
            return first_line(exc)
        return not_office31()
    if isinstance(exc, ValueError):  # also UnicodeDecodeError
        if layout != "office31":
            return f"cannot load --data {data} ({_LAYOUT_NAMES[layout]}): {first_line(exc)}"
        return not_office31()
    # name the path that failed (a cache file, one image, a sub-folder), not just --data
    from .datasets._base import printable

    where = exc.filename if getattr(exc, "filename", None) is not None else data
    return f"cannot read {printable(where)}: {exc.strerror or first_line(exc)}"
