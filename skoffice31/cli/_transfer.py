"""``skoffice31 transfer``: its options; :func:`skoffice31.transfer.run_transfer`, printed."""

import contextlib
import sys
import time

from ..study import _results
from .._messages import first_line, load_error
from ..study._output import fmt_seconds
from ._common import UsageError, _parse_hidden, _number, _hidden_arg, _int_list, _output_folder


def _add_transfer(sub):
    from ..transfer import FEATURES, METHODS

    tf = sub.add_parser(
        "transfer",
        help="transfer between domains: source only, fine-tuning, pooled, adversarial, CORAL",
        description="Train for a target domain from a source domain and k labelled target "
        "images per class (k=0: unlabelled target images only), with each transfer method, "
        "for every task, k and seed; test on the other target images. Prints the table "
        "(mean +- std over seeds) and writes transfer.csv, transfer.json (after every fit) "
        "and transfer.png (accuracy against k, with matplotlib) to --out. Without --data: "
        "the built-in data (its product, dslr and webcam styles). Methods: "
        + "; ".join(f"{m.name}: {m.description}" for m in METHODS.values()) + ".",
    )
    tf.add_argument("--data", metavar="DIR",
                    help="Office-31 folder (<domain>/images/<object>/*.jpg); default: the "
                    "built-in office-digits dataset")
    tf.add_argument("--source", metavar="DOMAIN", help="the source domain (with --target)")
    tf.add_argument("--target", metavar="DOMAIN", help="the target domain (with --source)")
    tf.add_argument("--task", choices=["all"],
                    help="every task: Office-31's six (A->W, D->W, W->D, A->D, D->A, W->A); "
                    "the default without --source and --target")
    tf.add_argument("--shots", metavar="K,...", default=[0, 3],
                    type=_int_list("--shots", "expected comma-separated numbers >= 0 of "
                                   "labelled target images per class, e.g. 0,1,3,5",
                                   lambda v: v >= 0),
                    help="labelled target images per class (default: 0,3; e.g. 0,1,3,5 for "
                    "the curve)")
    tf.add_argument("--seeds", metavar="N", default=3,
                    type=_number(int, "--seeds", "must be >= 1", lambda v: v >= 1),
                    help="seeds 0..N-1: target splits and initialisations (default: %(default)s)")
    tf.add_argument("--methods", metavar="NAMES",
                    help="comma-separated methods (default: all; the CORAL ones with skada)")
    tf.add_argument("--features", choices=list(FEATURES), default="standardized",
                    help="preprocessing, fitted per task on both domains' images without "
                    "labels (default: %(default)s)")
    tf.add_argument("--components", metavar="N", default=100,
                    type=_number(int, "--components", "must be >= 1", lambda v: v >= 1),
                    help="PCA components of --features standardized/pca (default: %(default)s)")
    tf.add_argument("--size", metavar="PX",
                    type=_number(int, "--size", "must be >= 8", lambda v: v >= 8),
                    help="image side (default: 16)")
    tf.add_argument("--hidden", type=_hidden_arg, metavar="SIZES",
                    help="hidden layer sizes of the network (default: 256)")
    tf.add_argument("--epochs", type=_number(int, "--epochs", "must be >= 1", lambda v: v >= 1),
                    metavar="N", help="epochs of the fits with the source (default: 20)")
    tf.add_argument("--few-epochs", type=_number(int, "--few-epochs", "must be >= 1",
                                                 lambda v: v >= 1),
                    metavar="N", default=100,
                    help="epochs of the fits on the labelled target images only (target only, "
                    "fine-tuning; default: %(default)s)")
    tf.add_argument("--batch-size", type=_number(int, "--batch-size", "must be >= 1",
                                                 lambda v: v >= 1),
                    metavar="N", help="minibatch size (default: 64)")
    tf.add_argument("--lr", type=_number(float, "--lr", "must be > 0", lambda v: v > 0),
                    metavar="X", help="Adam's learning_rate_init (default: 0.001)")
    tf.add_argument("--alpha", type=_number(float, "--alpha", "must be >= 0", lambda v: v >= 0),
                    metavar="X", help="L2 penalty (default: 0.001)")
    tf.add_argument("--lambda", dest="adversarial", metavar="X", default=1.0,
                    type=_number(float, "--lambda", "must be >= 0", lambda v: v >= 0),
                    help="weight of the domain head's reversed gradient (default: %(default)s)")
    tf.add_argument("--out", metavar="DIR", default="skoffice31-transfer",
                    help="output folder (default: %(default)s)")
    tf.add_argument("--no-cache", action="store_true",
                    help="do not read or write the decoded-image cache in the data home")
    tf.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    tf.set_defaults(func=cmd_transfer)


def _transfer_tasks(args, domains):
    from ..transfer import transfer_tasks

    if args.task == "all" and (args.source or args.target):
        raise UsageError("--task all runs every task: leave out --source and --target")
    if bool(args.source) != bool(args.target):
        raise UsageError("give both --source and --target (or --task all)")
    try:
        return transfer_tasks(domains, args.source, args.target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_transfer(args):
    from .. import transfer

    names = ([m.strip() for m in args.methods.split(",") if m.strip()]
             if args.methods else None)
    for name in names or ():
        if name not in transfer.METHODS:
            raise UsageError(f"unknown method {name!r} in --methods: use some of "
                             f"{', '.join(transfer.METHODS)}")
    if names and not transfer.skada_available():
        needs = [n for n in names if transfer.METHODS[n].requires == "skada"]
        if needs:
            raise UsageError(f"--methods {', '.join(needs)} need skada: "
                             'pip install "skoffice31[skada]"')
    out = _output_folder(args.out)
    started = time.time()
    try:
        data = transfer.load_transfer_data(args.data, size=args.size, cache=not args.no_cache)
    except (OSError, ValueError) as exc:
        raise UsageError(load_error(exc, args.data, "office31")) from None
    print(data.description, flush=True)
    tasks = _transfer_tasks(args, sorted(set(data.domains)))
    methods = names or [m.name for m in transfer.default_methods()]
    overrides = {k: v for k, v in dict(
        hidden=None if args.hidden is None else _parse_hidden(args.hidden),
        max_iter=args.epochs, batch_size=args.batch_size, learning_rate_init=args.lr,
        alpha=args.alpha).items() if v is not None}
    estimator = transfer.default_estimator(**overrides)
    features = transfer.make_features(args.features, n_components=args.components)
    settings = dict(tasks=tasks, shots=args.shots, seeds=args.seeds, methods=methods,
                    estimator=estimator, features=features, few_max_iter=args.few_epochs,
                    adversarial=args.adversarial)
    shots = sorted(set(args.shots))
    info = transfer.transfer_info(data, command=["skoffice31", *args.argv], started=started,
                                  **{**settings, "shots": shots,
                                     "seeds": list(range(args.seeds))})
    progress = None
    try:  # the arguments are checked here, the fits run below
        rows_iter = transfer.run_transfer_to_folder(
            out, info, data, **settings,
            watch=None if args.quiet else (lambda fit, model: progress.watch(fit, model)))
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None
    plan = transfer.plan_transfer(tasks, shots, list(range(args.seeds)),
                                  [transfer.METHODS[m] for m in methods])
    print(f"{len(tasks)} task{'s' if len(tasks) != 1 else ''} "
          f"({', '.join(transfer.task_label(s, t) for s, t in tasks)}), k in "
          f"{{{', '.join(map(str, shots))}}}, {args.seeds} seed"
          f"{'s' if args.seeds != 1 else ''}, {len(methods)} methods: {len(plan)} fits; "
          f"network {estimator.hidden} {estimator.solver} {estimator.max_iter} epochs "
          f"(few-shot fits {args.few_epochs}), features {args.features}", flush=True)
    if not names and not transfer.skada_available():
        print(transfer.SKADA_HINT, flush=True)
    rows, interrupted = [], False
    with contextlib.ExitStack() as stack:
        stack.enter_context(_results.sigterm_as_interrupt())
        if not args.quiet:
            progress = transfer.TransferProgress(plan, estimator.hidden)
            stack.callback(progress.close)
        try:
            for row in rows_iter:
                rows.append(row)
                if progress is not None:
                    progress.done(row)
        except KeyboardInterrupt:
            interrupted = True
    summary = transfer.summarize_transfer(rows)
    if rows:
        print("\nTarget accuracy (mean ± std over seeds; k = labelled target images per "
              "class):\n" + transfer.format_transfer_table(summary))
    files = transfer.finish_transfer(out, info, rows, interrupted=interrupted)
    if "transfer.png" not in files:
        print('figure skipped: matplotlib is not installed; pip install "skoffice31[plot]" '
              "to get transfer.png")
    print(f"\nWrote {', '.join(files)} to {out}/ (wall time "
          f"{fmt_seconds(time.time() - started)})")
    failed = [r for r in rows if r["status"] != "ok"]
    if interrupted:
        sys.stderr.write(f"skoffice31: interrupted; {len(rows)} of {len(plan)} fits finished "
                         f"and saved in {out}/\n")
        return 130
    if failed:
        first = failed[0]
        sys.stderr.write(f"skoffice31 transfer: error: {len(failed)} of {len(rows)} fits "
                         f"failed (first: {first['task']} k={first['k']} seed {first['seed']} "
                         f"{first['method']}: {first['status'].removeprefix('failed: ')}); "
                         f"see {out}/transfer.csv\n")
        return 1
    return 0
