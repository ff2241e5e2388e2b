"""The multi-head loss: one softmax and one cross-entropy per head.

The network's last layer has one block of output columns per head (``K_h``
columns for a head of ``K_h`` classes). Each block gets its own softmax; the
loss is the weighted sum over heads of the (sample-weighted) mean
cross-entropy. The gradient of a head's cross-entropy with respect to its
logits is ``softmax - onehot``: it lands in that head's columns only, and the
heads mix only when the error flows back through the shared layers.

All functions use the stable form ``z - max(z)`` so large logits (raw 0..255
pixels, say) never overflow.
"""

import numpy as np


def head_slices(n_classes):
    """Column slices of the heads in the output layer.

    Parameters
    ----------
    n_classes : sequence of int
        Number of classes of each head, in head order.

    Returns
    -------
    slices : list of slice
        ``slices[h]`` selects head ``h``'s columns.
    """
    bounds = np.concatenate([[0], np.cumsum(n_classes)]).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def log_softmax_heads(Z, slices):
    """Stable log-softmax of each head's block of logits.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_outputs)
        Logits of all heads side by side.
    slices : list of slice
        See :func:`head_slices`.

    Returns
    -------
    log_proba : list of ndarray
        One ``(n_samples, K_h)`` array per head.
    """
    out = []
    for sl in slices:
        Zh = Z[:, sl]
        shifted = Zh - Zh.max(axis=1, keepdims=True)
        shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        out.append(shifted)
    return out


def multihead_cross_entropy(Z, y_idx, slices, head_weights, sample_weight, delta):
    """Per-head cross-entropy of a batch and its gradient with respect to ``Z``.

    The loss of head ``h`` is ``-sum_i s_i log p_h(y_ih | x_i)`` where the
    sample weights ``s`` sum to one; the gradient written to ``delta`` is the
    gradient of ``sum_h w_h * loss_h``, i.e. ``w_h * s_i * (p - onehot)`` in
    head ``h``'s columns. Folding ``w_h * s_i`` into this small matrix means
    no later pass over the (large) weight gradients needs a scalar factor.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_outputs)
        Logits; not modified.
    y_idx : ndarray of shape (n_samples, n_heads), dtype int
        Class index of each sample for each head.
    slices : list of slice
        Each head's columns, see :func:`head_slices`.
    head_weights : ndarray of shape (n_heads,)
        Loss weight of each head.
    sample_weight : ndarray of shape (n_samples,)
        Sample weights normalised to sum to one, in ``Z``'s dtype.
    delta : ndarray like ``Z``
        Output buffer for the gradient.

    Returns
    -------
    losses : ndarray of shape (n_heads,), float64
        Unweighted cross-entropy of each head.
    """
    rows = np.arange(Z.shape[0])
    losses = np.empty(len(slices))
    for h, sl in enumerate(slices):
        Zh = Z[:, sl]
        D = delta[:, sl]
        zmax = Zh.max(axis=1)
        np.subtract(Zh, zmax[:, None], out=D)
        np.exp(D, out=D)
        norm = D.sum(axis=1)
        log_p_true = Zh[rows, y_idx[:, h]] - zmax - np.log(norm)
        losses[h] = -float(np.dot(sample_weight, log_p_true))
        D /= norm[:, None]
        D[rows, y_idx[:, h]] -= 1
        D *= (head_weights[h] * sample_weight)[:, None]
    return losses
