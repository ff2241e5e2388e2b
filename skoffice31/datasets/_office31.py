"""Load the Office-31 images from a folder, with an on-disk cache."""

import hashlib
import json
import os
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from .._fileio import TMP_MARK, atomic_open
from .._pixels import RESAMPLE_NAMES, normalize_size, read_images
from ._base import (
    HEAD_NAMES,
    LAYOUT_HELP,
    CacheWarning,
    warn_skipped,
    _data_home_path,
    _scan,
    make_bunch,
    printable,
)

# Bump when the decoding or the cache format changes: old entries are ignored.
# 2: entries record why each skipped file failed; read failures are not cached.
_CACHE_VERSION = 2
_CACHE_DIR = "cache"

DESCR = """\
Office-31 (Saenko et al., "Adapting Visual Category Models to New Domains",
ECCV 2010): 4,110 photos of 31 office object classes (back_pack, bike, ...,
trash_can) in three domains: amazon (2,817 product shots from amazon.com,
300x300 on white background), dslr (498 high resolution 1000x1000 photos taken
with a digital SLR) and webcam (795 low resolution photos taken with a
webcam). Every image has two labels, its domain and its object class.

Loaded by skoffice31.datasets.load_office31: images converted to the chosen
mode, resized to the chosen size; ``images`` holds the uint8 pixels,
``data`` the same pixels flattened in C order as float32 in [0, 1] (divided
by 255; multiply by 255 for the raw 0..255 pixels of the original study).
"""


def _fs(text):
    """Bytes of a path or name for hashing (names need not be valid UTF-8)."""
    return text.encode("utf-8", "surrogateescape")


def _cache_path(cache_dir, root, domain, size, mode, resample):
    ident = json.dumps([str(root), domain, size, mode, resample])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in domain)
    return Path(cache_dir) / f"office31-{safe}-{digest}.npz"


def _content_key(root, domain, info, size, mode, resample):
    """Digest of everything the decoded arrays of one domain depend on."""
    h = hashlib.sha256()
    h.update(json.dumps(
        [_CACHE_VERSION, str(root), domain, str(info["base"]), size, mode, resample]
    ).encode())
    for cls, files in info["classes"].items():
        for name, fsize, mtime in files:
            h.update(_fs(f"{cls}/{name}\t{fsize}\t{mtime}\n"))
    return h.hexdigest()


def _prune_cache(cache_dir, max_tmp_age=3600.0):
    """Remove cache entries whose source folder is gone, and stale temp files.

    Called after writing an entry, so the caches of deleted folders (e.g.
    temporary test folders) do not pile up in the data home. A temporary
    file is stale when it is older than ``max_tmp_age`` seconds (a writer
    killed half-way); younger ones may belong to a concurrent writer.
    """
    now = time.time()
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return
    for e in entries:
        try:
            if TMP_MARK in e.name or e.name.endswith(".tmp"):
                if now - e.stat().st_mtime > max_tmp_age:
                    os.unlink(e.path)
                continue
            if not (e.name.startswith("office31-") and e.name.endswith(".npz")):
                continue
            with np.load(e.path, allow_pickle=False) as z:
                root = json.loads(str(z["meta"])).get("root")
            if root and not os.path.isdir(root):
                os.unlink(e.path)
        except Exception:  # unreadable entry or a concurrent writer: leave it
            continue


def _read_cache(path, key):
    """Return the cached entry for ``key`` or None (missing, stale, broken)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key:
                return None
            images = z["images"]
    except Exception:  # missing, truncated, unreadable or foreign: rebuild it
        return None
    return images, meta


class _CacheWriter:
    """Writes cache entries until the first failure, then warns once.

    A read-only data home, a ``cache`` path that is a file or a full disk
    must not cost the images just decoded: the load goes on without the
    cache and one :class:`CacheWarning` names the folder.
    """

    def __init__(self, cache_dir):
        self.cache_dir = Path(cache_dir)
        self.failed = False
        self.wrote = False

    def _fail(self, exc):
        self.failed = True
        error = f"{type(exc).__name__}: {exc.strerror or exc}" if isinstance(
            exc, OSError) else f"{type(exc).__name__}: {exc}"
        where = printable(self.cache_dir)
        warnings.warn(
            CacheWarning(
                f"Cannot write the image cache in {where!r} ({error}); the "
                "images are loaded without the cache. Point data_home (or the "
                "SKOFFICE31_DATA environment variable) to a writable folder, "
                "or pass cache=False.",
                path=str(self.cache_dir), error=error,
            ),
            stacklevel=4,  # _fail <- ready/write <- load_office31 <- the caller
        )

    def ready(self):
        """Create the cache folder; False (after the warning) if impossible."""
        if self.failed:
            return False
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            if not self.cache_dir.is_dir():
                raise NotADirectoryError(20, "Not a directory")
        except OSError as exc:
            self._fail(exc)
            return False
        return True

    def write(self, path, images, meta):
        if not self.ready():
            return
        try:
            with atomic_open(path, "wb") as f:
                np.savez(f, images=images, meta=np.array(json.dumps(meta)))
        except OSError as exc:  # read-only, disk full, quota
            self._fail(exc)
            return
        self.wrote = True


def _selected_domains(domains, scan, root):
    """Validate ``domains`` against what the scan found; return a sorted list."""
    available = list(scan.domains)
    if domains is None:
        return available
    selected = [domains] if isinstance(domains, str) else domains
    try:
        selected = list(selected)
    except TypeError:
        raise ValueError(
            f"domains must be None, a domain name or a list of domain names; got "
            f"{domains!r}. Available: {available}."
        ) from None
    bad = [d for d in selected if not isinstance(d, str)]
    if bad:
        raise ValueError(
            f"domains must hold domain names (str); got {bad!r}. Available: "
            f"{available}."
        )
    if not selected:
        raise ValueError(
            f"domains=[] selects no domain; pass None to load all of them, or "
            f"some of {available}."
        )
    problems = []
    for d in dict.fromkeys(selected):
        if d in scan.domains:
            continue
        if d in scan.empty:
            problems.append(f"domain {d!r} has no images (its folder holds no "
                            "class folder with image files)")
            continue
        why = [r for dom, p, r in scan.skipped
               if dom is None and os.path.basename(p) == d]
        if why:
            problems.append(f"domain {d!r} was skipped: {why[0]}")
        else:
            problems.append(f"Unknown domain {d!r}")
    if problems:
        raise ValueError(
            f"Cannot load domain(s) {[d for d in selected if d not in scan.domains]} "
            f"of {printable(root)!r}: " + "; ".join(problems)
            + f"; available: {available}. {LAYOUT_HELP}"
        )
    return sorted(set(selected), key=available.index)


def load_office31(
    path,
    *,
    size=(100, 100),
    domains=None,
    mode="RGB",
    return_X_y=False,
    as_frame=False,
    cache=True,
    n_jobs=None,
    resample="bilinear",
    data_home=None,
    shuffle=False,
    random_state=None,
):
    """Load the Office-31 images from a folder as a two-head dataset.

    ================   ==========================================
    Samples total      4,110 (amazon 2,817, dslr 498, webcam 795)
    Heads              domain (3 classes), object (31 classes)
    Features           ``width * height * channels``, float32 in [0, 1]
    ================   ==========================================

    Parameters
    ----------
    path : str or path-like
        Folder with one sub-folder per domain, in the archive's layout
        ``<path>/<domain>/images/<class>/*.jpg`` or without the ``images``
        level, ``<path>/<domain>/<class>/*.jpg``. Hidden files (``.DS_Store``,
        ``._*``) and files without an image suffix are ignored; suffixes are
        case-insensitive (``.JPG`` is read).
    size : int or tuple of (int, int) or None, default=(100, 100)
        Output ``(width, height)``; None keeps the original size, which must
        then be the same for all loaded images.
    domains : str or list of str, default=None
        Domains to load (e.g. ``["amazon", "webcam"]``); None loads all.
    mode : {"RGB", "L"}, default="RGB"
        Colour mode of the output.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame (columns named like
        :meth:`ImageFlattener.get_feature_names_out`), ``target`` a DataFrame
        with columns ``domain`` and ``object``, and ``frame`` both together.
    cache : bool, default=True
        Keep the decoded, resized images of each domain in
        ``<data_home>/cache``. An entry is keyed on the folder, the file list
        with sizes and modification times, ``size``, ``mode`` and
        ``resample``: any change makes it rebuild. Files are written
        atomically (temporary file, then :func:`os.replace`); entries of
        folders that no longer exist are removed when a new entry is
        written. Files whose bytes are not a decodable image are remembered
        as skipped; a file that could not be *read* (permissions, I/O error)
        is never: its domain is decoded again next time. When the cache
        cannot be written (read-only data home, a file named ``cache``, disk
        full), the images are loaded all the same and one
        :class:`CacheWarning` says so. :func:`clear_data_home` deletes
        everything.
    n_jobs : int, default=None
        Number of joblib workers used to decode the images when they are not
        cached. None means 1 unless in a :func:`joblib.parallel_config`
        context.
    resample : str, default="bilinear"
        Pillow filter used to resize (see :class:`~skoffice31.ImageFlattener`).
    data_home : str or path-like, default=None
        Where the cache lives; see :func:`get_data_home`.
    shuffle : bool, default=False
        Permute the rows (``data``, ``images``, ``target`` and ``filenames``
        alike). By default the rows are sorted by domain, class and file
        name, so a cross-validation that does not shuffle (scikit-learn's
        default ``KFold`` for a 2-column ``y``) tests on domains it never
        trained on: shuffle here, or pass a shuffled or stratified ``cv``.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation when ``shuffle`` is True.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes

        data : ndarray of shape (n_samples, height * width * channels), float32
            Pixels in C order (row, column, channel) divided by 255, i.e. in
            ``[0, 1]`` -- what ``ImageFlattener()`` outputs. Multiply by 255
            for the raw 0..255 pixels.
        images : ndarray of shape (n_samples, height, width, channels), uint8
            The images (``channels`` is 3 for "RGB", 1 for "L").
        target : ndarray of shape (n_samples, 2), dtype object
            String labels, columns ``domain`` and ``object``: the folder names.
        target_names : dict
            ``{"domain": ndarray, "object": ndarray}``: sorted domain and
            class names found in ``path``. The class list is the union over
            all domains of the folder, so it is the same whichever
            ``domains`` are loaded.
        head_names : tuple of str
            ``("domain", "object")``, the column names of ``target``.
        feature_names : list of str
            ``pixel_<row>_<col>_<channel>``, one per column of ``data``.
        filenames : ndarray of str objects
            Path of each image.
        frame : DataFrame or None
            With ``as_frame=True``, ``data`` and ``target`` side by side.
        DESCR : str
            Description of the dataset.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` (the flat pixels) and ``target`` (the two label columns),
        as described above.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    OSError
        If ``path`` itself cannot be listed (e.g. ``PermissionError``); its
        ``filename`` attribute names the folder. Problems with the cache
        never raise (see ``cache``).
    ValueError
        If ``path`` holds no images in the expected layout; if ``domains``
        is empty, names a domain that does not exist or whose folder holds
        no images; or if no image of the selected domains could be decoded.

    Warns
    -----
    SkippedFilesWarning
        Once, listing every entry that was left out and why: files that
        could not be decoded or read, dangling symbolic links, link loops,
        links back to a parent folder (they would repeat images under other
        labels), folder names that are not valid UTF-8 (they would be
        labels) and folders that cannot be listed. Its ``files`` and
        ``reasons`` attributes hold them. The other rows and their labels
        are unaffected. A file name that is not valid UTF-8 is loaded; its
        entry in ``filenames`` holds surrogate escapes (:func:`os.fsdecode`)
        and opens the file.
    CacheWarning
        Once, when the cache cannot be written; its ``path`` attribute is
        the cache folder.

    See Also
    --------
    fetch_office31 : Download Office-31 to the data home, then load it.
    load_office_digits : Built-in stand-in that needs no files.

    Notes
    -----
    Samples are ordered by domain, class and file name unless ``shuffle``
    is True. Loading the full set
    at 100x100 decodes 4,110 JPEGs; large JPEGs are decoded in draft mode
    (see :class:`~skoffice31.ImageFlattener`), and ``n_jobs=2`` spreads the
    work over two processes. The second load of the same folder with the
    same ``size`` and ``mode`` is read from the cache.
    """
    size = normalize_size(size)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L'; got {mode!r}.")
    if resample not in RESAMPLE_NAMES:
        raise ValueError(
            f"resample must be one of {list(RESAMPLE_NAMES)}; got {resample!r}."
        )
    root = Path(os.fspath(path)).expanduser().resolve()
    scan = _scan(root)
    scanned = scan.domains
    all_domains = list(scanned)
    all_classes = sorted({c for d in scanned.values() for c in d["classes"]})
    selected = _selected_domains(domains, scan, root)
    size_key = list(size) if size is not None else None
    cache_dir = _data_home_path(data_home) / _CACHE_DIR
    writer = _CacheWriter(cache_dir) if cache else None

    entries = {}
    todo = []  # (domain, class, path)
    keys = {}
    for dom in selected:
        info = scanned[dom]
        key = _content_key(root, dom, info, size_key, mode, resample)
        keys[dom] = key
        if cache:
            hit = _read_cache(
                _cache_path(cache_dir, root, dom, size_key, mode, resample), key)
            if hit is not None:
                entries[dom] = hit
                continue
        for cls, files in info["classes"].items():
            for name, _, _ in files:
                todo.append((dom, cls, str(info["base"] / cls / name)))

    decoded_all = None
    if todo:
        if writer is not None:
            writer.ready()  # a cache that cannot be written: say so before decoding
        decoded, ok, errors = read_images(
            [p for _, _, p in todo], size=size, mode=mode, resample=resample,
            n_jobs=n_jobs, on_error="skip",
        )
        c = 3 if mode == "RGB" else 1
        if isinstance(decoded, list) and not decoded:  # nothing decodable
            decoded = np.empty((0, 0, 0, c), dtype=np.uint8)
        if isinstance(decoded, list):  # only with size=None
            shapes = sorted({a.shape for a in decoded})
            raise ValueError(
                f"size=None needs images of one size, but the images have shapes "
                f"{shapes}. Pass size=(width, height)."
            )
        n_ok_before = np.concatenate([[0], np.cumsum(ok)])
        n_todo = Counter(d for d, _, _ in todo)  # rows are grouped by domain
        pos = 0
        for dom in selected:
            if dom in entries:  # from the cache
                continue
            n_dom = n_todo[dom]
            rows = range(pos, pos + n_dom)
            if decoded.shape[0]:
                images = decoded[n_ok_before[pos]:n_ok_before[pos + n_dom]]
            else:
                h, w = (size[1], size[0]) if size is not None else (0, 0)
                images = np.empty((0, h, w, c), np.uint8)
            meta = {
                "key": keys[dom],
                "root": str(root),
                "files": [todo[i][2] for i in rows if ok[i]],
                "objects": [todo[i][1] for i in rows if ok[i]],
                "skipped": [[todo[i][2], errors[i][0]] for i in rows if not ok[i]],
            }
            entries[dom] = (images, meta)
            pos += n_dom
            # Only failures of the files' bytes are remembered: a file that
            # could not be read (permissions, I/O) is tried again next time.
            readable = all(errors[i][1] for i in rows if not ok[i])
            if writer is not None and readable:
                writer.write(
                    _cache_path(cache_dir, root, dom, size_key, mode, resample),
                    images, meta,
                )
        if writer is not None and writer.wrote:
            _prune_cache(cache_dir)
        if set(n_todo) == set(selected):
            decoded_all = decoded  # nothing came from the cache: no copy

    parts = [entries[d][0] for d in selected]
    shapes = {p.shape[1:] for p in parts if p.shape[0]}
    if len(shapes) > 1:
        raise ValueError(
            f"size=None needs images of one size, but the domains have shapes "
            f"{sorted(shapes)}. Pass size=(width, height)."
        )
    if decoded_all is not None:
        images = decoded_all
    else:
        nonempty = [p for p in parts if p.shape[0]] or parts[:1]
        images = np.concatenate(nonempty) if len(nonempty) > 1 else nonempty[0]
    filenames, objects, doms = [], [], []
    skipped = [(p, r) for d, p, r in scan.skipped if d is None or d in selected]
    for d in selected:
        meta = entries[d][1]
        filenames += meta["files"]
        objects += meta["objects"]
        doms += [d] * len(meta["files"])
        skipped += [tuple(x) for x in meta["skipped"]]
    warn_skipped(skipped, root, stacklevel=2)
    if images.shape[0] == 0:
        raise ValueError(
            f"None of the images of domain(s) {selected} in {printable(root)!r} "
            "could be decoded."
        )
    target_names = {
        "domain": np.asarray(all_domains, dtype=object),
        "object": np.asarray(all_classes, dtype=object),
    }
    return make_bunch(
        images, doms, objects, target_names, filenames, DESCR,
        return_X_y=return_X_y, as_frame=as_frame, shuffle=shuffle,
        random_state=random_state,
    )


__all__ = ["load_office31", "HEAD_NAMES"]
