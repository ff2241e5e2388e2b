"""Download, safely extract and verify Office-31: :func:`fetch_office31`."""

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from .._fileio import TMP_MARK, atomic_path, atomic_write_text
from ._base import IMAGE_EXTENSIONS, _is_hidden, get_data_home
from ._manifest import (
    compare_summaries,
    folder_entries,
    read_manifest_tsv,
    summarize_manifest,
)
from ._office31 import load_office31
from ._office31_manifest import OFFICE31_MANIFEST

#: Public Office-31 archive (``domain_adaptation_images.tar.gz``, ~77 MB) on
#: Google Drive, as linked from the dataset authors' page.
OFFICE31_URL = (
    "https://drive.usercontent.google.com/download?"
    "id=0B4IapRTv9pJ1WGZVd1VDMmhwdlE&export=download&confirm=t"
    "&resourcekey=0-gNMHVtZfRAyO_t2_WrOunA"
)
OFFICE31_PAGE = "https://drive.google.com/file/d/0B4IapRTv9pJ1WGZVd1VDMmhwdlE/view"

_FOLDER = "office31"
_MARKER = ".skoffice31-verified"
_LOCK = ".office31.lock"
_WORK_PREFIX = ".office31-extract-"
_ARCHIVE_PREFIX = "office31-archive"

# Limits on what an archive may hold, far beyond the real Office-31 (4,110
# images and 100 folders, 83 MB in all, the largest image 188 KB): an archive
# beyond them is refused before anything is written.
#: Most bytes of file content an archive may hold (the real one: 83 MB).
_MAX_ARCHIVE_BYTES = 1 << 30
#: Largest single member (the real largest: 188 KB).
_MAX_MEMBER_BYTES = 16 << 20


def _max_members(expected):
    """Most members an archive for the manifest ``expected`` may hold."""
    return 2 * expected["n_images"] + 1000


class Office31FetchError(OSError):
    """Office-31 could not be downloaded, extracted or verified.

    The message says what went wrong and how to place the data by hand.
    """


def _manual_help(target):
    return (
        "\nTo place the data by hand: download the Office-31 archive "
        f"(domain_adaptation_images.tar.gz, from {OFFICE31_PAGE}), extract it "
        f"and move its amazon, dslr and webcam folders into {os.fspath(target)!r} "
        "so that e.g. "
        f"{os.fspath(Path(target) / 'amazon' / 'images' / 'back_pack' / 'frame_0001.jpg')!r} "
        "exists; or load any copy directly with "
        "skoffice31.datasets.load_office31(path)."
    )


def _format_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _download(url, dest, *, timeout=60, progress=True, target=None):
    """Download ``url`` to ``dest`` through a temporary file.

    The body goes to a temporary file next to ``dest`` (see
    :func:`skoffice31._fileio.atomic_path`) that becomes ``dest`` only once
    complete (length checked against Content-Length), so an interrupted
    transfer never leaves a file that looks complete; on any failure the
    temporary file is removed.

    Parameters
    ----------
    url : str
        http(s) or file URL.
    dest : path-like
        Final file name.
    timeout : float, default=60
        Socket timeout in seconds.
    progress : bool, default=True
        Show progress on stderr.
    target : path-like, default=None
        Data folder named in error messages.

    Raises
    ------
    Office31FetchError
        On network errors, HTTP errors, an HTML answer or a short body.
    """
    import urllib.error
    import urllib.request

    dest = Path(dest)
    out = sys.stderr
    req = urllib.request.Request(url, headers={"User-Agent": "skoffice31"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise Office31FetchError(
            f"Downloading Office-31 from {url} failed: HTTP {exc.code} "
            f"{exc.reason}." + _manual_help(target)
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Office31FetchError(
            f"Downloading Office-31 from {url} failed: {reason}. Check the "
            "network connection." + _manual_help(target)
        ) from exc
    with resp, atomic_path(dest) as tmp, open(tmp, "wb") as f:
        ctype = resp.headers.get("Content-Type", "") or ""
        if ctype.lower().startswith("text/html"):
            raise Office31FetchError(
                f"{url} answered with an HTML page instead of the archive "
                "(the host may ask for a confirmation or its download quota "
                "may be exceeded)." + _manual_help(target)
            )
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if progress:
            print(f"Downloading Office-31 from {url}\n  to {dest}", file=out)
        got = 0
        last = 0.0
        start = time.monotonic()
        while True:
            try:
                chunk = resp.read(1 << 16)
            except Exception as exc:  # IncompleteRead, reset, timeout
                raise Office31FetchError(
                    f"Download of {url} interrupted after "
                    f"{_format_bytes(got)}: {type(exc).__name__}: {exc}."
                    + _manual_help(target)
                ) from exc
            if not chunk:
                break
            f.write(chunk)
            got += len(chunk)
            now = time.monotonic()
            if progress and (now - last > 0.2):
                last = now
                rate = got / max(now - start, 1e-9)
                if total:
                    msg = (f"  {_format_bytes(got)} / {_format_bytes(total)} "
                           f"({100 * got / total:5.1f}%)")
                else:
                    msg = f"  {_format_bytes(got)}"
                print(f"\r{msg}  {_format_bytes(rate)}/s   ", end="", file=out,
                      flush=True)
        if progress:
            print(f"\r  {_format_bytes(got)} done in "
                  f"{time.monotonic() - start:.1f} s            ", file=out)
        if total is not None and got != total:
            raise Office31FetchError(
                f"Download of {url} interrupted: received {got} of {total} "
                "bytes." + _manual_help(target)
            )
        if got == 0:
            raise Office31FetchError(
                f"Download of {url} returned no data." + _manual_help(target)
            )
        f.flush()
        os.fsync(f.fileno())


def _check_member_name(name, real_dest, kind="member"):
    """Reject archive member names that could escape ``real_dest``.

    ``real_dest`` is the target folder with its links resolved
    (``os.path.realpath``).
    """
    if not name or "\x00" in name:
        raise Office31FetchError(f"Unsafe archive {kind} with an empty/NUL name.")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise Office31FetchError(
            f"Unsafe archive {kind} {name!r}: absolute path; refusing to extract."
        )
    if ".." in PurePosixPath(norm).parts:
        raise Office31FetchError(
            f"Unsafe archive {kind} {name!r}: path escapes the target folder "
            "('..'); refusing to extract."
        )
    full = os.path.realpath(os.path.join(real_dest, name))
    if os.path.commonpath([full, real_dest]) != real_dest:
        raise Office31FetchError(
            f"Unsafe archive {kind} {name!r}: escapes the target folder; refusing "
            "to extract."
        )


class _Member:
    """One archive member: name, kind ("file", "dir", other), size, opener."""

    __slots__ = ("name", "kind", "size", "open")

    def __init__(self, name, kind, size, open_):
        self.name, self.kind, self.size, self.open = name, kind, size, open_


def _check_limits(members, max_members, max_bytes, max_member_bytes):
    """Refuse an archive whose size or member count is far beyond Office-31."""
    if max_members is not None and len(members) > max_members:
        raise Office31FetchError(
            f"The archive holds more than {max_members} members, far more than "
            "Office-31 (about 4,110 images); refusing to extract it."
        )
    total = 0
    for m in members:
        if m.kind != "file":
            continue
        if m.size > max_member_bytes:
            raise Office31FetchError(
                f"Archive member {m.name!r} is {_format_bytes(m.size)}, larger "
                f"than any Office-31 image could be ({_format_bytes(max_member_bytes)}"
                " at most); refusing to extract the archive."
            )
        total += m.size
        if total > max_bytes:
            raise Office31FetchError(
                f"The archive holds more than {_format_bytes(max_bytes)} of data, far "
                "more than Office-31 (about 83 MB); refusing to extract it."
            )


def _tar_members(tf, real_dest, max_members, max_bytes):
    members = []
    for m in tf:  # headers only; stops early on an absurd member count
        members.append(m)
        if max_members is not None and len(members) > max_members:
            break
    if max_members is None or len(members) <= max_members:
        # Read to the end of the (compressed) stream: tar stops at its
        # end-of-archive blocks, before the gzip/bz2/xz checksum. A stream
        # far longer than any Office-31 archive is refused.
        n = 0
        while block := tf.fileobj.read(1 << 20):
            n += len(block)
            if n > max_bytes:
                raise Office31FetchError(
                    f"The archive goes on for more than {_format_bytes(max_bytes)}"
                    " after its last member; refusing to extract it."
                )
    out = []
    for m in members:
        _check_member_name(m.name, real_dest)
        if m.issym() or m.islnk():
            raise Office31FetchError(
                f"Unsafe archive member {m.name!r}: a link to "
                f"{m.linkname!r}; refusing to extract."
            )
        if not (m.isfile() or m.isdir()):
            raise Office31FetchError(
                f"Unsafe archive member {m.name!r}: not a regular "
                "file or folder; refusing to extract."
            )
        out.append(_Member(m.name, "file" if m.isfile() else "dir", m.size,
                           lambda m=m: tf.extractfile(m)))
    return out


def _zip_members(zf, real_dest):
    out = []
    for info in zf.infolist():
        _check_member_name(info.filename, real_dest)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise Office31FetchError(
                f"Unsafe archive member {info.filename!r}: a symbolic "
                "link; refusing to extract."
            )
        out.append(_Member(info.filename, "dir" if info.is_dir() else "file",
                           info.file_size, lambda info=info: zf.open(info)))
    return out


class _WriteError(Office31FetchError):
    """Extracting failed on the writing side (disk full, read-only folder)."""


def _write_member(member, path, max_member_bytes):
    """Copy one member to ``path`` (a new file), never more than its size."""
    with member.open() as src:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            dst = open(path, "xb")
        except FileExistsError:
            raise
        except OSError as exc:
            raise _WriteError(
                f"Cannot write {os.fspath(path)!r} while extracting: "
                f"{type(exc).__name__}: {exc.strerror or exc}."
            ) from exc
        with dst:
            left = member.size
            while left > 0:
                block = src.read(min(1 << 20, left))
                if not block:
                    raise Office31FetchError(
                        f"Archive member {member.name!r} is shorter than its "
                        "header says (corrupt archive?)."
                    )
                try:
                    dst.write(block)
                except OSError as exc:  # disk full, quota
                    raise _WriteError(
                        f"Cannot write {os.fspath(path)!r} while extracting: "
                        f"{type(exc).__name__}: {exc.strerror or exc}."
                    ) from exc
                left -= len(block)


def safe_extract(archive, dest, *, layout=None, max_members=None,
                 max_bytes=None, max_member_bytes=None):
    """Extract a tar (any compression) or zip archive without path traversal.

    Every member is checked before anything is written: absolute names,
    ``..`` components, symbolic and hard links, devices and FIFOs make the
    whole archive rejected, and so does an archive beyond the size limits.
    Files are then written one by one, each at most as long as its header
    says; folders are made as needed.

    Parameters
    ----------
    archive : path-like
        The archive file.
    dest : path-like
        Existing folder to extract into.
    layout : callable, default=None
        Given the names of the file members, returns ``{name: relpath}``:
        which members to extract and where under ``dest``; members not in
        it are left out. None extracts every member under its own name.
    max_members : int, default=None
        Most members the archive may hold; None means no limit.
    max_bytes, max_member_bytes : int, default=None
        Most bytes of file content in all, and in one member; None means
        ``_MAX_ARCHIVE_BYTES`` and ``_MAX_MEMBER_BYTES``.

    Returns
    -------
    n_written : int
        Number of files written.

    Raises
    ------
    Office31FetchError
        If the archive is corrupt, of an unknown type, unsafe or too large.
    """
    archive, dest = Path(archive), Path(dest)
    real_dest = os.path.realpath(dest)
    max_bytes = _MAX_ARCHIVE_BYTES if max_bytes is None else max_bytes
    if max_member_bytes is None:
        max_member_bytes = _MAX_MEMBER_BYTES
    try:
        with contextlib.ExitStack() as stack:
            if tarfile.is_tarfile(archive):
                tf = stack.enter_context(tarfile.open(archive, "r:*"))
                members = _tar_members(tf, real_dest, max_members, max_bytes)
            elif zipfile.is_zipfile(archive):
                zf = stack.enter_context(zipfile.ZipFile(archive))
                members = _zip_members(zf, real_dest)
            else:
                raise Office31FetchError(
                    f"{os.fspath(archive)!r} is not a tar or zip archive (corrupt or "
                    "incomplete download?)."
                )
            _check_limits(members, max_members, max_bytes, max_member_bytes)
            files = [m for m in members if m.kind == "file"]
            if layout is None:
                where = {m.name: m.name.replace("\\", "/") for m in files}
                for m in members:
                    if m.kind == "dir":
                        (dest / m.name.replace("\\", "/")).mkdir(
                            parents=True, exist_ok=True)
            else:
                where = layout([m.name for m in files])
            n = 0
            for m in files:
                rel = where.get(m.name)
                if rel is None:
                    continue
                try:
                    _write_member(m, dest / rel, max_member_bytes)
                except FileExistsError:
                    raise Office31FetchError(
                        f"The archive holds {rel!r} twice; refusing to extract it."
                    ) from None
                n += 1
            return n
    except Office31FetchError:
        raise
    except Exception as exc:  # tarfile.ReadError, zlib.error, EOFError, BadZipFile
        raise Office31FetchError(
            f"The archive {os.fspath(archive)!r} is corrupt: "
            f"{type(exc).__name__}: {exc}."
        ) from exc


def _office31_layout(domains):
    """A ``layout`` for :func:`safe_extract` that keeps only Office-31 images.

    Members named ``[<prefix>/]<domain>/images/<class>/<image>`` or
    ``[<prefix>/]<domain>/<class>/<image>`` (a prefix of up to two folders,
    the same for all, e.g. ``domain_adaptation_images/``) are installed as
    ``<domain>/images/<class>/<image>``; everything else (other folders,
    other files, hidden files, copies under ``__MACOSX``) is left out.
    """
    domains = set(domains)

    def match(name):
        parts = PurePosixPath(name.replace("\\", "/")).parts
        for k in range(3):
            rest = parts[k:]
            if not rest or rest[0] not in domains:
                continue
            if any(_is_hidden(p) for p in parts[:k]):
                return None
            if len(rest) == 4 and rest[1] == "images":
                dom, cls, fname = rest[0], rest[2], rest[3]
            elif len(rest) == 3 and rest[1] != "images":
                dom, cls, fname = rest
            else:
                continue
            if _is_hidden(cls) or _is_hidden(fname) or cls in (".", ".."):
                return None
            if os.path.splitext(fname)[1].lower() not in IMAGE_EXTENSIONS:
                return None
            return parts[:k], f"{dom}/images/{cls}/{fname}"
        return None

    def layout(names):
        found = {}
        for name in names:
            hit = match(name)
            if hit is not None:
                found.setdefault(hit[0], {})[name] = hit[1]
        if not found:
            return {}
        # the prefix that holds the most images (one archive, one root)
        return max(found.values(), key=len)

    return layout


@contextlib.contextmanager
def _fetch_lock(home, *, progress=True):
    """Hold ``<home>/.office31.lock`` while one fetch installs Office-31.

    A second fetch into the same data home (another process or thread)
    waits here, then finds the folder installed and uses it. The lock is an
    ``flock`` on the file, released by the system if the holder dies, so it
    never goes stale; the holder removes the file when done (a waiter that
    locked a removed file tries again).
    """
    path = Path(home) / _LOCK
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no waiting, no lock
        yield
        return
    told = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise Office31FetchError(
                f"Cannot write into the data home {os.fspath(home)!r} "
                f"({type(exc).__name__}: {exc.strerror or exc}). Choose a writable "
                "data_home (or set SKOFFICE31_DATA)." + _manual_help(Path(home) / _FOLDER)
            ) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress and not told:
                    told = True
                    print(f"Waiting for another fetch_office31 into {home} to "
                          "finish...", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
            break
        os.close(fd)  # the previous holder removed it: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _archive_name(url):
    """Archive file name for ``url``: keyed on the URL, with its suffix."""
    suffix = "".join(PurePosixPath(urlparse(url).path).suffixes[-2:]) or ".archive"
    if not all(ch.isalnum() or ch in "._-" for ch in suffix) or len(suffix) > 16:
        suffix = ".archive"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return f"{_ARCHIVE_PREFIX}-{key}{suffix}"


def _remove_stale(home, keep):
    """Remove what killed fetches left in ``home`` (called under the lock).

    Temporary downloads, extraction folders, and archives downloaded from
    another URL than the current one (``keep``, which is reused: it is only
    ever complete, being renamed into place after its length was checked).
    """
    for entry in list(os.scandir(home)):
        name = entry.name
        stale = (
            name.startswith(_WORK_PREFIX)
            or (name.startswith(f".{_ARCHIVE_PREFIX}") and TMP_MARK in name)
            or (name.startswith(_ARCHIVE_PREFIX) and name != keep)
        )
        if not stale:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def _verify_in_place(target, expected):
    """Check a folder found in the data home; record a success if possible."""
    marker = target / _MARKER
    try:
        if marker.read_text().strip() == expected["sha256"]:
            return
    except OSError:
        pass
    try:
        problems = compare_summaries(summarize_manifest(folder_entries(target)),
                                     expected)
    except (OSError, ValueError) as exc:
        problems = [str(exc)]
    if problems:
        raise Office31FetchError(
            f"The Office-31 folder {os.fspath(target)!r} does not match "
            "the manifest: " + "; ".join(problems[:10])
            + ". Remove the folder to download it again."
            + _manual_help(target)
        )
    with contextlib.suppress(OSError):  # a read-only copy: verified each time
        atomic_write_text(marker, expected["sha256"] + "\n")


def _resolve_manifest(manifest):
    if manifest is None:
        return OFFICE31_MANIFEST
    if isinstance(manifest, dict):
        return manifest
    return summarize_manifest(read_manifest_tsv(manifest))


def verify_office31(path, manifest=None):
    """Check a folder against the Office-31 manifest (counts and digest).

    Parameters
    ----------
    path : str or path-like
        Folder in the layout of :func:`load_office31`.
    manifest : str, path-like or dict, default=None
        Manifest file (``<sha256>\\t<domain>/images/<class>/<file>`` lines),
        or a summary as returned by ``summarize_manifest``; None uses the
        summary of the real Office-31 shipped with the package.

    Returns
    -------
    problems : list of str
        Empty when the folder matches.
    """
    expected = _resolve_manifest(manifest)
    found = summarize_manifest(folder_entries(path))
    return compare_summaries(found, expected)


def fetch_office31(
    data_home=None,
    *,
    url=None,
    download_if_missing=True,
    manifest=None,
    progress=True,
    timeout=60,
    **load_kwargs,
):
    """Load Office-31 from the data home, downloading it first if needed.

    The data live in ``<data_home>/office31``. When that folder is missing,
    the public archive is downloaded (to a temporary name, renamed when
    complete), its members are checked (no path traversal, no links or
    devices, at most about twice Office-31's member count, 1 GB of content
    and 16 MB per file), only the expected layout is extracted
    (``<domain>/images/<class>/<image>`` of the manifest's domains: other
    files and folders are left out) into a temporary folder, which is
    verified against the manifest (image count per domain and per class,
    and one SHA-256 digest over all image contents) and only then moved
    into place. A folder placed by hand is verified once; a marker file
    records the success (when the folder is writable).

    Fetches into one data home take turns: a second one (another process or
    thread) waits for the first, then uses what it installed. What a killed
    fetch left (temporary downloads and extraction folders, archives of
    another URL) is removed by the next one; a complete archive of the same
    URL is reused.

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`get_data_home` (``SKOFFICE31_DATA`` or
        ``~/skoffice31_data``).
    url : str, default=None
        Archive URL (tar, tar.gz, tgz or zip). None uses the public
        Office-31 archive.
    download_if_missing : bool, default=True
        If False and the data are not in the data home, raise ``OSError``.
    manifest : str, path-like or dict, default=None
        Manifest to verify against: a file of
        ``<sha256>\\t<domain>/images/<class>/<file>`` lines, or a summary
        dict; None uses the summary of the real Office-31 shipped with the
        package.
    progress : bool, default=True
        Print download progress on stderr.
    timeout : float, default=60
        Network timeout in seconds.
    **load_kwargs
        Passed to :func:`load_office31` (``size``, ``domains``, ``mode``,
        ``return_X_y``, ``as_frame``, ``cache``, ``n_jobs``, ...).

    Returns
    -------
    data : Bunch or tuple
        What :func:`load_office31` returns.

    Raises
    ------
    Office31FetchError
        (a subclass of ``OSError``) on network failure, interrupted
        download, corrupt, unsafe or oversized archive, data that do not
        match the manifest, or a data home that cannot be written. The
        message says how to place the data by hand.
    OSError
        If the data are missing and ``download_if_missing`` is False.
    """
    try:
        home = Path(get_data_home(data_home))
    except OSError as exc:
        raise Office31FetchError(
            f"Cannot use the data home {exc.filename or data_home!r}: "
            f"{exc.strerror or exc}. Choose another data_home (or set "
            "SKOFFICE31_DATA)."
        ) from exc
    target = home / _FOLDER
    expected = _resolve_manifest(manifest)
    load_kwargs.setdefault("data_home", home)

    if target.is_dir():
        _verify_in_place(target, expected)
        return load_office31(target, **load_kwargs)
    if not download_if_missing:
        raise OSError(
            f"Office-31 not found in {os.fspath(target)!r} and "
            "download_if_missing=False." + _manual_help(target)
        )
    url = url or OFFICE31_URL
    with _fetch_lock(home, progress=progress):
        if target.is_dir():  # another fetch installed it while we waited
            _verify_in_place(target, expected)
        else:
            _install(url, home, target, expected, timeout=timeout,
                     progress=progress)
    return load_office31(target, **load_kwargs)


def _install(url, home, target, expected, *, timeout, progress):
    """Download, extract, verify and move Office-31 into ``target`` (locked)."""
    archive = home / _archive_name(url)
    _remove_stale(home, keep=archive.name)
    if not archive.is_file():
        _download(url, archive, timeout=timeout, progress=progress, target=target)
    work = Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=home))
    try:
        root = work / _FOLDER
        root.mkdir()
        domains = list(expected["domains"])
        try:
            n = safe_extract(archive, root, layout=_office31_layout(domains),
                             max_members=_max_members(expected))
        except _WriteError as exc:  # not the archive's fault: keep it
            raise Office31FetchError(
                f"{exc} Free some space in {os.fspath(home)!r} (or choose "
                "another data_home) and call fetch_office31 again; the "
                "downloaded archive is kept and will be reused."
            ) from exc
        except Office31FetchError as exc:
            archive.unlink(missing_ok=True)  # next call downloads afresh
            raise Office31FetchError(
                f"{exc} The archive was removed; call fetch_office31 again to "
                "download it afresh." + _manual_help(target)
            ) from exc
        if n == 0 or not all((root / d).is_dir() for d in domains):
            archive.unlink(missing_ok=True)
            raise Office31FetchError(
                f"The archive from {url} does not contain the folders "
                f"{domains} (as <domain>/images/<class>/<image>)."
                + _manual_help(target)
            )
        try:
            problems = compare_summaries(
                summarize_manifest(folder_entries(root)), expected)
        except (OSError, ValueError) as exc:
            problems = [str(exc)]
        if problems:
            archive.unlink(missing_ok=True)
            raise Office31FetchError(
                f"The data downloaded from {url} do not match the manifest: "
                + "; ".join(problems[:10]) + "." + _manual_help(target)
            )
        (root / _MARKER).write_text(expected["sha256"] + "\n")
        os.replace(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archive.unlink(missing_ok=True)
