"""The ``skoffice31 transfer`` runs that docs/transfer.rst quotes, on the real Office-31.

Each run is the command line itself (:func:`skoffice31.cli.main`), written to
``benchmarks/results/transfer_<name>/`` (``transfer.csv``, ``transfer.json``
with the wall time and the machine, ``transfer.png``, and ``stdout.txt``, the
table as printed)::

    python benchmarks/transfer_runs.py --data ../shared/data/office31            # all runs
    python benchmarks/transfer_runs.py --data ../shared/data/office31 --run cli  # one

Runs:

- ``cli``: the six tasks, k in {0, 3}, 3 seeds, every method, the default
  16x16 images (the 10-minute target of the transfer table);
- ``size32``: the same at 32x32 (why 16x16 is the default);
- ``pca``: the same without the per-image standardisation
  (``--features pca``: why ``standardized`` is the default).
"""

import argparse
import contextlib
import io
import sys
from pathlib import Path

from skoffice31 import cli

RESULTS = Path(__file__).resolve().parent / "results"

RUNS = {
    "cli": ["--task", "all", "--shots", "0,3", "--seeds", "3"],
    "size32": ["--task", "all", "--shots", "0,3", "--seeds", "3", "--size", "32"],
    "pca": ["--task", "all", "--shots", "0,3", "--seeds", "3", "--features", "pca"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Office-31 folder")
    parser.add_argument("--run", choices=list(RUNS), action="append",
                        help="run only these (default: all)")
    args = parser.parse_args(argv)
    for name in args.run or RUNS:
        out = RESULTS / f"transfer_{name}"
        command = ["transfer", "--data", args.data, *RUNS[name], "--out", str(out), "-q"]
        print("skoffice31 " + " ".join(command), flush=True)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = cli.main(command)
        out.mkdir(parents=True, exist_ok=True)
        (out / "stdout.txt").write_text(buf.getvalue())
        print(buf.getvalue(), flush=True)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    main()
