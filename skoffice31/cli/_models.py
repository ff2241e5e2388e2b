"""``skoffice31 train`` and ``predict``: their options, saving and loading the model, printing."""

import os
import sys
import warnings
from pathlib import Path

from .. import study
from .._messages import first_line, os_reason
from ..study._output import fmt_augment, fmt_hidden, fmt_seconds
from ._common import (
    DEFAULT_MODEL,
    UsageError,
    Failure,
    _number,
    _add_training_options,
    settings_from_args,
    _load_data,
    _output_file,
)


def _add_train(sub):
    tr = sub.add_parser(
        "train",
        help="train one network on Office-31 or your own images and save it",
        description="Train one MultiHeadMLPClassifier (one head per label column of the "
        "data) on the training part of the split, report each head's test accuracy next to "
        "its majority-class and chance levels, save Pipeline(ImageFlattener, classifier) to "
        "--out as a .skops file (skops format: loading it runs no code from the file), and write next to it <name>_per_class.csv and (with matplotlib) one "
        "<name>_confusion_<head>.png per head.",
    )
    _add_training_options(tr, grid=False)
    tr.add_argument("--out", metavar="FILE", default=None,
                    help=f"where to save the model, in the safe skops format (default: {DEFAULT_MODEL})")
    tr.add_argument("--model", metavar="FILE", default=None, dest="model",
                    help="deprecated alias of --out")
    tr.set_defaults(func=cmd_train)


def _add_predict(sub):
    pr = sub.add_parser(
        "predict",
        help="predict the heads of image files or folders with a saved model",
        description="Predict every head (label and probability) of each image: the files "
        "given and the images in the folders given (recursively, sorted). One row per "
        "image; an image that cannot be read gets a row with its error (exit code 1). "
        "MODEL must be a .skops file saved by 'skoffice31 train': it is loaded with "
        "skops.io.load and only skoffice31's and scikit-learn's own types are trusted; "
        "pickle and joblib files are refused, because loading one runs code from the file.",
    )
    pr.add_argument("model", metavar="MODEL", help="a .skops model saved by 'skoffice31 train'")
    pr.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders")
    pr.add_argument("--top", type=_number(int, "--top", "must be >= 1", lambda v: v >= 1),
                    default=1, metavar="K",
                    help="the K most probable labels per head in the table and JSON "
                    "(default: %(default)s)")
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table",
                    help="output: an aligned table (default), CSV (path, <head>, "
                    "<head>_probability, ..., error) or JSON (a list of such rows)")
    pr.add_argument("--out", metavar="FILE", default=None,
                    help="write the output to FILE instead of the standard output")
    pr.set_defaults(func=cmd_predict)


def _model_path(args):
    """``--out`` (or the deprecated ``--model``), checked before any work."""
    if args.model is not None:
        if args.out is not None and args.out != args.model:
            raise UsageError("give the model file once: --out (--model is its deprecated alias)")
        sys.stderr.write("skoffice31 train: warning: --model is deprecated; use --out\n")
    name = args.out or args.model or DEFAULT_MODEL
    path = _output_file(name, "model ")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot write model {name}: folder {path.parent} is not writable")
    return name, path


def cmd_train(args):
    from ..callbacks import EpochReporter
    from ..study import _train

    settings = settings_from_args(args, grid=False)
    name, model_path = _model_path(args)
    data = _load_data(args, settings)
    print(data.description, flush=True)
    try:
        _train.check_two_classes_per_head(data)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    heads, config = data.heads, settings.configurations()[0]
    model = _train.make_pipeline(settings, data)
    print(f"Training hidden {fmt_hidden(config.hidden)} {config.solver} (preset "
          f"{settings.preset}, {settings.epochs} epochs, batch {settings.batch_size}, lr "
          f"{settings.learning_rate(config.solver):g}) on {len(data.train)} images"
          + (f" (each in {settings.augment} versions: "
             f"{fmt_augment(settings.augment, settings.shift_each_epoch)})"
             if settings.augment > 1 else "") + ", "
          f"head{'s' if len(heads) != 1 else ''} {', '.join(heads)}...", flush=True)
    clf = study.final_classifier(model)  # the template: a fitted clone keeps its callbacks
    if not args.quiet:
        progress = study.StudyProgress([config], {config: 1.0}, [config], 1)
        clf.set_callbacks(EpochReporter(progress.epoch, tag=config))
    try:
        # only the collapses are shown: every warning of the command is one line
        seconds, collapses = _train.fit_pipeline(model, settings, data, reissue=False)
    except (ValueError, ArithmeticError) as exc:  # divergence, bad labels
        raise Failure(f"training failed: {first_line(exc)}") from None
    finally:
        if not args.quiet:
            progress.close()
    for message in collapses:
        sys.stderr.write(f"warning: {message}\n")
    clf.set_callbacks()  # the display does not belong in the saved model
    clf = study.final_classifier(model, fitted=True)
    clf.set_callbacks()
    pred, accuracy, baselines = _train.evaluate_pipeline(model, settings, data)
    parts = [f"{h} {accuracy[h]:.3f} (majority class {baselines[h]['majority']:.3f}, chance "
             f"{baselines[h]['chance']:.3f})" for h in heads]
    if len(heads) > 1:
        parts.append(f"all heads right {accuracy['all' if len(heads) != 2 else 'both']:.3f}")
    print(f"Test accuracy on {len(data.test)} held-out images: " + ", ".join(parts)
          + f" (trained in {fmt_seconds(seconds)})")
    _save_model(model, model_path, name)
    print(f"Saved the model to {name} (use: skoffice31 predict {name} IMAGE_OR_FOLDER...)")
    try:
        written = _train.write_train_report(model_path, clf, data.y[data.test], pred, heads)
    except OSError as exc:  # the model is saved; the report is a bonus
        sys.stderr.write(f"skoffice31 train: warning: cannot write the report next to the "
                         f"model: {exc.strerror or exc}\n")
        written = []
    if written:
        print(f"Wrote {', '.join(written)} to {model_path.parent}/")
    return 0


def _save_model(model, path, shown=None):
    """Save ``model`` to ``path`` as a .skops file; a failure is one line (exit code 1).

    The file is written next to ``path`` and moved into place at the end
    (:func:`skoffice31.persistence.save_model`): a full disk or a folder
    that became read-only leaves neither a partial model nor a temporary
    file, and an older model at ``path`` stays as it was.
    """
    from ..persistence import save_model

    shown = str(path) if shown is None else shown
    try:
        save_model(model, path, info=getattr(model, "skoffice31_info_", None))
    except OSError as exc:
        raise Failure(f"cannot write model {shown}: {os_reason(exc)}") from None
    return Path(path)


def _load_model_or_exit(path, shown=None):
    """The model saved by ``skoffice31 train`` at ``path``, or a one-line :class:`UsageError`.

    Loaded only through :func:`skoffice31.persistence.load_model`
    (``skops.io.load`` with the package's explicit trusted types): a pickle
    or joblib file is refused before anything in it runs, a skops file with
    other types is refused naming them, and anything that is not
    ``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` is refused saying
    what it is. A version mismatch is one warning line.
    """
    from ..persistence import ModelFileError, ModelVersionWarning, load_model
    from ..prediction import _not_an_image_model

    shown = str(path) if shown is None else shown
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"model file not found: {shown}")
    if not path.is_file():
        raise UsageError(f"cannot load model {shown}: it is a folder, expected a .skops file "
                         "saved by 'skoffice31 train'")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ModelVersionWarning)
            model = load_model(path)
    except ModelFileError as exc:
        text = str(exc)
        if text.startswith(str(path)):
            text = "it" + text[len(str(path)):]
        raise UsageError(f"cannot load model {shown}: {text}") from None
    except OSError as exc:
        raise UsageError(f"cannot load model {shown}: {exc.strerror or first_line(exc)}") from None
    for w in caught:
        if issubclass(w.category, ModelVersionWarning):
            sys.stderr.write(f"warning: {first_line(w.message)}\n")
    what = _not_an_image_model(model)
    if what is not None:
        raise UsageError(
            f"cannot load model {shown}: it holds a {what}, not a model saved by 'skoffice31 "
            "train' (expected a fitted Pipeline(ImageFlattener, MultiHeadMLPClassifier))"
        )
    return model


def cmd_predict(args):
    from ..prediction import _format_predictions, _head_names, predict_files

    if args.top < 1:
        raise UsageError(f"bad --top {args.top}: must be >= 1")
    out_path = None if args.out is None else _output_file(args.out)
    model = _load_model_or_exit(args.model)
    rows = predict_files(model, args.images, top=args.top)
    text = _format_predictions(rows, _head_names(model), args.format, args.top)
    if out_path is None:
        sys.stdout.write(text)
    else:
        from .._fileio import atomic_write_text

        try:
            atomic_write_text(out_path, text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    failed = [r for r in rows if r["error"] is not None]
    for r in failed:  # also on stderr: a script reading stdout still sees them
        sys.stderr.write(f"skoffice31: error: cannot read image {r['path']}: {r['error']}\n")
    return 1 if failed else 0
