"""Shared test configuration."""

import pytest


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path_factory, monkeypatch):
    """Never let a test write into the user's ``~/skoffice31_data``."""
    monkeypatch.setenv("SKOFFICE31_DATA", str(tmp_path_factory.mktemp("skoffice31_data")))
