"""scikit-learn's callback API (:mod:`sklearn.callback`) in MultiHeadMLPClassifier.

The estimator's ``fit`` and ``partial_fit`` are decorated with
:func:`sklearn.callback.with_callbacks` (the teardown of the callbacks,
whether the fit succeeds or not) and call two functions of this module, so
that the callback logic stays out of the training code:

- :func:`fit_task` around the fit: the root task (one subtask per epoch),
  ``on_fit_task_begin`` / ``on_fit_task_end`` of the root;
- :func:`end_epoch` at the end of every epoch: ``on_fit_task_end`` of the
  epoch's task (with a lazily built ``fitted_estimator``), then the next
  epoch's task is begun, as :class:`~sklearn.linear_model.LogisticRegression`
  does for its L-BFGS iterations (``max_subtasks = max_iter``, 1 for
  ``partial_fit``). When the fit stops early, the task begun after the last
  epoch is ended empty (no ``X``) by :func:`fit_task`.

The root task tree is the same when the estimator is fitted alone, in a
:class:`~sklearn.pipeline.Pipeline` or in
:class:`~sklearn.model_selection.GridSearchCV`, which attach it to theirs.
"""

import contextlib

from sklearn.callback import CallbackSupportMixin, with_callbacks

__all__ = ["CallbackSupportMixin", "with_callbacks", "fit_task", "end_epoch"]

_EPOCH = "_callback_epoch_ctx"  # the running epoch's task, only during fit


def _max_epochs(estimator, incremental):
    if incremental:
        return 1
    n = estimator.max_iter
    # an invalid max_iter is reported by _validate_params inside the fit
    return int(n) if isinstance(n, int) and n >= 1 else None


@contextlib.contextmanager
def fit_task(estimator, X, y, sample_weight=None, *, incremental=False):
    """Run the body as the estimator's root fit task.

    To be used inside a method decorated with
    :func:`sklearn.callback.with_callbacks`, which tears the callbacks down.

    Parameters
    ----------
    estimator : MultiHeadMLPClassifier
        The estimator being fitted.
    X, y : array-like
        The training data as given to ``fit``, passed to the callbacks.
    sample_weight : array-like or None
        Passed to the callbacks as ``metadata={"sample_weight": ...}``.
    incremental : bool
        ``partial_fit`` (one epoch) rather than ``fit`` (``max_iter`` epochs).
    """
    epochs = _max_epochs(estimator, incremental)
    ctx = estimator._init_callback_context(
        task_name="partial_fit" if incremental else "fit",
        max_subtasks=epochs,
    )
    metadata = None if sample_weight is None else {"sample_weight": sample_weight}
    ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    _begin_epoch(estimator, ctx, X, y, metadata)
    try:
        yield ctx
    finally:
        epoch = estimator.__dict__.pop(_EPOCH, None)
    if epoch is not None:  # the task begun after the last epoch: ended empty
        epoch[0].call_on_fit_task_end(estimator=estimator)
    ctx.call_on_fit_task_end(
        estimator=estimator, X=X, y=y, metadata=metadata, reconstruction_attributes={}
    )


def _begin_epoch(estimator, root, X, y, metadata):
    ctx = root.subcontext(task_name="epoch")
    ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=metadata)
    estimator.__dict__[_EPOCH] = (ctx, root, X, y, metadata)


def end_epoch(estimator):
    """End the current epoch's task and begin the next one.

    Called by the estimator after each epoch, once ``n_iter_``,
    ``loss_curve_`` and ``head_loss_curves_`` are updated. Outside
    :func:`fit_task` (no context) it does nothing.

    Returns
    -------
    stop : bool
        Whether a callback asked to stop. Like scikit-learn 1.9's own
        estimators, the estimator does not act on it yet.
    """
    state = estimator.__dict__.get(_EPOCH)
    if state is None:
        return False
    ctx, root, X, y, metadata = state

    def weights():
        # a snapshot: training goes on updating the arrays in place
        coefs = [W.copy() for W in estimator.coefs_]
        # a first layer trained in sample space is only written when the fit
        # ends; the estimator lends the function that computes it now
        first_layer = estimator.__dict__.get("_first_layer_weights")
        if first_layer is not None:
            coefs[0] = first_layer()
        return {
            "coefs_": coefs,
            "intercepts_": [b.copy() for b in estimator.intercepts_],
        }

    stop = ctx.call_on_fit_task_end(
        estimator=estimator, X=X, y=y, metadata=metadata, reconstruction_attributes=weights
    )
    if root.max_subtasks is None or len(root._children_map) < root.max_subtasks:
        _begin_epoch(estimator, root, X, y, metadata)
    else:
        del estimator.__dict__[_EPOCH]
    return stop
