"""The study's presets, its published table, the grids and the settings object."""

import dataclasses
from typing import NamedTuple

__all__ = [
    "BUILTIN_SIZE",
    "DEFAULT_HIDDEN",
    "DEFAULT_SOLVERS",
    "HEADS",
    "OFFICE31_SIZE",
    "PRESETS",
    "STANDARDIZE",
    "STUDY_RESULTS",
    "TUNED_HIDDEN",
    "Configuration",
    "StudySettings",
    "expected_cost",
    "final_classifier",
]

#: The study's own table (Office-31, 100x100 RGB raw pixels, 80% train /
#: 15% test, 50 epochs, lr 1e-4, minibatch 10, on a laptop):
#: (hidden, solver) -> (domain accuracy, object accuracy, seconds).
STUDY_RESULTS = {
    ((10,), "sgd"): (0.661, 0.032, 93),
    ((10,), "adam"): (0.661, 0.032, 396),
    ((64, 32, 10), "sgd"): (0.872, 0.195, 257),
    ((64, 32, 10), "adam"): (0.858, 0.269, 2260),
    ((384, 192, 64, 32, 10), "sgd"): (0.837, 0.214, 2376),
    ((384, 192, 64, 32, 10), "adam"): (0.890, 0.283, 11752),
}

#: The study's grid: three hidden layouts x two solvers.
DEFAULT_HIDDEN = ((10,), (64, 32, 10), (384, 192, 64, 32, 10))
#: The tuned preset's own layouts: the three best of stage 14 of
#: ``benchmarks/tune_recipe.py`` whose grid fits in 5 minutes on 2 cores
#: (stage 5's rule again once the first layer had 512 projected inputs;
#: ``(2048, 512)`` replaced stage 5's ``(512,)``).
TUNED_HIDDEN = ((1024,), (2048, 512), (1024, 512, 256))
DEFAULT_SOLVERS = ("sgd", "adam")

#: Names of the two heads (the columns of ``y``).
HEADS = ("domain", "object")

#: Image side of the built-in dataset when no size is given; the real
#: photos use the study's 100x100.
BUILTIN_SIZE = 32
OFFICE31_SIZE = 100

#: Values of :attr:`StudySettings.standardize`.
STANDARDIZE = ("none", "image", "channel")

#: Settings of the two presets. ``learning_rate_init`` is given per solver.
PRESETS = {
    # The study exactly: raw 0..255 pixels, N(0, 0.03) weights, plain SGD
    # (no momentum), no L2, lr 1e-4, minibatch 10, 50 epochs, the textbook
    # code's 80% train / 15% test split (5% unused) with a fixed seed.
    "study": {
        "scale": 1.0,
        "init": "normal",
        "init_scale": 0.03,
        "momentum": 0.0,
        "nesterovs_momentum": False,
        "alpha": 0.0,
        "learning_rate_init": {"sgd": 1e-4, "adam": 1e-4},
        "batch_size": 10,
        "epochs": 50,
        "train_size": 0.8,
        "test_size": 0.15,
        "seed": 0,
    },
    # Our recommendation, chosen by benchmarks/tune_recipe.py (cross-validation
    # inside the training part of the split, never the test part): 32x32
    # photos, pixels scaled to 0..1 then centred and scaled per feature on the
    # training rows (StandardScaler; un-centred pixels are what killed the
    # ReLUs of the previous preset), Glorot initialisation, SGD with Nesterov
    # momentum (lr 3e-3) or Adam (1e-3 / 3, stage 8 of the search), L2 1e-1 (stage 12),
    # minibatches of 32, its own grid of wide layouts (stages 5 and 14 of the
    # search: the study's layouts all end in 10 units, a bottleneck for 31 objects),
    # training on four versions of each photo (the photo, its
    # mirror image and shifted copies of the two; AugmentedClassifier), whose
    # standardised features are projected on their first 512 principal
    # components (stages 10 and 11: the projection makes a step cheaper, so
    # the four copies cost what two did without it); the shifted copies are
    # drawn anew at every epoch (stage 16); 24 image statistics (brightness,
    # contrast, range, sharpness per channel; ImageStatistics), standardised,
    # next to the components, for 16 epochs (stage 17: the same score as 20
    # epochs, and cheaper).
    "tuned": {
        "hidden": TUNED_HIDDEN,
        "scale": 1.0 / 255.0,
        "init": "glorot",
        "init_scale": 0.03,
        "momentum": 0.9,
        "nesterovs_momentum": True,
        "alpha": 1e-1,
        "learning_rate_init": {"sgd": 3e-3, "adam": 1e-3 / 3},
        "batch_size": 32,
        "epochs": 16,
        "train_size": 0.8,
        "test_size": 0.15,
        "seed": 0,
        "photo_size": 32,
        "standardize": "none",
        "image_stats": False,
        "scale_features": True,
        "augment": 4,
        "shift_each_epoch": True,
        "pca": 512,
        "statistics": True,
    },
}


class Configuration(NamedTuple):
    """One point of the grid: a hidden layout and a solver."""

    hidden: tuple
    solver: str

    @property
    def label(self):
        """``"(64,32,10) adam"``."""
        return f"({','.join(str(int(h)) for h in self.hidden)}) {self.solver}"


def _as_hidden(hidden):
    try:
        sizes = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        sizes = None
    if sizes is None or any(s <= 0 for s in sizes):
        raise ValueError(
            f"hidden layout {hidden!r} must be a sequence of positive layer sizes, "
            "e.g. (64, 32, 10), or () for no hidden layer"
        )
    return sizes


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """Everything that defines a run of the study (a frozen dataclass).

    Build it from a preset with :meth:`from_preset`; change fields with
    :func:`dataclasses.replace`, which validates again.

    Parameters
    ----------
    preset : {"study", "tuned"}, default="study"
        The preset the values came from (reported; :attr:`STUDY_RESULTS`
        are shown next to ``"study"`` runs).
    scale : float
        Factor applied to the 0..255 pixels (1.0 = raw pixels as the study).
    init, init_scale, momentum, nesterovs_momentum, alpha, batch_size
        The estimator parameters of the same names.
    learning_rate_init : tuple of (solver, float) pairs
        ``learning_rate_init`` per solver; :meth:`from_preset` also takes a
        dict or one float for all solvers.
    epochs : int
        Training epochs (``max_iter``; no early stopping).
    train_size, test_size : float
        Fractions of the one :class:`~sklearn.model_selection.ShuffleSplit`.
    seed : int
        Seed of the split and of the weights (``random_state``).
    hidden : tuple of tuple of int
        The hidden layouts of the grid; :meth:`from_preset` gives the
        preset's: the study's :data:`DEFAULT_HIDDEN`, the tuned preset's own
        :data:`TUNED_HIDDEN`.
    solvers : tuple of str
        The solvers of the grid.
    size : tuple of (int, int) or None
        Image ``(width, height)``; ``None``: ``photo_size`` for the photos,
        32x32 for the built-in dataset.
    blas_threads : int, default=0
        Limit of the BLAS threads per fit (0: no limit).
    standardize : {"none", "image", "channel"}, default="none"
        Per-image standardisation of the pixels
        (:class:`~skoffice31.ImageStandardizer`): none (the study's raw
        pixels), by the image's mean and standard deviation, or by those of
        each colour channel.
    image_stats : bool, default=False
        Append each image's per-channel mean and standard deviation as
        features (``ImageStandardizer(append_stats=True)``); needs
        ``standardize``.
    scale_features : bool, default=False
        Then standardise each feature on the training rows
        (:class:`~sklearn.preprocessing.StandardScaler`).
    photo_size : int, default=100
        Image side of the photos (``--data``) when ``size`` is ``None``: the
        study's 100; the tuned preset's is smaller.
    seeds : int, default=1
        Number of seeds, ``seed, seed + 1, ...``: the grid runs once per seed,
        the split and the initialisation both following it
        (:func:`~skoffice31.study.run_seeds`).
    augment : int, default=1
        Versions of every training photo the networks train on
        (:class:`~skoffice31.augmentation.AugmentedClassifier`): 1 the photos
        alone (the study's), 2 with their mirror images, 3 and more with
        copies shifted by up to 2 pixels; predictions then average each
        photo and its mirror image. An epoch costs ``augment`` times as much.
    shift_each_epoch : bool, default=False
        With :attr:`augment` >= 3: draw new shifts for the shifted copies
        at every epoch rather than once
        (:class:`~skoffice31.augmentation.AugmentedClassifier`'s
        ``shift_each_epoch``).
    pca : int, default=0
        Project the standardised features on their first ``pca`` principal
        components (at most as many as the training rows and features),
        fitted on the training rows (:class:`~skoffice31.PrincipalComponents`,
        seeded by :attr:`seed`, no whitening) before the network; 0: no
        projection. The first layer then has ``pca`` inputs instead of one
        per pixel and colour, which makes every step cheaper. Needs
        ``scale_features``.
    statistics : bool, default=False
        Put :class:`~skoffice31.ImageStatistics` (eight statistics per colour
        channel: brightness, contrast, range, sharpness), standardised on the
        training rows, next to the preprocessed pixels (a
        :class:`~sklearn.pipeline.FeatureUnion`): the network reads the
        pixels (or their principal components) and these 24 numbers. They
        are cues of the domain (a webcam's blurred frames, a shop's white
        backgrounds) that the pixels carry only spread over thousands of
        features.
    """

    preset: str = "study"
    scale: float = 1.0
    init: str = "normal"
    init_scale: float = 0.03
    momentum: float = 0.0
    nesterovs_momentum: bool = False
    alpha: float = 0.0
    learning_rate_init: tuple = (("sgd", 1e-4), ("adam", 1e-4))
    batch_size: int = 10
    epochs: int = 50
    train_size: float = 0.8
    test_size: float = 0.15
    seed: int = 0
    hidden: tuple = DEFAULT_HIDDEN
    solvers: tuple = DEFAULT_SOLVERS
    size: tuple = None
    blas_threads: int = 0
    standardize: str = "none"
    image_stats: bool = False
    scale_features: bool = False
    photo_size: int = OFFICE31_SIZE
    seeds: int = 1
    augment: int = 1
    shift_each_epoch: bool = False
    pca: int = 0
    statistics: bool = False

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: use one of {sorted(PRESETS)}")
        lr = self.learning_rate_init
        if isinstance(lr, dict):
            lr = tuple(lr.items())
        set_("learning_rate_init", tuple((str(k), float(v)) for k, v in lr))
        hidden = tuple(dict.fromkeys(_as_hidden(h) for h in self.hidden))
        solvers = tuple(dict.fromkeys(str(s) for s in self.solvers))
        set_("hidden", hidden)
        set_("solvers", solvers)
        if not hidden or not solvers:
            raise ValueError("the grid needs at least one hidden layout and one solver")
        for solver in solvers:
            if solver not in DEFAULT_SOLVERS:
                raise ValueError(f"unknown solver {solver!r}: use 'sgd' or 'adam'")
            if not self.learning_rate(solver) > 0:
                raise ValueError(f"learning_rate_init of {solver} must be > 0")
        for name in ("epochs", "batch_size", "seeds", "photo_size", "augment"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (isinstance(self.blas_threads, int) and self.blas_threads >= 0):
            raise ValueError(f"blas_threads must be an integer >= 0, got {self.blas_threads!r}")
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        tr, te = self.train_size, self.test_size
        if not (0 < tr < 1 and 0 < te < 1 and tr + te <= 1 + 1e-9):
            raise ValueError(
                f"split train_size={tr}, test_size={te}: both must be in (0, 1) with sum <= 1"
            )
        if self.standardize not in STANDARDIZE:
            raise ValueError(
                f"standardize must be one of {list(STANDARDIZE)}, got {self.standardize!r}"
            )
        if self.image_stats and self.standardize == "none":
            raise ValueError(
                "image_stats=True appends the statistics that per-image standardisation "
                "removes: set standardize to 'image' or 'channel' as well"
            )
        if not isinstance(self.shift_each_epoch, bool):
            raise ValueError(
                f"shift_each_epoch must be True or False, got {self.shift_each_epoch!r}")
        if not (isinstance(self.pca, int) and self.pca >= 0):
            raise ValueError(f"pca must be an integer >= 0 (0: no projection), got {self.pca!r}")
        if self.pca and not self.scale_features:
            raise ValueError(
                "pca projects the standardised features: set scale_features=True as well "
                "(raw pixels' principal components follow the brightest pixels)"
            )
        if not isinstance(self.statistics, bool):
            raise ValueError(f"statistics must be True or False, got {self.statistics!r}")
        set_("image_stats", bool(self.image_stats))
        set_("scale_features", bool(self.scale_features))
        if self.size is not None:
            size = tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) <= 0:
                raise ValueError(f"size must be (width, height) in pixels, got {self.size!r}")
            set_("size", size)

    @classmethod
    def from_preset(cls, preset="study", **overrides):
        """The settings of ``preset`` with some fields replaced.

        Parameters
        ----------
        preset : {"study", "tuned"}, default="study"
            Name of the preset in :data:`PRESETS`.
        **overrides
            Fields to replace; ``learning_rate_init`` may be one float (all
            solvers) or a dict solver -> float. ``None`` values are ignored.

        Returns
        -------
        settings : StudySettings

        Examples
        --------
        >>> from skoffice31.study import StudySettings
        >>> s = StudySettings.from_preset("study", epochs=2, hidden=[(10,)])
        >>> s.epochs, s.batch_size, s.configurations()
        (2, 10, [Configuration(hidden=(10,), solver='sgd'), Configuration(hidden=(10,), solver='adam')])
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: use one of {sorted(PRESETS)}")
        values = dict(PRESETS[preset])
        overrides = {k: v for k, v in overrides.items() if v is not None}
        lr = overrides.pop("learning_rate_init", None)
        lrs = dict(values["learning_rate_init"])
        if isinstance(lr, dict):
            lrs.update(lr)
        elif lr is not None:
            lrs = {k: float(lr) for k in lrs}
        values["learning_rate_init"] = lrs
        values.update(overrides)
        return cls(preset=preset, **values)

    def seed_values(self):
        """The seeds of the run: ``[seed, seed + 1, ..., seed + seeds - 1]``."""
        return [self.seed + k for k in range(self.seeds)]

    def learning_rate(self, solver):
        """``learning_rate_init`` of ``solver``."""
        return dict(self.learning_rate_init)[solver]

    def image_size(self, real_photos):
        """``(width, height)`` to load: :attr:`size`, or the default of the data."""
        if self.size is not None:
            return self.size
        side = self.photo_size if real_photos else BUILTIN_SIZE
        return (side, side)

    def configurations(self):
        """The grid in its order: every hidden layout x every solver.

        Returns
        -------
        configurations : list of Configuration
        """
        return [Configuration(h, s) for h in self.hidden for s in self.solvers]

    def estimator_params(self, config):
        """Parameters of the :class:`~skoffice31.MultiHeadMLPClassifier` of ``config``.

        Parameters
        ----------
        config : Configuration or (hidden, solver)

        Returns
        -------
        params : dict
        """
        hidden, solver = config
        return {
            "hidden": tuple(hidden),
            "solver": solver,
            "learning_rate_init": self.learning_rate(solver),
            "momentum": self.momentum,
            "nesterovs_momentum": self.nesterovs_momentum,
            "alpha": self.alpha,
            "batch_size": self.batch_size,
            "max_iter": self.epochs,
            # run every epoch the study ran: no stopping on a loss plateau
            "n_iter_no_change": self.epochs,
            "init": self.init,
            "init_scale": self.init_scale,
            "shuffle": True,
            "random_state": self.seed,
        }

    def make_estimator(self, config):
        """A new unfitted :class:`~skoffice31.MultiHeadMLPClassifier` for ``config``.

        The classifier alone; :meth:`make_pipeline` puts the preprocessing
        (:meth:`preprocessing_steps`) in front of it.
        """
        from .._multihead import MultiHeadMLPClassifier

        return MultiHeadMLPClassifier(**self.estimator_params(config))

    def preprocessing_steps(self):
        """The preprocessing of the flattened pixels, as new ``Pipeline`` steps.

        Returns
        -------
        steps : list of (str, transformer)
            ``("imagestandardizer", ImageStandardizer(...))`` when
            :attr:`standardize` is not ``"none"``, then
            ``("standardscaler", StandardScaler())`` with
            :attr:`scale_features`, then ``("principalcomponents",
            PrincipalComponents(pca))`` with :attr:`pca`; empty for the study
            preset (raw pixels). With :attr:`statistics`, one step
            ``("features", FeatureUnion(...))`` instead, whose ``"pixels"``
            part holds those steps (``"passthrough"`` when there are none)
            and whose ``"statistics"`` part is a Pipeline of
            ``ImageStatistics`` and a ``StandardScaler``.

        Examples
        --------
        >>> from skoffice31.study import StudySettings
        >>> s = StudySettings.from_preset("tuned", statistics=True)
        >>> [(name, [n for n, _ in step.transformer_list]) for name, step in s.preprocessing_steps()]
        [('features', ['pixels', 'statistics'])]
        """
        from sklearn.pipeline import FeatureUnion, Pipeline
        from sklearn.preprocessing import StandardScaler

        from .._preprocessing import ImageStandardizer, ImageStatistics, PrincipalComponents

        steps = []
        if self.standardize != "none":
            steps.append(("imagestandardizer", ImageStandardizer(
                per_channel=self.standardize == "channel", n_channels=3,
                append_stats=self.image_stats)))
        if self.scale_features:
            steps.append(("standardscaler", StandardScaler()))
        if self.pca:
            steps.append(("principalcomponents", PrincipalComponents(self.pca,
                                                                     random_state=self.seed)))
        if not self.statistics:
            return steps
        shape = None if self.size is None else (self.size[1], self.size[0])
        statistics = Pipeline([("imagestatistics", ImageStatistics(shape, n_channels=3)),
                               ("standardscaler", StandardScaler())])
        pixels = Pipeline(steps) if steps else "passthrough"
        return [("features", FeatureUnion([("pixels", pixels), ("statistics", statistics)]))]

    def make_pipeline(self, config):
        """The model of ``config`` on flattened pixels: preprocessing, then the classifier.

        Parameters
        ----------
        config : Configuration or (hidden, solver)

        Returns
        -------
        model : MultiHeadMLPClassifier, Pipeline or AugmentedClassifier
            :meth:`make_estimator` itself when there is no preprocessing,
            else a :class:`~sklearn.pipeline.Pipeline` of
            :meth:`preprocessing_steps` and it (step
            ``"multiheadmlpclassifier"``); with :attr:`augment` > 1 that
            model inside an :class:`~skoffice31.augmentation.AugmentedClassifier`
            (the copies are made of the pixels, before the preprocessing).
            :func:`final_classifier` finds the classifier in any of them.

        Examples
        --------
        >>> from skoffice31.study import StudySettings
        >>> s = StudySettings.from_preset("study")
        >>> type(s.make_pipeline(((10,), "sgd"))).__name__
        'MultiHeadMLPClassifier'
        >>> s = StudySettings.from_preset("study", standardize="image", scale_features=True)
        >>> [name for name, _ in s.make_pipeline(((10,), "sgd")).steps]
        ['imagestandardizer', 'standardscaler', 'multiheadmlpclassifier']
        """
        return self.with_preprocessing(self.make_estimator(config))

    def with_preprocessing(self, clf):
        """Any classifier inside these settings' preprocessing and augmentation.

        What :meth:`make_pipeline` does with its
        :class:`~skoffice31.MultiHeadMLPClassifier`, for another model (say,
        scikit-learn's ``MLPClassifier`` on one head), so that both see the
        same inputs.

        Parameters
        ----------
        clf : classifier
            With ``predict_proba`` when :attr:`augment` > 1.

        Returns
        -------
        model : classifier, Pipeline or AugmentedClassifier
            ``clf`` itself when there is nothing to add; else a
            :class:`~sklearn.pipeline.Pipeline` of :meth:`preprocessing_steps`
            and ``clf`` (its step named after its class, lowercase), inside
            an :class:`~skoffice31.augmentation.AugmentedClassifier` of
            :attr:`augment` copies (seeded with :attr:`seed`) when
            :attr:`augment` > 1.

        Examples
        --------
        >>> from sklearn.neural_network import MLPClassifier
        >>> from skoffice31.study import StudySettings
        >>> model = StudySettings.from_preset("tuned").with_preprocessing(MLPClassifier())
        >>> type(model).__name__, [name for name, _ in model.estimator.steps]
        ('AugmentedClassifier', ['features', 'mlpclassifier'])
        """
        from sklearn.pipeline import Pipeline

        steps = self.preprocessing_steps()
        model = Pipeline([*steps, (type(clf).__name__.lower(), clf)]) if steps else clf
        if self.augment == 1:
            return model
        shape = None if self.size is None else (self.size[1], self.size[0], 3)
        return self.augmented(model, shape)

    def augmented(self, model, image_shape=None):
        """``model`` inside these settings' :class:`~skoffice31.augmentation.AugmentedClassifier`.

        :attr:`augment` copies, :attr:`shift_each_epoch`, seeded with
        :attr:`seed`; ``image_shape`` as the augmenter's.
        """
        from ..augmentation import AugmentedClassifier

        return AugmentedClassifier(model, image_shape=image_shape, copies=self.augment,
                                   shift_each_epoch=self.shift_each_epoch,
                                   random_state=self.seed)

    def param_grid(self, prefix=None):
        """The grid as a :class:`~sklearn.model_selection.GridSearchCV` ``param_grid``.

        One dict per configuration (the learning rate goes with the solver).

        Parameters
        ----------
        prefix : str, default=None
            Put before every name. ``None``: the prefix of the classifier in
            :meth:`make_pipeline`'s model -- ``""`` when it is the classifier
            itself, ``"multiheadmlpclassifier__"`` in the Pipeline of the
            preprocessing steps, ``"estimator__"`` before that inside an
            :class:`~skoffice31.augmentation.AugmentedClassifier`. Give
            ``""`` for the estimator of :meth:`make_estimator`.
        """
        if prefix is None:
            prefix = ("estimator__" if self.augment > 1 else "") + (
                "multiheadmlpclassifier__" if self.preprocessing_steps() else "")
        return [
            {f"{prefix}hidden": [c.hidden], f"{prefix}solver": [c.solver],
             f"{prefix}learning_rate_init": [self.learning_rate(c.solver)]}
            for c in self.configurations()
        ]

    def to_dict(self):
        """A JSON-ready dict of the settings."""
        out = dataclasses.asdict(self)
        out["learning_rate_init"] = dict(self.learning_rate_init)
        out["hidden"] = [list(h) for h in self.hidden]
        out["solvers"] = list(self.solvers)
        out["size"] = None if self.size is None else list(self.size)
        return out


def final_classifier(model, fitted=False):
    """The classifier at the end of ``model``.

    Looks inside :class:`~sklearn.pipeline.Pipeline` (its last step) and
    :class:`~skoffice31.augmentation.AugmentedClassifier` (its ``estimator``,
    or with ``fitted`` its fitted ``estimator_``), as often as needed.

    Parameters
    ----------
    model : estimator
        E.g. what :meth:`StudySettings.make_pipeline` returns.
    fitted : bool, default=False
        Take a meta-estimator's fitted clone rather than its template (for the
        fitted attributes; callbacks are set on the template, which the clone
        keeps).

    Returns
    -------
    classifier : estimator
    """
    from ..augmentation import AugmentedClassifier

    while True:
        if hasattr(model, "steps"):
            model = model.steps[-1][1]
        elif isinstance(model, AugmentedClassifier):
            model = model.estimator_ if fitted else model.estimator
        else:
            return model


def expected_cost(config, n_features, n_outputs, n_rows, epochs):
    """Expected fit time of ``config`` up to a constant: weights x epochs x rows.

    Parameters
    ----------
    config : Configuration
    n_features, n_outputs : int
        Input width and total output units (classes over all heads).
    n_rows, epochs : int
        Training rows and epochs.

    Returns
    -------
    cost : int
    """
    sizes = [n_features, *config.hidden, n_outputs]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return weights * int(epochs) * int(n_rows)
