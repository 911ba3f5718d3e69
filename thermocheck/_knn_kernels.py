"""Compiled k-NN kernels of :mod:`thermocheck.entropy` for NumPy input (imported lazily: numba
loads only when the Gram shortlist or the exact refinement is first needed).

Selecting the k smallest entries of each Gram row with ``np.argpartition`` cost several times the
Gram product itself at N = 4000, d = 100 (a full introselect per row). :func:`merge_tile` makes
one pass over a Gram tile instead, keeping each point's best candidates in a small sorted list: an
entry above the current worst kept one, which is nearly every entry, costs one comparison. Both
points of a pair are served by one product, so only the tiles on and above the diagonal are
computed. :func:`candidate_distances` recomputes the shortlisted distances exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Columns of a tile read together by :func:`merge_tile` (8 float64: one cache line).
_STRIP = 8


@njit(cache=True)
def _insert(best: np.ndarray, idx: np.ndarray, p: int, value: float, q: int) -> None:
    """Insert candidate ``q`` at ``value`` into point ``p``'s sorted list, dropping its worst
    entry; ties keep the earlier entry first. Callers test ``value < best[p, -1]`` first, so
    that the common case (rejection) costs one comparison and no call."""
    slot = best.shape[1] - 1
    while slot > 0 and best[p, slot - 1] > value:
        best[p, slot] = best[p, slot - 1]
        idx[p, slot] = idx[p, slot - 1]
        slot -= 1
    best[p, slot] = value
    idx[p, slot] = q


@njit(cache=True)
def merge_tile(  # pragma: no cover - compiled; covered through thermocheck.entropy
    tile: np.ndarray,
    row0: int,
    col0: int,
    sq_norm: np.ndarray,
    best: np.ndarray,
    idx: np.ndarray,
) -> None:
    """Merge the Gram tile ``tile[r, j] = −2 a·b`` of points ``a = row0 + r``, ``b = col0 + j``
    into both points' lists of nearest others, ranked by ``‖b‖² − 2 a·b`` (the squared distance
    less ``‖a‖²``). A tile off the diagonal serves its rows and, read by columns, its columns,
    so each pair's product is computed once; on the diagonal (``row0 == col0``) it holds both
    orders and serves its rows only."""
    rows, cols = tile.shape
    last = best.shape[1] - 1  # lists are sorted, +inf marks a free slot
    worst = np.empty(_STRIP)  # the strip's worst kept values, held apart from the lists
    for r in range(rows):
        p = row0 + r
        worst[0] = best[p, last]
        for j in range(cols):
            value = tile[r, j] + sq_norm[col0 + j]
            if value < worst[0] and col0 + j != p:
                _insert(best, idx, p, value, col0 + j)
                worst[0] = best[p, last]
    if row0 != col0:
        for j0 in range(0, cols, _STRIP):  # columns by strips, so that rows are read in lines
            width = min(_STRIP, cols - j0)
            for j in range(width):
                worst[j] = best[col0 + j0 + j, last]
            for r in range(rows):
                for j in range(width):
                    value = tile[r, j0 + j] + sq_norm[row0 + r]
                    if value < worst[j]:
                        _insert(best, idx, col0 + j0 + j, value, row0 + r)
                        worst[j] = best[col0 + j0 + j, last]


@njit(cache=True)
def direct_shortlist(  # pragma: no cover - compiled; covered through thermocheck.entropy
    x: np.ndarray, best: np.ndarray, idx: np.ndarray
) -> None:
    """Fill each point's sorted lists ``best``/``idx`` with its nearest other rows of ``x`` by
    squared distances ``‖a − b‖²`` summed from direct differences (no cancellation), visiting
    each pair once. For a few coordinates this beats a Gram product, whose small GEMMs are
    dominated by call and thread overheads."""
    n, dim = x.shape
    last = best.shape[1] - 1
    for p in range(n):
        for q in range(p + 1, n):
            value = 0.0
            for t in range(dim):
                gap = x[p, t] - x[q, t]
                value += gap * gap
            if value < best[p, last]:
                _insert(best, idx, p, value, q)
            if value < best[q, last]:
                _insert(best, idx, q, value, p)


# Reassociation lets the two sums of squares vectorise: only their summation order changes.
@njit(cache=True, fastmath={"reassoc"})
def candidate_distances(  # pragma: no cover - compiled; covered through thermocheck.entropy
    data: np.ndarray,
    scale: np.ndarray,
    rows: np.ndarray,
    cand: np.ndarray,
    geodesic: bool,
    out: np.ndarray,
) -> None:
    """``out[p, c]``: the distance from point ``p`` to point ``cand[p, c]``, where point ``q`` is
    ``scale[rows[q]] · data[rows[q]]`` in float64, by direct subtraction: Euclidean ``‖x − y‖``,
    or geodesic ``2·atan2(‖x − y‖, ‖x + y‖)``. One pass over the two rows per pair, reading the
    data where it lies (no gathered copies). Serial, like every kernel here: on shared cores
    waking threads for each call cost more than the work."""
    n, n_cand = cand.shape
    dim = data.shape[1]
    for p in range(n):
        a = rows[p]
        sa = scale[a]
        for c in range(n_cand):
            b = rows[cand[p, c]]
            sb = scale[b]
            diff = 0.0
            total = 0.0
            for t in range(dim):
                x = sa * np.float64(data[a, t])
                y = sb * np.float64(data[b, t])
                diff += (x - y) * (x - y)
                total += (x + y) * (x + y)
            gap = np.sqrt(diff)
            out[p, c] = 2.0 * np.arctan2(gap, np.sqrt(total)) if geodesic else gap
