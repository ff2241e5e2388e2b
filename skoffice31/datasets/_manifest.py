"""Content manifests: ``<sha256>\\t<domain>/images/<class>/<file>`` lines.

The package does not ship the 4,110-line manifest of Office-31 (~420 KB of
mostly incompressible hex). It ships a summary (:mod:`._office31_manifest`):
counts per domain, and per ``<domain>/<class>`` folder a count and a digest,
plus one digest over the whole manifest. That is enough to verify an
extracted copy completely (any changed, missing or extra image changes the
combined digest) and to say which class folder differs.

Digest definition: sort the manifest entries by relative path, then take
SHA-256 over the concatenated lines ``"<sha256>\\t<relpath>\\n"`` (UTF-8).
"""

import hashlib
import os
from collections import defaultdict
from pathlib import Path

from ._base import scan_image_folder


def read_manifest_tsv(path):
    """Read a manifest file of ``<sha256>\\t<relpath>`` lines.

    Parameters
    ----------
    path : str or path-like
        The manifest file.

    Returns
    -------
    entries : list of (str, str)
        ``(relpath, sha256)`` pairs.
    """
    entries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                sha, rel = line.split("\t")
            except ValueError:
                raise ValueError(
                    f"{os.fspath(path)}:{lineno}: expected '<sha256>\\t<path>'."
                ) from None
            entries.append((rel, sha.lower()))
    return entries


def _digest(entries):
    h = hashlib.sha256()
    for rel, sha in sorted(entries):
        h.update(f"{sha}\t{rel}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def summarize_manifest(entries):
    """Summarise manifest entries into counts and digests.

    Parameters
    ----------
    entries : iterable of (str, str)
        ``(relpath, sha256)`` pairs, relpath ``<domain>/images/<class>/<file>``.

    Returns
    -------
    summary : dict
        ``{"n_images": int, "sha256": str, "domains": {domain: count},
        "folders": {"<domain>/<class>": (count, sha256)}}``.
    """
    entries = sorted(entries)
    folders = defaultdict(list)
    domains = defaultdict(int)
    for rel, sha in entries:
        parts = rel.split("/")
        if len(parts) != 4 or parts[1] != "images":
            raise ValueError(
                f"Manifest path {rel!r} is not of the form "
                "<domain>/images/<class>/<file>."
            )
        folders[f"{parts[0]}/{parts[2]}"].append((rel, sha))
        domains[parts[0]] += 1
    return {
        "n_images": len(entries),
        "sha256": _digest(entries),
        "domains": dict(sorted(domains.items())),
        "folders": {k: (len(v), _digest(v)) for k, v in sorted(folders.items())},
    }


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_entries(root):
    """Manifest entries of the images in an Office-31 style folder.

    Parameters
    ----------
    root : str or path-like
        Folder in either layout accepted by
        :func:`~skoffice31.datasets.load_office31`.

    Returns
    -------
    entries : list of (str, str)
        ``(relpath, sha256)`` with relpath normalised to
        ``<domain>/images/<class>/<file>``.
    """
    entries = []
    for dom, info in scan_image_folder(root).items():
        base = Path(info["base"])
        for cls, files in info["classes"].items():
            for name, _, _ in files:
                entries.append(
                    (f"{dom}/images/{cls}/{name}", _sha256_file(base / cls / name))
                )
    return entries


def compare_summaries(found, expected):
    """List the differences between two manifest summaries.

    Parameters
    ----------
    found, expected : dict
        Outputs of :func:`summarize_manifest`.

    Returns
    -------
    problems : list of str
        Empty when the combined digests agree.
    """
    if found["sha256"] == expected["sha256"]:
        return []
    problems = []
    for dom in sorted(set(found["domains"]) | set(expected["domains"])):
        a, b = found["domains"].get(dom, 0), expected["domains"].get(dom, 0)
        if a != b:
            problems.append(f"domain {dom!r}: {a} images, expected {b}")
    for folder in sorted(set(found["folders"]) | set(expected["folders"])):
        a = tuple(found["folders"].get(folder, (0, None)))
        b = tuple(expected["folders"].get(folder, (0, None)))
        if a[0] != b[0]:
            problems.append(f"folder {folder!r}: {a[0]} images, expected {b[0]}")
        elif a[1] != b[1]:
            problems.append(f"folder {folder!r}: content digest differs")
    if not problems:
        problems.append("combined content digest differs")
    return problems
