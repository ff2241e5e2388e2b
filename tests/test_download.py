"""Tests for skoffice31.datasets.fetch_office31 against a local HTTP server."""

import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from skoffice31.datasets import Office31FetchError, fetch_office31, verify_office31
from skoffice31.datasets import _fetch
from skoffice31.datasets._fetch import safe_extract
from skoffice31.datasets._manifest import read_manifest_tsv, summarize_manifest
from skoffice31.datasets._office31_manifest import OFFICE31_MANIFEST

try:
    from test_datasets import LAYOUT, _check_labels, make_office
except ImportError:  # tests/ imported as a package
    from tests.test_datasets import LAYOUT, _check_labels, make_office

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------ fixtures
class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}  # path -> (body bytes, kind)
    hits = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.hits.append(self.path)
        if self.path not in self.routes:
            self.send_error(404, "Not Found")
            return
        body, kind = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type",
                         "text/html" if kind == "html" else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "slow":
            # the body in 20 pieces over about a second: fetches overlap
            step = max(1, len(body) // 20)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if kind == "truncated":
            # announce the full length, send part of the body, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    """HTTP server on 127.0.0.1 (random port), stopped after the test."""
    _Handler.routes = {}
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, _Handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _data_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path / "env_home"))


@pytest.fixture
def dataset(tmp_path):
    """A tiny Office-31 style folder, its manifest file and its archives."""
    src = tmp_path / "src"
    files = make_office(src)
    lines = []
    for p in files:
        rel = p.relative_to(src).as_posix()
        lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}\t{rel}\n")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("".join(lines))

    def tar_bytes(prefix="", mode="w:gz"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            for dom in sorted(LAYOUT):
                tf.add(src / dom, arcname=prefix + dom)
        return buf.getvalue()

    def zip_bytes(prefix=""):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for p in files:
                zf.write(p, prefix + p.relative_to(src).as_posix())
        return buf.getvalue()

    return {"src": src, "files": files, "manifest": manifest, "lines": lines,
            "tar": tar_bytes, "zip": zip_bytes}


def _leftovers(home):
    """Files in the data home other than the cache."""
    return sorted(p.name for p in Path(home).iterdir() if p.name != "cache")


N_IMAGES = sum(sum(c.values()) for c in LAYOUT.values())


# --------------------------------------------------------------- success
def test_download_extract_verify_load(server, dataset, tmp_path, capsys):
    base, handler = server
    handler.routes["/office31.tar.gz"] = (dataset["tar"](), "ok")
    home = tmp_path / "home"
    b = fetch_office31(home, url=base + "/office31.tar.gz",
                       manifest=dataset["manifest"], size=(8, 6))
    assert b.data.shape == (N_IMAGES, 8 * 6 * 3)
    _check_labels(b)
    err = capsys.readouterr().err
    assert "Downloading Office-31" in err and "done" in err
    assert (home / "office31" / "amazon" / "images" / "bike").is_dir()
    assert _leftovers(home) == ["office31"]  # no archive, no temporary files
    assert handler.hits == ["/office31.tar.gz"]
    # second call: no network, same data
    c = fetch_office31(home, url=base + "/office31.tar.gz",
                       manifest=dataset["manifest"], size=(8, 6))
    assert handler.hits == ["/office31.tar.gz"]
    np.testing.assert_array_equal(b.data, c.data)
    np.testing.assert_array_equal(b.target, c.target)


def test_zip_with_top_level_folder_and_env_data_home(server, dataset, tmp_path):
    base, handler = server
    handler.routes["/data.zip"] = (dataset["zip"]("domain_adaptation_images/"), "ok")
    X, y = fetch_office31(url=base + "/data.zip", manifest=dataset["manifest"],
                          size=(4, 4), return_X_y=True, progress=False)
    assert X.shape == (N_IMAGES, 48) and y.shape == (N_IMAGES, 2)
    assert (tmp_path / "env_home" / "office31" / "dslr").is_dir()


def test_data_placed_by_hand_is_verified_without_network(dataset, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(dataset["src"], home / "office31")
    dead = "http://127.0.0.1:9/never"  # must not be contacted
    b = fetch_office31(home, url=dead, manifest=dataset["manifest"], size=(4, 4))
    assert b.data.shape[0] == N_IMAGES
    assert (home / "office31" / ".skoffice31-verified").is_file()
    # a tampered copy is refused with a clear message
    victim = dataset["files"][0].relative_to(dataset["src"])
    (home / "office31" / victim).write_bytes(b"tampered")
    (home / "office31" / ".skoffice31-verified").unlink()
    with pytest.raises(Office31FetchError, match="does not match the manifest"):
        fetch_office31(home, url=dead, manifest=dataset["manifest"])


def test_download_if_missing_false(tmp_path, dataset):
    with pytest.raises(OSError, match=r"download_if_missing=False(?s:.*)by hand"):
        fetch_office31(tmp_path / "home", download_if_missing=False,
                       manifest=dataset["manifest"])


# --------------------------------------------------------------- failures
def _assert_clean(home):
    home = Path(home)
    assert not (home / "office31").exists()
    assert [n for n in _leftovers(home)] == []


def test_interrupted_transfer(server, dataset, tmp_path):
    base, handler = server
    handler.routes["/office31.tar.gz"] = (dataset["tar"](), "truncated")
    home = tmp_path / "home"
    with pytest.raises(Office31FetchError, match=r"interrupted.*(?s:.*)by hand"):
        fetch_office31(home, url=base + "/office31.tar.gz",
                       manifest=dataset["manifest"], progress=False)
    _assert_clean(home)
    # once the server is fixed, the next call succeeds
    handler.routes["/office31.tar.gz"] = (dataset["tar"](), "ok")
    b = fetch_office31(home, url=base + "/office31.tar.gz",
                       manifest=dataset["manifest"], size=(4, 4), progress=False)
    assert b.data.shape[0] == N_IMAGES


def test_corrupted_archive(server, dataset, tmp_path):
    base, handler = server
    good = bytearray(dataset["tar"]())
    for i in range(len(good) // 3, len(good) // 3 + 200):
        good[i] ^= 0xFF
    handler.routes["/office31.tar.gz"] = (bytes(good), "ok")
    home = tmp_path / "home"
    # a deflate error or the gzip CRC catches it; else the digest would
    with pytest.raises(Office31FetchError,
                       match=r"(corrupt|do not match)(?s:.*)by hand"):
        fetch_office31(home, url=base + "/office31.tar.gz",
                       manifest=dataset["manifest"], progress=False)
    _assert_clean(home)
    handler.routes["/junk.tar.gz"] = (b"this is no archive " * 300, "ok")
    with pytest.raises(Office31FetchError, match="not a tar or zip"):
        fetch_office31(home, url=base + "/junk.tar.gz",
                       manifest=dataset["manifest"], progress=False)
    _assert_clean(home)


def test_bad_digest_and_wrong_counts(server, dataset, tmp_path):
    base, handler = server
    handler.routes["/office31.tar.gz"] = (dataset["tar"](), "ok")
    home = tmp_path / "home"
    lines = list(dataset["lines"])
    sha, rel = lines[0].rstrip("\n").split("\t")
    lines[0] = f"{'0' * 64}\t{rel}\n"
    bad = tmp_path / "bad.tsv"
    bad.write_text("".join(lines))
    folder = "/".join(rel.split("/")[i] for i in (0, 2))
    with pytest.raises(Office31FetchError,
                       match=rf"do not match the manifest: folder '{folder}': "
                             r"content digest differs(?s:.*)by hand"):
        fetch_office31(home, url=base + "/office31.tar.gz", manifest=bad,
                       progress=False)
    _assert_clean(home)
    extra = tmp_path / "extra.tsv"
    extra.write_text("".join(dataset["lines"])
                     + f"{'1' * 64}\twebcam/images/bike/frame_0999.jpg\n")
    with pytest.raises(Office31FetchError, match="domain 'webcam': 3 images, expected 4"):
        fetch_office31(home, url=base + "/office31.tar.gz", manifest=extra,
                       progress=False)
    _assert_clean(home)


def test_network_failures(server, dataset, tmp_path):
    base, handler = server
    home = tmp_path / "home"
    with pytest.raises(Office31FetchError, match=r"HTTP 404(?s:.*)by hand"):
        fetch_office31(home, url=base + "/missing.tar.gz",
                       manifest=dataset["manifest"], progress=False)
    _assert_clean(home)
    handler.routes["/page"] = (b"<html>quota exceeded</html>", "html")
    with pytest.raises(Office31FetchError, match="HTML page"):
        fetch_office31(home, url=base + "/page", manifest=dataset["manifest"],
                       progress=False)
    _assert_clean(home)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Office31FetchError, match=r"failed(?s:.*)by hand"):
        fetch_office31(home, url=f"http://127.0.0.1:{port}/x.tar.gz",
                       manifest=dataset["manifest"], progress=False, timeout=5)
    _assert_clean(home)


# ------------------------------------------------------- safe extraction
def _tar_with(tmp_path, add):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        add(tf)
    return path


def _add_file(tf, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "name, match",
    [("../escape.txt", r"'\.\.'"),
     ("amazon/../../escape.txt", r"'\.\.'"),
     ("/tmp/skoffice31_abs_escape.txt", "absolute")],
)
def test_tar_path_traversal_is_rejected(tmp_path, name, match):
    archive = _tar_with(tmp_path, lambda tf: (_add_file(tf, "amazon/ok.txt"),
                                             _add_file(tf, name)))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(Office31FetchError, match=match):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # nothing written, not even ok.txt
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_rejected(tmp_path, kind):
    def add(tf):
        info = tarfile.TarInfo("amazon/link.jpg")
        info.type = kind
        info.linkname = "/etc/passwd"
        tf.addfile(info)

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(Office31FetchError, match="link"):
        safe_extract(_tar_with(tmp_path, add), dest)
    assert list(dest.iterdir()) == []


def test_zip_traversal_and_symlink_are_rejected(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "x")
        zf.writestr("../escape.txt", "x")
    with pytest.raises(Office31FetchError, match="escapes"):
        safe_extract(path, dest)
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("amazon/link.jpg")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(Office31FetchError, match="symbolic link"):
        safe_extract(path, dest)
    assert list(dest.iterdir()) == []


def test_unsafe_archive_via_fetch(server, dataset, tmp_path):
    base, handler = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        _add_file(tf, "amazon/images/bike/frame_0001.jpg")
        _add_file(tf, "../../outside.jpg")
    handler.routes["/evil.tar.gz"] = (buf.getvalue(), "ok")
    home = tmp_path / "deep" / "home"
    with pytest.raises(Office31FetchError, match="refusing to extract"):
        fetch_office31(home, url=base + "/evil.tar.gz",
                       manifest=dataset["manifest"], progress=False)
    _assert_clean(home)
    assert not (tmp_path / "outside.jpg").exists()


# ---------------------------------------------------- packaged manifest
@pytest.mark.skipif(not (SHARED / "office31.sha256.tsv").is_file(),
                    reason="Office-31 manifest not in ../shared/data")
def test_packaged_manifest_summary_matches_shared_manifest():
    summary = summarize_manifest(read_manifest_tsv(SHARED / "office31.sha256.tsv"))
    assert summary == OFFICE31_MANIFEST | {"folders": {
        k: tuple(v) for k, v in OFFICE31_MANIFEST["folders"].items()}}
    assert summary["n_images"] == 4110
    assert summary["domains"] == {"amazon": 2817, "dslr": 498, "webcam": 795}


@pytest.mark.skipif(not (SHARED / "office31").is_dir(),
                    reason="Office-31 not in ../shared/data")
def test_real_office31_verifies():
    assert verify_office31(SHARED / "office31") == []


# ------------------------------------ what an archive may install (item 17)
def _tar_of(dataset, extra=(), prefix=""):
    """The dataset's tar.gz plus ``extra`` members ``(name, bytes)``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for dom in sorted(LAYOUT):
            tf.add(dataset["src"] / dom, arcname=prefix + dom)
        for name, data in extra:
            _add_file(tf, name, data)
    return buf.getvalue()


def _installed(home):
    root = Path(home) / "office31"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_only_the_expected_layout_is_installed(server, dataset, tmp_path):
    base, handler = server
    junk = [("domain_adaptation_images/README.txt", b"read me"),
            ("domain_adaptation_images/amazon/images/bike/notes.txt", b"notes"),
            ("domain_adaptation_images/amazon/extra/deep/x.jpg", b"not an image"),
            ("domain_adaptation_images/tools/run.sh", b"rm -rf /"),
            ("domain_adaptation_images/amazon/images/.hidden.jpg", b"x"),
            ("__MACOSX/domain_adaptation_images/amazon/images/bike/._a.jpg", b"x"),
            ("elsewhere/big.bin", bytes(5000))]
    handler.routes["/o.tar.gz"] = (
        _tar_of(dataset, junk, prefix="domain_adaptation_images/"), "ok")
    home = tmp_path / "home"
    b = fetch_office31(home, url=base + "/o.tar.gz", manifest=dataset["manifest"],
                       size=(4, 4), progress=False)
    assert b.data.shape[0] == N_IMAGES
    want = sorted(p.relative_to(dataset["src"]).as_posix() for p in dataset["files"])
    assert _installed(home) == sorted(want + [".skoffice31-verified"])
    assert _leftovers(home) == ["office31"]


def test_archive_with_too_many_members_is_refused(server, dataset, tmp_path):
    base, handler = server
    # 2 * N_IMAGES + 1000 members at most for the test manifest
    junk = [(f"amazon/images/bike/junk_{i:05d}.txt", b"") for i in range(1100)]
    handler.routes["/many.tar.gz"] = (_tar_of(dataset, junk), "ok")
    home = tmp_path / "home"
    with pytest.raises(Office31FetchError, match=rf"more than {2 * N_IMAGES + 1000} members(?s:.*)by hand"):
        fetch_office31(home, url=base + "/many.tar.gz", manifest=dataset["manifest"],
                       progress=False)
    _assert_clean(home)


def test_archive_with_a_huge_member_or_total_is_refused(server, dataset, tmp_path,
                                                        monkeypatch):
    base, handler = server
    monkeypatch.setattr(_fetch, "_MAX_MEMBER_BYTES", 50_000)
    handler.routes["/big.tar.gz"] = (
        _tar_of(dataset, [("amazon/images/bike/huge.jpg", bytes(60_000))]), "ok")
    home = tmp_path / "home"
    with pytest.raises(Office31FetchError, match="huge.jpg.*larger than any"):
        fetch_office31(home, url=base + "/big.tar.gz", manifest=dataset["manifest"],
                       progress=False)
    _assert_clean(home)
    monkeypatch.setattr(_fetch, "_MAX_ARCHIVE_BYTES", 40_000)
    many = [(f"amazon/images/bike/part_{i}.bin", bytes(9_000)) for i in range(5)]
    handler.routes["/sum.tar.gz"] = (_tar_of(dataset, many), "ok")
    with pytest.raises(Office31FetchError, match="more than 39.1 KB of data"):
        fetch_office31(home, url=base + "/sum.tar.gz", manifest=dataset["manifest"],
                       progress=False)
    _assert_clean(home)


@pytest.mark.skipif(not (SHARED / "office31").is_dir(),
                    reason="Office-31 not in ../shared/data")
def test_limits_leave_a_wide_margin_for_the_real_office31():
    files = [p for p in (SHARED / "office31").rglob("*") if p.is_file()]
    folders = [p for p in (SHARED / "office31").rglob("*") if p.is_dir()]
    sizes = [p.stat().st_size for p in files]
    assert len(files) == OFFICE31_MANIFEST["n_images"]
    assert len(files) + len(folders) < _fetch._max_members(OFFICE31_MANIFEST) / 2
    assert sum(sizes) < _fetch._MAX_ARCHIVE_BYTES / 10
    assert max(sizes) < _fetch._MAX_MEMBER_BYTES / 50


# ------------------------------------------- concurrent fetches (item 18)
def test_concurrent_fetches_take_turns(server, dataset, tmp_path):
    base, handler = server
    handler.routes["/slow.tar.gz"] = (dataset["tar"](), "slow")
    home = tmp_path / "home"
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_office31(home, url=base + "/slow.tar.gz",
                                          manifest=dataset["manifest"], size=(4, 4),
                                          progress=False))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(results) == 2
    np.testing.assert_array_equal(results[0].data, results[1].data)
    assert handler.hits == ["/slow.tar.gz"]  # downloaded once
    assert _leftovers(home) == ["office31"]  # no archive, no lock file


# -------------------------------------- what a killed fetch left (item 19)
def test_leftovers_of_a_killed_fetch_are_cleaned(server, dataset, tmp_path):
    base, handler = server
    handler.routes["/slow.tar.gz"] = (dataset["tar"](), "slow")
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys; from skoffice31.datasets import fetch_office31; "
            "fetch_office31(sys.argv[1], url=sys.argv[2], manifest=sys.argv[3], "
            "progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(home),
                             base + "/slow.tar.gz", str(dataset["manifest"])])
    try:
        deadline = time.monotonic() + 60
        while not any(".tmp-" in n for n in os.listdir(home)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(30)
    assert any(".tmp-" in n for n in os.listdir(home))  # a partial download
    (home / ".office31-extract-old").mkdir()  # and an extraction, say
    (home / ".office31-extract-old" / "x.jpg").write_bytes(b"x")
    (home / "office31-archive-0123456789abcdef.tar.gz").write_bytes(b"other URL")
    handler.routes["/slow.tar.gz"] = (dataset["tar"](), "ok")
    b = fetch_office31(home, url=base + "/slow.tar.gz", manifest=dataset["manifest"],
                       size=(4, 4), progress=False)
    assert b.data.shape[0] == N_IMAGES
    assert _leftovers(home) == ["office31"]


def test_archive_of_another_url_is_not_reused(server, dataset, tmp_path):
    base, handler = server
    home = tmp_path / "home"
    home.mkdir()
    good = dataset["tar"]()
    # a complete archive left by a fetch of URL A that was killed before
    # extracting: reused for A, never for B
    left = home / _fetch._archive_name(base + "/a.tar.gz")
    left.write_bytes(good)
    handler.routes["/b.tar.gz"] = (good, "ok")
    fetch_office31(home, url=base + "/b.tar.gz", manifest=dataset["manifest"],
                   size=(4, 4), progress=False)
    assert handler.hits == ["/b.tar.gz"] and not left.exists()
    shutil.rmtree(home / "office31")
    left.write_bytes(good)
    fetch_office31(home, url=base + "/a.tar.gz", manifest=dataset["manifest"],
                   size=(4, 4), progress=False)
    assert handler.hits == ["/b.tar.gz"]  # A's archive reused, no download
    assert _leftovers(home) == ["office31"]
    assert _fetch._archive_name(base + "/a.tar.gz") != _fetch._archive_name(
        base + "/b.tar.gz")


def test_unwritable_data_home_is_named(tmp_path, dataset):
    home = tmp_path / "file_home"
    home.write_text("a file where a folder is expected")
    with pytest.raises(Office31FetchError, match="Cannot use the data home.*file_home"):
        fetch_office31(home, url="http://127.0.0.1:9/x.tar.gz",
                       manifest=dataset["manifest"], progress=False)


def test_read_only_copy_placed_by_hand_is_verified_each_time(dataset, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(dataset["src"], home / "office31")
    # the marker cannot be written: a folder where the file is expected
    (home / "office31" / ".skoffice31-verified").mkdir()
    dead = "http://127.0.0.1:9/never"
    for _ in range(2):
        b = fetch_office31(home, url=dead, manifest=dataset["manifest"], size=(4, 4))
        assert b.data.shape[0] == N_IMAGES
    assert (home / "office31" / ".skoffice31-verified").is_dir()
    assert not [p for p in (home / "office31").iterdir() if ".tmp-" in p.name]


def test_disk_full_while_extracting_keeps_the_archive(server, dataset, tmp_path,
                                                      monkeypatch):
    import builtins
    import errno

    base, handler = server
    handler.routes["/o.tar.gz"] = (dataset["tar"](), "ok")
    home = tmp_path / "home"
    real_open = builtins.open
    writes = []

    def full_open(file, mode="r", *args, **kwargs):
        if mode == "xb":  # the extracted images
            writes.append(file)
            if len(writes) > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(Office31FetchError, match="No space left(?s:.*)kept"):
        fetch_office31(home, url=base + "/o.tar.gz", manifest=dataset["manifest"],
                       progress=False)
    monkeypatch.setattr(builtins, "open", real_open)
    assert not (home / "office31").exists()
    assert _leftovers(home) == [_fetch._archive_name(base + "/o.tar.gz")]
    b = fetch_office31(home, url=base + "/o.tar.gz", manifest=dataset["manifest"],
                       size=(4, 4), progress=False)
    assert b.data.shape[0] == N_IMAGES
    assert handler.hits == ["/o.tar.gz"]  # the kept archive was used
    assert _leftovers(home) == ["office31"]
