"""Sphinx configuration of the skoffice31 documentation.

Build with ``python3 -m sphinx -W -b html docs docs/_build/html`` (runs the
examples of the gallery; add ``-D plot_gallery=0`` to only render them).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import skoffice31  # noqa: E402

project = "skoffice31"
author = "the skoffice31 developers"
copyright = "2026, the skoffice31 developers"
release = skoffice31.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "gen_modules/*.txt", "gen_modules/backreferences/*", "sg_execution_times.rst", "**/sg_execution_times.rst"]
templates_path = ["_templates"]
root_doc = "index"

# autosummary writes one page per public object into gen_modules/, with the
# templates of _templates/: a class page lists the class's public
# methods in a table, then renders each method's numpydoc in full.
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
autodoc_typehints = "none"  # the numpydoc sections say the types
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- intersphinx --------------------------------------------------------------
# Links to the other projects' documentation. Sphinx reads each project's
# objects.inv: first from the web, then from docs/_intersphinx/<name>.inv when
# such a copy is there. Offline (no DNS for the first host, or
# SKOFFICE31_DOCS_OFFLINE=1, as tests/test_docs.py sets) only the local copies
# are used and a project without one is left out, so that ``sphinx -W`` still
# builds: its references then render as code without a link (nothing warns,
# since the build is not nitpicky). Online, an unreachable inventory is a
# warning, hence an error under -W, as it should be for a release build.
INTERSPHINX = {
    "python": "https://docs.python.org/3/",
    "sklearn": "https://scikit-learn.org/stable/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "joblib": "https://joblib.readthedocs.io/en/stable/",
    "dask": "https://docs.dask.org/en/stable/",
    "distributed": "https://distributed.dask.org/en/stable/",
}
LOCAL_INVENTORIES = HERE / "_intersphinx"


def _offline():
    flag = os.environ.get("SKOFFICE31_DOCS_OFFLINE", "")
    if flag:
        return flag not in ("0", "false", "no")
    import socket

    try:
        socket.getaddrinfo("scikit-learn.org", 443)
    except OSError:
        return True
    return False


def _intersphinx_mapping(offline, folder=LOCAL_INVENTORIES):
    mapping = {}
    for name, url in INTERSPHINX.items():
        local = Path(folder) / f"{name}.inv"
        locations = ([] if offline else [None]) + ([str(local)] if local.is_file() else [])
        if locations:
            mapping[name] = (url, tuple(locations))
    return mapping


intersphinx_mapping = _intersphinx_mapping(_offline())
intersphinx_timeout = 10

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    # "Examples using X" at the foot of each API page
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skoffice31",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
}

# -- HTML: the pydata theme, as scikit-learn and imbalanced-learn use -------
html_theme = "pydata_sphinx_theme"
html_title = f"skoffice31 {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# The left sidebar lists a section's sub-pages; the user-guide pages have
# none, so they give its width to the text (code blocks, the CLI help).
html_sidebars = {
    page: [] for page in ("index", "install", "two_heads", "study", "cli",
                          "performance", "scaling_out")
}
toc_object_entries_show_parents = "hide"  # "fit()" in a page's contents, not "Class.fit()"
html_static_path = ["_static"]
html_css_files = ["skoffice31.css"]  # a wider text column: no cut-off code blocks
suppress_warnings = ["config.cache"]


def _write_cli_help(app):
    """Write the ``--help`` of each command to gen_modules/ for cli.rst."""
    from skoffice31.cli import build_parser

    out = HERE / "gen_modules"
    out.mkdir(exist_ok=True)
    os.environ["COLUMNS"] = "88"
    parser = build_parser()
    texts = {"skoffice31": parser.format_help()}
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in subparsers.choices.items():
        texts[name] = sub.format_help()
    for name, text in texts.items():
        path = out / f"cli_{name}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _text_for_sklearn_references(app, env, node, contnode):
    """Render an unresolved reference of scikit-learn's docstrings as text.

    Inherited methods (``set_params``, ``set_output``, ``set_fit_request``,
    ...) carry scikit-learn's docstrings, whose ``:ref:`` and ``:term:``
    targets live in scikit-learn's documentation. intersphinx resolves them
    when the inventory is there (this handler runs after it); offline they
    become plain text instead of a warning. References in skoffice31's own
    text are left alone, so a broken one still fails the -W build.
    """
    if node.get("refdomain") != "std":
        return None
    source = node.source or getattr(node.parent, "source", None) or ""
    if "/sklearn/" in source.replace(os.sep, "/"):
        return contnode
    return None


def setup(app):
    app.connect("builder-inited", _write_cli_help)
    app.connect("missing-reference", _text_for_sklearn_references, priority=900)
