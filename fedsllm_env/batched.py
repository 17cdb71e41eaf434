"""Small numpy helpers with a leading batch axis, shared by the batched env and the batched codecs.

Each one equals its single-env counterpart row by row (bit for bit; tested).
"""

from __future__ import annotations

import numpy as np

__all__ = ["batched_bincount", "first_argmax", "repair_assignments"]


def batched_bincount(index: np.ndarray, weights: np.ndarray | None, length: int) -> np.ndarray:
    """Row-wise ``np.bincount(index[b], weights[b], minlength=length)`` of (B, S) arrays -> (B, length).

    Each bin sums its entries in index order, as ``np.bincount`` does for one row.
    """
    b = index.shape[0]
    flat = (index + length * np.arange(b)[:, None]).ravel()
    out = np.bincount(flat, weights=None if weights is None else weights.ravel(), minlength=b * length)
    return out.reshape(b, length)


def first_argmax(x: np.ndarray) -> np.ndarray:
    """``np.argmax(x, axis=-1)`` (the first maximum). Many short rows: a loop over the last axis, one vectorised
    comparison per entry, instead of numpy's per-row reduction (slow for rows of a few elements)."""
    n = x.shape[-1]
    if n > 16 or x.size < 512 * n * (n - 1):
        return np.argmax(x, axis=-1)
    best = x[..., 0].copy()
    idx = np.zeros(best.shape, dtype=np.int64)
    for j in range(1, n):
        col = x[..., j]
        np.copyto(idx, j, where=col > best)  # strict: ties keep the first index
        np.maximum(best, col, out=best)
    return idx


def repair_assignments(owner: np.ndarray, preference: np.ndarray, num_clients: int) -> np.ndarray:
    """Row-wise :func:`fedsllm_env.codecs.repair_assignment`: every client of every env gets >= 1 subchannel.

    Args:
        owner: (B, S) proposed owners.
        preference: (B, S, K) score of giving subchannel i to client k.
        num_clients: K.

    Returns:
        (B, S) repaired owners (``owner`` itself when nothing needs repair).
    """
    counts = batched_bincount(owner, None, num_clients)
    missing = counts == 0
    any_missing = missing[:, 0].copy()
    for k in range(1, num_clients):
        any_missing |= missing[:, k]
    rows = np.flatnonzero(any_missing)
    if rows.size == 0:
        return owner
    owner = owner.copy()
    o, p, c, miss = owner[rows], preference[rows], counts[rows], missing[rows]
    loss = np.take_along_axis(p, o[:, :, None], axis=2)[:, :, 0]  # each subchannel owner's own preference
    # the single env serves the clients without a subchannel in increasing order; donors keep >= 1, so
    # that set does not change on the way. Pass j serves every row's j-th such client at once.
    order = np.argsort(~miss, axis=1, kind="stable")
    n_missing = miss.sum(axis=1)
    for j in range(int(n_missing.max())):
        sel = np.nonzero(n_missing > j)[0]
        kk = order[sel, j]
        os_ = o[sel]
        donors = c[sel[:, None], os_] >= 2
        score = np.where(donors, p[sel, :, kk] - loss[sel], -np.inf)
        i = np.argmax(score, axis=1)
        c[sel, os_[np.arange(sel.size), i]] -= 1
        c[sel, kk] += 1
        o[sel, i] = kk
        loss[sel, i] = p[sel, i, kk]
    owner[rows] = o
    return owner
