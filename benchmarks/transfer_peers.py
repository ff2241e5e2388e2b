"""skada's shallow domain-adaptation methods beside ours, on the same features and splits.

Runs :func:`skoffice31.transfer.run_transfer` with our methods (those of
``skoffice31 transfer``) and, in the same run -- the same preprocessed
features of each task, the same k-shot target split of each seed -- these
peers, each followed by scikit-learn's ``LogisticRegression``:

- ``LR source only``: the logistic regression on the source alone;
- ``CORAL + LR``: skada's ``CORALAdapter`` (the source re-coloured with the
  target's covariance);
- ``SA + LR``: skada's ``SubspaceAlignmentAdapter`` (50 components);
- ``reweight + LR``: skada's ``DiscriminatorReweightAdapter`` (source rows
  weighted by a domain classifier's odds of being target).

As for ours, the peers see the source labels, the k labelled target images
per class (kept by ``mask_target_labels=False``) and every target image
unlabelled. Needs skada (``pip install "skoffice31[bench]"``)::

    python benchmarks/transfer_peers.py --data ../shared/data/office31   # the docs' table
    python benchmarks/transfer_peers.py --quick                          # built-in data, 1 seed
    python benchmarks/transfer_peers.py --data ../shared/data/office31 --weights  # reweighting

Writes ``transfer.csv``, ``transfer.json``, ``transfer.png`` and
``transfer.md`` (the table) to ``--out`` (default
``benchmarks/results/transfer_office31`` with ``--data``, else
``transfer_builtin``); ``docs/transfer.rst`` quotes the first.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from skoffice31.transfer import (
    TransferMethod,
    default_estimator,
    default_methods,
    format_transfer_table,
    load_transfer_data,
    plot_transfer,
    run_transfer,
    summarize_transfer,
    write_transfer,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _logistic():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200)


def _skada_peer(make_adapter, weighted=False):
    """fit_predict of ``make_da_pipeline(adapter, LogisticRegression())``."""

    def fit_predict(problem, context):
        from skada import make_da_pipeline

        X, y, sample_domain, classes = problem.skada_inputs()
        clf = _logistic()
        if weighted:
            clf.set_fit_request(sample_weight=True)
        pipe = make_da_pipeline(make_adapter(), clf, mask_target_labels=False)
        pipe.fit(X, y, sample_domain=sample_domain)
        pred = pipe.predict(problem.X_test, sample_domain=np.full(len(problem.test), -2))
        return classes[np.asarray(pred, dtype=int)]

    return fit_predict


def _lr_source_only(problem, context):
    X = np.concatenate([problem.X_source, problem.X_labelled])
    y = np.concatenate([problem.y_source, problem.y_labelled])
    return _logistic().fit(X, y).predict(problem.X_test)


def peer_methods():
    """The peers as :class:`~skoffice31.transfer.TransferMethod` objects."""
    from skada import CORALAdapter, DiscriminatorReweightAdapter, SubspaceAlignmentAdapter

    return [
        TransferMethod("LR source only", _lr_source_only,
                       description="logistic regression on the source (and the labelled "
                       "target images when k > 0)"),
        TransferMethod("CORAL + LR", _skada_peer(CORALAdapter), requires="skada"),
        TransferMethod("SA + LR", _skada_peer(lambda: SubspaceAlignmentAdapter(n_components=50)),
                       requires="skada"),
        TransferMethod("reweight + LR", _skada_peer(DiscriminatorReweightAdapter, weighted=True),
                       requires="skada"),
    ]


def reweight_concentration(data, features):
    """Share of the total source weight that DiscriminatorReweightAdapter gives its top 10 images.

    Returns
    -------
    lines : list of str
        One per task.
    """
    from skada import DiscriminatorReweightAdapter

    from skoffice31.transfer import make_features, task_label, transfer_tasks

    lines = []
    for source, target in transfer_tasks(sorted(set(data.domains))):
        s, t = data.domains == source, data.domains == target
        prep = make_features(features).fit(np.concatenate([data.X[s], data.X[t]]))
        X = np.concatenate([prep.transform(data.X[s]), prep.transform(data.X[t])])
        sample_domain = np.r_[np.ones(s.sum(), int), np.full(t.sum(), -2, int)]
        adapter = DiscriminatorReweightAdapter().fit(X, sample_domain=sample_domain)
        w = np.sort(adapter.compute_weights(X, sample_domain=sample_domain)[:s.sum()])[::-1]
        lines.append(f"{task_label(source, target)}: the top 10 of {s.sum()} source images "
                     f"carry {w[:10].sum() / w.sum():.1%} of the weight")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="Office-31 folder (default: the built-in data)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: 16)")
    parser.add_argument("--shots", default="0,3", help="k values (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default: %(default)s)")
    parser.add_argument("--features", default="standardized",
                        help="make_features kind (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="1 seed, built-in data")
    parser.add_argument("--weights", action="store_true",
                        help="only: how concentrated the reweighting's source weights are "
                        "(weights.txt in --out)")
    parser.add_argument("--out", default=None, help="output folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    try:
        peers = peer_methods()
    except ImportError:
        sys.exit('transfer_peers.py needs skada: pip install "skoffice31[bench]"')
    data = load_transfer_data(args.data, size=args.size)
    size = data.size
    name = "transfer_office31" if args.data else "transfer_builtin"
    out = Path(args.out) if args.out else RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    if args.weights:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            text = "\n".join(reweight_concentration(data, args.features)) + "\n"
        (out / "weights.txt").write_text(text)
        print(text, end="")
        return
    shots = [int(k) for k in args.shots.split(",")]
    ours = default_methods()
    estimator = default_estimator()
    info = {"command": ["python", "benchmarks/transfer_peers.py", *(argv or sys.argv[1:])],
            "data": data.description, "image_size": [size, size],
            "features": args.features, "estimator": repr(estimator),
            "methods": [m.name for m in ours + peers]}
    started = time.time()
    rows = []
    # run_transfer limits BLAS to one thread (small fits on shared cores)
    for row in run_transfer(data.X, data.domains, data.y, shots=shots,
                            seeds=args.seeds, methods=ours + peers, estimator=estimator,
                            features=args.features):
        rows.append(row)
        print(f"{row['task']} k={row['k']} seed {row['seed']} {row['method']}: "
              f"{row['accuracy']:.3f} ({row['fit_seconds']:.1f}s) {row['status']}"
              .replace(" ok", ""), flush=True)
        write_transfer(out, info, rows, partial=True)
    info["wall_seconds"] = round(time.time() - started, 1)
    ours_names = {m.name for m in ours}
    info["fit_seconds_ours"] = round(sum(r["fit_seconds"] for r in rows
                                         if r["method"] in ours_names
                                         and r["status"] == "ok"
                                         and not (r["method"] == "source only" and r["k"])), 1)
    write_transfer(out, info, rows)
    summary = summarize_transfer(rows)
    table = format_transfer_table(summary)
    files = plot_transfer(out, summary)
    (out / "transfer.md").write_text(
        f"Command: `{' '.join(info['command'])}`\n\nWall time {info['wall_seconds']} s "
        f"(our methods' fits: {info['fit_seconds_ours']} s).\n\n{table}\n")
    print(table)
    print(f"Wrote transfer.csv, transfer.json, transfer.md{', ' if files else ''}"
          f"{', '.join(files)} to {out}/ in {info['wall_seconds']} s")


if __name__ == "__main__":
    main()
