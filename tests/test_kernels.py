"""The fused compiled kernels (skoffice31._kernels) against the NumPy path.

The reference is the package's own optimizers (``AdamOptimizer``,
``SGDOptimizer`` with an ``OuterGradient``), run on plain arrays with a
small block size so that their row blocks do not line up with the kernel's
row parts.

Two kinds of data:

* "exact" data (small integers times powers of two) make ``A.T @ delta``
  exact in any summation order, so the kernel's update must equal the NumPy
  path to the last bit, step after step;
* random normal data check the realistic case to float rounding.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skoffice31 import _kernels, _team
from skoffice31._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer

needs_numba = pytest.mark.skipif(
    not _kernels.kernels_available(), reason="numba not installed or kernels switched off"
)

SHAPES = [(1, 1), (1, 7), (9, 1), (13, 5), (37, 19)]  # 13, 37 rows: not a multiple of the parts
DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def _data(shape, n, dtype, seed, exact):
    rng = np.random.default_rng(seed)
    n_in, n_out = shape
    W = rng.normal(0, 0.5, shape).astype(dtype)
    if exact:  # every product and partial sum is representable: order does not matter
        A = rng.integers(-4, 5, (n, n_in)).astype(dtype)
        deltas = [rng.integers(-8, 9, (n, n_out)).astype(dtype) / 8 for _ in range(6)]
    else:
        A = rng.normal(size=(n, n_in)).astype(dtype)
        deltas = [rng.normal(size=(n, n_out)).astype(dtype) for _ in range(6)]
    return W, A, deltas


def _numpy_adam(W, A, deltas, l2, flush_every):
    W = W.copy()
    opt = AdamOptimizer([W], 1e-2, flush_every=flush_every, block_size=3 * W.shape[1])
    sq = []
    for delta in deltas:
        sq.append(opt.update_params([W], [OuterGradient(A, delta, W, l2)]))
    return W, opt.ms[0], opt.vs[0], sq


def _kernel_adam(W, A, deltas, l2, flush_every, n_threads=2, order="C"):
    W = np.array(W, order=order)  # "F": the transposed kernels (a narrow layer's layout)
    m, v = np.zeros_like(W), np.zeros_like(W)
    steps = AdamOptimizer([W], 1e-2, flush_every=flush_every)  # only for lr_t, eps_t, flush
    sq = []
    for delta in deltas:
        steps._start_step()
        sq.append(
            _kernels.adam_update(
                W, A, delta, m, v, lr=steps.learning_rate, eps=steps._eps_t,
                beta_1=steps.beta_1, beta_2=steps.beta_2, l2=l2, flush=steps._flush,
                n_threads=n_threads,
            )
        )
    return W, m, v, sq


def _numpy_sgd(W, A, deltas, l2, momentum, nesterov):
    W = W.copy()
    opt = SGDOptimizer([W], 0.05, momentum=momentum, nesterov=nesterov,
                       block_size=3 * W.shape[1])
    sq = []
    for delta in deltas:
        sq.append(opt.update_params([W], [OuterGradient(A, delta, W, l2)]))
    return W, (opt.velocities[0] if momentum else None), sq


def _kernel_sgd(W, A, deltas, l2, momentum, nesterov, n_threads=2, order="C"):
    W = np.array(W, order=order)
    velocity = np.zeros_like(W) if momentum else None
    sq = [
        _kernels.sgd_update(W, A, delta, lr=0.05, velocity=velocity, momentum=momentum,
                            nesterov=nesterov, l2=l2, n_threads=n_threads)
        for delta in deltas
    ]
    return W, velocity, sq


def _check_sq(sq_kernel, sq_numpy, l2, dtype):
    if l2:
        assert_allclose(sq_kernel, sq_numpy, rtol=RTOL[dtype])
        assert min(sq_kernel) > 0
    else:
        assert sq_kernel == [0.0] * len(sq_kernel)


SGD_KINDS = [(0.0, False), (0.9, False), (0.9, True)]  # plain, momentum, Nesterov


#: The transposed kernels' shapes: inputs not a multiple of COLUMN_CHUNK (and
#: more than one chunk), units not a multiple of the four that the gradient
#: and the forward product take at once (every remainder, and two fours).
T_SHAPES = [(2, 3), (13, 5), (1100, 7), (1030, 4), (1030, 6), (17, 10)]
LAYOUTS = [("C", shape) for shape in SHAPES] + [("F", shape) for shape in T_SHAPES]


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order, shape", LAYOUTS)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("n", [1, 4, 11])  # 11: a group of eight, a pair, one
def test_adam_equals_numpy_bit_for_bit(dtype, order, shape, l2, n):
    W0, A, deltas = _data(shape, n, dtype, seed=sum(shape) + n, exact=True)
    ref = _numpy_adam(W0, A, deltas, l2, flush_every=2)
    got = _kernel_adam(W0, A, deltas, l2, flush_every=2, order=order)
    assert _kernels.is_transposed(got[0]) == (order == "F")
    for a, b in zip(got[:3], ref[:3]):
        assert_array_equal(a, b)
    assert not np.array_equal(got[0], W0)
    _check_sq(got[3], ref[3], l2, dtype)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order, shape", LAYOUTS)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("momentum, nesterov", SGD_KINDS)
def test_sgd_equals_numpy_bit_for_bit(dtype, order, shape, l2, momentum, nesterov):
    W0, A, deltas = _data(shape, 3, dtype, seed=sum(shape), exact=True)
    W_ref, vel_ref, sq_ref = _numpy_sgd(W0, A, deltas, l2, momentum, nesterov)
    W, vel, sq = _kernel_sgd(W0, A, deltas, l2, momentum, nesterov, order=order)
    assert _kernels.is_transposed(W) == (order == "F")
    assert_array_equal(W, W_ref)
    assert not np.array_equal(W, W0)
    if momentum:
        assert_array_equal(vel, vel_ref)
    _check_sq(sq, sq_ref, l2, dtype)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 1e-2])
@pytest.mark.parametrize("order, shape", [("C", (301, 23)), ("F", (1301, 9))])
def test_random_data_equals_numpy_to_rounding(dtype, l2, order, shape):
    """Realistic data: the gradient's summation order differs from BLAS's."""
    W0, A, deltas = _data(shape, 10, dtype, seed=7, exact=False)
    W_ref, m_ref, v_ref, sq_ref = _numpy_adam(W0, A, deltas, l2, flush_every=8)
    W, m, v, sq = _kernel_adam(W0, A, deltas, l2, flush_every=8, order=order)
    scale = np.abs(W0).max()
    assert_allclose(W, W_ref, rtol=0, atol=RTOL[dtype] * scale)
    assert_allclose(m, m_ref, rtol=0, atol=RTOL[dtype] * np.abs(m_ref).max())
    assert_allclose(v, v_ref, rtol=0, atol=RTOL[dtype] * np.abs(v_ref).max())
    _check_sq(sq, sq_ref, l2, dtype)
    for momentum, nesterov in SGD_KINDS:
        W_ref, vel_ref, sq_ref = _numpy_sgd(W0, A, deltas, l2, momentum, nesterov)
        W, vel, sq = _kernel_sgd(W0, A, deltas, l2, momentum, nesterov, order=order)
        assert_allclose(W, W_ref, rtol=0, atol=10 * RTOL[dtype] * scale)
        _check_sq(sq, sq_ref, l2, dtype)


@needs_numba
def test_adam_against_a_hand_computation():
    """One step in float64 against the textbook formulas, independently of
    the optimizer classes."""
    rng = np.random.default_rng(3)
    W0 = rng.normal(size=(6, 4))
    A, delta = rng.normal(size=(5, 6)), rng.normal(size=(5, 4))
    m0, v0 = rng.normal(size=(6, 4)), rng.random((6, 4))
    l2, b1, b2, lr, eps = 0.1, 0.8, 0.99, 0.01, 1e-3
    g = A.T @ delta + l2 * W0
    m_ref = b1 * m0 + (1 - b1) * g
    v_ref = b2 * v0 + (1 - b2) * g**2
    W_ref = W0 - lr * m_ref / (np.sqrt(v_ref) + eps)
    W, m, v = W0.copy(), m0.copy(), v0.copy()
    sq = _kernels.adam_update(W, A, delta, m, v, lr=lr, eps=eps, beta_1=b1, beta_2=b2, l2=l2)
    assert_allclose(W, W_ref, rtol=1e-13)
    assert_allclose(m, m_ref, rtol=1e-13)
    assert_allclose(v, v_ref, rtol=1e-13)
    assert sq == pytest.approx(np.sum(W0**2), rel=1e-13)


@needs_numba
@pytest.mark.parametrize("order", ["C", "F"])
def test_subnormal_flush(order):
    """Moments that the update makes subnormal are zeroed only when asked."""
    W0 = np.ones((11, 3), np.float32)
    A = np.zeros((2, 11), np.float32)
    delta = np.zeros((2, 3), np.float32)
    tiny = np.finfo(np.float32).tiny
    m0 = np.full_like(W0, 1.05 * tiny)  # after * 0.9: subnormal
    m0[::2] *= -1
    m0[0, 0] = 1.0  # stays normal
    v0 = np.full_like(W0, 1.0005 * tiny)  # after * 0.999: subnormal
    v0[0, 0] = 1.0
    for flush in (False, True):
        W, m, v = (np.array(a, order=order) for a in (W0, m0, v0))
        assert _kernels.is_transposed(W) == (order == "F")
        _kernels.adam_update(W, A, delta, m, v, lr=1e-3, eps=1e-8, flush=flush)
        small_m, small_v = np.abs(m.ravel()[1:]), v.ravel()[1:]
        if flush:
            assert np.all(small_m == 0) and np.all(small_v == 0)
        else:
            assert np.all((small_m > 0) & (small_m < tiny))
            assert np.all((small_v > 0) & (small_v < tiny))
        assert m[0, 0] == np.float32(0.9) and v[0, 0] == np.float32(0.999)
        # the same numbers as the NumPy path with its flush on this step
        opt = AdamOptimizer([W0.copy()], 1e-3, flush_every=1 if flush else 0)
        opt.ms[0][...], opt.vs[0][...] = m0, v0
        W_ref = W0.copy()
        opt.update_params([W_ref], [OuterGradient(A, delta, W_ref, 0.0)])
        assert_array_equal(m, opt.ms[0])
        assert_array_equal(v, opt.vs[0])


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order, shape", [("C", (1, 4)), ("C", (13, 1)), ("C", (203, 17)),
                                          ("F", (1100, 9)), ("F", (5, 4))])
@pytest.mark.parametrize("kind", ["adam", "sgd", "nesterov"])
def test_forward_fusion_equals_two_passes(dtype, order, shape, kind):
    """``out`` is ``X_next @ W`` through the updated weights, and asking for
    it does not change the update."""
    W0, A, deltas = _data(shape, 3, dtype, seed=1, exact=False)
    # 7 samples: four at once, then a pair, then an odd one
    X_next = np.random.default_rng(2).normal(size=(7, shape[0])).astype(dtype)
    X_next[1, ::3] = 0  # zero inputs are skipped: the sum must not change
    results = []
    for fused in (False, True):
        W = np.array(W0, order=order)
        m, v = np.zeros_like(W), np.zeros_like(W)
        out = np.full((7, shape[1]), np.nan, dtype) if fused else None
        extra = dict(X_next=X_next, out=out) if fused else {}
        if kind == "adam":
            _kernels.adam_update(W, A, deltas[0], m, v, lr=1e-2, eps=1e-8, l2=0.1, **extra)
        else:
            _kernels.sgd_update(W, A, deltas[0], lr=0.1, velocity=m, momentum=0.9,
                                nesterov=kind == "nesterov", l2=0.1, **extra)
        results.append((W, m, v, out))
    (W, m, v, _), (W_f, m_f, v_f, out) = results
    assert_array_equal(W_f, W)
    assert_array_equal(m_f, m)
    assert_array_equal(v_f, v)
    ref = X_next.astype(np.float64) @ W.astype(np.float64)
    bound = RTOL[dtype] * (np.abs(X_next).astype(np.float64) @ np.abs(W).astype(np.float64))
    assert np.all(np.abs(out - ref) <= bound)


@needs_numba
@pytest.mark.parametrize("order, shape", [("C", (8_000, 17)), ("F", (40_000, 5))])
def test_results_do_not_depend_on_the_thread_count(order, shape):
    n_in, n_out = shape
    assert len(_kernels.row_bounds(n_in, n_out)) > 2  # several parts to share
    W0, A, deltas = _data(shape, 4, np.float32, seed=5, exact=False)
    one = _kernel_adam(W0, A, deltas, 0.1, flush_every=2, n_threads=1, order=order)
    two = _kernel_adam(W0, A, deltas, 0.1, flush_every=2, n_threads=2, order=order)
    for a, b in zip(one[:3], two[:3]):
        assert_array_equal(a, b)
    assert one[3] == two[3]
    X_next = np.ones((3, n_in), np.float32)
    outs = []
    for n_threads in (1, 2):
        out = np.empty((3, n_out), np.float32)
        _kernels.sgd_update(np.array(W0, order=order), A, deltas[0], lr=0.1, X_next=X_next,
                            out=out, n_threads=n_threads)
        outs.append(out)
    assert_array_equal(outs[0], outs[1])


@needs_numba
def test_warm_up():
    assert _kernels.warm_up((np.float32, np.float64), ("adam", "sgd", "momentum"))
    # every kernel a fit may take is compiled (or loaded) for both dtypes,
    # one signature each: a second solver or layout compiles nothing new
    for name in ("_update_part", "_update_tpart", "_adam_row", "_momentum_row"):
        dtypes = [str(sig[0].dtype) for sig in getattr(_kernels, name).signatures]
        assert sorted(dtypes) == ["float32", "float64"], (name, dtypes)


@needs_numba
def test_forward_pair_compiles_once_per_dtype():
    # a loop counter typed as the literal 0 at one call compiled the helper
    # twice (``Literal[int](0)`` and ``int64``), a second of cold compile;
    # typing a fresh, uncached copy of its caller adds the signatures it needs
    # to the helper whether they compile or load from the on-disk cache
    import numba

    _kernels._kernel()  # the compiled functions replace the Python ones
    caller = _kernels._forward_columns
    fresh = numba.njit(fastmath=_kernels._FASTMATH.get("_forward_columns", False),
                       error_model="numpy")(caller.py_func)
    WT = np.ones((5, 9), np.float32)
    X_next, acc = np.ones((7, 9), np.float32), np.zeros((7, 5), np.float32)
    fresh(WT, X_next, acc, 0, 9)  # samples: four at once, a pair, an odd one
    assert_array_equal(acc, 9.0)
    for helper in (_kernels._forward_pair, _kernels._forward_quad):
        sigs = [sig for sig in helper.signatures if str(sig[0].dtype) == "float32"]
        assert len(sigs) == 1, (helper, sigs)


@needs_numba
def test_gradient_helpers_compile_once_per_dtype():
    # the transposed kernel's unit counter, once ``j0 = 0``, compiled
    # _grad_units, _grad_quad and _grad_columns for the literal 0 too (about
    # 2 s of cold compile); a fresh, uncached copy of the kernel types them
    import numba

    _kernels._kernel()
    fresh = numba.njit(error_model="numpy")(_kernels._update_tpart.py_func)
    W0, A, deltas = _data((9, 6), 5, np.float32, seed=3, exact=True)
    WT = np.ascontiguousarray(W0.T)
    job, _, _ = _solo_job([0, 9], 0, 6)
    fresh(WT, A, deltas[0], WT, WT, np.float32(0), _kernels.SGD, np.array([0.05], np.float32),
          False, np.empty((0, 9), np.float32), job, 4)
    W_ref, _, _ = _numpy_sgd(W0, A, deltas[:1], 0.0, 0.0, False)
    assert_array_equal(WT.T, W_ref)
    for helper in (_kernels._grad_quad, _kernels._grad_columns):
        sigs = [sig for sig in helper.signatures if str(sig[0].dtype) == "float32"]
        assert len(sigs) == 1, (helper, sigs)


def test_warm_up_switched_off(monkeypatch):
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    assert _kernels.warm_up() is False


@needs_numba
def test_row_parts():
    assert list(_kernels.row_bounds(1)) == [0, 1]
    bounds = _kernels.row_bounds(30_000, 384)
    assert len(bounds) == _kernels.N_PARTS + 1 and bounds[0] == 0 and bounds[-1] == 30_000
    assert np.all(np.diff(bounds) > 0)
    # small layers are one part (no thread pool); mid-sized ones a few
    assert _kernels.row_bounds(384, 192) == [0, 384]
    assert len(_kernels.row_bounds(3072, 64)) - 1 == 3
    assert _kernels.row_bounds(30_000) == [0, 30_000]  # one column: one part


@needs_numba
def test_bad_arguments_say_what_to_do():
    W = np.zeros((4, 3), np.float32)
    A, delta = np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32)
    m = np.zeros_like(W)
    with pytest.raises(ValueError, match="m must be an array of shape"):
        _kernels.adam_update(W, A, delta, m.astype(np.float64), m, lr=1, eps=1)
    with pytest.raises(ValueError, match="C-contiguous and writeable"):
        _kernels.adam_update(np.zeros((8, 3), np.float32)[::2], A, delta, m, m, lr=1, eps=1)
    # a Fortran-ordered W (the transposed kernels) needs its state laid out like it
    with pytest.raises(ValueError, match=r"v must be Fortran-ordered like W.*zeros_like"):
        _kernels.adam_update(np.asfortranarray(W), A, delta, np.asfortranarray(m), m,
                             lr=1, eps=1)
    with pytest.raises(ValueError, match="velocity must be C-contiguous"):
        _kernels.sgd_update(W, A, delta, lr=1, momentum=0.9, velocity=np.asfortranarray(m))
    with pytest.raises(ValueError, match="same number of rows"):
        _kernels.sgd_update(W, A, delta[:1], lr=1)
    with pytest.raises(ValueError, match=r"A must have shape \(n, 4\)"):
        _kernels.sgd_update(W, A[:, :3], delta, lr=1)
    with pytest.raises(ValueError, match="pass both or neither"):
        _kernels.sgd_update(W, A, delta, lr=1, X_next=A)
    with pytest.raises(ValueError, match="needs the velocity"):
        _kernels.sgd_update(W, A, delta, lr=1, momentum=0.9)
    with pytest.raises(ValueError, match="float32 or float64"):
        _kernels.sgd_update(W.astype(np.float16), A, delta, lr=1)
    # operands of another dtype or layout are converted, not rejected
    _kernels.sgd_update(W, np.asfortranarray(A.astype(np.float64)), delta, lr=1)


def test_switch_off_by_environment(monkeypatch):
    for value in ("0", "false", "No", " off "):
        monkeypatch.setenv(_kernels.ENV_VAR, value)
        assert not _kernels.kernels_enabled()
        assert not _kernels.kernels_available()
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    assert _kernels.kernels_enabled()


def _python(code):
    env = {k: v for k, v in os.environ.items() if k != _kernels.ENV_VAR}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_does_not_import_numba():
    out = _python(
        "import sys, skoffice31, skoffice31._kernels, skoffice31._optimizers\n"
        "print('numba' in sys.modules)"
    )
    assert out.split() == ["False"]


def test_without_numba():
    """numba missing: not available, and a direct call says what to install."""
    out = _python(
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from skoffice31 import _kernels\n"
        "print(_kernels.kernels_available())\n"
        "W = np.zeros((2, 2))\n"
        "try:\n"
        "    _kernels.sgd_update(W, W, W, lr=1.0)\n"
        "except RuntimeError as exc:\n"
        "    print('numba' in str(exc) and 'fast' in str(exc))\n"
    )
    assert out.split() == ["False", "True"]


def test_kernel_source_runs_as_python():
    """The kernels' source, run by the Python interpreter (numba blocked),
    equals the NumPy path: their logic is tested even where numba is absent."""
    out = _python(
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_kernels import check_python_kernel\n"
        "check_python_kernel()\n"
        "print('ok')\n"
    )
    assert out.split() == ["ok"]


def _solo_job(bounds, n_next, n_out):
    """A kernel job run by its caller alone: (job, out_parts, sq_parts)."""
    n_parts = len(bounds) - 1
    out_parts, sq_parts = np.empty((n_parts, n_next, n_out)), np.zeros(n_parts)
    job = (out_parts, sq_parts, np.array(bounds, np.int64), np.zeros(2, np.int64),
           np.zeros(1, np.int64), 0, _team.SOLO, 0)
    return job, out_parts, sq_parts


def check_python_kernel():
    assert not _kernels.kernels_available()
    W0, A, deltas = _data((9, 4), 5, np.float64, seed=4, exact=True)
    W_ref, m_ref, v_ref, sq_ref = _numpy_adam(W0, A, deltas[:1], 0.3, flush_every=1)
    W, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    opt = AdamOptimizer([W], 1e-2, flush_every=1)
    opt._start_step()
    coef = np.array([0.9, 1 - 0.9, 0.999, 1 - 0.999, opt.learning_rate, opt._eps_t,
                     np.finfo(np.float64).tiny, 0.0])
    bounds = [0, 3, 5, 9]  # parts of a job, claimed in turn by the one thread
    X_next = np.arange(45.0).reshape(5, 9)  # four samples at once and an odd one
    job, out_parts, sq_parts = _solo_job(bounds, 5, 4)
    assert _kernels._update_part(W, A, deltas[0], m, v, 0.3, _kernels.ADAM, coef, True,
                                 X_next, job) == 0
    assert list(job[3]) == [4, 3]  # every part claimed (and one more try), all finished
    assert_array_equal(W, W_ref)
    assert_array_equal(m, m_ref)
    assert_array_equal(v, v_ref)
    assert sq_parts.sum() == pytest.approx(sq_ref[0])
    assert_allclose(out_parts.sum(axis=0), X_next @ W, rtol=1e-12)
    for momentum, nesterov in SGD_KINDS:
        W_ref, vel_ref, _ = _numpy_sgd(W0, A, deltas[:1], 0.3, momentum, nesterov)
        W, vel = W0.copy(), np.zeros_like(W0)
        job, out_parts, _ = _solo_job(bounds, 5, 4)
        if momentum:
            _kernels._update_part(W, A, deltas[0], vel, W, 0.3, _kernels.MOMENTUM,
                                  np.array([0.05, momentum]), nesterov, X_next, job)
            assert_array_equal(vel, vel_ref)
        else:
            _kernels._update_part(W, A, deltas[0], W, W, 0.3, _kernels.SGD,
                                  np.array([0.05]), False, X_next, job)
        assert_array_equal(W, W_ref)
        assert_allclose(out_parts.sum(axis=0), X_next @ W, rtol=1e-12)
    # the transposed parts (a Fortran-ordered W): two parts of inputs, in
    # chunks of 4 inputs so that a part has whole chunks and a partial one
    WT, mT, vT = W0.T.copy(), np.zeros((4, 9)), np.zeros((4, 9))
    job, out_parts, sq_parts = _solo_job([0, 6, 9], 5, 4)
    _kernels._update_tpart(WT, A, deltas[0], mT, vT, 0.3, _kernels.ADAM, coef, True, X_next,
                           job, 4)
    W_ref, m_ref, v_ref, sq_ref = _numpy_adam(W0, A, deltas[:1], 0.3, flush_every=1)
    assert_array_equal(WT.T, W_ref)
    assert_array_equal(mT.T, m_ref)
    assert_array_equal(vT.T, v_ref)
    assert sq_parts.sum() == pytest.approx(sq_ref[0])
    assert_allclose(out_parts.sum(axis=0), X_next @ W_ref, rtol=1e-12)
    for momentum, nesterov in SGD_KINDS:
        W_ref, vel_ref, _ = _numpy_sgd(W0, A, deltas[:1], 0.3, momentum, nesterov)
        WT, velT = W0.T.copy(), np.zeros((4, 9))
        job, out_parts, _ = _solo_job([0, 9], 5, 4)
        if momentum:
            _kernels._update_tpart(WT, A, deltas[0], velT, WT, 0.3, _kernels.MOMENTUM,
                                   np.array([0.05, momentum]), nesterov, X_next, job, 4)
            assert_array_equal(velT.T, vel_ref)
        else:
            _kernels._update_tpart(WT, A, deltas[0], WT, WT, 0.3, _kernels.SGD,
                                   np.array([0.05]), False, X_next, job, 4)
        assert_array_equal(WT.T, W_ref)
        assert_allclose(out_parts[0], X_next @ W_ref, rtol=1e-12)


# ------------------------------------------------- whole-block updates
# adam_block / momentum_block take the parameters the row kernels do not
# (small, narrow, intercepts): the optimizer's NumPy block update in one
# compiled pass, with the same operations in the same order -- so on any
# data (random normal here, not only exact data) the result is bit-identical.


def _block_optimizers(kind, param, compiled):
    from skoffice31._plan import TrainingPlan

    plan = TrainingPlan(compiled_updates=compiled)
    if kind == "adam":
        return AdamOptimizer([param], 3e-2, plan=plan, flush_every=2)
    return SGDOptimizer([param], 3e-2, momentum=0.9, nesterov=kind == "nesterov", plan=plan)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (13, 5), (300, 33)])
@pytest.mark.parametrize("kind", ["adam", "momentum", "nesterov"])
def test_block_updates_equal_the_numpy_path_bit_for_bit(monkeypatch, kind, shape, dtype):
    taken = []
    for name in ("adam_block", "momentum_block"):
        real = getattr(_kernels, name)
        monkeypatch.setattr(_kernels, name,
                            lambda *a, _real=real, **k: taken.append(_real(*a, **k)) or taken[-1])
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=shape).astype(dtype)
    results = {}
    for compiled in (False, True):
        param = p0.copy()
        opt = _block_optimizers(kind, param, compiled)
        for step in range(5):  # Adam flushes every 2nd step
            grad = rng.normal(size=shape).astype(dtype) * 10.0 ** -(step * 8)
            opt.update_params([param], [grad])
        state = opt.ms[0] if kind == "adam" else opt.velocities[0]
        results[compiled] = (param, state)
        rng = np.random.default_rng(3)
        rng.normal(size=shape)
    assert taken == [True] * 5  # the compiled fit took every block
    assert_array_equal(results[True][0], results[False][0])
    assert_array_equal(results[True][1], results[False][1])


@needs_numba
def test_block_updates_flush_and_refuse_what_they_cannot_take():
    W = np.ones((4, 3), np.float32)
    m = np.full_like(W, 1e-39)  # subnormal in float32
    v = np.full_like(W, 1e-39)
    g = np.zeros_like(W)
    assert _kernels.adam_block(W, g, m, v, lr=0.1, eps=1e-8, flush=True)
    assert not m.any() and not v.any()
    # a strided gradient, another dtype, a read-only parameter: not taken, nothing changed
    before = W.copy()
    assert not _kernels.adam_block(W, np.zeros((4, 6), np.float32)[:, ::2], m, v, lr=0.1, eps=1e-8)
    assert not _kernels.adam_block(W, g.astype(np.float64), m, v, lr=0.1, eps=1e-8)
    W.flags.writeable = False
    assert not _kernels.momentum_block(W, g, m, lr=0.1, momentum=0.9, nesterov=True)
    assert_array_equal(W, before)


@needs_numba
@pytest.mark.parametrize("solver", ["adam", "nesterov"])
def test_a_narrow_fit_with_compiled_block_updates_gives_the_same_weights(monkeypatch, solver):
    """A layout the row kernels do not take (8 hidden units) still has every
    update compiled; the gradients come from the same BLAS calls, so the fit
    is bit-identical to the NumPy path's."""
    import warnings

    from skoffice31 import MultiHeadMLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 50)).astype(np.float32)
    y = np.c_[rng.integers(0, 3, 40), rng.integers(0, 4, 40)]
    params = dict(solver="adam") if solver == "adam" else dict(solver="sgd", momentum=0.9)
    fits = {}
    for env in ("1", "0"):
        monkeypatch.setenv(_kernels.ENV_VAR, env)
        est = MultiHeadMLPClassifier(hidden=(8,), batch_size=10, max_iter=3, random_state=0,
                                     alpha=1e-2, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[env] = est.fit(X, y)
    plan = fits["1"]._optimizer.plan
    assert plan.compiled_updates and not plan.kernels
    assert not fits["0"]._optimizer.plan.compiled_updates
    for a, b in zip(fits["1"].coefs_ + fits["1"].intercepts_, fits["0"].coefs_ + fits["0"].intercepts_):
        assert_array_equal(a, b)
