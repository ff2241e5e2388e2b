"""Writing files so that a reader never sees half of one.

Every file the package writes for later (results tables, the image cache, a
downloaded archive, a saved model) goes through :func:`atomic_path`: the data
is written to a temporary file in the destination's own folder, which then
replaces the destination in one ``os.replace``. If anything fails on the way
(disk full, a read-only folder, Ctrl-C), the temporary file is removed and
the destination is left as it was.
"""

import contextlib
import os
import tempfile
from pathlib import Path

#: Every temporary file of :func:`atomic_path` has this in its name, so that
#: stale ones (left by a killed process) can be recognised and removed.
TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, *, suffix=""):
    """Yield a temporary path next to ``path``; move it onto ``path`` at the end.

    Parameters
    ----------
    path : str or os.PathLike
        The destination. Its folder must exist.
    suffix : str, default=""
        Ending of the temporary file's name (some writers look at it, e.g.
        ``joblib.dump`` chooses compression by the extension).

    Yields
    ------
    tmp : pathlib.Path
        Where to write. It exists (empty) when the block starts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a temporary file next to ``path``; on success it becomes ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    mode : {"w", "wb"}, default="w"
        Text or binary.
    **kwargs
        Passed to :func:`open` (``encoding``, ``newline``, ...). Text mode
        defaults to UTF-8.

    Yields
    ------
    file : file object
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}.")
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    with atomic_open(path, "w", newline="") as f:
        f.write(text)
