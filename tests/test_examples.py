"""Run every example of examples/ (sphinx-gallery scripts) as a script."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


def test_examples_exist():
    names = {p.stem for p in EXAMPLES}
    assert {"plot_reproduce_study", "plot_pipeline_image_flattener",
            "plot_persistence_and_prediction", "plot_transfer_new_domain"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    env = dict(os.environ)
    # Agg: no display; one BLAS thread per process: the examples' small
    # matrices gain nothing from more and a busy machine loses a lot.
    env.update({"MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1"})
    repo = str(path.parents[1])
    env["PYTHONPATH"] = os.pathsep.join([repo, env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    # the sphinx-gallery form: a docstring title
    text = path.read_text(encoding="utf-8")
    assert text.startswith('"""') and "\n====" in text.split('"""')[1]
