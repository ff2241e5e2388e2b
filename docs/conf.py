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
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "gen_modules/*.txt", "sg_execution_times.rst", "**/sg_execution_times.rst"]
templates_path = []
root_doc = "index"

# autosummary writes one page per documented object into gen_modules/.
autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "backreferences_dir": None,
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
}

html_theme = "alabaster"
html_theme_options = {
    "description": "Multi-head neural networks the scikit-learn way",
    "fixed_sidebar": True,
}
html_static_path = []
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


def setup(app):
    app.connect("builder-inited", _write_cli_help)
