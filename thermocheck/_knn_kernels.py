"""Compiled k-NN kernels of :mod:`thermocheck.entropy` for NumPy input (imported lazily: numba
loads only when a shortlist or the exact refinement is first needed).

Selecting the k smallest entries of each Gram row with ``np.argpartition`` cost several times the
Gram product itself at N = 4000, d = 100 (a full introselect per row). :func:`merge_tile` makes
one pass over a Gram tile instead, keeping each point's best candidates in a small sorted list: an
entry above the current worst kept one, which is nearly every entry, costs one comparison. Both
points of a pair are served by one product, so only the tiles on and above the diagonal are
computed. :func:`candidate_distances` recomputes the shortlisted distances exactly. For a few
coordinates, :func:`slab_shortlist` (up to 3) and :func:`direct_shortlist` find the nearest
neighbours by direct differences without a Gram matrix.

No kernel uses numba's threads: on shared, loaded cores waking them cost more than the work
(measured on 2 cores at load 4–5: a parallel refinement took 11 ms instead of 1 ms at d = 3,
N = 1000; parallel merges right after the BLAS products, whose threads still spin, doubled the
time at d = 10⁴). Only :func:`direct_shortlist` runs on two plain threads, over pieces of rows
that each thread takes in turn, with private candidate lists, and only for large N
(``thermocheck.entropy._SPLIT_WORK``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


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


@njit(cache=True, inline="always")
def _squared_distance(x: np.ndarray, a: int, b: int) -> float:
    """``‖x[a] − x[b]‖²`` from direct differences, summed over the coordinates in order (the
    order :func:`slab_shortlist`'s stopping bound needs)."""
    value = 0.0
    for t in range(x.shape[1]):
        gap = x[a, t] - x[b, t]
        value += gap * gap
    return value


@njit(cache=True)
def merge_tile(  # pragma: no cover - compiled; covered through thermocheck.entropy
    tile: np.ndarray,
    row0: int,
    col0: int,
    sq_norm: np.ndarray,
    best: np.ndarray,
    idx: np.ndarray,
) -> None:
    """Merge the Gram tile ``tile[r, j] = a·b`` of points ``a = row0 + r``, ``b = col0 + j``
    into both points' lists of nearest others, ranked by ``‖b‖² − 2 a·b`` (the squared distance
    less ``‖a‖²``; the factor 2 is exact), in one pass over the tile in memory order (the
    columns' worst kept values held in a contiguous array), so each pair's product is computed
    and read once.

    On the diagonal (``row0 == col0``) the tile is symmetric, both halves filled by the product,
    and each row is read whole into its own list alone: touching no other point's list, this
    took 3.05 ms where reading the upper half into both lists took 3.5 (product included; N =
    1000, d = 100, one tile)."""
    rows, cols = tile.shape
    last = best.shape[1] - 1  # lists are sorted, +inf marks a free slot
    if row0 == col0:
        for r in range(rows):
            p = row0 + r
            worst = best[p, last]
            for j in range(cols):
                value = sq_norm[col0 + j] - 2.0 * tile[r, j]
                if value < worst and j != r:
                    _insert(best, idx, p, value, col0 + j)
                    worst = best[p, last]
        return
    worst_col = np.empty(cols)
    for j in range(cols):
        worst_col[j] = best[col0 + j, last]
    for r in range(rows):
        p = row0 + r
        worst = best[p, last]
        for j in range(cols):
            value = sq_norm[col0 + j] - 2.0 * tile[r, j]
            if value < worst:
                _insert(best, idx, p, value, col0 + j)
                worst = best[p, last]
            value = sq_norm[p] - 2.0 * tile[r, j]
            if value < worst_col[j]:
                _insert(best, idx, col0 + j, value, p)
                worst_col[j] = best[col0 + j, last]


#: Points of a block whose squared distances to one point :func:`direct_shortlist` computes before
#: it tests them.
_DIRECT_BLOCK = 256


# ``contract`` lets a squared difference and its sum fuse into one multiply-add (it changes only
# the rounding of each squared distance; the candidates' distances are recomputed exactly), which
# with the coordinates in rows lets the block's loop run as vector instructions.
@njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def direct_shortlist(  # pragma: no cover - compiled; covered through thermocheck.entropy
    xt: np.ndarray, first: int, stop: int, best: np.ndarray, idx: np.ndarray
) -> None:
    """Merge the pairs ``(p, q)``, ``first ≤ p < stop``, ``q > p`` into both points' sorted lists
    ``best``/``idx`` of nearest other points, the columns of ``xt`` (coordinates in rows), by
    squared distances ``‖a − b‖²`` summed from direct differences (no cancellation), each pair
    once. For a few coordinates this beats a Gram product, whose small GEMMs are dominated by
    call and thread overheads. The distances from ``p`` to a block of :data:`_DIRECT_BLOCK`
    points are computed coordinate by coordinate across the block (contiguous in ``xt``, so in
    vector instructions: 19 ms against 30 summing each pair's coordinates in turn, N = 4000,
    d = 10, one thread); a block none of whose pairs beats the larger of its two points' worst
    kept values is passed over after one vectorised count. Releases the GIL: disjoint ranges of
    ``p`` run on threads, each with its own lists, which the caller merges.
    """
    dim, n = xt.shape
    last = best.shape[1] - 1
    worst = best[:, last].copy()
    block = np.empty(_DIRECT_BLOCK)
    for p in range(first, stop):
        for q0 in range(p + 1, n, _DIRECT_BLOCK):
            size = min(_DIRECT_BLOCK, n - q0)
            block[:size] = 0.0
            for t in range(dim):
                at = xt[t, p]
                row = xt[t, q0 : q0 + size]
                for i in range(size):
                    gap = row[i] - at
                    block[i] += gap * gap
            own = worst[p]
            offered = 0
            for i in range(size):
                offered += block[i] < max(own, worst[q0 + i])
            if offered == 0:
                continue
            for i in range(size):
                value = block[i]
                q = q0 + i
                if value < max(worst[p], worst[q]):
                    if value < worst[p]:
                        _insert(best, idx, p, value, q)
                        worst[p] = best[p, last]
                    if value < worst[q]:
                        _insert(best, idx, q, value, p)
                        worst[q] = best[q, last]


@njit(cache=True)
def _scan_slab(xs: np.ndarray, b_key: np.ndarray, order: np.ndarray, lo: int, hi: int, i: int,
               up: int, floor_sq: float, best: np.ndarray, idx: np.ndarray, worst: float) -> float:
    """Offer the points ``lo … hi − 1`` of one slab (sorted by ``b_key``) to sorted point ``i``:
    ``up`` and the points above it, and those below ``up`` (but ``i`` itself), nearest along b
    first, until ``floor_sq + gap_b²`` reaches the worst kept squared distance ``worst``; returns
    the new worst. ``floor_sq`` is a lower bound of the slab's squared gap along a to point i."""
    last = best.shape[1] - 1
    p = order[i]
    key = b_key[i]
    down = up - 1
    while True:
        if down == i:
            down -= 1
        gap_down = key - b_key[down] if down >= lo else np.inf
        gap_up = b_key[up] - key if up < hi else np.inf
        if gap_down < gap_up:
            j, gap = down, gap_down
            down -= 1
        else:
            j, gap = up, gap_up
            up += 1
        if not floor_sq + gap * gap < worst:
            return worst
        value = _squared_distance(xs, i, j)
        if value < worst:
            _insert(best, idx, p, value, order[j])
            worst = best[p, last]


@njit(cache=True)
def _bisect(b_key: np.ndarray, lo: int, hi: int, key: float) -> int:
    """The first position in ``lo … hi − 1`` (sorted) whose key is not below ``key``."""
    while lo < hi:
        mid = (lo + hi) // 2
        if b_key[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def slab_shortlist(  # pragma: no cover - compiled; covered through thermocheck.entropy
    xs: np.ndarray, order: np.ndarray, slab: int, best: np.ndarray, idx: np.ndarray
) -> None:
    """Fill the sorted lists ``best[order[i]]``/``idx[order[i]]`` with the exact nearest other
    rows of ``xs`` (named by ``order``; squared distances from direct differences), searching
    slabs.

    ``xs`` holds the points cut into slabs of ``slab`` consecutive rows sorted along column 0
    (a), each slab sorted along column 1 (b; one slab sorted along a for one column). Each
    point scans its own slab outward along b from its place, then the other slabs in order of
    their gap along a, and stops where the gaps alone reach its k-th best squared distance. The
    squared distances sum the a and b terms first, and a float sum of non-negative terms is never
    below any partial sum, so the bound is exact in floating point: the result equals a search
    over all pairs up to the order of exact ties, for any data, and only the cost depends on it
    (about the N·√N points of the neighbouring slabs for a few coordinates).
    """
    n, dim = xs.shape
    if dim == 1:
        slab = n  # b is a: a slab's gap along a bounds nothing once it is scanned along a
    b_key = xs[:, min(1, dim - 1)].copy()
    starts = np.arange(0, n + slab, slab)
    starts[-1] = n
    n_slabs = starts.shape[0] - 1
    low = np.empty(n_slabs)
    high = np.empty(n_slabs)
    for s in range(n_slabs):
        low[s] = high[s] = xs[starts[s], 0]
        for i in range(starts[s], starts[s + 1]):
            low[s] = min(low[s], xs[i, 0])
            high[s] = max(high[s], xs[i, 0])
    last = best.shape[1] - 1
    for s in range(n_slabs):
        for i in range(starts[s], starts[s + 1]):
            worst = _scan_slab(xs, b_key, order, starts[s], starts[s + 1], i, i + 1, 0.0, best,
                               idx, best[order[i], last])
            down, up = s - 1, s + 1
            while True:
                gap_down = xs[i, 0] - high[down] if down >= 0 else np.inf
                gap_up = low[up] - xs[i, 0] if up < n_slabs else np.inf
                if gap_down < gap_up:
                    t, gap = down, gap_down
                    down -= 1
                else:
                    t, gap = up, gap_up
                    up += 1
                if not gap * gap < worst:
                    break
                at = _bisect(b_key, starts[t], starts[t + 1], b_key[i])
                worst = _scan_slab(xs, b_key, order, starts[t], starts[t + 1], i, at, gap * gap,
                                   best, idx, worst)


# Reassociation lets the two sums of squares vectorise: only their summation order changes.
@njit(cache=True, fastmath={"reassoc"})
def candidate_distances(  # pragma: no cover - compiled; covered through thermocheck.entropy
    data: np.ndarray,
    scale: np.ndarray,
    rows: np.ndarray,
    cand: np.ndarray,
    needed: np.ndarray,
    geodesic: bool,
    out: np.ndarray,
) -> None:
    """``out[p, c]``: the distance from point ``p`` to point ``cand[p, c]`` if ``needed[p, c]``,
    else ``+inf``, where point ``q`` is
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
            if not needed[p, c]:
                out[p, c] = np.inf
                continue
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
