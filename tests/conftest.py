"""Shared test configuration."""

import sys

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--without-numba", action="store_true",
        help="run as if numba were not installed (the pure NumPy path; CI runs both)",
    )


def pytest_configure(config):
    if config.getoption("--without-numba"):
        sys.modules["numba"] = None  # "import numba" now raises ImportError


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path_factory, monkeypatch):
    """Never let a test write into the user's ``~/skoffice31_data``."""
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path_factory.mktemp("skoffice31_data")))
