"""Activation functions of the hidden layers and their derivatives.

Every function works in place on preallocated buffers, so the training loop
allocates nothing per minibatch. The tables mirror scikit-learn's
``ACTIVATIONS`` / ``DERIVATIVES`` so another activation can be added in one
place.
"""

import numpy as np


def inplace_relu(Z):
    """Apply the rectified linear unit ``max(z, 0)`` to ``Z`` in place.

    Parameters
    ----------
    Z : ndarray
        Pre-activations; overwritten by the activations.
    """
    np.maximum(Z, 0, out=Z)


def inplace_identity(Z):
    """Leave ``Z`` as it is (the identity activation)."""


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


def inplace_identity_derivative(A, delta):
    """The identity's derivative is 1: ``delta`` is left as it is."""


ACTIVATIONS = {"relu": inplace_relu, "identity": inplace_identity}
DERIVATIVES = {"relu": inplace_relu_derivative, "identity": inplace_identity_derivative}
