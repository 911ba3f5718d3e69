"""Hypothesis strategies for thermocheck's states and grids.

Plural nouns returning ``SearchStrategy``; bounds are keyword-only with defaults in the paper's
ranges (docs/theory.md §7): η, η_eff, λ in [1e-3, 1e-1], sphere radius in [0.1, 10].
Hyperparameters are
further kept where the SDE holds, ``ε = η_eff + η_k p ≤ max_discretisation`` (default 0.05; see
:func:`thermocheck.laws._common.discretisation`): under fixed ELR and on the sphere
``ε = η_eff + η_eff² σ²(d − 1)/2`` bounds η_eff, under fixed LR ``ε = sqrt(2ηλ/(σ²(d − 1))) + ηλ``
bounds the product ηλ. Beyond it the laws' allowances grow with ε and they turn inconclusive.

:func:`state_grids` draws the structure (protocol, d, axes) and builds the states with
:func:`thermocheck.synthetic.synthetic_grid`; their noise seed is a hash of the drawn structure,
fixed by the example and never searched, so Hypothesis cannot hunt for the rare seed on which a
correct noisy check fails (docs/decisions.md).

>>> from hypothesis import given
>>> from thermocheck import laws
>>> @given(state_grids(protocol="fixed_lr", noise=1e-3))
... def test_ideal_gas(grid):
...     laws.ideal_gas(grid).assert_passed()
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_dimension
from thermocheck.states import StateGrid
from thermocheck.synthetic import MUTATIONS, synthetic_grid

__all__ = [
    "RANGES",
    "axis_spans",
    "concentrations",
    "dimensions",
    "grid_ranges",
    "hyperparameters",
    "mutations",
    "protocols",
    "state_grids",
]

#: Default range of each hyperparameter (the paper's, docs/theory.md §7).
RANGES: dict[str, tuple[float, float]] = {
    "lr": (1e-3, 1e-1), "wd": (1e-3, 1e-1), "elr": (1e-3, 1e-1), "radius": (0.1, 10.0),
}


#: Smallest ratio between the ends of a drawn axis (:func:`axis_spans`).
_MIN_RATIO = 3.0


def _log_uniform(low: float, high: float) -> SearchStrategy[float]:
    """Floats whose log10 is uniform on [log10 low, log10 high]."""
    return st.floats(math.log10(low), math.log10(high)).map(lambda e: float(10.0**e))


def _elr_max(d: int, sigma2: float, bound: float) -> float:
    """Largest η_eff with ``η_eff + η_eff² σ²(d − 1)/2 ≤ bound``."""
    b = sigma2 * (d - 1) / 2
    return (math.sqrt(1 + 4 * b * bound) - 1) / (2 * b)


def _decay_max(d: int, sigma2: float, bound: float) -> float:
    """Largest ηλ with ``sqrt(2ηλ/(σ²(d − 1))) + ηλ ≤ bound`` (fixed LR)."""
    a = math.sqrt(2 / (sigma2 * (d - 1)))
    return ((math.sqrt(a * a + 4 * bound) - a) / 2) ** 2


def protocols() -> SearchStrategy[str]:
    """The three training protocols."""
    return st.sampled_from(theory.PROTOCOLS)


def dimensions(*, min_value: int = 2, max_value: int = 64) -> SearchStrategy[int]:
    """Dimensions d (>= 2); the default top keeps the VMF quantities cheap."""
    check_dimension(min_value, name="min_value")
    check_dimension(max_value, name="max_value", low=min_value)
    return st.integers(min_value, max_value)


def concentrations(*, min_value: float = 1e-2, max_value: float = 1e4) -> SearchStrategy[float]:
    """VMF concentrations κ, log-uniform."""
    if not 0 < min_value <= max_value < math.inf:
        raise InvalidParameterError(f"need 0 < min_value={min_value!r} <= max_value="
                                    f"{max_value!r} < inf")
    return _log_uniform(min_value, max_value)


def mutations(protocol: str | None = None) -> SearchStrategy[str]:
    """Names of :data:`thermocheck.synthetic.MUTATIONS` (those that apply to ``protocol``)."""
    names = [m.name for m in MUTATIONS.values()
             if protocol is None or theory.check_protocol(protocol) in m.protocols]
    return st.sampled_from(names)


def _ranges(protocol: str, d: int, sigma2: float, bound: float) -> dict[str, tuple[float, float]]:
    """The protocol's axis ranges, the ε bound applied to η_eff (fixed ELR, sphere) or to η
    (fixed LR, through ηλ, leaving λ an axis of at least ``_MIN_RATIO``)."""
    out = {name: RANGES[name] for name in theory.AXES[protocol]}
    lo, hi = RANGES["lr" if protocol == "fixed_lr" else "elr"]
    if protocol == "fixed_lr":
        top = min(hi, _decay_max(d, sigma2, bound) / (RANGES["wd"][0] * _MIN_RATIO))
        out["lr"] = (lo, top)
    else:
        out["elr"] = (lo, min(hi, _elr_max(d, sigma2, bound)))
    if out[theory.AXES[protocol][0]][1] < lo * _MIN_RATIO:
        raise InvalidParameterError(f"max_discretisation={bound!r} leaves no hyperparameters for "
                                    f"protocol={protocol!r} at d={d}; raise it")
    return out


def _wd_top(d: int, sigma2: float, bound: float, lr_high: float) -> float:
    """Largest λ such that every η <= lr_high keeps ε <= bound (fixed LR)."""
    return min(RANGES["wd"][1], _decay_max(d, sigma2, bound) / lr_high)


def grid_ranges(
    protocol: str, d: int, *, sigma2: float = 1.0, max_discretisation: float = 0.05
) -> dict[str, tuple[float, float]]:
    """The largest admissible grid of ``protocol``: its x axis over the whole admissible range and
    its y axis as far as ``ε <= max_discretisation`` allows on that x range."""
    protocol = theory.check_protocol(protocol)
    ranges = _ranges(protocol, check_dimension(d), sigma2, max_discretisation)
    if protocol == "fixed_lr":
        ranges["wd"] = (RANGES["wd"][0], _wd_top(d, sigma2, max_discretisation, ranges["lr"][1]))
    return ranges


def hyperparameters(
    protocol: str, *, d: int = 3, sigma2: float = 1.0, max_discretisation: float = 0.05
) -> SearchStrategy[dict[str, float]]:
    """One point of the protocol's grid, e.g. ``{"lr": 0.01, "wd": 0.003}``, log-uniform within
    :data:`RANGES` and ``ε <= max_discretisation``."""
    protocol = theory.check_protocol(protocol)
    ranges = _ranges(protocol, check_dimension(d), sigma2, max_discretisation)
    x, y = theory.AXES[protocol]

    @st.composite
    def points(draw: Any) -> dict[str, float]:
        vx = draw(_log_uniform(*ranges[x]))
        y_high = _wd_top(d, sigma2, max_discretisation, vx) if protocol == "fixed_lr" \
            else ranges[y][1]
        return {x: vx, y: draw(_log_uniform(ranges[y][0], y_high))}

    return points()


def axis_spans(
    *,
    low: float = RANGES["lr"][0],
    high: float = RANGES["lr"][1],
    min_points: int = 3,
    max_points: int = 5,
    min_ratio: float = _MIN_RATIO,
) -> SearchStrategy[np.ndarray]:
    """Log-spaced axis values inside ``[low, high]``: ``min_points`` to ``max_points`` values whose
    ends are at least a factor ``min_ratio`` apart (a grid that spans something)."""
    if not (0 < low and low * min_ratio <= high):
        raise InvalidParameterError(f"need 0 < low={low!r} and low * min_ratio <= high={high!r}")
    if not 2 <= min_points <= max_points:
        raise InvalidParameterError(f"need 2 <= min_points={min_points!r} <= "
                                    f"max_points={max_points!r}")
    lo, hi, span = math.log10(low), math.log10(high), math.log10(min_ratio)

    @st.composite
    def spans(draw: Any) -> np.ndarray:
        start = draw(st.floats(lo, hi - span))
        stop = draw(st.floats(start + span, hi))
        return np.logspace(start, stop, draw(st.integers(min_points, max_points)))

    return spans()


def state_grids(
    protocol: str | None = None,
    d: int | None = None,
    *,
    noise: float = 0.0,
    mutation: str | None = None,
    strength: float = 1.0,
    sigma2: float = 1.0,
    min_points: int = 3,
    max_points: int = 5,
    max_discretisation: float = 0.05,
) -> SearchStrategy[StateGrid]:
    """Synthetic grids from the theory (:func:`thermocheck.synthetic.synthetic_grid`).

    Parameters
    ----------
    protocol, d : optional
        Fixed, or drawn (:func:`protocols`; among the mutation's protocols when ``mutation`` is
        given; :func:`dimensions`).
    noise : float
        Relative standard error of the measured values (0: exact states).
    mutation, strength :
        A wrong theory from :data:`~thermocheck.synthetic.MUTATIONS`, blended in by ``strength``.
    sigma2 : float
        Gradient-noise variance per direction.
    min_points, max_points : int
        Points per axis.
    max_discretisation : float
        Bound on ``ε = η_eff + η_k p`` over the grid (module docstring).
    """
    allowed = theory.PROTOCOLS if mutation is None else MUTATIONS[mutation].protocols

    @st.composite
    def grids(draw: Any) -> StateGrid:
        p = theory.check_protocol(protocol) if protocol is not None else \
            draw(st.sampled_from(allowed))
        dim = check_dimension(d) if d is not None else draw(dimensions())
        ranges = _ranges(p, dim, sigma2, max_discretisation)
        x_name, y_name = theory.AXES[p]
        xs = draw(axis_spans(low=ranges[x_name][0], high=ranges[x_name][1],
                             min_points=min_points, max_points=max_points))
        y_high = _wd_top(dim, sigma2, max_discretisation, xs[-1]) if p == "fixed_lr" \
            else ranges[y_name][1]
        ys = draw(axis_spans(low=ranges[y_name][0], high=y_high, min_points=min_points,
                             max_points=max_points))
        seed = zlib.crc32(repr((p, dim, xs.tolist(), ys.tolist())).encode())
        return synthetic_grid(p, dim, grid={x_name: xs, y_name: ys}, sigma2=sigma2, noise=noise,
                              seed=seed, mutation=mutation, strength=strength)

    return grids()
