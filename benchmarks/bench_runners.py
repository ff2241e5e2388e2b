"""Per-epoch timing of one configuration for each implementation.

Every runner gets the same arrays (X float32 raw pixels, y (n, 2) int:
domain, object) and one configuration dict, and returns a dict with
``epoch_times`` (seconds per epoch, epoch 1 first).  Runners are executed in
a fresh worker process each (see run.py) so that peak memory is per run.
"""

import time
import warnings

import numpy as np

from bench_common import INIT_SCALE, LEARNING_RATE, timed_fit


# ------------------------------------------------------------------ ours ----


def _ours_estimator(cfg, epochs):
    from skoffice31 import MultiHeadMLPClassifier

    return MultiHeadMLPClassifier(
        hidden=tuple(cfg["layout"]),
        solver=cfg["solver"],
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        learning_rate_init=LEARNING_RATE,
        batch_size=cfg["batch"],
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        shuffle=True,
        random_state=0,
        init="normal",
        init_scale=INIT_SCALE,
    )


def _warm_up_ours(X, y, cfg):
    """One short fit on a few rows, so imports and BLAS start-up are not timed."""
    small = _ours_estimator(cfg, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small.fit(X[: 2 * cfg["batch"]], y[: 2 * cfg["batch"]])


def run_ours(X, y, cfg, epochs, kernels=True, sample_space=True):
    """Fit once for ``epochs`` epochs; per-epoch times from the progress hook.

    ``kernels=False`` forces the pure NumPy path (``SKOFFICE31_KERNELS=0``),
    ``sample_space=False`` keeps plain SGD on the weights
    (``SKOFFICE31_SAMPLE_SPACE=0``); otherwise the plan decides (the result
    says what it chose). The warm-up fit also compiles the kernels or loads
    them from numba's cache, so that this is not timed either.
    """
    import os

    os.environ["SKOFFICE31_KERNELS"] = "1" if kernels else "0"
    os.environ["SKOFFICE31_SAMPLE_SPACE"] = "1" if sample_space else "0"
    _warm_up_ours(X, y, cfg)
    est = _ours_estimator(cfg, epochs)
    total, times = timed_fit(est, X, y)
    plan = est._optimizer.plan
    return {"epoch_times": times, "fit_total_s": total, "n_iter": int(est.n_iter_),
            "final_loss": float(est.loss_curve_[-1]),
            "kernels": bool(plan.kernels), "sample_space": bool(plan.sample_space)}


# --------------------------------------------------------------- sklearn ----


def run_sklearn(X, y, cfg, epochs):
    """MLPClassifier on the single 31-class head, one partial_fit per epoch."""
    from sklearn.neural_network import MLPClassifier

    y_obj = y[:, 1]
    classes = np.unique(y_obj)
    est = MLPClassifier(
        hidden_layer_sizes=tuple(cfg["layout"]),
        solver=cfg["solver"],
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        learning_rate_init=LEARNING_RATE,
        batch_size=cfg["batch"],
        shuffle=True,
        random_state=0,
    )
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(epochs):
            t0 = time.perf_counter()
            est.partial_fit(X, y_obj, classes=classes)
            times.append(time.perf_counter() - t0)
    dtype = str(est.coefs_[0].dtype)
    return {"epoch_times": times, "coef_dtype": dtype, "final_loss": float(est.loss_)}


# ----------------------------------------------------------------- torch ----


def _torch_model(torch, layout, n_features, n_classes):
    nn = torch.nn
    layers, fan_in = [], n_features
    for width in layout:
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    trunk = nn.Sequential(*layers)
    heads = nn.ModuleList([nn.Linear(fan_in, k) for k in n_classes])
    params = [*trunk.parameters(), *heads.parameters()]
    with torch.no_grad():
        for p in params:
            p.normal_(0.0, INIT_SCALE)
    return trunk, heads, params


def _torch_optimizer(torch, params, solver, fused):
    if solver == "sgd":
        return torch.optim.SGD(params, lr=LEARNING_RATE, momentum=0.0)
    if fused:
        return torch.optim.Adam(params, lr=LEARNING_RATE, fused=True)
    return torch.optim.Adam(params, lr=LEARNING_RATE)


def run_torch(X, y, cfg, epochs, fused=False, flush_denormal=False, n_threads=None):
    """Equivalent two-head network: nn.Sequential trunk + two Linear heads.

    ``flush_denormal=True`` calls ``torch.set_flush_denormal(True)`` (the CPU
    flushes subnormal floats to zero): without it, float32 Adam moments of
    weights whose gradient stays zero decay into subnormals after a few
    hundred steps and the step becomes several times slower.
    """
    import os

    import torch

    if flush_denormal and not torch.set_flush_denormal(True):
        raise RuntimeError("torch.set_flush_denormal(True) is not supported on this CPU")
    torch.set_num_threads(n_threads or os.cpu_count())
    torch.manual_seed(0)
    F = torch.nn.functional
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    n_classes = [int(y[:, k].max()) + 1 for k in range(y.shape[1])]
    trunk, heads, params = _torch_model(torch, cfg["layout"], X.shape[1], n_classes)
    opt = _torch_optimizer(torch, params, cfg["solver"], fused)
    batch = cfg["batch"]

    def step(idx):
        xb, yb = Xt.index_select(0, idx), yt.index_select(0, idx)
        hidden = trunk(xb)
        loss = sum(F.cross_entropy(head(hidden), yb[:, k]) for k, head in enumerate(heads))
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss

    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(Xt.shape[0])
        for start in range(0, Xt.shape[0], batch):
            loss = step(perm[start:start + batch])
        times.append(time.perf_counter() - t0)
    return {"epoch_times": times, "final_loss": float(loss.detach()),
            "torch_threads": torch.get_num_threads(), "flush_denormal": flush_denormal}


#: Module imported before the data is loaded, per implementation.
IMPORTS = {"ours": "skoffice31", "ours_numpy": "skoffice31", "ours_weights": "skoffice31",
           "sklearn": "sklearn.neural_network", "torch": "torch", "torch_ftz": "torch",
           "torch_fused": "torch", "torch_fused_ftz": "torch"}

RUNNERS = {
    "ours": run_ours,
    "ours_numpy": lambda X, y, cfg, epochs: run_ours(X, y, cfg, epochs, kernels=False),
    "ours_weights": lambda X, y, cfg, epochs: run_ours(X, y, cfg, epochs, sample_space=False),
    "sklearn": run_sklearn,
    "torch": run_torch,
    "torch_ftz": lambda X, y, cfg, epochs: run_torch(X, y, cfg, epochs, flush_denormal=True),
    "torch_fused": lambda X, y, cfg, epochs: run_torch(X, y, cfg, epochs, fused=True),
    "torch_fused_ftz": lambda X, y, cfg, epochs: run_torch(X, y, cfg, epochs, fused=True,
                                                          flush_denormal=True),
}
