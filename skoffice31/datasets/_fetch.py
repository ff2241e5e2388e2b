"""Download, safely extract and verify Office-31: :func:`fetch_office31`."""

import os
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from ._base import get_data_home
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

    The body goes to ``<dest>.part-*`` in the same folder and is renamed to
    ``dest`` only once complete (length checked against Content-Length), so
    an interrupted transfer never leaves a file that looks complete.

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
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".part-", dir=dest.parent)
    out = sys.stderr
    try:
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
        with resp, os.fdopen(fd, "wb") as f:
            fd = None
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
        os.replace(tmp, dest)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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


def safe_extract(archive, dest):
    """Extract a tar (any compression) or zip archive without path traversal.

    Every member is checked before anything is written: absolute names,
    ``..`` components, symbolic and hard links, devices and FIFOs make the
    whole archive rejected. Tar extraction additionally uses the ``"data"``
    filter of :mod:`tarfile` when available.

    Parameters
    ----------
    archive : path-like
        The archive file.
    dest : path-like
        Existing folder to extract into.

    Raises
    ------
    Office31FetchError
        If the archive is corrupt, of an unknown type or unsafe.
    """
    archive, dest = Path(archive), Path(dest)
    real_dest = os.path.realpath(dest)
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                # Read to the end of the (compressed) stream: tar stops at its
                # end-of-archive blocks, before the gzip/bz2/xz checksum.
                while tf.fileobj.read(1 << 20):
                    pass
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
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - old Python without filters
                    tf.extractall(dest, members=members)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_member_name(info.filename, real_dest)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise Office31FetchError(
                            f"Unsafe archive member {info.filename!r}: a symbolic "
                            "link; refusing to extract."
                        )
                zf.extractall(dest)
        else:
            raise Office31FetchError(
                f"{os.fspath(archive)!r} is not a tar or zip archive (corrupt or "
                "incomplete download?)."
            )
    except Office31FetchError:
        raise
    except Exception as exc:  # tarfile.ReadError, zlib.error, EOFError, BadZipFile
        raise Office31FetchError(
            f"The archive {os.fspath(archive)!r} is corrupt: "
            f"{type(exc).__name__}: {exc}."
        ) from exc


def _find_root(folder, domains):
    """Folder at depth <= 2 under ``folder`` that holds all ``domains``."""
    candidates = [folder]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        candidates.append(sub)
        candidates.extend(sorted(p for p in sub.iterdir() if p.is_dir()))
    for c in candidates:
        if all((c / d).is_dir() for d in domains):
            return c
    return None


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
    complete), extracted into a temporary folder with checks against path
    traversal, verified against the manifest (image count per domain and
    per class, and one SHA-256 digest over all image contents), and only
    then moved into place. A folder placed by hand is verified once; a
    marker file records the success.

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
        download, corrupt or unsafe archive, or data that do not match the
        manifest. The message says how to place the data by hand.
    OSError
        If the data are missing and ``download_if_missing`` is False.
    """
    home = Path(get_data_home(data_home))
    target = home / _FOLDER
    expected = _resolve_manifest(manifest)
    marker = target / _MARKER
    load_kwargs.setdefault("data_home", home)

    if target.is_dir():
        if not (marker.is_file() and marker.read_text().strip() == expected["sha256"]):
            try:
                problems = compare_summaries(
                    summarize_manifest(folder_entries(target)), expected)
            except (OSError, ValueError) as exc:
                problems = [str(exc)]
            if problems:
                raise Office31FetchError(
                    f"The Office-31 folder {os.fspath(target)!r} does not match "
                    "the manifest: " + "; ".join(problems[:10])
                    + ". Remove the folder to download it again."
                    + _manual_help(target)
                )
            marker.write_text(expected["sha256"] + "\n")
        return load_office31(target, **load_kwargs)

    if not download_if_missing:
        raise OSError(
            f"Office-31 not found in {os.fspath(target)!r} and "
            "download_if_missing=False." + _manual_help(target)
        )

    url = url or OFFICE31_URL
    suffix = "".join(PurePosixPath(urlparse(url).path).suffixes[-2:]) or ".archive"
    archive = home / f"office31-archive{suffix}"
    if not archive.is_file():
        _download(url, archive, timeout=timeout, progress=progress, target=target)
    work = Path(tempfile.mkdtemp(prefix=".office31-extract-", dir=home))
    try:
        try:
            safe_extract(archive, work)
        except Office31FetchError as exc:
            archive.unlink(missing_ok=True)  # next call downloads afresh
            raise Office31FetchError(
                f"{exc} The archive was removed; call fetch_office31 again to "
                "download it afresh." + _manual_help(target)
            ) from exc
        root = _find_root(work, list(expected["domains"]))
        if root is None:
            archive.unlink(missing_ok=True)
            raise Office31FetchError(
                f"The archive from {url} does not contain the folders "
                f"{list(expected['domains'])}." + _manual_help(target)
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
        os.chmod(root, 0o755)  # mkdtemp made it private
        os.replace(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archive.unlink(missing_ok=True)
    return load_office31(target, **load_kwargs)
