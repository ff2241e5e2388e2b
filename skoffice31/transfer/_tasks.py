"""The transfer tasks: which domain is the source, which the target."""

__all__ = ["BUILTIN_DOMAINS", "OFFICE31_DOMAINS", "OFFICE31_TASKS", "check_task", "task_label",
           "transfer_tasks"]

#: Office-31's domains, with the letters of the literature's task names.
OFFICE31_DOMAINS = {"amazon": "A", "dslr": "D", "webcam": "W"}

#: The built-in :func:`~skoffice31.datasets.load_office_digits` styles that
#: stand in for Office-31's domains (``product`` for ``amazon``).
BUILTIN_DOMAINS = {"product": "P", "dslr": "D", "webcam": "W"}

#: The six Office-31 tasks (source, target), in the literature's order:
#: A->W, D->W, W->D, A->D, D->A, W->A.
OFFICE31_TASKS = (
    ("amazon", "webcam"),
    ("dslr", "webcam"),
    ("webcam", "dslr"),
    ("amazon", "dslr"),
    ("dslr", "amazon"),
    ("webcam", "amazon"),
)

_AS_BUILTIN = {"amazon": "product", "dslr": "dslr", "webcam": "webcam"}


def task_label(source, target):
    """``"A->W"`` for ``("amazon", "webcam")``; ``"P->W"`` on the built-in data.

    Domains outside Office-31 and the built-in data keep their names
    (``"studio->phone"``).
    """
    letters = {**OFFICE31_DOMAINS, **BUILTIN_DOMAINS}
    return f"{letters.get(source, source)}->{letters.get(target, target)}"


def check_task(source, target, domains):
    """Raise a clear ``ValueError`` unless ``source -> target`` is a task of ``domains``.

    Parameters
    ----------
    source, target : str
        Domain names.
    domains : sequence of str
        The domains present in the data.
    """
    known = sorted(str(d) for d in domains)
    for role, name in (("source", source), ("target", target)):
        if name not in known:
            raise ValueError(f"unknown {role} domain {name!r}: the data has the domains "
                             f"{', '.join(known)}")
    if source == target:
        raise ValueError(f"the source and the target are both {source!r}: transfer needs "
                         "two different domains")


def transfer_tasks(domains, source=None, target=None):
    """The (source, target) pairs to run on data with these domains.

    Parameters
    ----------
    domains : sequence of str
        The domains present in the data (Office-31's ``amazon``, ``dslr``,
        ``webcam``, the built-in ``product``, ``dslr``, ``webcam``, or others).
    source, target : str or None, default=None
        One task; both ``None`` gives all tasks: Office-31's six
        (:data:`OFFICE31_TASKS`, with ``product`` for ``amazon`` on the
        built-in data), or every ordered pair of other domains.

    Returns
    -------
    tasks : list of (str, str)

    Examples
    --------
    >>> from skoffice31.transfer import transfer_tasks
    >>> transfer_tasks(["amazon", "dslr", "webcam"])[:2]
    [('amazon', 'webcam'), ('dslr', 'webcam')]
    >>> transfer_tasks(["dslr", "product", "webcam"], "product", "dslr")
    [('product', 'dslr')]
    """
    domains = [str(d) for d in domains]
    if (source is None) != (target is None):
        raise ValueError("give both a source and a target domain, or neither for all tasks")
    if source is not None:
        check_task(source, target, domains)
        return [(source, target)]
    present = set(domains)
    if present == set(OFFICE31_DOMAINS):
        return list(OFFICE31_TASKS)
    if present == set(BUILTIN_DOMAINS):
        return [(_AS_BUILTIN[s], _AS_BUILTIN[t]) for s, t in OFFICE31_TASKS]
    if len(present) < 2:
        raise ValueError(f"transfer needs at least two domains, the data has "
                         f"{', '.join(sorted(present)) or 'none'}")
    ordered = sorted(present)
    return [(s, t) for s in ordered for t in ordered if s != t]
