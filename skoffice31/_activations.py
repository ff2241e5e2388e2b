"""Activation functions of the hidden layers and their derivatives.

Every function works in place on preallocated buffers, so the training loop
allocates nothing large per minibatch. The tables mirror scikit-learn's
``ACTIVATIONS`` / ``DERIVATIVES`` (same names, same formulas): an
activation is added in one place. Each derivative is computed from the
layer's *output* ``A = f(Z)``, which the backward pass has at hand, as in
scikit-learn.
"""

import numpy as np
from scipy.special import expit


def inplace_identity(Z):
    """Leave ``Z`` as it is (the identity activation ``f(z) = z``)."""


def inplace_logistic(Z):
    """Apply the logistic sigmoid ``1 / (1 + exp(-z))`` to ``Z`` in place.

    Parameters
    ----------
    Z : ndarray
        Pre-activations; overwritten by the activations.
    """
    expit(Z, out=Z)


def inplace_tanh(Z):
    """Apply the hyperbolic tangent to ``Z`` in place.

    Parameters
    ----------
    Z : ndarray
        Pre-activations; overwritten by the activations.
    """
    np.tanh(Z, out=Z)


def inplace_relu(Z):
    """Apply the rectified linear unit ``max(z, 0)`` to ``Z`` in place.

    Parameters
    ----------
    Z : ndarray
        Pre-activations; overwritten by the activations.
    """
    np.maximum(Z, 0, out=Z)


def inplace_identity_derivative(A, delta):
    """The identity's derivative is 1: ``delta`` is left as it is."""


def inplace_logistic_derivative(A, delta):
    """Multiply ``delta`` in place by the logistic's derivative ``A (1 - A)``.

    Parameters
    ----------
    A : ndarray
        Output of the logistic layer.
    delta : ndarray of the same shape
        Back-propagated error; overwritten.
    """
    delta *= A
    delta *= 1 - A


def inplace_tanh_derivative(A, delta):
    """Multiply ``delta`` in place by the derivative of tanh, ``1 - A**2``.

    Parameters
    ----------
    A : ndarray
        Output of the tanh layer.
    delta : ndarray of the same shape
        Back-propagated error; overwritten.
    """
    delta *= 1 - A**2


def inplace_relu_derivative(A, delta):
    """Multiply ``delta`` in place by the derivative of ReLU at ``A``.

    The derivative is taken from the layer's *output* ``A = relu(Z)``: it is
    1 where ``A > 0`` and 0 elsewhere (the subgradient 0 is used at 0).

    Parameters
    ----------
    A : ndarray
        Output of the ReLU layer.
    delta : ndarray of the same shape
        Back-propagated error; overwritten.
    """
    delta[A <= 0] = 0


ACTIVATIONS = {
    "identity": inplace_identity,
    "logistic": inplace_logistic,
    "tanh": inplace_tanh,
    "relu": inplace_relu,
}
DERIVATIVES = {
    "identity": inplace_identity_derivative,
    "logistic": inplace_logistic_derivative,
    "tanh": inplace_tanh_derivative,
    "relu": inplace_relu_derivative,
}
