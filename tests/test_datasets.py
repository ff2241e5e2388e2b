"""Tests for skoffice31.datasets: load_office31, its cache, load_office_digits."""

import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skoffice31.datasets import (
    get_data_home,
    load_office31,
    load_office_digits,
)
from skoffice31.datasets import _office31

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "office31"

# Domain -> class -> number of images. dslr lacks "calculator", webcam lacks
# "back_pack" and has "desk_lamp": the class list must still be the union.
LAYOUT = {
    "amazon": {"back_pack": 3, "bike": 2, "calculator": 2},
    "dslr": {"back_pack": 2, "bike": 1},
    "webcam": {"bike": 2, "desk_lamp": 1},
}
DOMAINS = sorted(LAYOUT)
CLASSES = sorted({c for d in LAYOUT.values() for c in d})


def _colour(domain, cls, i):
    """Solid colour that encodes the labels of an image (robust to JPEG)."""
    return (20 + 60 * CLASSES.index(cls), 20 + 90 * DOMAINS.index(domain), 30 + 40 * i)


def _decode_labels(img):
    r, g, _ = img.reshape(-1, img.shape[-1]).mean(axis=0)
    return DOMAINS[int(round((g - 20) / 90))], CLASSES[int(round((r - 20) / 60))]


def make_office(root, with_images_level=True, size=(24, 20)):
    """Write a tiny Office-31 style folder; return the list of files."""
    files = []
    for dom, classes in LAYOUT.items():
        for cls, n in classes.items():
            folder = Path(root) / dom / ("images" if with_images_level else "") / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                p = folder / f"frame_{i + 1:04d}.jpg"
                Image.new("RGB", size, _colour(dom, cls, i)).save(p, quality=95)
                files.append(p)
    return files


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    """Never write into the user's home: point the data home at tmp_path."""
    home = tmp_path / "data_home"
    monkeypatch.setenv("SKOFFICE31_DATA", str(home))
    return home


@pytest.fixture
def office(tmp_path):
    root = tmp_path / "office"
    make_office(root)
    return root


@pytest.fixture
def count_decodes(monkeypatch):
    """Count the files decoded by load_office31 (0 when read from cache)."""
    calls = []
    real = _office31.read_images

    def spy(sources, **kw):
        calls.append(len(sources))
        return real(sources, **kw)

    monkeypatch.setattr(_office31, "read_images", spy)
    return calls


def _check_labels(bunch):
    """Every image's pixels and path agree with its (domain, object) labels."""
    for img, (dom, obj), fname in zip(bunch.images, bunch.target, bunch.filenames):
        assert _decode_labels(img) == (dom, obj)
        parts = Path(fname).parts
        assert parts[-2] == obj
        assert dom in parts[-4:-2]


# -------------------------------------------------------------- loading
def test_standard_layout(office):
    b = load_office31(office, size=(8, 6))
    n = sum(sum(c.values()) for c in LAYOUT.values())
    assert b.data.shape == (n, 8 * 6 * 3) and b.data.dtype == np.float32
    assert b.images.shape == (n, 6, 8, 3) and b.images.dtype == np.uint8
    np.testing.assert_allclose(b.data, b.images.reshape(n, -1) / 255.0, rtol=1e-6)
    assert b.target.shape == (n, 2)
    assert b.head_names == ("domain", "object")
    assert list(b.target_names["domain"]) == DOMAINS
    assert list(b.target_names["object"]) == CLASSES
    counts = Counter(map(tuple, b.target))
    assert counts == Counter({(d, c): k for d, cl in LAYOUT.items() for c, k in cl.items()})
    _check_labels(b)
    # sorted by domain, class, file name
    keys = [(d, c, Path(f).name) for (d, c), f in zip(b.target, b.filenames)]
    assert keys == sorted(keys)
    assert "Office-31" in b.DESCR


def test_layout_without_images_level(tmp_path, office):
    flat = tmp_path / "flat"
    make_office(flat, with_images_level=False)
    a = load_office31(office, size=(8, 6), cache=False)
    b = load_office31(flat, size=(8, 6), cache=False)
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(a.data, b.data)
    _check_labels(b)


def test_class_order_is_stable_across_domain_subsets(office):
    full = load_office31(office, size=(4, 4))
    for subset in (["dslr"], ["webcam", "amazon"], "webcam"):
        part = load_office31(office, size=(4, 4), domains=subset)
        assert list(part.target_names["object"]) == CLASSES
        assert list(part.target_names["domain"]) == DOMAINS
        wanted = [subset] if isinstance(subset, str) else subset
        mask = np.isin(full.target[:, 0], wanted)
        np.testing.assert_array_equal(part.target, full.target[mask])
        np.testing.assert_array_equal(part.data, full.data[mask])
        _check_labels(part)


def test_unusual_files(office):
    folder = office / "amazon" / "images" / "bike"
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, (20, 24, 3)).astype(np.uint8)
    Image.fromarray(rgb[..., 0], "L").save(folder / "gray.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(folder / "alpha.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).save(folder / "UPPER.JPG")
    big = folder / "whole.jpg"
    Image.fromarray(rng.randint(0, 256, (200, 200, 3)).astype(np.uint8)).save(big)
    (folder / "truncated.jpg").write_bytes(big.read_bytes()[:500])
    big.unlink()
    (folder / "text.jpg").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._frame_0001.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS fork
    (folder / "readme.txt").write_text("ignored")
    (office / ".DS_Store").write_bytes(b"junk")
    (office / "amazon" / ".DS_Store").write_bytes(b"junk")

    with pytest.warns(UserWarning) as rec:
        b = load_office31(office, size=(8, 6))
    msgs = [str(r.message) for r in rec if "decoded" in str(r.message)]
    assert len(msgs) == 1
    assert "truncated.jpg" in msgs[0] and "text.jpg" in msgs[0]
    assert ".DS_Store" not in msgs[0] and "._frame" not in msgs[0]
    names = {Path(f).name for f in b.filenames}
    assert {"gray.jpg", "alpha.png", "cmyk.jpg", "UPPER.JPG"} <= names
    assert not names & {"truncated.jpg", "text.jpg", ".DS_Store", "readme.txt",
                        "._frame_0001.jpg"}
    n = sum(sum(c.values()) for c in LAYOUT.values()) + 4
    assert b.data.shape[0] == b.target.shape[0] == len(b.filenames) == n
    for f, (dom, obj) in zip(b.filenames, b.target):
        assert Path(f).parent.name == obj
    # the warning comes again from the cache: skipped files are remembered
    with pytest.warns(UserWarning, match="truncated.jpg"):
        load_office31(office, size=(8, 6))


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="Expected layout"):
        load_office31(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Expected layout"):
        load_office31(tmp_path / "empty")
    # classes without images
    (tmp_path / "hollow" / "amazon" / "images" / "bike").mkdir(parents=True)
    with pytest.raises(ValueError, match="No images found.*Expected layout"):
        load_office31(tmp_path / "hollow")
    # files directly in the domain folder (one level missing)
    flat = tmp_path / "flat" / "amazon"
    flat.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(flat / "a.jpg")
    with pytest.raises(ValueError, match="Expected layout"):
        load_office31(tmp_path / "flat")


def test_single_domain_folder_is_rejected(office):
    with pytest.raises(ValueError, match="single domain"):
        load_office31(office / "amazon")


def test_unknown_domain_and_bad_params(office):
    with pytest.raises(ValueError, match="clipart.*available"):
        load_office31(office, domains=["amazon", "clipart"])
    with pytest.raises(ValueError, match="mode"):
        load_office31(office, mode="CMYK")
    with pytest.raises(ValueError, match="size"):
        load_office31(office, size=(0, 3))


def test_mode_l_and_size_none(office, tmp_path):
    b = load_office31(office, size=None, mode="L")
    assert b.images.shape[1:] == (20, 24, 1)
    assert b.data.shape[1] == 20 * 24
    odd = office / "webcam" / "images" / "bike" / "odd.jpg"
    Image.new("RGB", (10, 10)).save(odd)
    with pytest.raises(ValueError, match="one size"):
        load_office31(office, size=None)


def test_return_x_y_and_as_frame(office):
    X, y = load_office31(office, size=(4, 4), return_X_y=True)
    assert X.shape == (y.shape[0], 48) and y.shape[1] == 2
    b = load_office31(office, size=(4, 4), as_frame=True)
    assert list(b.target.columns) == ["domain", "object"]
    assert b.data.shape == X.shape and b.data.columns[0] == "pixel_0_0_R"
    np.testing.assert_array_equal(b.data.to_numpy(), X)
    assert b.frame.shape == (X.shape[0], 50)


# ---------------------------------------------------------------- cache
def test_data_home(tmp_path, monkeypatch, data_home):
    assert Path(get_data_home()) == data_home.resolve()
    assert data_home.is_dir()
    other = tmp_path / "other"
    assert Path(get_data_home(other)) == other.resolve()
    monkeypatch.delenv("SKOFFICE31_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    assert Path(get_data_home()) == (tmp_path / "fakehome" / "skoffice31_data").resolve()


def test_cache_is_used_and_written_atomically(office, data_home, count_decodes):
    a = load_office31(office, size=(8, 6))
    assert count_decodes == [sum(sum(c.values()) for c in LAYOUT.values())]
    cache_files = sorted((data_home / "cache").iterdir())
    assert len(cache_files) == 3  # one per domain
    assert all(p.suffix == ".npz" for p in cache_files)  # no temp files left
    b = load_office31(office, size=(8, 6))
    assert len(count_decodes) == 1  # nothing decoded the second time
    for k in ("data", "images", "target", "filenames"):
        np.testing.assert_array_equal(a[k], b[k])
    # a subset reuses the per-domain entries
    load_office31(office, size=(8, 6), domains=["dslr"])
    assert len(count_decodes) == 1


def test_cache_invalidation(office, data_home, count_decodes):
    load_office31(office, size=(8, 6))
    n0 = len(count_decodes)

    # same size and mode, other data home: not shared
    # a different size or mode: decoded again
    load_office31(office, size=(6, 6))
    load_office31(office, size=(8, 6), mode="L")
    assert len(count_decodes) == n0 + 2

    # a changed file (content and modification time): only its domain again
    p = office / "dslr" / "images" / "bike" / "frame_0001.jpg"
    Image.new("RGB", (24, 20), _colour("dslr", "back_pack", 3)).save(p)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = load_office31(office, size=(8, 6))
    assert count_decodes[-1] == 3  # the dslr images only
    row = list(b.filenames).index(str(p))
    assert _decode_labels(b.images[row]) == ("dslr", "back_pack")

    # an added file
    Image.new("RGB", (24, 20), _colour("webcam", "bike", 0)).save(
        office / "webcam" / "images" / "bike" / "frame_0100.jpg")
    b = load_office31(office, size=(8, 6))
    assert count_decodes[-1] == 4 and b.data.shape[0] == 14
    # a removed file
    (office / "amazon" / "images" / "bike" / "frame_0001.jpg").unlink()
    b = load_office31(office, size=(8, 6))
    assert count_decodes[-1] == 6 and b.data.shape[0] == 13
    n1 = len(count_decodes)
    load_office31(office, size=(8, 6))
    assert len(count_decodes) == n1


def test_corrupt_cache_is_rebuilt(office, data_home, count_decodes):
    a = load_office31(office, size=(8, 6))
    for p in (data_home / "cache").iterdir():
        p.write_bytes(b"garbage")
    b = load_office31(office, size=(8, 6))
    assert len(count_decodes) == 2
    np.testing.assert_array_equal(a.data, b.data)
    c = load_office31(office, size=(8, 6))
    assert len(count_decodes) == 2
    np.testing.assert_array_equal(a.data, c.data)


def test_cache_false_writes_nothing(office, data_home, tmp_path):
    load_office31(office, size=(8, 6), cache=False)
    assert not (data_home / "cache").exists()
    other = tmp_path / "explicit_home"
    load_office31(office, size=(8, 6), data_home=other)
    assert len(list((other / "cache").iterdir())) == 3


def test_moved_folder_gets_its_own_cache(office, tmp_path, count_decodes):
    a = load_office31(office, size=(8, 6))
    moved = tmp_path / "moved"
    shutil.copytree(office, moved)
    b = load_office31(moved, size=(8, 6))
    assert len(count_decodes) == 2
    assert str(moved) in b.filenames[0]
    np.testing.assert_array_equal(a.target, b.target)


# ------------------------------------------------------- office digits
def test_load_office_digits():
    b = load_office_digits()
    n = b.data.shape[0]
    assert n >= 1500
    assert b.data.dtype == np.float32 and b.data.shape == (n, 32 * 32 * 3)
    assert b.data.min() >= 0 and b.data.max() <= 1
    assert b.images.shape == (n, 32, 32, 3) and b.images.dtype == np.uint8
    assert b.head_names == ("domain", "object")
    assert set(b.keys()) >= {"data", "images", "target", "target_names",
                             "head_names", "filenames", "DESCR"}
    assert len(b.target_names["object"]) == 10
    assert len(b.target_names["domain"]) == 3
    assert set(b.target[:, 0]) == set(b.target_names["domain"])
    assert set(b.target[:, 1]) == set(b.target_names["object"])
    # every class in every domain
    assert len(set(map(tuple, b.target))) == 30
    assert "NOT Office-31" in b.DESCR and "stand-in" in b.DESCR
    # domains differ in style: mean colour differs between them
    means = [b.images[b.target[:, 0] == d].mean(axis=(0, 1, 2))
             for d in b.target_names["domain"]]
    assert min(np.abs(means[i] - means[j]).max()
               for i in range(3) for j in range(i + 1, 3)) > 10
    # labels agree with scikit-learn's digits
    from sklearn.datasets import load_digits

    digits = load_digits()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven",
             "eight", "nine"]
    for f, (_, obj) in zip(b.filenames[::50], b.target[::50]):
        assert names[digits.target[int(f.rsplit("_", 1)[1])]] == obj


def test_load_office_digits_is_deterministic_and_subsettable():
    a = load_office_digits(size=(16, 16))
    b = load_office_digits(size=(16, 16))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.target, b.target)
    web = load_office_digits(size=(16, 16), domains="webcam")
    mask = a.target[:, 0] == "webcam"
    np.testing.assert_array_equal(web.images, a.images[mask])
    assert list(web.target_names["domain"]) == list(a.target_names["domain"])
    X, y = load_office_digits(size=(12, 10), mode="L", return_X_y=True)
    assert X.shape == (a.data.shape[0], 120) and y.shape == (X.shape[0], 2)
    f = load_office_digits(size=(8, 8), as_frame=True)
    assert list(f.target.columns) == ["domain", "object"]
    with pytest.raises(ValueError, match="Unknown domain"):
        load_office_digits(domains=["amazon"])
    with pytest.raises(ValueError, match="size"):
        load_office_digits(size=(4, 4))


# ------------------------------------------------- real Office-31 data
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="Office-31 not in ../shared/data")
def test_real_office31(data_home):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no file may be skipped
        b = load_office31(REAL_DATA, size=(16, 16), n_jobs=2)
    assert b.data.shape == (4110, 16 * 16 * 3)
    assert Counter(b.target[:, 0]) == {"amazon": 2817, "dslr": 498, "webcam": 795}
    assert len(b.target_names["object"]) == 31
    assert list(b.target_names["domain"]) == ["amazon", "dslr", "webcam"]
    assert set(b.target[:, 1]) == set(b.target_names["object"])
    for f, (dom, obj) in zip(b.filenames, b.target):
        rel = Path(f).relative_to(REAL_DATA.resolve()).parts
        assert rel[0] == dom and rel[1] == "images" and rel[2] == obj
    # the same folder again: from the cache, identical
    c = load_office31(REAL_DATA, size=(16, 16))
    np.testing.assert_array_equal(b.images, c.images)
    np.testing.assert_array_equal(b.target, c.target)
    # a domain subset keeps the 31-class list
    d = load_office31(REAL_DATA, size=(16, 16), domains=["dslr"])
    assert d.data.shape[0] == 498
    assert list(d.target_names["object"]) == list(b.target_names["object"])


def test_data_equals_image_flattener_on_the_files(office):
    from skoffice31 import ImageFlattener

    b = load_office31(office, size=(8, 6), cache=False)
    t = ImageFlattener(size=(8, 6))
    np.testing.assert_array_equal(b.data, t.fit_transform(list(b.filenames)))
    assert list(b.feature_names) == list(t.get_feature_names_out())


def test_domain_with_only_broken_files(tmp_path):
    root = tmp_path / "broken"
    make_office(root)
    for p in (root / "dslr").rglob("*.jpg"):
        p.write_text("garbage")
    with pytest.warns(UserWarning, match="Skipped 3 file"):
        b = load_office31(root, size=(4, 4))
    assert "dslr" not in set(b.target[:, 0])
    assert list(b.target_names["domain"]) == DOMAINS
    _check_labels(b)
    with pytest.warns(UserWarning, match="Skipped 3 file"):
        with pytest.raises(ValueError, match="could be decoded"):
            load_office31(root, size=(4, 4), domains="dslr", cache=False)


def test_cache_of_deleted_folders_is_pruned(tmp_path, data_home):
    gone = tmp_path / "gone"
    make_office(gone)
    load_office31(gone, size=(4, 4))
    assert len(list((data_home / "cache").iterdir())) == 3
    shutil.rmtree(gone)
    from skoffice31._fileio import TMP_MARK

    cache = data_home / "cache"
    stale_tmp = cache / f".office31-x.npz{TMP_MARK}abc123"  # a killed writer's
    old_style = cache / "office31-x.npz.123.tmp"  # written by version 0.1
    fresh_tmp = cache / f".office31-y.npz{TMP_MARK}def456"  # a writer at work
    for p in (stale_tmp, old_style, fresh_tmp):
        p.write_bytes(b"half written")
    os.utime(stale_tmp, (1, 1))
    os.utime(old_style, (1, 1))
    kept = tmp_path / "kept"
    make_office(kept)
    load_office31(kept, size=(4, 4))
    left = sorted(cache.iterdir())
    assert not stale_tmp.exists() and not old_style.exists()
    assert sorted(p.name for p in left if p.suffix == ".npz") == sorted(
        p.name for p in left if p != fresh_tmp)
    assert len(left) == 4 and fresh_tmp.exists()


# ------------------------------------- an unusable cache (issue 11, item 10)
def _cache_warnings(rec):
    from skoffice31.datasets import CacheWarning

    return [r.message for r in rec if isinstance(r.message, CacheWarning)]


@pytest.mark.parametrize("where", ["cache_is_a_file", "data_home_is_a_file"])
def test_unusable_cache_folder_falls_back_with_one_warning(office, tmp_path, where):
    home = tmp_path / "home"
    if where == "cache_is_a_file":
        home.mkdir()
        blocked = home / "cache"
    else:
        blocked = home
    blocked.write_text("a file where a folder is expected")
    expected = load_office31(office, size=(8, 6), cache=False)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        b = load_office31(office, size=(8, 6), data_home=home)
    cw = _cache_warnings(rec)
    assert len(cw) == 1 and len(rec) == 1  # one warning, nothing else
    assert rec[0].filename == __file__  # it points at the caller's line
    assert cw[0].path == str((home / "cache").resolve())
    assert "loaded without the cache" in str(cw[0]) and str(home) in str(cw[0])
    assert cw[0].error.startswith(("NotADirectoryError", "FileExistsError"))
    np.testing.assert_array_equal(b.data, expected.data)
    np.testing.assert_array_equal(b.target, expected.target)
    assert blocked.read_text() == "a file where a folder is expected"


def test_cache_write_failure_keeps_the_images_and_leaves_no_temp_file(
        office, data_home, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_office31.np, "savez", full)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        b = load_office31(office, size=(8, 6))
    cw = _cache_warnings(rec)
    assert len(cw) == 1 and "No space left" in cw[0].error  # once, not per domain
    assert b.data.shape[0] == sum(sum(c.values()) for c in LAYOUT.values())
    assert list((data_home / "cache").iterdir()) == []  # no temporary files


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_data_home(office, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root is never refused a write (see the file-as-folder test)")
    home = tmp_path / "ro_home"
    home.mkdir()
    home.chmod(0o555)
    try:
        with pytest.warns(Warning) as rec:
            b = load_office31(office, size=(4, 4), data_home=home)
        assert len(_cache_warnings(rec)) == 1
        assert b.data.shape[0] == sum(sum(c.values()) for c in LAYOUT.values())
    finally:
        home.chmod(0o755)


def test_get_data_home_on_a_file_names_it(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder") as exc:
        get_data_home(f)
    assert exc.value.filename == str(f.resolve())


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unreadable_data_folder_error_names_it(office):
    if os.geteuid() == 0:
        pytest.skip("root can list any folder")
    office.chmod(0o000)
    try:
        with pytest.raises(PermissionError) as exc:
            load_office31(office, size=(4, 4))
        assert exc.value.filename == str(office.resolve())
    finally:
        office.chmod(0o755)


# ------------------------ failures to read are not cached (item 11)
def _skipped(rec):
    from skoffice31.datasets import SkippedFilesWarning

    return [r.message for r in rec if isinstance(r.message, SkippedFilesWarning)]


def test_unreadable_image_is_not_cached_as_skipped(office, count_decodes, monkeypatch):
    from skoffice31 import _pixels

    victim = office / "dslr" / "images" / "bike" / "frame_0001.jpg"
    real = _pixels._read_bytes

    def denied(path):
        if os.fspath(path) == str(victim):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(_pixels, "_read_bytes", denied)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        a = load_office31(office, size=(8, 6))
    (w,) = _skipped(rec)
    assert w.files == (str(victim),)
    assert "cannot be read" in w.reasons[0] and "Permission denied" in w.reasons[0]
    assert str(victim) not in a.filenames
    monkeypatch.setattr(_pixels, "_read_bytes", real)  # permissions fixed
    n = len(count_decodes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_office31(office, size=(8, 6))
    assert str(victim) in b.filenames  # read now, not skipped from the cache
    assert count_decodes[n:] == [3]  # only dslr, the domain that had failed
    assert b.data.shape[0] == a.data.shape[0] + 1
    load_office31(office, size=(8, 6))
    assert len(count_decodes) == n + 1  # and then it is cached


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unreadable_image_permissions(office):
    if os.geteuid() == 0:
        pytest.skip("root reads any file (see the monkeypatched test)")
    victim = office / "dslr" / "images" / "bike" / "frame_0001.jpg"
    victim.chmod(0o000)
    with pytest.warns(UserWarning, match="cannot be read"):
        load_office31(office, size=(8, 6))
    victim.chmod(0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_office31(office, size=(8, 6))
    assert str(victim) in b.filenames


def test_reasons_tell_decoding_from_reading(tmp_path):
    from skoffice31 import _pixels

    bad = tmp_path / "text.jpg"
    bad.write_text("not an image")
    with pytest.raises(_pixels.ImageDecodeError, match="text.jpg"):
        _pixels.read_image(bad, (4, 4), "RGB", 0)
    with pytest.raises(_pixels.ImageReadError, match="does not exist"):
        _pixels.read_image(tmp_path / "gone.jpg", (4, 4), "RGB", 0)
    with pytest.raises(_pixels.ImageReadError, match="IsADirectoryError"):
        _pixels.read_image(tmp_path, (4, 4), "RGB", 0)
    _, ok, errors = _pixels.read_images(
        [bad, tmp_path / "gone.jpg"], size=(4, 4), mode="RGB",
        resample="bilinear", on_error="skip")
    assert not ok.any()
    assert errors[0][1] is True and "decoded" in errors[0][0]
    assert errors[1][1] is False and "does not exist" in errors[1][0]


# ---------------- odd names, symbolic links, empty domains (items 12-14)
def test_file_name_that_is_not_utf8_is_loaded(office, count_decodes):
    folder = os.fsencode(office / "amazon" / "images" / "bike")
    raw = os.path.join(folder, b"caf\xe9.jpg")
    Image.new("RGB", (24, 20), _colour("amazon", "bike", 0)).save(raw, format="JPEG")
    for cache in (False, True, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            b = load_office31(office, size=(8, 6), cache=cache)
        names = [os.fsencode(f) for f in b.filenames]
        assert raw in names
        _check_labels(b)
    assert len(count_decodes) == 2  # the third load came from the cache
    # the file name can be used to open the file again
    row = names.index(raw)
    assert Path(b.filenames[row]).is_file()


def test_folder_name_that_is_not_utf8_is_skipped_and_named(office):
    bad = os.path.join(os.fsencode(office / "webcam" / "images"), b"d\xe9sk")
    os.mkdir(bad)
    Image.new("RGB", (8, 8)).save(os.path.join(bad, b"a.jpg"), format="JPEG")
    with pytest.warns(UserWarning) as rec:
        b = load_office31(office, size=(8, 6))
    (w,) = _skipped(rec)
    assert [os.fsencode(f) for f in w.files] == [bad]
    assert "UTF-8" in w.reasons[0]
    str(w).encode("utf-8")  # the message can be printed
    assert "d\\xe9sk" in str(w)
    assert list(b.target_names["object"]) == CLASSES
    _check_labels(b)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symbolic_links_are_skipped_and_named(office, tmp_path):
    expected = load_office31(office, size=(8, 6), cache=False)
    bike = office / "amazon" / "images" / "bike"
    (bike / "loop.jpg").symlink_to("loop.jpg")
    (bike / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (office / "again").symlink_to(office)  # a phantom copy of every domain
    (office / "webcam" / "images" / "up").symlink_to(office / "webcam")
    (office / "spin").symlink_to("spin")
    with pytest.warns(UserWarning) as rec:
        b = load_office31(office, size=(8, 6))
    (w,) = _skipped(rec)
    why = dict(zip(w.files, w.reasons))
    assert set(why) == {str(bike / "loop.jpg"), str(bike / "dangling.jpg"),
                        str(office / "again"), str(office / "webcam" / "images" / "up"),
                        str(office / "spin")}
    assert "loop" in why[str(bike / "loop.jpg")]
    assert "loop" in why[str(office / "spin")]
    assert "dangling" in why[str(bike / "dangling.jpg")]
    assert "parent folder" in why[str(office / "again")]
    assert "parent folder" in why[str(office / "webcam" / "images" / "up")]
    np.testing.assert_array_equal(b.target, expected.target)
    np.testing.assert_array_equal(b.data, expected.data)
    assert list(b.target_names["domain"]) == DOMAINS
    assert list(b.target_names["object"]) == CLASSES


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_linked_domain_and_image_outside_the_folder_are_loaded(office, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(office / "dslr", outside)
    (office / "dslr").symlink_to(outside)
    img = office / "webcam" / "images" / "bike" / "frame_0002.jpg"
    shutil.move(img, tmp_path / "far.jpg")
    img.symlink_to(tmp_path / "far.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_office31(office, size=(8, 6))
    assert Counter(b.target[:, 0]) == {d: sum(c.values()) for d, c in LAYOUT.items()}
    _check_labels(b)


def test_empty_domain_and_empty_domain_list(office):
    (office / "clipart" / "images" / "bike").mkdir(parents=True)
    (office / "clipart" / "images" / "bike" / "notes.txt").write_text("no image")
    b = load_office31(office, size=(4, 4))
    assert list(b.target_names["domain"]) == DOMAINS  # clipart is not offered
    with pytest.raises(ValueError, match="'clipart' has no images"):
        load_office31(office, size=(4, 4), domains="clipart")
    with pytest.raises(ValueError, match=r"domains=\[\] selects no domain"):
        load_office31(office, size=(4, 4), domains=[])
    with pytest.raises(ValueError, match="domain names"):
        load_office31(office, size=(4, 4), domains=[1])
    shutil.rmtree(office / "dslr")
    with pytest.raises(ValueError, match=r"Unknown domain 'dslr'.*available: "
                                         r"\['amazon', 'webcam'\]"):
        load_office31(office, size=(4, 4), domains="dslr")


# ------------------------------------------------------------------ shuffle


@pytest.mark.parametrize("loader", ["digits", "office31"])
def test_shuffle_permutes_every_array_alike(office, loader):
    if loader == "digits":
        def load(**kw):
            return load_office_digits(size=8, **kw)
    else:
        def load(**kw):
            return load_office31(office, size=(8, 8), cache=False, **kw)
    plain = load()
    # sorted by domain by default: the reason every CV in the docs shuffles
    doms = list(plain.target[:, 0])
    assert doms == sorted(doms)
    a = load(shuffle=True, random_state=0)
    b = load(shuffle=True, random_state=0)
    c = load(shuffle=True, random_state=1)
    assert np.array_equal(a.target, b.target) and not np.array_equal(a.target, c.target)
    assert list(a.target[:, 0]) != sorted(a.target[:, 0])
    order = [list(plain.filenames).index(f) for f in a.filenames]
    assert sorted(order) == list(range(len(order)))
    assert np.array_equal(a.images, plain.images[order])
    assert np.array_equal(a.data, plain.data[order])
    assert np.array_equal(a.target, plain.target[order])
    X, y = load(shuffle=True, random_state=0, return_X_y=True)
    assert np.array_equal(X, a.data) and np.array_equal(y, a.target)
    frame = load(shuffle=True, random_state=0, as_frame=True)
    assert np.array_equal(frame.target.to_numpy(), a.target)
    assert list(frame.target.columns) == ["domain", "object"]


def test_shuffle_random_state_instance():
    rng = np.random.RandomState(5)
    a = load_office_digits(size=8, shuffle=True, random_state=rng)
    expected = np.random.RandomState(5).permutation(len(a.target))
    plain = load_office_digits(size=8)
    assert np.array_equal(a.target, plain.target[expected])


def test_as_frame_target_names_the_heads_of_a_model():
    """The loader's target, as returned with ``as_frame=True``, names the heads."""
    from skoffice31 import MultiHeadMLPClassifier

    X, y = load_office_digits(size=8, as_frame=True, return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=1, random_state=0).fit(X, y)
    assert clf.head_names_ == ("domain", "object")
