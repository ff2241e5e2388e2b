"""Train one image-to-labels model: the fit context, the pipeline, its test report.

:func:`fit_context` is the one place that sets up a fit the way the study
runs it (a BLAS thread limit, a fixed number of epochs, collapses kept);
both :func:`~skoffice31.study.fit_and_evaluate` and ``skoffice31 train``
(:func:`fit_pipeline`) use it. The other functions are the ``train``
command's steps: refuse data a head cannot learn from, build and fit
``Pipeline(ImageFlattener, MultiHeadMLPClassifier)``, score it on the test
images, and write the per-class report next to the saved model.
"""

import contextlib
import time
import warnings

import numpy as np

from ._output import fmt_hidden, head_baselines, head_confusion, plot_confusion_matrices
from ._output import write_per_class
from ._settings import HEADS


def named_target(y, heads=HEADS):
    """``y`` as a DataFrame whose columns name the heads (with pandas; else ``y``)."""
    try:
        import pandas as pd
    except ImportError:
        return y
    return pd.DataFrame(y, columns=list(heads))


@contextlib.contextmanager
def fit_context(settings, *, reissue=True):
    """The conditions of a fit of the study; yields the list of its collapses.

    Inside the block, BLAS is limited to ``settings.blas_threads`` threads
    (when not 0), :class:`~sklearn.exceptions.ConvergenceWarning` is ignored
    (the study trains a fixed number of epochs: reaching ``max_iter`` is
    expected) and every :class:`~skoffice31.TrainingCollapseWarning` is
    caught. When the block ends, the yielded list holds the message of each
    collapse on one line.

    Parameters
    ----------
    settings : StudySettings
    reissue : bool, default=True
        Re-issue the other warnings of the block as they would have been
        shown; ``False`` drops them (``skoffice31 train`` shows only the
        collapses, one line each).

    Yields
    ------
    collapses : list of str
        Filled when the block ends (also when it raises).
    """
    from sklearn.exceptions import ConvergenceWarning

    from .._multihead import TrainingCollapseWarning

    collapses = []
    with contextlib.ExitStack() as stack:
        if settings.blas_threads:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(settings.blas_threads, user_api="blas"))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TrainingCollapseWarning)
                yield collapses
        finally:
            for w in caught:
                if issubclass(w.category, TrainingCollapseWarning):
                    collapses.append(" ".join(str(w.message).split()))
                elif reissue:  # the others as they would have been shown
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def check_two_classes_per_head(data):
    """Refuse, in one line, data whose training part has a single class in a head.

    Parameters
    ----------
    data : StudyData

    Raises
    ------
    ValueError
        A head has one class in the data, or one class in the training rows;
        the message says what to change.
    """
    for h, name in enumerate(data.heads):
        overall = np.unique(data.y[:, h])
        in_train = np.unique(data.y[data.train, h])
        if len(overall) < 2:
            folders = {"domain": "domain folders, e.g. amazon and webcam",
                       "object": "object folders"}.get(name, f"values of {name}")
            raise ValueError(
                f"the images have only one {name} ({overall[0] if len(overall) else 'none'}); "
                f"the {name} head needs at least two classes (use data with two or more "
                f"{folders})"
            )
        if len(in_train) < 2:
            raise ValueError(
                f"too few images: the training part of the split ({len(data.train)} of "
                f"{len(data.y)} images) has only one {name}; use more images per class or a "
                "larger --train-size"
            )


def make_pipeline(settings, data):
    """``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` of the first configuration.

    The flattener has the data's image size and the settings' pixel scale,
    so the pipeline maps image files (or arrays) to labels; the settings'
    preprocessing (:meth:`~skoffice31.study.StudySettings.preprocessing_steps`,
    e.g. ``StandardScaler`` and :class:`~skoffice31.PrincipalComponents`
    with the tuned preset) goes between the two, so a saved model applies it too.
    With :attr:`~skoffice31.study.StudySettings.augment` > 1 the
    preprocessing and the classifier are inside an
    :class:`~skoffice31.augmentation.AugmentedClassifier` after the
    flattener.
    """
    from sklearn.pipeline import Pipeline

    from .._image import ImageFlattener

    clf = settings.make_estimator(settings.configurations()[0])
    size = (int(data.images.shape[2]), int(data.images.shape[1]))
    flattener = ("imageflattener", ImageFlattener(size=size, mode="RGB", scale=settings.scale))
    steps = [*settings.preprocessing_steps(), ("multiheadmlpclassifier", clf)]
    if settings.augment == 1:
        return Pipeline([flattener, *steps])
    # the copies are made of the flattened pixels, before the preprocessing
    inner = Pipeline(steps) if len(steps) > 1 else clf
    return Pipeline([flattener, ("augmentedclassifier",
                                 settings.augmented(inner, (size[1], size[0], 3)))])


def fit_pipeline(model, settings, data, *, reissue=True):
    """Fit ``model`` on the training images of ``data`` in :func:`fit_context`.

    ``reissue`` is passed to :func:`fit_context`.

    Returns
    -------
    seconds : float
        The fit's wall time.
    collapses : list of str
        The :class:`~skoffice31.TrainingCollapseWarning` messages, one line each.
    """
    with fit_context(settings, reissue=reissue) as collapses:
        t0 = time.perf_counter()
        model.fit(data.images[data.train], named_target(data.y[data.train], data.heads))
        seconds = time.perf_counter() - t0
    return seconds, collapses


def evaluate_pipeline(model, settings, data):
    """Score a fitted pipeline on the test images and record what it is.

    Sets ``model.skoffice31_info_`` (heads, settings, data, test accuracy,
    baselines), which :func:`skoffice31.persistence.save_model` keeps.

    Returns
    -------
    pred : ndarray of shape (n_test, n_heads)
        The test images' predicted labels.
    test_accuracy : dict
        Accuracy of each head, and of all heads right at once under
        ``"both"`` (two heads) or ``"all"``.
    baselines : dict
        :func:`~skoffice31.study.head_baselines` of the split.
    """
    from ..metrics import exact_match_accuracy, head_accuracies

    y, test, heads = data.y, data.test, data.heads
    pred = np.asarray(model.predict(data.images[test]), dtype=object).reshape(len(test), -1)
    test_accuracy = dict(zip(heads, (float(a) for a in head_accuracies(y[test], pred))))
    test_accuracy["all" if len(heads) != 2 else "both"] = float(exact_match_accuracy(y[test], pred))
    baselines = head_baselines(y[data.train], y[test], heads)
    model.skoffice31_info_ = {"heads": list(heads), "settings": settings.to_dict(),
                              "data": data.description, "test_accuracy": test_accuracy,
                              "baselines": baselines}
    return pred, test_accuracy, baselines


def write_train_report(model_path, clf, y_true, y_pred, heads):
    """Per-class accuracies and per-head confusion matrices next to the model.

    ``<stem>_per_class.csv`` and (with matplotlib) one
    ``<stem>_confusion_<head>.png`` per head, in the model's folder.

    Returns
    -------
    written : list of str
        The names of the files written.

    Raises
    ------
    OSError
        A file could not be written.
    """
    classes = clf.classes_ if isinstance(clf.classes_, list) else [clf.classes_]
    confusion = head_confusion(y_true, y_pred, classes, heads)
    name = model_path.name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    folder = model_path.parent
    write_per_class(folder / f"{stem}_per_class.csv", [(clf.hidden, clf.solver, confusion)])
    return [f"{stem}_per_class.csv", *plot_confusion_matrices(
        folder, confusion, prefix=f"{stem}_confusion_",
        title=f"hidden {fmt_hidden(clf.hidden)} {clf.solver}")]
