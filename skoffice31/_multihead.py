"""MultiHeadMLPClassifier: one shared trunk, one softmax head per target."""

import contextlib
import dataclasses
import time
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils._param_validation import Interval, Options, StrOptions
from threadpoolctl import threadpool_info, threadpool_limits
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import _callbacks, _kernels, _team
from ._activations import ACTIVATIONS, DERIVATIVES
from ._dual import SampleSpaceLayer, sample_space_enabled
from ._losses import head_slices, log_softmax_heads, multihead_cross_entropy
from ._missing import MISSING_INT, labelled_values, missing_mask
from ._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer
from ._plan import plan_training, transposes

#: An epoch whose mean training loss is more than this many times the loss
#: of the fit's first minibatch (measured before any step) has collapsed.
COLLAPSE_FACTOR = 10.0


class TrainingCollapseWarning(ConvergenceWarning):
    """Training ran to the end but the model collapsed.

    Raised (as a warning) by :class:`MultiHeadMLPClassifier` when an epoch's
    training loss ends far above the loss the fit started from, or when
    every unit of a hidden ReLU layer output zero for a whole epoch (the
    layer passes nothing on, so the heads can only learn their intercepts).
    The loss is finite, so the fit does not raise, but the model is
    probably near chance level. A subclass of
    :class:`~sklearn.exceptions.ConvergenceWarning`.
    """

_FITTED_ATTRIBUTES = (
    "classes_", "n_outputs_", "head_names_", "coefs_", "intercepts_", "n_features_in_",
    "feature_names_in_", "n_iter_", "t_", "loss_", "loss_curve_", "head_loss_curves_",
    "best_loss_", "validation_scores_", "best_validation_score_", "n_layers_",
    "_optimizer", "_no_improvement_count", "_y_is_1d", "_optimizer_n_frozen",
)

#: Bookkeeping that lives only during a fit; a pickle made from inside a fit
#: (say, by an epoch callback) leaves it out.
#: Bookkeeping of a running fit that a copy or a pickle must not carry (the
#: callback contexts hold the training data).
_FIT_ONLY_ATTRIBUTES = (
    "_in_place", "_best_params", "_callback_epoch_ctx", "_callback_fit_ctx",
    "_skl_callbacks_to_teardown", "_adversarial", "_first_layer_weights", "_plan_args",
)


def stack_head_columns(cols, classes):
    """The heads' predicted labels side by side, one column per head.

    Parameters
    ----------
    cols : list of ndarray of shape (n_samples,)
        Each head's predicted labels.
    classes : list of ndarray
        Each head's classes.

    Returns
    -------
    y : ndarray of shape (n_samples, n_heads)
        Of the classes' common dtype, or an object array when the heads mix
        strings and numbers.
    """
    kinds = {np.asarray(c).dtype.kind for c in classes}
    dtype = np.result_type(*classes) if len(kinds) == 1 else object
    out = np.empty((len(cols[0]), len(cols)), dtype=dtype)
    for h, col in enumerate(cols):
        out[:, h] = col
    return out


class MultiHeadMLPClassifier(_callbacks.CallbackSupportMixin, ClassifierMixin, BaseEstimator):
    """Multilayer perceptron with a shared trunk and one softmax head per target.

    The network is a trunk of fully connected layers of sizes ``hidden``
    (ReLU units by default, see ``activation``) followed by one linear output
    block per head (per column of ``y``), each with its own softmax. The loss is the sum over heads of the mean
    cross-entropy (each head weighted by ``head_weights``) plus an L2 penalty
    ``alpha``. A head's gradient enters only its own output columns; the heads
    interact through the shared trunk. A two-class head is a two-way softmax.

    Training uses the package's own NumPy back-propagation with minibatch
    SGD or Adam. Parameter names and defaults follow scikit-learn's
    :class:`~sklearn.neural_network.MLPClassifier`, except that the layout is
    called ``hidden``. float32 input is trained in float32, anything else in
    float64.

    Parameters
    ----------
    hidden : tuple of int, default=(100,)
        Sizes of the hidden layers; ``()`` means no hidden layer (one
        softmax regression per head).
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers, as in scikit-learn: ``z``,
        ``1 / (1 + exp(-z))``, ``tanh(z)`` or ``max(z, 0)``. The heads are
        always softmax.
    solver : {"adam", "sgd"}, default="adam"
        The optimizer.
    learning_rate_init : float, default=1e-3
        Initial learning rate.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Learning-rate schedule, used by ``solver="sgd"`` only.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    momentum : float, default=0.9
        SGD momentum; ``0`` gives plain SGD (the study's setting).
    nesterovs_momentum : bool, default=True
        Whether SGD uses Nesterov's momentum (when ``momentum > 0``).
    alpha : float, default=1e-4
        L2 penalty on the weights (not on the intercepts). As in
        scikit-learn, the penalty ``0.5 * alpha * ||W||^2`` is divided by the
        batch's total sample weight.
    batch_size : int or "auto", default="auto"
        Minibatch size; ``"auto"`` is ``min(200, n_samples)``.
    max_iter : int, default=200
        Maximum number of epochs.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon, added after the square root.
    shuffle : bool, default=True
        Whether to shuffle samples each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the shuffling and the early-stopping split.
    tol : float, default=1e-4
        Improvement of the loss (or of the validation score) below which an
        epoch counts as no improvement.
    n_iter_no_change : int or np.inf, default=10
        Epochs without improvement before stopping; ``np.inf`` never stops
        on a plateau (only ``max_iter`` ends the fit).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data, stop when the
        validation score (mean head accuracy) stops improving, and restore
        the best weights. The split is stratified for one head only.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    warm_start : bool, default=False
        Reuse the weights of the previous fit as initialisation; the
        optimizer starts fresh.
    verbose : bool or int, default=False
        Print one line per epoch, scikit-learn's
        ``Iteration <n>, loss = <loss>`` followed by the elapsed seconds
        (and ``Validation score: <score>`` with early stopping).
    head_weights : array-like of shape (n_heads,), default=None
        Loss weight of each head; ``None`` weights all heads 1.
    init : {"glorot", "he", "normal"}, default="glorot"
        Weight initialisation: Glorot-uniform as scikit-learn does;
        ``"he"``, He (Kaiming) normal weights ``normal(0, sqrt(2 / fan_in))``
        with zero intercepts, which keeps the variance of ReLU activations
        from layer to layer (for ReLU trunks); or ``normal(0, init_scale)``
        weights with zero intercepts (the study's).
    init_scale : float, default=0.03
        Standard deviation of the ``"normal"`` initialisation.
    n_frozen_layers : int, default=0
        Number of weight layers, counted from the input, that ``fit`` and
        ``partial_fit`` leave unchanged (weights and intercepts). With
        ``warm_start=True`` (or ``partial_fit`` on a fitted model) this
        fine-tunes the remaining layers, e.g. ``len(hidden)`` trains only
        the output layer on top of fixed features. Frozen layers have no
        optimizer state and cost no gradient work; the back-propagation
        stops at the lowest trainable layer. On a fresh fit (no warm start)
        frozen layers keep their random initialisation (a random-features
        model). At least the output layer must train: the value must be
        smaller than ``len(hidden) + 1``. Changing it between ``partial_fit``
        calls starts a fresh optimizer.
    adversarial_heads : dict, default=None
        Heads trained adversarially to the trunk (gradient reversal, Ganin
        et al., 2016 [1]_): head name or column index -> weight ``lambda >= 0``.
        Such a head is trained to classify as usual, while the gradient it
        sends into the shared trunk is multiplied by ``-lambda``: the head's
        own parameters descend its loss and the trunk descends
        ``L_other - lambda * L_adv``, learning features the head cannot
        classify (e.g. ``{"domain": 1.0}``: domain-invariant features for
        the object head). ``loss_curve_`` stays the plain sum of the heads'
        losses. At least one head must not be adversarial, and the model
        needs a hidden layer (a trunk). ``None`` trains every head normally.
    adversarial_schedule : {"constant", "dann"}, default="constant"
        How ``lambda`` evolves: ``"constant"``, or the schedule of Ganin et
        al. (2016), ``lambda_p = lambda * (2 / (1 + exp(-10 p)) - 1)`` with
        ``p`` the training progress, from 0 to 1 over ``max_iter`` epochs
        (updated every minibatch; ``partial_fit`` counts its epochs in
        ``n_iter_``, and ``p`` stays 1 after ``max_iter`` of them).

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        Class labels (sorted as by ``np.unique``): an array for one head, a
        list with one array per head otherwise.
    n_outputs_ : int
        Number of heads.
    head_names_ : tuple of str
        Head names: a DataFrame's column names, else ``head0``, ``head1``, ...
    coefs_ : list of ndarray
        Weight matrices; ``coefs_[-1]`` has shape (last layer, total classes)
        with the heads' columns in ``y``-column order and each head's
        columns in its ``classes_`` order.
    intercepts_ : list of ndarray
        Bias vectors.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` has string column names.
    n_layers_ : int
        Number of layers, input and output included.
    n_iter_ : int
        Epochs run by the last ``fit`` (``partial_fit`` adds one per call).
    t_ : int
        Number of training samples seen, over all fits.
    loss_ : float
        Loss of the last epoch.
    loss_curve_ : list of float
        Mean training loss (heads and L2 penalty) of each epoch.
    head_loss_curves_ : dict of str to list of float
        Mean cross-entropy of each head per epoch.
    best_loss_ : float or None
        Lowest training loss reached (``None`` with early stopping).
    validation_scores_ : list of float or None
        Validation score of each epoch with early stopping.
    best_validation_score_ : float or None
        Best validation score with early stopping.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : the single-output model this one
        generalises.

    Notes
    -----
    ``score`` is the mean over heads of each head's accuracy. scikit-learn's
    ``accuracy_score`` on several outputs would require every head of a
    sample to be right (subset accuracy), which for a 3-way and a 31-way
    head mostly measures the hard head; the mean keeps both heads visible.
    For one head both definitions are plain accuracy. The subset accuracy is
    available as :func:`skoffice31.metrics.exact_match_scorer`.

    **Missing labels.** A head's label may be missing for some samples,
    following scikit-learn's semi-supervised convention [2]_
    (:class:`~sklearn.semi_supervised.SelfTrainingClassifier`): ``-1`` in an
    integer head, ``NaN``, ``None`` or ``pandas.NA`` in a float or object
    head (an object head of integers also takes ``-1``). A missing label
    contributes nothing to that head's loss: each head's loss on a minibatch
    is the (sample-weighted) mean over the rows labelled for that head, as
    PyTorch's ``ignore_index`` does, and a head with no labelled row in a
    minibatch adds nothing to that step. The L2 penalty is still divided by
    the batch's total sample weight. ``head_loss_curves_`` are means over
    the labelled rows. ``classes_`` never holds the marker, ``predict``
    predicts every head of every row, and ``score``, ``score_heads`` and
    the scorers of :mod:`skoffice31.metrics` leave missing entries out.
    ``fit``, ``partial_fit`` and a warm start accept them alike; a head
    whose every label is missing raises ``ValueError``. One head labelled on
    a source domain and missing on a target domain, next to a head labelled
    everywhere, is the layout of semi-supervised domain adaptation.

    .. versionchanged:: 0.2
       ``-1`` in an integer head used to be an ordinary class; it now marks
       a missing label. So that no model silently loses a class ``-1``, an
       integer head holding ``-1`` next to other negative labels raises
       ``ValueError``: recode such labels (e.g. an offset, or strings). A
       head whose labels are ``-1`` and exactly one other value (the binary
       ``-1, 1`` convention) cannot be semi-supervised, as a head needs two
       classes: there ``-1`` stays a class, and a fitted model treats ``-1``
       as a class exactly when it is in that head's ``classes_``.

    ``KeyboardInterrupt`` during ``fit`` leaves a usable model (the epochs
    done so far) and is then raised again, so that an interrupted grid
    search stops instead of moving on to the next configuration.

    A pickle (``pickle``, ``joblib.dump``, ``copy.deepcopy``) keeps the
    optimizer's state (Adam's moments, SGD's velocities) as scikit-learn's
    ``MLPClassifier`` does, so ``partial_fit`` on a loaded copy continues
    exactly where the original would. For Adam the file is therefore about
    three times the size of the weights. Pickling never changes the live
    estimator, also not from inside a fit. Loading a pickle runs code from
    the file: load only files you trust.

    A finite but absurd training (the loss ending an epoch more than
    ten times above where the fit started, or a hidden ReLU layer all of
    whose units output zero for a whole epoch) warns with
    ``TrainingCollapseWarning`` (a ``ConvergenceWarning``) naming the
    layer and what to try; a loss that becomes infinite or NaN raises.

    Deliberate differences from :class:`~sklearn.neural_network.MLPClassifier`
    with one head (``hidden`` is its ``hidden_layer_sizes``):

    - A head with a single class raises ``ValueError``; scikit-learn fits a
      constant model. With several heads a constant head would only add a
      zero gradient, and in this package's use it always means wrong data
      (one domain folder).
    - No ``"lbfgs"`` solver (nor ``max_fun``): the package is about
      minibatch training on wide image inputs, where a full-batch
      quasi-Newton method needs the whole gradient in memory at every step.
    - Several heads: ``predict_proba`` returns a list with one array per head
      when ``y`` has several columns, and ``score`` is the mean of the heads'
      accuracies (see above). Early stopping scores the mean head accuracy
      and stratifies its split only for one head.
    - Adam adds ``epsilon`` to ``sqrt(v_hat)`` (Kingma & Ba's Algorithm 1);
      scikit-learn adds it to ``sqrt(v)`` before the bias correction. The
      steps differ only for weights whose gradients are about as small as
      ``epsilon``, and less and less as the bias correction tends to 1
      (after a few thousand steps).
    - ``init`` and ``init_scale`` choose the initialisation (scikit-learn
      has Glorot-uniform only, the default here; ``"he"`` and ``"normal"``
      are extra), and a collapsing training
      warns (``TrainingCollapseWarning``, above), which scikit-learn does not.

    References
    ----------
    .. [1] Y. Ganin, E. Ustinova, H. Ajakan, P. Germain, H. Larochelle,
       F. Laviolette, M. Marchand and V. Lempitsky, "Domain-Adversarial
       Training of Neural Networks", Journal of Machine Learning Research
       17(59), 2016 (gradient reversal and the ``"dann"`` schedule of
       ``adversarial_heads``).
    .. [2] scikit-learn's semi-supervised learning guide, whose convention
       (``-1`` for an unlabelled sample) the missing labels follow:
       https://scikit-learn.org/stable/modules/semi_supervised.html

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skoffice31 import MultiHeadMLPClassifier
    >>> X, digit = load_digits(return_X_y=True)
    >>> y = np.column_stack([digit, np.where(digit % 2, "odd", "even")])
    >>> clf = MultiHeadMLPClassifier(hidden=(32,), max_iter=30, random_state=0)
    >>> clf = clf.fit(X / 16, y)
    >>> clf.predict(X[:2] / 16).shape
    (2, 2)
    """

    # The "?" of the HTML repr opens this class's page of the API reference,
    # relative to the built docs' example pages (auto_examples/): the docs
    # have no public host yet; make this absolute once they have one.
    _doc_link_module = "skoffice31"
    _doc_link_template = "../gen_modules/{estimator_module}.{estimator_name}.html"

    _parameter_constraints = {
        "hidden": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"sgd", "adam"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "head_weights": ["array-like", None],
        "init": [StrOptions({"glorot", "he", "normal"})],
        "init_scale": [Interval(Real, 0, None, closed="neither")],
        "n_frozen_layers": [Interval(Integral, 0, None, closed="left")],
        "adversarial_heads": [dict, None],
        "adversarial_schedule": [StrOptions({"constant", "dann"})],
    }

    def __init__(
        self,
        hidden=(100,),
        *,
        activation="relu",
        solver="adam",
        learning_rate_init=1e-3,
        learning_rate="constant",
        power_t=0.5,
        momentum=0.9,
        nesterovs_momentum=True,
        alpha=1e-4,
        batch_size="auto",
        max_iter=200,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        verbose=False,
        head_weights=None,
        init="glorot",
        init_scale=0.03,
        n_frozen_layers=0,
        adversarial_heads=None,
        adversarial_schedule="constant",
    ):
        self.hidden = hidden
        self.activation = activation
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.verbose = verbose
        self.head_weights = head_weights
        self.init = init
        self.init_scale = init_scale
        self.n_frozen_layers = n_frozen_layers
        self.adversarial_heads = adversarial_heads
        self.adversarial_schedule = adversarial_schedule

    # ------------------------------------------------------------------ fit

    @_callbacks.with_callbacks
    def fit(self, X, y, sample_weight=None):
        """Fit the network to ``X`` and the targets ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; float32 is trained in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_heads)
            Labels, one column per head; a column may hold ints or strings.
            A DataFrame's column names become ``head_names_``. A missing
            label (``-1`` in an integer head; ``NaN``, ``None`` or
            ``pandas.NA`` otherwise) leaves that sample out of that head's
            loss only; see "Missing labels" in the class's Notes.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample's loss.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with _callbacks.fit_task(self, X, y, sample_weight):
            return self._fit_guarded(X, y, sample_weight, incremental=False, classes=None)

    @_callbacks.with_callbacks
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over ``X, y``, keeping the optimizer's state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_heads)
        classes : array-like or list of array-like, default=None
            All classes of each head: an array for one head, a list of arrays
            for several. Required on the first call; on a later call it may
            be omitted, and if given it must equal the first call's classes
            (``ValueError`` otherwise, as in scikit-learn).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object

        Notes
        -----
        As in scikit-learn's ``MLPClassifier``, an integer ``random_state``
        seeds every call afresh: calls on the same rows after the first
        shuffle them in the same order. For a new order at every call, give
        ``random_state`` a ``numpy.random.RandomState`` (one stream over
        the calls; with the same seed the epochs are those of ``fit``), as
        :class:`~skoffice31.augmentation.AugmentedClassifier` does with
        ``shift_each_epoch``.
        """
        with _callbacks.fit_task(self, X, y, sample_weight, incremental=True):
            return self._fit_guarded(X, y, sample_weight, incremental=True, classes=classes)

    def _fit_guarded(self, X, y, sample_weight, incremental, classes):
        # A failed fit leaves the previous fitted state as it was, or, when
        # the failure came after weights were changed in place (warm start,
        # partial_fit), an estimator that is clearly unfitted.
        saved = dict(self.__dict__)
        self._in_place = False
        try:
            self._fit(X, y, sample_weight, incremental, classes)
        except KeyboardInterrupt:
            raise
        except BaseException:
            in_place = self._in_place
            self.__dict__.clear()
            self.__dict__.update(saved)
            if in_place:
                for name in _FITTED_ATTRIBUTES:
                    self.__dict__.pop(name, None)
            raise
        finally:
            self.__dict__.pop("_in_place", None)
        return self

    def _fit(self, X, y, sample_weight, incremental, classes):
        self._validate_params()
        hidden = _check_hidden(self.hidden)
        if self.n_frozen_layers > len(hidden):
            raise ValueError(
                f"n_frozen_layers={self.n_frozen_layers} would freeze every weight layer: "
                f"hidden={hidden} gives {len(hidden) + 1} weight layers (the output "
                "layer included), and at least the output layer must train. Use "
                f"n_frozen_layers <= {len(hidden)}."
            )
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True.")
        fitted = hasattr(self, "coefs_")
        keep_weights = fitted and (incremental or self.warm_start)
        if incremental and not fitted and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")

        columns, names, y_is_1d = _split_heads(y)
        if keep_weights:
            X = validate_data(self, X, reset=False, dtype=self.coefs_[0].dtype)
            classes_list = self._classes_list()
            if len(columns) != len(classes_list):
                raise ValueError(
                    f"y has {len(columns)} head(s) but the model was fitted with "
                    f"{len(classes_list)}."
                )
            if incremental and classes is not None:
                self._check_same_classes(classes, classes_list)
        else:
            X = validate_data(self, X, reset=True, dtype=(np.float64, np.float32))
            if incremental:
                classes_list = _classes_from_param(classes, len(columns), names)
            else:
                classes_list = [_unique_labels(col, name) for col, name in zip(columns, names)]
        _check_rows(X, columns)
        y_idx = _encode(columns, classes_list, names)
        head_weights = self._check_head_weights(len(columns))
        adversarial = self._check_adversarial_heads(
            list(self.head_names_) if keep_weights else names, hidden
        )
        # float64 whatever X's dtype: a float32 weight overflows at 3.4e38,
        # and the batch normalisation below is overflow-free in float64.
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )

        rng = check_random_state(self.random_state)
        if not keep_weights:
            self.classes_ = classes_list[0] if y_is_1d else classes_list
            self._y_is_1d = y_is_1d
            self.n_outputs_ = len(classes_list)
            self.head_names_ = tuple(names)
            self._initialize(X.shape[1], hidden, classes_list, X.dtype, rng)
        elif self._fitted_hidden() != hidden:
            raise ValueError(
                f"hidden={hidden} differs from the fitted layout "
                f"{self._fitted_hidden()}; set warm_start=False to refit."
            )
        self._in_place = keep_weights
        if not keep_weights:
            self.n_iter_ = 0
            self._reset_curves()
        elif not incremental:  # warm start: a new count, the curves go on
            self.n_iter_ = 0
        self._adversarial = adversarial
        try:
            self._train(X, y_idx, sample_weight, head_weights, rng, incremental)
        finally:
            del self._adversarial
        return self

    def _check_adversarial_heads(self, names, hidden):
        """``{head index: lambda}`` of the adversarial heads, or None without any."""
        spec = self.adversarial_heads
        if not spec:
            return None
        n_heads = len(names)
        lambdas = {}
        seen = {}
        for key, value in spec.items():
            if isinstance(key, str):
                if key not in names:
                    raise ValueError(
                        f"adversarial_heads names the head {key!r}, which y does not "
                        f"have: its heads are {names}. Use a head name or a column index."
                    )
                h = names.index(key)
            elif isinstance(key, (Integral, np.integer)) and not isinstance(key, bool):
                if not -n_heads <= key < n_heads:
                    raise ValueError(
                        f"adversarial_heads has the head index {key}, but y has {n_heads} "
                        f"head(s) (indices 0 to {n_heads - 1})."
                    )
                h = int(key) % n_heads
            else:
                raise ValueError(
                    f"adversarial_heads keys must be head names (str) or column indices "
                    f"(int), got {key!r}."
                )
            if h in seen:
                raise ValueError(
                    f"adversarial_heads gives head {names[h]!r} twice (as {seen[h]!r} and "
                    f"{key!r}): give each head once."
                )
            seen[h] = key
            if (
                isinstance(value, bool)
                or not isinstance(value, (Real, np.number))
                or not np.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"adversarial_heads[{key!r}] must be a finite weight lambda >= 0, got "
                    f"{value!r}."
                )
            lambdas[h] = float(value)
        if len(seen) == n_heads:
            what = "the only head" if n_heads == 1 else "every head"
            raise ValueError(
                f"adversarial_heads makes {what} adversarial: there is no head left to "
                "learn features for, so nothing to be adversarial against. Keep at least "
                "one head out of adversarial_heads."
            )
        if not hidden:
            raise ValueError(
                "adversarial_heads reverses a head's gradient into the shared trunk, but "
                "hidden=() has no trunk: give at least one hidden layer."
            )
        return lambdas

    def _check_same_classes(self, classes, classes_list):
        given = _classes_from_param(classes, len(classes_list), self.head_names_)
        for name, old, new in zip(self.head_names_, classes_list, given):
            old_labels, new_labels = old.tolist(), new.tolist()
            if old_labels == new_labels:
                continue
            added = [v for v in new_labels if v not in old_labels]
            missing = [v for v in old_labels if v not in new_labels]
            raise ValueError(
                f"classes of head {name!r} differ from those of the first call to "
                f"partial_fit ({_format_labels(old_labels)}): "
                f"new {_format_labels(added)}, missing {_format_labels(missing)}. "
                "Pass the same classes on every call (or none after the first), or "
                "call fit to start over."
            )

    def _fitted_hidden(self):
        """Sizes of the fitted hidden layers (read from ``coefs_``)."""
        return tuple(W.shape[1] for W in self.coefs_[:-1])

    def _classes_list(self):
        return [self.classes_] if self._y_is_1d else list(self.classes_)

    def _check_head_weights(self, n_heads):
        if self.head_weights is None:
            return np.ones(n_heads)
        w = np.asarray(self.head_weights, dtype=float)
        if w.shape != (n_heads,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"head_weights must be {n_heads} finite non-negative numbers (one per "
                f"head), got {self.head_weights!r}."
            )
        return w

    def _reset_curves(self):
        self.loss_curve_ = []
        self.head_loss_curves_ = {name: [] for name in self.head_names_}
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _initialize(self, n_features, hidden, classes_list, dtype, rng):
        units = [n_features, *hidden, sum(len(c) for c in classes_list)]
        self.n_layers_ = len(units)
        self.t_ = 0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            if self.init == "glorot":
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-bound, bound, (fan_in, fan_out))
                b = rng.uniform(-bound, bound, fan_out)
            elif self.init == "he":  # He et al. 2015, "Delving deep into rectifiers"
                W = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
                b = np.zeros(fan_out)
            else:
                W = rng.normal(0.0, self.init_scale, (fan_in, fan_out))
                b = np.zeros(fan_out)
            self.coefs_.append(W.astype(dtype, copy=False))
            self.intercepts_.append(b.astype(dtype, copy=False))

    def _trainable_params(self):
        """The parameters ``fit`` updates: those of the layers after the frozen ones."""
        k = self.n_frozen_layers
        return self.coefs_[k:] + self.intercepts_[k:]

    def _lay_out_weights(self, plan):
        """Store each trained weight matrix in the memory layout its step
        wants: Fortran order for the narrow layers the plan gives to the
        transposed kernels (:func:`skoffice31._plan.transposes`), C order
        otherwise. The values do not change; a layer that changes layout is
        copied once, before the optimizer allocates its state like it."""
        for i in range(self.n_frozen_layers, len(self.coefs_)):
            W = self.coefs_[i]
            if transposes(plan, W.shape):
                if not W.flags.f_contiguous:
                    self.coefs_[i] = np.asfortranarray(W)
            elif not W.flags.c_contiguous:
                self.coefs_[i] = np.ascontiguousarray(W)

    def _make_optimizer(self, plan):
        self._optimizer_n_frozen = self.n_frozen_layers
        params = self._trainable_params()
        if self.solver == "adam":
            return AdamOptimizer(
                params, self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon,
                plan=plan,
            )
        return SGDOptimizer(
            params,
            self.learning_rate_init,
            self.learning_rate,
            self.momentum,
            self.nesterovs_momentum,
            self.power_t,
            plan=plan,
        )

    def _train(self, X, y_idx, sample_weight, head_weights, rng, incremental):
        n_total = X.shape[0]
        if self.early_stopping:
            stratify = y_idx[:, 0] if self.n_outputs_ == 1 else None
            if stratify is not None:
                self._check_stratifiable(stratify)
            train_idx, val_idx = train_test_split(
                np.arange(n_total),
                random_state=rng,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            if len(val_idx) < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            X_val, y_val, sw_val = X[val_idx], y_idx[val_idx], sample_weight[val_idx]
            if not np.any(sw_val > 0):
                raise ValueError(
                    "Every sample of the early-stopping validation split has weight 0: "
                    "give more samples a weight, or set early_stopping=False."
                )
            sw_val = sw_val / sw_val.max()  # np.average would overflow near 1e308
        else:
            train_idx = X_val = y_val = sw_val = None
        n_samples = n_total if train_idx is None else len(train_idx)

        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the {n_samples} "
                    "training samples; it is clipped."
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        # Every speed decision (BLAS threads, update threads, fused SGD step)
        # is made by plan_training; see skoffice31/_plan.py.
        plan_args = dict(
            batch_size=batch_size,
            solver=self.solver,
            momentum=self.momentum,
            dtype=self.coefs_[0].dtype,
            n_blas_threads=max(
                [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"],
                default=1,
            ),
            layer_shapes=[W.shape for W in self.coefs_[self.n_frozen_layers:]],
            kernels_available=_kernels.kernels_available,
            sample_space_rows=(
                n_samples
                if not incremental and train_idx is None and self.n_frozen_layers == 0
                and sample_space_enabled()
                else None
            ),
            epochs=1 if incremental else self.max_iter,
        )
        plan = plan_training(
            **plan_args, update_cores=_kernels.update_threads_from_environment()
        )
        if plan.kernels:  # an invalid SKOFFICE31_SPIN_US fails here, not mid-epoch
            _team.spin_microseconds()
        if (
            not incremental
            or not hasattr(self, "_optimizer")
            or getattr(self, "_optimizer_n_frozen", 0) != self.n_frozen_layers
        ):  # a fit, or other parameters to train: a fresh optimizer
            self._lay_out_weights(plan)
            self._optimizer = self._make_optimizer(plan)
        else:  # partial_fit goes on; batch size or machine may have changed
            self._optimizer.plan = plan
        if plan.blas_threads is None:
            thread_limit = contextlib.nullcontext()
        else:
            thread_limit = threadpool_limits(plan.blas_threads, user_api="blas")
        # The sample-space setup (two wide GEMMs) runs before BLAS is
        # limited to the small minibatches' one thread.
        first_layer = (
            SampleSpaceLayer(X, self.coefs_[0], batch_size, track_norm=bool(self.alpha))
            if plan.sample_space else None
        )
        # Overflow can only come with a non-finite loss, which _run_epochs
        # raises with a clear message; the floating-point warnings are noise.
        # what _share_update_threads re-plans with, while the epochs run
        self._plan_args = plan_args
        try:
            with thread_limit, np.errstate(over="ignore", invalid="ignore"):
                self._run_epochs(
                    X, y_idx, sample_weight, head_weights, rng, incremental, batch_size,
                    n_samples, train_idx, X_val, y_val, sw_val, first_layer,
                )
        finally:
            self.__dict__.pop("_plan_args", None)

    def _share_update_threads(self, n_threads):
        """Let the rest of the running fit share its updates over ``n_threads``
        threads (at most 2), as if ``SKOFFICE31_UPDATE_THREADS`` had said so
        when the fit began.

        For a callback at the end of an epoch, e.g. the study runner's
        :class:`skoffice31.study._threads.FollowFreeCores`, which hands the
        cores of finished fits to the ones still running. Only the plan's
        thread counts change (``update_threads``, ``kernel_threads``); the
        kernels' row parts and the NumPy path's element-wise updates do not
        depend on them, so neither does the result. Outside a fit it does
        nothing.

        Parameters
        ----------
        n_threads : int
            Cores this fit may use from now on.

        Returns
        -------
        changed : bool
            Whether the plan's thread counts changed.
        """
        plan_args = getattr(self, "_plan_args", None)
        optimizer = getattr(self, "_optimizer", None)
        if plan_args is None or optimizer is None:
            return False
        new = plan_training(**plan_args, update_cores=max(1, int(n_threads)))
        old = optimizer.plan
        if (new.update_threads, new.kernel_threads) == (old.update_threads, old.kernel_threads):
            return False
        optimizer.plan = dataclasses.replace(
            old, update_threads=new.update_threads, kernel_threads=new.kernel_threads
        )
        return True

    def _run_epochs(self, X, y_idx, sample_weight, head_weights, rng, incremental,
                    batch_size, n_samples, train_idx, X_val, y_val, sw_val,
                    first_layer=None):
        """The epochs of a fit.

        ``first_layer`` is a :class:`~skoffice31._dual.SampleSpaceLayer`
        when the plan trains the first layer in sample space: it gives each
        minibatch's first-layer product and takes the first layer's step;
        the optimizer steps the other parameters, and ``coefs_[0]`` is
        written once, when the epochs end (or stop).
        """
        net = _Network(
            self.coefs_, self.intercepts_, batch_size, self.activation,
            track_dead_units=self.activation == "relu",
        )
        slices = head_slices([len(c) for c in self._classes_list()])
        n_frozen = self.n_frozen_layers
        params = self._trainable_params()
        # The L2 term of frozen weights is a constant of the loss (no gradient).
        frozen_sq_norm = sum(
            float(np.dot(W.reshape(-1), W.reshape(-1))) for W in self.coefs_[:n_frozen]
        )
        # Forward fusion: the first layer's step also computes the next
        # batch's product through it, when the kernels take that layer.
        fuse_forward = (
            n_frozen == 0 and first_layer is None
            and self._optimizer.fuses_forward(self.coefs_[0])
        )
        if fuse_forward and _kernels.is_transposed(self.coefs_[0]):
            # a narrow first layer's steps are short: the next batch's rows
            # are gathered by the kernel threads too, which then spin on
            net.gather_threads = self._optimizer._kernel_threads(self.coefs_[0])
        if first_layer is not None:
            stepped = params[1:]  # the optimizer's; the first layer's weights are not
            # callbacks asking for the fitted weights mid-fit get them from here
            self._first_layer_weights = first_layer.weights
        start_time = time.perf_counter()
        collapse = _CollapseMonitor()
        # Head-loss curves are means over each head's labelled rows.
        has_missing = bool((y_idx < 0).any())
        if has_missing:
            train_codes = y_idx if train_idx is None else y_idx[train_idx]
            n_labelled_epoch = (train_codes >= 0).sum(axis=0)
        try:
            for _ in range(1 if incremental else self.max_iter):
                net.start_epoch()
                if self.shuffle:
                    order = rng.permutation(n_samples)
                    if train_idx is not None:
                        order = train_idx[order]
                else:
                    order = train_idx
                epoch_loss = 0.0
                epoch_heads = np.zeros(len(slices))
                # the batch (by its start) already in the input buffer, and the
                # one whose first-layer product is ready (forward fusion)
                gathered_start = ready_start = None
                for start in range(0, n_samples, batch_size):
                    stop = min(n_samples, start + batch_size)
                    if order is None:
                        rows = slice(start, stop)
                        X_batch = X[rows]
                    else:
                        rows = order[start:stop]
                        # already gathered, or not read (sample space)
                        if gathered_start == start or first_layer is not None:
                            X_batch = net.x_buf[: stop - start]
                        else:
                            X_batch = net.gather(X, rows)
                    sw = sample_weight[rows]
                    # Normalise by the largest weight first: a sum of weights
                    # near the float maximum would overflow to inf.
                    sw_max = float(sw.max())
                    if sw_max == 0:  # a batch of zero-weight samples teaches nothing
                        continue
                    sw = sw / sw_max
                    sw_scaled_sum = float(sw.sum())
                    sw_sum = sw_max * sw_scaled_sum  # may be inf: alpha / inf = 0
                    reversal = None
                    if self._adversarial is not None:
                        reversal = self._reversal(slices, start / n_samples, X.dtype)
                    next_input = None
                    if fuse_forward and stop < n_samples:
                        next_stop = min(n_samples, stop + batch_size)
                        if order is None:
                            next_input = X[stop:next_stop]
                        else:
                            next_input = net.gather_next(X, order[stop:next_stop])
                    if first_layer is not None:
                        first_layer.forward(rows, net.z_bufs[0][: stop - start])
                    losses, grads = net.backprop(
                        X_batch, y_idx[rows], sw / sw_scaled_sum, slices, head_weights,
                        self.alpha / sw_sum, n_frozen=n_frozen, reversal=reversal,
                        first_done=ready_start == start or first_layer is not None,
                        next_input=next_input,
                    )
                    if first_layer is None:
                        sq_norm = self._optimizer.update_params(params, grads)
                    else:  # ||W||^2 before the step, as the optimizer's
                        sq_norm = first_layer.sq_norm() + self._optimizer.update_params(
                            stepped, grads[1:]
                        )
                        first_layer.step(
                            rows, grads[0].delta, self._optimizer.learning_rate, grads[0].l2
                        )
                    sq_norm += frozen_sq_norm
                    if next_input is not None:
                        ready_start = stop if net.end_step() else None
                        gathered_start = stop if order is not None else None
                    batch_loss = float(np.dot(head_weights, losses))
                    if self.alpha:
                        batch_loss += 0.5 * self.alpha * sq_norm / sw_sum
                    collapse.first_batch(batch_loss)
                    if not np.isfinite(batch_loss):
                        raise ValueError(
                            f"The training loss became {batch_loss} in epoch "
                            f"{self.n_iter_ + 1}: training diverged. Lower "
                            "learning_rate_init or scale the inputs."
                        )
                    epoch_loss += batch_loss * (stop - start)
                    if has_missing:
                        epoch_heads += losses * (y_idx[rows] >= 0).sum(axis=0)
                    else:
                        epoch_heads += losses * (stop - start)
                if has_missing:
                    head_means = np.divide(
                        epoch_heads, n_labelled_epoch, out=np.zeros(len(slices)),
                        where=n_labelled_epoch > 0,
                    )
                else:
                    head_means = epoch_heads / n_samples
                self._end_epoch(epoch_loss / n_samples, head_means, n_samples, start_time)
                collapse.end_epoch(self, net)
                if self.early_stopping:
                    self._track_validation(X_val, y_val, sw_val)
                else:
                    self._track_loss()
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if self.early_stopping else "Training loss"
                    msg = (
                        f"{what} did not improve more than tol={self.tol:f} for "
                        f"{self.n_iter_no_change} consecutive epochs."
                    )
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
            else:
                if not incremental:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                        "reached and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                    )
        finally:
            if first_layer is not None:
                self.__dict__.pop("_first_layer_weights", None)
                first_layer.write_weights()
            if self.early_stopping and hasattr(self, "_best_params"):
                n = len(self.coefs_)
                self.coefs_ = self._best_params[:n]
                self.intercepts_ = self._best_params[n:]
                del self._best_params

    def _adversarial_lambdas(self, progress):
        """Weight ``lambda_p`` of each adversarial head at training progress ``p``.

        Parameters
        ----------
        progress : float
            Training progress ``p`` in [0, 1] (clipped).

        Returns
        -------
        lambdas : dict
            Head name -> ``lambda_p``: ``lambda`` for
            ``adversarial_schedule="constant"``, else
            ``lambda * (2 / (1 + exp(-10 p)) - 1)``.
        """
        check_is_fitted(self)
        lambdas = self._check_adversarial_heads(list(self.head_names_), self._fitted_hidden())
        if lambdas is None:
            return {}
        scale = _schedule(self.adversarial_schedule, progress)
        return {self.head_names_[h]: lam * scale for h, lam in sorted(lambdas.items())}

    def _reversal(self, slices, epoch_fraction, dtype):
        """Factor of each output column on its way into the trunk: 1, or ``-lambda_p``."""
        progress = (self.n_iter_ + epoch_fraction) / self.max_iter
        scale = _schedule(self.adversarial_schedule, progress)
        factors = np.ones(slices[-1].stop, dtype=dtype)
        for h, lam in self._adversarial.items():
            factors[slices[h]] = -lam * scale
        return factors

    def _end_epoch(self, loss, head_losses, n_samples, start_time):
        self.n_iter_ += 1
        self.t_ += n_samples
        self.loss_ = loss
        self.loss_curve_.append(loss)
        for name, value in zip(self.head_names_, head_losses):
            self.head_loss_curves_.setdefault(name, []).append(float(value))
        elapsed = time.perf_counter() - start_time
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}, {elapsed:.2f} s")
        _callbacks.end_epoch(self)

    def _check_stratifiable(self, y_codes):
        counts = np.bincount(y_codes[y_codes >= 0], minlength=len(self._classes_list()[0]))
        lonely = self._classes_list()[0][(counts == 1)]
        if len(lonely):
            raise ValueError(
                "early_stopping=True holds out a validation split stratified by "
                f"class, which needs at least 2 samples of each class; head "
                f"{self.head_names_[0]!r} has only 1 sample of class(es) "
                f"{_format_labels(lonely.tolist())}. Add samples, drop those, or set "
                "early_stopping=False."
            )

    def _track_loss(self):
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    def _track_validation(self, X_val, y_val, sw_val):
        pred = np.column_stack(
            [p.argmax(axis=1) for p in self._log_proba_heads(X_val)]
        )
        labelled = y_val >= 0
        if labelled.all():
            score = float(np.mean(np.average(pred == y_val, axis=0, weights=sw_val)))
        else:  # each head scored on its labelled rows; a head without any is left out
            per_head = [
                np.average(pred[m, h] == y_val[m, h], weights=sw_val[m])
                for h, m in enumerate(labelled.T)
                if sw_val[m].sum() > 0
            ]
            score = float(np.mean(per_head)) if per_head else 0.0
        self.validation_scores_.append(score)
        if self.verbose:
            print(f"Validation score: {score:f}")
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_params = [p.copy() for p in self.coefs_ + self.intercepts_]

    # -------------------------------------------------------------- predict

    def _log_proba_heads(self, X):
        Z = X
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            Z = Z @ W
            Z += b
            if i < last:
                ACTIVATIONS[self.activation](Z)
        return log_softmax_heads(Z, head_slices([len(c) for c in self._classes_list()]))

    def embed(self, X, layer=-1):
        """Activations of a hidden layer of the shared trunk: the learned features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        layer : int, default=-1
            Which hidden layer, Python-indexed over the hidden layers only:
            ``0`` is the first, ``-1`` the last (the features the heads see).

        Returns
        -------
        features : ndarray of shape (n_samples, hidden[layer])
            The layer's outputs, after its ``activation``, in the model's
            dtype.

        Raises
        ------
        ValueError
            When the model has no hidden layer (``hidden=()``), or ``layer``
            is not an index of one.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_digits
        >>> from skoffice31 import MultiHeadMLPClassifier
        >>> X, digit = load_digits(return_X_y=True)
        >>> y = np.column_stack([digit, digit % 2])
        >>> clf = MultiHeadMLPClassifier(hidden=(32, 16), max_iter=5, random_state=0)
        >>> clf = clf.fit(X / 16, y)
        >>> clf.embed(X[:3] / 16).shape
        (3, 16)
        >>> clf.embed(X[:3] / 16, layer=0).shape
        (3, 32)
        """
        X = self._validate_X_predict(X)
        n_hidden = len(self.coefs_) - 1
        if n_hidden == 0:
            raise ValueError(
                "embed needs a hidden layer, but this model has none (hidden=()): its "
                "inputs go straight to the heads. Fit it with hidden=(...) to get features."
            )
        if isinstance(layer, bool) or not isinstance(layer, (Integral, np.integer)) or not (
            -n_hidden <= layer < n_hidden
        ):
            raise ValueError(
                f"layer={layer!r} is not a hidden layer: the model has {n_hidden} hidden "
                f"layer(s), so layer must be an int from {-n_hidden} to {n_hidden - 1}."
            )
        stop = int(layer) % n_hidden
        Z = X
        for W, b in zip(self.coefs_[: stop + 1], self.intercepts_[: stop + 1]):
            Z = Z @ W
            Z += b
            ACTIVATIONS[self.activation](Z)
        return Z

    def _validate_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self.coefs_[0].dtype)

    def _unwrap(self, per_head):
        return per_head[0] if self._y_is_1d else per_head

    def predict_log_proba(self, X):
        """Log of the class probabilities of each head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes) or list of such
            An array for one head, a list with one array per head otherwise;
            columns in ``classes_`` order.
        """
        return self._unwrap(self._log_proba_heads(self._validate_X_predict(X)))

    def predict_proba(self, X):
        """Class probabilities of each head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of such
            An array for one head, a list with one array per head otherwise;
            each row of each array sums to one.
        """
        log_proba = self._log_proba_heads(self._validate_X_predict(X))
        return self._unwrap([np.exp(lp) for lp in log_proba])

    def predict(self, X):
        """Predict the label of each head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_heads)
            1-D for a model fitted on 1-D ``y``; otherwise one column per
            head holding the original label values (an object array when
            heads mix strings and numbers).
        """
        log_proba = self._log_proba_heads(self._validate_X_predict(X))
        classes = self._classes_list()
        cols = [c[lp.argmax(axis=1)] for c, lp in zip(classes, log_proba)]
        if self._y_is_1d:
            return cols[0]
        return stack_head_columns(cols, classes)

    def score_heads(self, X, y, sample_weight=None):
        """Accuracy of each head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_heads)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        scores : dict
            Head name -> accuracy.
        """
        columns, _, _ = _split_heads(y)
        if len(columns) != self.n_outputs_:
            raise ValueError(
                f"y has {len(columns)} head(s) but the model has {self.n_outputs_}."
            )
        pred = self.predict(X)
        _check_rows(pred, columns)
        sw = None if sample_weight is None else np.asarray(sample_weight)
        scores = {}
        for h, (col, classes, name) in enumerate(
            zip(columns, self._classes_list(), self.head_names_)
        ):
            # missing entries left out; -1 is missing unless it is a class
            mask = missing_mask(col, name, classes)
            if mask.all():
                raise ValueError(
                    f"Every label of head {name!r} of y is missing: there is nothing to "
                    "score it on. Score on samples that have labels for that head."
                )
            keep = ~mask
            right = col[keep] == pred[keep, h] if pred.ndim == 2 else col[keep] == pred[keep]
            scores[name] = float(np.average(right, weights=None if sw is None else sw[keep]))
        return scores

    def score(self, X, y, sample_weight=None):
        """Mean over heads of each head's accuracy.

        For one head this is plain accuracy. See the Notes of the class for
        why the heads are averaged rather than required to be all right.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_heads)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        return float(np.mean(list(self.score_heads(X, y, sample_weight).values())))

    def __getstate__(self):
        # On Python >= 3.11 object.__getstate__ (and so BaseEstimator's, for
        # a class outside sklearn) returns the instance's own __dict__:
        # copy before removing anything, or pickling changes the live model.
        # The optimizer's state is kept, as in scikit-learn's MLPClassifier,
        # so partial_fit continues exactly after loading (its scratch
        # buffers are dropped by the optimizer's own __getstate__).
        state = dict(super().__getstate__())
        for name in _FIT_ONLY_ATTRIBUTES:
            state.pop(name, None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.classifier_tags.multi_label = True
        return tags


class _CollapseMonitor:
    """Warn, once per fit and kind, when training collapses.

    Fed the loss of the fit's first minibatch (measured before its step) and
    the epochs' ends; see :class:`TrainingCollapseWarning`.
    """

    def __init__(self):
        self.start_loss = None
        self.warned_loss = self.warned_dead = False

    def first_batch(self, batch_loss):
        if self.start_loss is None:
            self.start_loss = batch_loss

    def end_epoch(self, est, net):
        start, loss = self.start_loss, est.loss_
        if not self.warned_loss and start is not None and loss > COLLAPSE_FACTOR * start > 0:
            self.warned_loss = True
            warnings.warn(
                f"The training loss ended epoch {est.n_iter_} at {loss:.4g}, more than "
                f"{COLLAPSE_FACTOR:g} times the {start:.4g} the fit started from: the "
                "model is collapsing, not converging (its predictions are probably "
                "near chance). Lower learning_rate_init, or scale and centre the "
                "inputs (e.g. StandardScaler or ImageFlattener(scale=1/255)).",
                TrainingCollapseWarning,
                stacklevel=2,
            )
        dead = net.dead_layers()
        if dead and not self.warned_dead:
            self.warned_dead = True
            names = " and of ".join(
                f"hidden layer {i + 1} ({net.coefs[i].shape[1]} units)" for i in dead
            )
            warnings.warn(
                f"Every unit of {names} output zero for the whole of epoch "
                f"{est.n_iter_} (dead ReLU units): nothing reaches the layers after "
                "it, so the heads can only learn their intercepts. Lower "
                "learning_rate_init, scale and centre the inputs, or change the "
                "initialisation (init, init_scale).",
                TrainingCollapseWarning,
                stacklevel=2,
            )


class _Network:
    """Preallocated buffers and the forward/backward pass of one fit.

    Buffers are sized for one minibatch and reused for every batch: the
    training loop allocates nothing proportional to the data.

    With ``track_dead_units``, the network records per epoch whether each
    hidden layer had any non-zero output (see :meth:`dead_layers`); once a
    layer has had one, the check is skipped for the rest of the epoch.

    Forward fusion: :meth:`backprop` can be given the *next* minibatch
    (``next_input``, gathered with :meth:`gather_next`), and the optimizer
    step that consumes the first layer's gradient may then also write the
    next batch's first-layer product ``next_input @ W`` (through the updated
    weights) into a second buffer. :meth:`end_step` makes that buffer the
    first layer's output and the gathered batch the input of the next
    step, whose :meth:`backprop` is told so with ``first_done=True``: the
    wide first weight matrix is then read once per step instead of twice.
    """

    def __init__(self, coefs, intercepts, batch_size, activation="relu",
                 track_dead_units=False):
        self.coefs, self.intercepts = coefs, intercepts
        dtype = coefs[0].dtype
        self.x_buf = np.empty((batch_size, coefs[0].shape[0]), dtype)
        self.z_bufs = [np.empty((batch_size, W.shape[1]), dtype) for W in coefs]
        self.delta_bufs = [np.empty((batch_size, W.shape[1]), dtype) for W in coefs]
        self._batch_size = batch_size
        # the next minibatch and its first-layer product (forward fusion),
        # made on first use
        self._next_x = self._next_z = None
        self._pending = None
        self._gathered = False
        #: threads of the next batch's gather (set by the fit when the
        #: kernel threads are shared; 1: np.take)
        self.gather_threads = 1
        self.activate = ACTIVATIONS[activation]
        self.activate_derivative = DERIVATIVES[activation]
        # Old names, still read by benchmarks/profile_training.py.
        self.relu, self.relu_derivative = self.activate, self.activate_derivative
        self._alive = [False] * (len(coefs) - 1) if track_dead_units else None

    @property
    def reversed_buf(self):
        """Buffer of the output deltas reversed into the trunk (made on first use)."""
        if not hasattr(self, "_reversed_buf"):
            self._reversed_buf = np.empty_like(self.delta_bufs[-1])
        return self._reversed_buf

    def start_epoch(self):
        """Forget which layers had a non-zero output."""
        if self._alive is not None:
            self._alive = [False] * len(self._alive)

    def dead_layers(self):
        """Hidden layers (0-based) whose every output was zero since :meth:`start_epoch`."""
        if self._alive is None:
            return []
        return [i for i, alive in enumerate(self._alive) if not alive]

    def gather(self, X, rows):
        """Copy the rows ``rows`` of ``X`` into the input buffer.

        ``mode="clip"``: with the default ``mode="raise"`` NumPy first copies
        into a temporary buffer when ``out`` is given (measured 3x slower for
        256 rows of 30,000 floats); the rows come from a permutation of valid
        indices, so there is nothing to clip.
        """
        return self._take(X, rows, self.x_buf)

    def gather_next(self, X, rows):
        """Copy the rows of the *next* minibatch into a second input buffer
        (the current batch's buffer is still in use); :meth:`end_step`
        swaps the two."""
        if self._next_x is None:
            self._next_x = np.empty_like(self.x_buf)
        self._gathered = True
        out = self._next_x[: len(rows)]
        # shared with the kernel threads, which spin between steps (issue 10)
        if self.gather_threads > 1 and _kernels.gather_rows(X, rows, out, self.gather_threads):
            return out
        return self._take(X, rows, self._next_x)

    @staticmethod
    def _take(X, rows, buf):
        out = buf[: len(rows)]
        np.take(X, rows, axis=0, out=out, mode="clip")  # see gather for "clip"
        return out

    def end_step(self):
        """Finish a step whose :meth:`backprop` was given ``next_input``
        (after the optimizer step).

        Returns
        -------
        first_done : bool
            Whether the first layer's product of the next batch is ready (the
            step computed it): pass it to the next :meth:`backprop` as
            ``first_done``. Either way, a batch gathered by
            :meth:`gather_next` is now in the input buffer.
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        gathered, grad = pending
        if gathered:
            self.x_buf, self._next_x = self._next_x, self.x_buf
        if not grad.next_done:
            return False
        self.z_bufs[0], self._next_z = self._next_z, self.z_bufs[0]
        return True

    def backprop(self, X_batch, y_batch, sample_weight, slices, head_weights, l2,
                 n_frozen=0, reversal=None, first_done=False, next_input=None):
        """Forward and backward pass of one minibatch.

        Parameters
        ----------
        X_batch : ndarray of shape (n, n_features)
        y_batch : ndarray of shape (n, n_heads)
            Class indices.
        sample_weight : ndarray of shape (n,)
            Weights normalised to sum to one.
        slices : list of slice
            Output columns of each head.
        head_weights : ndarray of shape (n_heads,)
        l2 : float
            ``alpha`` divided by the batch's total sample weight.
        n_frozen : int, default=0
            Number of leading weight layers left out: no gradient for them,
            and no delta is propagated below the lowest trainable layer.
        reversal : ndarray of shape (n_outputs,), default=None
            Factor applied to each output column's delta on its way into the
            trunk (gradient reversal: ``-lambda`` for an adversarial head's
            columns, 1 elsewhere). The output layer's own gradient is not
            scaled. Applied to the deltas before the trunk's back-propagation,
            so every update path (NumPy or compiled) sees the same gradient.
        first_done : bool, default=False
            The first layer's product ``X_batch @ W`` is already in its output
            buffer (computed by the previous step, see :meth:`end_step`).
        next_input : ndarray of shape (n_next, n_features), default=None
            The next minibatch, whose first-layer product the optimizer step
            may compute (forward fusion; only when the first layer is
            trained). Call :meth:`end_step` after the step.

        Returns
        -------
        losses : ndarray of shape (n_heads,)
            Cross-entropy of each head on the batch.
        grads : list
            :class:`OuterGradient` for each trainable weight matrix, then the
            trainable intercept gradients; no gradient is computed for the
            network's input.
        """
        n = X_batch.shape[0]
        dtype = self.coefs[0].dtype
        activations = [X_batch]
        last = len(self.coefs) - 1
        for i, (W, b) in enumerate(zip(self.coefs, self.intercepts)):
            Z = self.z_bufs[i][:n]
            if i or not first_done:
                np.matmul(activations[-1], W, out=Z)
            Z += b
            if i < last:
                self.activate(Z)
                if self._alive is not None and not self._alive[i] and Z.any():
                    self._alive[i] = True
            activations.append(Z)
        deltas = [buf[:n] for buf in self.delta_bufs]
        losses = multihead_cross_entropy(
            activations[-1], y_batch, slices, head_weights,
            sample_weight.astype(dtype, copy=False), deltas[last],
        )
        into_trunk = deltas[last]
        if reversal is not None and last > n_frozen:
            into_trunk = np.multiply(deltas[last], reversal, out=self.reversed_buf[:n])
        for i in range(last, n_frozen, -1):
            np.matmul(into_trunk if i == last else deltas[i], self.coefs[i].T,
                      out=deltas[i - 1])
            self.activate_derivative(activations[i], deltas[i - 1])
        coef_grads = [
            OuterGradient(activations[i], deltas[i], self.coefs[i], l2)
            for i in range(n_frozen, last + 1)
        ]
        if next_input is not None:
            if n_frozen:
                raise ValueError("Forward fusion needs the first layer to be trained.")
            if self._next_z is None:
                self._next_z = np.empty_like(self.z_bufs[0])
            first = coef_grads[0]
            first.next_input = next_input
            first.next_output = self._next_z[: next_input.shape[0]]
            self._pending = (self._gathered, first)
            self._gathered = False
        intercept_grads = [deltas[i].sum(axis=0) for i in range(n_frozen, last + 1)]
        return losses, coef_grads + intercept_grads


# ------------------------------------------------------------- y handling


def _schedule(kind, progress):
    """Factor of ``lambda`` at training progress ``progress`` (clipped to [0, 1])."""
    if kind == "constant":
        return 1.0
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + np.exp(-10.0 * p)) - 1.0


def _check_hidden(hidden):
    if isinstance(hidden, (Integral, np.integer)):
        hidden = (hidden,)
    try:
        sizes = [int(h) for h in hidden]
        ok = all(float(h) == int(h) for h in hidden) and all(h > 0 for h in sizes)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"hidden must be a tuple of positive ints, got {hidden!r}.")
    return tuple(sizes)


def _split_heads(y):
    """Split ``y`` into one 1-D column per head; find the head names."""
    if y is None:
        raise ValueError("This estimator requires y to be passed, but the target y is None.")
    if hasattr(y, "columns") and hasattr(y, "iloc"):  # DataFrame
        names = [str(c) for c in y.columns]
        columns = [_series_values(y.iloc[:, j]) for j in range(y.shape[1])]
        if not columns:
            raise ValueError("y has no columns.")
        return columns, names, False
    name = getattr(y, "name", None)
    y = _series_values(y) if hasattr(y, "hasnans") else np.asarray(y)
    if y.ndim == 1:
        return [y], [str(name) if isinstance(name, str) else "head0"], True
    if y.ndim != 2 or y.shape[1] == 0:
        raise ValueError(
            f"y must be 1-D (one head) or 2-D (n_samples, n_heads), got shape {y.shape}."
        )
    return [y[:, j] for j in range(y.shape[1])], [f"head{j}" for j in range(y.shape[1])], False


def _series_values(series):
    """A pandas Series as an array; a nullable integer one with gaps keeps its ints.

    NumPy has no integer NA: ``np.asarray`` turns an ``Int64`` column with
    ``pd.NA`` into floats. Its ints and ``None`` (a missing label) as objects
    keep the classes integers.
    """
    if series.dtype.kind in "iu" and series.hasnans:
        return series.to_numpy(dtype=object, na_value=None)
    return np.asarray(series)


def _check_rows(X, columns):
    if len(columns[0]) != X.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} samples but y has {len(columns[0])}: they must match."
        )


def _labelled_or_raise(col, name, classes=None):
    """The labelled values of one head and the mask of its missing labels.

    Every label missing raises: the head would have nothing to learn.
    """
    values, mask = labelled_values(col, name, classes)
    if len(col) and mask.all():
        raise ValueError(
            f"Every label of head {name!r} of y is missing (-1 in an integer head, "
            "NaN, None or pandas.NA otherwise): a head needs at least one labelled "
            "sample. Label some samples of that head, or drop the head."
        )
    return values, mask


def _unique_labels(col, name):
    col, _ = _labelled_or_raise(col, name)
    try:  # type_of_target sorts the labels too: mixed str/number raises TypeError
        kind = type_of_target(col)  # one column at a time: mixed 2-D y would raise
        if kind in ("continuous", "continuous-multioutput"):
            raise ValueError(
                f"Unknown label type: {kind}. Head {name!r} of y holds continuous "
                "values; a classifier needs class labels."
            )
        classes = np.unique(col)
    except TypeError:
        raise ValueError(
            f"Head {name!r} of y mixes label types (e.g. strings and numbers); use "
            "one type per head."
        ) from None
    if len(classes) < 2:
        raise ValueError(
            f"Head {name!r} of y has only one class ({classes.tolist()[0]!r}); each head needs "
            "at least two classes."
        )
    return classes


def _format_labels(labels, limit=10):
    """``['a', 'b']`` for a list of labels as the user gave them (at most ``limit``)."""
    shown = ", ".join(repr(v) for v in labels[:limit])
    more = f", ... ({len(labels)} in all)" if len(labels) > limit else ""
    return f"[{shown}{more}]"


def _classes_from_param(classes, n_heads, names):
    if n_heads == 1 and not (
        isinstance(classes, list) and len(classes) == 1 and np.ndim(classes[0]) == 1
    ):
        classes = [classes]
    if len(classes) != n_heads:
        raise ValueError(
            f"classes must give one array of classes per head: got {len(classes)} for "
            f"{n_heads} head(s)."
        )
    out = []
    for c, name in zip(classes, names):
        c = np.asarray(c)
        if missing_mask(c, name).any():  # -1 is a class only next to exactly one other
            raise ValueError(
                f"classes of head {name!r} contain a missing-label marker (-1 in an "
                "integer head, NaN, None or pandas.NA): give only the real classes; "
                "missing labels are marked in y."
            )
        out.append(_unique_labels(c, name))
    return out


def _encode(columns, classes_list, names):
    """Class index of every label, per head; ``-1`` for a missing label.

    Unknown labels raise, and so does a head whose every label is missing.
    """
    codes = np.empty((len(columns[0]), len(columns)), dtype=np.intp)
    for h, (col, classes, name) in enumerate(zip(columns, classes_list, names)):
        col, mask = _labelled_or_raise(col, name, classes)
        try:
            idx = np.searchsorted(classes, col)
        except TypeError:
            idx = None
        idx_ok = idx is not None and np.all(idx < len(classes))
        if not idx_ok or not np.all(classes[np.minimum(idx, len(classes) - 1)] == col):
            known = set(classes.tolist())
            unknown = sorted({repr(v) for v in col.tolist() if v not in known})
            raise ValueError(
                f"Head {name!r} of y has labels not among its classes: "
                f"{', '.join(unknown[:5])}."
            )
        if mask.any():
            codes[:, h] = MISSING_INT
            codes[~mask, h] = idx
        else:
            codes[:, h] = idx
    return codes
