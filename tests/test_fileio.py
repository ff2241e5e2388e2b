import os

import pytest

from skoffice31._fileio import TMP_MARK, atomic_open, atomic_path, atomic_write_text


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if TMP_MARK in p.name]


def test_atomic_write_replaces_the_file(tmp_path):
    dest = tmp_path / "results.csv"
    dest.write_text("old")
    atomic_write_text(dest, "a,b\r\n1,2\n")
    assert dest.read_bytes() == b"a,b\r\n1,2\n"
    assert _leftovers(tmp_path) == []


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    dest = tmp_path / "model.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(dest, "wb") as f:
            f.write(b"half of it")
            raise RuntimeError("disk full")
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_interrupt_removes_the_temporary(tmp_path):
    dest = tmp_path / "x.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(dest, suffix=".json") as tmp:
            assert tmp.name.endswith(".json") and tmp.parent == tmp_path
            raise KeyboardInterrupt
    assert not dest.exists()
    assert os.listdir(tmp_path) == []


def test_missing_folder_raises_before_writing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "no" / "such.txt", "x")


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        with atomic_open("x", "a"):
            pass
