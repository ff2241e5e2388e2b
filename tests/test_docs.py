"""Build the Sphinx documentation with warnings as errors.

The gallery's examples are rendered without being run (``plot_gallery=0``):
tests/test_examples.py runs them.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build(tmp_path):
    for mod in ("sphinx", "numpydoc", "sphinx_gallery"):
        pytest.importorskip(mod)
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([str(DOCS.parent), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-D", "plot_gallery=0", "-d", str(tmp_path / "doctrees"), str(DOCS),
           str(tmp_path / "html")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    html = tmp_path / "html"
    for page in ["index.html", "install.html", "two_heads.html", "study.html", "cli.html",
                 "api.html", "performance.html", "auto_examples/index.html"]:
        assert (html / page).is_file(), page
    assert (html / "gen_modules" / "skoffice31.MultiHeadMLPClassifier.html").is_file()
    cli_page = (html / "cli.html").read_text(encoding="utf-8")
    assert "--preset" in cli_page  # the --help texts are included
