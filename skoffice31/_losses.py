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
        Class index of each sample for each head; a negative index marks a
        missing label. A head with missing labels has the loss and gradient
        of its labelled rows alone, their sample weights renormalised to sum
        to one (PyTorch's ``ignore_index``); a head with no labelled row (or
        only zero-weight ones) has loss 0 and a zero gradient.
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
        Unweighted cross-entropy of each head (mean over its labelled rows).
    """
    rows = np.arange(Z.shape[0])
    losses = np.empty(len(slices))
    for h, sl in enumerate(slices):
        Zh = Z[:, sl]
        D = delta[:, sl]
        y_h, s_h = y_idx[:, h], sample_weight
        labelled = y_h >= 0
        if not labelled.all():  # missing labels: a mean over the labelled rows
            s_h = np.where(labelled, sample_weight, 0).astype(sample_weight.dtype, copy=False)
            total = float(s_h.sum())
            if total == 0:  # nothing labelled in this batch: no loss, no gradient
                losses[h] = 0.0
                D[...] = 0
                continue
            s_h /= s_h.dtype.type(total)
            y_h = np.where(labelled, y_h, 0)
        zmax = Zh.max(axis=1)
        np.subtract(Zh, zmax[:, None], out=D)
        np.exp(D, out=D)
        norm = D.sum(axis=1)
        log_p_true = Zh[rows, y_h] - zmax - np.log(norm)
        losses[h] = -float(np.dot(s_h, log_p_true))
        D /= norm[:, None]
        D[rows, y_h] -= 1
        D *= (head_weights[h] * s_h)[:, None]
    return losses
