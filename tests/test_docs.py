"""Build the Sphinx documentation with warnings as errors.

The gallery's examples are rendered without being run (``plot_gallery=0``):
tests/test_examples.py runs them. The build is offline
(``SKOFFICE31_DOCS_OFFLINE=1``): intersphinx reads no inventory from the web,
see docs/conf.py.
"""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _public_objects():
    """Every name in the ``__all__`` of the public modules."""
    names = []
    for module in ("skoffice31", "skoffice31.datasets", "skoffice31.metrics",
                   "skoffice31.callbacks", "skoffice31.study", "skoffice31.parallel",
                   "skoffice31.persistence", "skoffice31.prediction", "skoffice31.transfer",
                   "skoffice31.adaptation", "skoffice31.augmentation"):
        mod = importlib.import_module(module)
        names += [f"{module}.{n}" for n in mod.__all__ if not n.startswith("_")]
    return names


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    for mod in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(mod)
    tmp_path = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, MPLBACKEND="Agg", SKOFFICE31_DOCS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-D", "plot_gallery=0", "-d", str(tmp_path / "doctrees"), str(DOCS),
           str(tmp_path / "html")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    return tmp_path / "html"


def test_docs_build(html):
    for page in ["index.html", "install.html", "two_heads.html", "study.html", "cli.html",
                 "api.html", "performance.html", "auto_examples/index.html"]:
        assert (html / page).is_file(), page
    cli_page = (html / "cli.html").read_text(encoding="utf-8")
    assert "--preset" in cli_page  # the --help texts are included
    assert "pydata-sphinx-theme" in (html / "index.html").read_text(encoding="utf-8")


def test_a_page_per_public_object(html):
    api = (html / "api.html").read_text(encoding="utf-8")
    for name in _public_objects():
        page = html / "gen_modules" / f"{name}.html"
        assert page.is_file(), f"{name} has no page in the API reference"
        assert f"gen_modules/{name}.html" in api, f"api.rst does not link {name}"


def test_class_pages_render_every_public_method(html):
    page = (html / "gen_modules" / "skoffice31.MultiHeadMLPClassifier.html").read_text(
        encoding="utf-8")
    for method in ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba",
                   "score", "score_heads", "get_params", "set_params"):
        assert f'id="skoffice31.MultiHeadMLPClassifier.{method}"' in page, method
    # the numpydoc sections of a method are rendered, not only its summary
    fit = page[page.index('id="skoffice31.MultiHeadMLPClassifier.partial_fit"'):]
    fit = fit[:fit.index('</dd></dl>')]
    assert "Parameters" in fit and "Returns" in fit and "classes" in fit
    flattener = (html / "gen_modules" / "skoffice31.ImageFlattener.html").read_text(
        encoding="utf-8")
    for method in ("fit", "transform", "fit_transform", "inverse_transform"):
        assert f'id="skoffice31.ImageFlattener.{method}"' in flattener, method
    scorer = (html / "gen_modules" / "skoffice31.metrics.HeadAccuracyScorer.html").read_text(
        encoding="utf-8")
    for method in ("__call__", "set_score_request"):
        assert f'id="skoffice31.metrics.HeadAccuracyScorer.{method}"' in scorer, method


def test_the_study_and_the_data_are_cited(html):
    index = (html / "index.html").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in (index, readme):
        assert "Academy.ALZZA" in text and "chapter 6" in text
        assert "Saenko" in text and "ECCV 2010" in text


def test_html_repr_links_to_the_api_pages(html):
    from skoffice31 import ImageFlattener, MultiHeadMLPClassifier

    for est in (MultiHeadMLPClassifier(), ImageFlattener()):
        link = est._get_doc_link()
        assert link, type(est).__name__
        assert f'href="{link}"' in est._repr_html_()
        # relative to the example pages, where the gallery shows the reprs
        assert (html / "auto_examples" / link).resolve().is_file(), link


def test_code_blocks_are_not_narrowed(html):
    """The theme's text column is widened (docs/_static/skoffice31.css)."""
    css = (html / "_static" / "skoffice31.css").read_text(encoding="utf-8")
    assert re.search(r"\.bd-article-container\s*\{\s*max-width:\s*100%", css)
    assert "skoffice31.css" in (html / "cli.html").read_text(encoding="utf-8")


def test_intersphinx_links_when_an_inventory_is_there(tmp_path, monkeypatch):
    """Offline, a local inventory (docs/_intersphinx/<name>.inv) makes links."""
    pytest.importorskip("sphinx")
    import runpy
    import zlib

    monkeypatch.setenv("SKOFFICE31_DOCS_OFFLINE", "1")
    conf = runpy.run_path(str(DOCS / "conf.py"))
    body = ("sklearn.model_selection.GridSearchCV py:class 1 "
            "modules/generated/sklearn.model_selection.GridSearchCV.html#$ -\n")
    (tmp_path / "sklearn.inv").write_bytes(
        b"# Sphinx inventory version 2\n# Project: scikit-learn\n# Version: 1.9\n"
        b"# The remainder of this file is compressed using zlib.\n"
        + zlib.compress(body.encode()))
    mapping = conf["_intersphinx_mapping"](True, tmp_path)
    assert mapping == {"sklearn": ("https://scikit-learn.org/stable/",
                                   (str(tmp_path / "sklearn.inv"),))}
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"extensions = ['sphinx.ext.intersphinx']\nintersphinx_mapping = {mapping!r}\n")
    (src / "index.rst").write_text("T\n=\n\nSee :class:`sklearn.model_selection.GridSearchCV`.\n")
    res = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src),
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert ("https://scikit-learn.org/stable/modules/generated/"
            "sklearn.model_selection.GridSearchCV.html") in out


def test_intersphinx_mapping_offline_and_online(monkeypatch):
    """Offline only local inventories are used; online the web comes first."""
    import runpy

    monkeypatch.setenv("SKOFFICE31_DOCS_OFFLINE", "1")
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert set(conf["INTERSPHINX"]) >= {"sklearn", "numpy", "scipy", "joblib", "dask"}
    offline = conf["_intersphinx_mapping"](True)
    online = conf["_intersphinx_mapping"](False)
    assert set(online) == set(conf["INTERSPHINX"])
    for name, (url, locations) in online.items():
        assert url == conf["INTERSPHINX"][name] and locations[0] is None
    local = conf["LOCAL_INVENTORIES"]
    assert set(offline) == {n for n in conf["INTERSPHINX"] if (local / f"{n}.inv").is_file()}
