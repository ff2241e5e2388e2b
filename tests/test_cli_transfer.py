"""Tests of ``skoffice31 transfer`` on the built-in data (8x8 images, tiny networks)."""

import csv
import json
import sys

import pytest

from skoffice31 import cli

TINY = ["--size", "8", "--hidden", "16", "--epochs", "2", "--few-epochs", "2", "-q"]
ONE = ["--source", "product", "--target", "dslr", "--shots", "0,1", "--seeds", "1"]


def run(capsys, *args):
    code = cli.main(["transfer", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_one_task_table_files_and_rows(tmp_path, capsys):
    code, out, err = run(capsys, *ONE, *TINY, "--out", tmp_path)
    assert code == 0, err
    assert "| task | method | k=0 | k=1 |" in out
    assert "| P->D | source only |" in out and "| P->D | fine-tune output |" in out
    with open(tmp_path / "transfer.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    methods = {(r["k"], r["method"]) for r in rows}
    assert ("0", "source only") in methods and ("1", "target only") in methods
    assert ("0", "target only") not in methods  # needs labelled target images
    assert ("0", "adversarial") in methods and ("1", "pooled") in methods
    assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
    doc = json.loads((tmp_path / "transfer.json").read_text())
    assert doc["command"][:2] == ["skoffice31", "transfer"] and "partial" not in doc
    assert doc["settings"]["shots"] == [0, 1] and len(doc["results"]) == len(rows)
    assert "transfer.csv" in out and str(tmp_path) in out


def test_skada_rows_when_skada_is_installed(tmp_path, capsys):
    pytest.importorskip("skada")
    code, out, err = run(capsys, *ONE, *TINY, "--out", tmp_path)
    assert code == 0, err
    assert "| P->D | CORAL + ours |" in out and "| P->D | CORAL + adversarial |" in out
    assert "skoffice31[skada]" not in out + err


def test_skada_rows_omitted_with_one_line_without_skada(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "skada", None)  # "import skada" now fails
    code, out, err = run(capsys, *ONE, *TINY, "--out", tmp_path)
    assert code == 0, err
    assert "| P->D | CORAL" not in out
    hint = [line for line in (out + err).splitlines() if "skoffice31[skada]" in line]
    assert len(hint) == 1 and "pip install" in hint[0]


def test_progress_lines_on_stderr(tmp_path, capsys):
    code, out, err = run(capsys, *ONE, *[a for a in TINY if a != "-q"], "--methods",
                         "source only,pooled", "--out", tmp_path)
    assert code == 0
    assert "fit 1/3 done: P->D k=0 seed 0 source only - target accuracy" in err
    assert "fit 3/3 done: P->D k=1 seed 0 pooled" in err
    assert "epoch 2/2" in err


def test_figure_skipped_with_one_line_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    code, out, err = run(capsys, *ONE, *TINY, "--methods", "source only", "--out", tmp_path)
    assert code == 0, err
    assert not (tmp_path / "transfer.png").exists()
    assert [line for line in (out + err).splitlines() if "skoffice31[plot]" in line]


@pytest.mark.parametrize("args, message", [
    (["--source", "amazon", "--target", "dslr"],
     "unknown source domain 'amazon': the data has the domains dslr, product, webcam"),
    (["--source", "dslr", "--target", "dslr"], "the source and the target are both 'dslr'"),
    (["--source", "dslr"], "give both --source and --target"),
    (["--task", "all", "--source", "dslr", "--target", "webcam"],
     "--task all runs every task: leave out --source and --target"),
    (["--shots", "0,-1"], "bad --shots '0,-1'"),
    (["--shots", "0,x"], "bad --shots '0,x'"),
    (["--shots", "0,50"], "50 labelled target images per class is too many"),
    (["--seeds", "0"], "bad --seeds 0"),
    (["--methods", "source only,magic"], "unknown method 'magic'"),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    code, out, err = run(capsys, *args, *TINY, "--out", tmp_path / "o")
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
