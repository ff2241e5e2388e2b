"""The package's environment settings (skoffice31._environment)."""

import pytest

from skoffice31 import _environment, parallel

NAME = "SKOFFICE31_TEST_SETTING"


@pytest.mark.parametrize("value", [None, "", "1", "yes", "On", " true "])
def test_switch_is_on(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert _environment.switch_on(NAME)


@pytest.mark.parametrize("value", ["0", "false", "NO", " off "])
def test_switch_is_off(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert not _environment.switch_on(NAME)


@pytest.mark.parametrize("value, expected", [(None, "unset"), ("", "unset"), ("  ", "unset"),
                                             ("3", 3), (" 7 ", 7), ("2", 2)])
def test_integer(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert _environment.integer(NAME, minimum=2, default="unset", hint="h") == expected


@pytest.mark.parametrize("value", ["1", "-3", "two", "2.5", "0x10"])
def test_integer_names_the_variable_value_and_hint(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    message = f"{NAME}={value!r}: give two or more"
    with pytest.raises(ValueError) as info:
        _environment.integer(NAME, minimum=2, default=None, hint="give two or more")
    assert str(info.value) == message


def test_worker_blas_threads_setting(monkeypatch):
    monkeypatch.delenv(parallel.BLAS_THREADS_ENV, raising=False)
    assert parallel._default_blas_threads() == 1
    monkeypatch.setenv(parallel.BLAS_THREADS_ENV, "3")
    assert parallel._default_blas_threads() == 3
    for bad in ("0", "many"):
        monkeypatch.setenv(parallel.BLAS_THREADS_ENV, bad)
        with pytest.raises(ValueError, match="SKOFFICE31_WORKER_BLAS_THREADS=.*positive number"):
            parallel._default_blas_threads()
