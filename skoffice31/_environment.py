"""The package's environment settings, read one way.

Two kinds exist: on/off switches (``SKOFFICE31_KERNELS``,
``SKOFFICE31_DUAL``), on unless set to "0", "false", "no" or "off"; and
integers with a lower bound (``SKOFFICE31_UPDATE_THREADS``,
``SKOFFICE31_SPIN_US``, ``SKOFFICE31_WORKER_BLAS_THREADS``), their default
when unset or empty, and a :class:`ValueError` that names the variable, its
value and what to give otherwise.
"""

import os

_OFF = ("0", "false", "no", "off")


def switch_on(name):
    """Whether the environment variable ``name`` is unset or anything but
    "0", "false", "no" or "off" (any case, surrounding spaces ignored).

    Parameters
    ----------
    name : str

    Returns
    -------
    on : bool
    """
    return os.environ.get(name, "1").strip().lower() not in _OFF


def integer(name, *, minimum, default, hint):
    """The environment variable ``name`` as an int of at least ``minimum``.

    Parameters
    ----------
    name : str
        The variable.
    minimum : int
        The smallest value accepted.
    default : object
        Returned when the variable is unset or only spaces (need not be an
        int: None can mean "let the caller choose").
    hint : str
        What to give instead, ending the error message: it follows
        ``"NAME='value': "``.

    Returns
    -------
    value : int or ``default``

    Raises
    ------
    ValueError
        When the variable is set to anything but an integer >= ``minimum``.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{name}={text!r}: {hint}")
    return value
