r"""Closed forms of the von Mises–Fisher (VMF) law on the unit sphere, stable for any dimension.

For the linear scale-invariant loss ``L(w̄) = 1 + μᵀw̄`` the stationary law of the direction
``w̄ ∈ S^{d−1} ⊂ R^d`` at temperature ``T`` is von Mises–Fisher with mean direction ``−μ`` and
concentration ``κ = 1/T`` (Appendix E of Sadrtdinov et al., arXiv:2511.07308). With
``ν = d/2 − 1`` and ``I_ν`` the modified Bessel function of the first kind:

* normaliser          ``C_d(κ) = κ^ν / ((2π)^{d/2} I_ν(κ))``
* mean resultant      ``A_d(κ) = I_{ν+1}(κ) / I_ν(κ)``
* internal energy     ``U = E[L] = 1 − A_d(κ)``
* entropy (nats, w.r.t. surface measure) ``S = −log C_d(κ) − κ A_d(κ)``
* heat capacity       ``C_V = dU/dT = κ² A_d'(κ)``, ``A_d' = 1 − A_d² − (d − 1) A_d / κ``

Why the textbook formulas fail at network sizes
-----------------------------------------------
The networks of the paper have d = 24 408, 43 692 and 97 200. At d = 43 692 (ν = 21 845),
``I_ν(κ)`` is about 10^−48 194 at κ = 100, 10^−4 020 at κ = 10⁴ and 10^+3 894 at κ = 2·10⁴: it is a
float64 (10^±308) only for 1.41·10⁴ < κ < 1.49·10⁴, so elsewhere ``iv`` returns 0 or inf and
``A = iv/iv`` is NaN. The exponentially scaled ``scipy.special.ive`` does not rescue it: it
starts at ``log ive ≈ ν log(eκ/2ν)`` for κ ≪ ν and stays below −708 up to κ ≈ 3.4·10⁵ at this d,
so it underflows to 0 there; it loses digits already while subnormal (scipy's VMF entropy is
off by 4·10⁻³ at d = 301, κ = 1.07), and it returns NaN for any order once κ exceeds about
1.07·10⁹. Even where every number is finite, three subtractions destroy the result:

* ``U = 1 − A`` at κ ≫ d: A rounds to 1 and U (≈ (d−1)/(2κ)) loses log10(κ/d) digits;
* ``S = −log C − κA`` subtracts two numbers of size κ to get one of size d·log κ (nine of the
  sixteen digits are lost at κ = 10¹⁰, d = 3);
* ``A' = 1 − A² − (d−1)A/κ`` cancels to O(d/κ²), so ``κ²A'`` is pure rounding noise at large κ.

This module therefore never forms ``I_ν``, ``A`` or ``κA`` and subtracts. It computes, for the
order ν and argument κ, four quantities directly: ``log ive(ν, κ) = log I_ν(κ) − κ``, the ratio
``A``, its complement ``1 − A`` and ``W = κ² A'``, and assembles

* ``log C = ν log κ − (d/2) log 2π − log ive(ν, κ) − κ`` (for d ≥ 42 regrouped and partly in
  extended precision, see below)
* ``S = (d/2) log 2π − ν log κ + log ive(ν, κ) + κ (1 − A)``

in which every term is computed to full relative precision.

Method table
------------
========================  =========================================================================
region                    method
========================  =========================================================================
ν ≥ 20 (d ≥ 42), any κ    Olver's uniform asymptotic expansion (DLMF 10.41.3) with the Debye
                          polynomials u_1 … u_16 (DLMF 10.41.9, 10.41.10, generated exactly with
                          rationals at import). ``A`` and ``1 − A`` come from its first derivative
                          in κ (``A = ∂_κ log I_ν − ν/κ``, DLMF 10.29.2), ``W`` from the second, all
                          written in ``z = κ/ν`` and ``p = (1 + z²)^{−1/2}`` without subtraction
                          of nearly equal numbers. The expansion is uniform in ``z ∈ (0, ∞)``, so
                          it covers small κ, the transition κ ≈ ν and κ ≫ ν² alike. Truncation
                          error ≤ max|u_17| / 20^17 ≈ 10^−18.
ν < 20 (d ≤ 41), any κ    The same expansion at the order ``μ = ν + M ≥ 20`` (``M`` integer ≤ 20),
                          then ``M`` steps of the backward recurrence
                          ``I_{μ−1}/I_μ = 2μ/κ + I_{μ+1}/I_μ`` (DLMF 10.29.1), which is stable
                          downward. With ``δ = 2μ/κ − (1 − A_μ)`` one step is
                          ``A_{μ−1} = 1/(1 + δ)``, ``1 − A_{μ−1} = δ/(1 + δ)``,
                          ``log ive_{μ−1} = log ive_μ + log1p(δ)`` and
                          ``W_{μ−1} = A_{μ−1}² (2μ − W_μ)``; the loss of relative accuracy over
                          all steps is bounded by (2μ + 1)/(2ν + 1) ≤ 41.
========================  =========================================================================

Measured against 40-digit mpmath values (``tests/vmf_reference.py``) over 2 ≤ d ≤ 10⁶ and
10⁻⁶ ≤ κ ≤ 10¹⁰ the relative error is below 10⁻¹³ for every function (relative to
max(|value|, 1) for ``log C`` and ``S``, which change sign). ``log C`` needs one more device:
for d ≥ 20 it crosses zero near κ ≈ (d/2) log κ, where terms of size ν log ν (~10⁷ at d = 10⁶)
cancel; float64 rounding alone would leave ~10⁻⁹ there, so :func:`log_normalizer` evaluates
those terms in ``np.longdouble`` (see ``_log_normalizer_large_order``). On platforms where
``longdouble`` is just float64 (e.g. macOS on arm64) that zero crossing keeps the ~10⁻⁹ error.

A single (d, κ) runs on Python floats (``math``; NumPy only for the two small matrix products of
the Debye sums); arrays run with no Python loop per element (the recurrence loops at most 20
times over the whole array). Measured by ``python -m benchmarks`` (2 shared cores, interleaved
with the textbook formula from scipy's ``ive`` in the same run, ``benchmarks/results/``): a scalar
:func:`entropy` costs 2.0× that formula at d = 100 and 5.5× at d = 3 (the 20 recurrence steps),
10⁴ values 1.8× (d = 100) and 3.4× (d = 3); mpmath is slower by orders of magnitude. scipy is
not a substitute: it is NaN or inaccurate wherever ``ive`` underflows (see above).

Sampling uses Wood's rejection algorithm (Wood 1994, "Simulation of the von Mises Fisher
distribution") in a cancellation-free form, rotated by one Householder reflection.
"""

from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from thermocheck.errors import (
    InvalidParameterError,
    check_dimension,
    check_in_range,
    check_positive,
)

__all__ = [
    "entropy",
    "entropy_uniform",
    "heat_capacity",
    "log_bessel_ive",
    "log_normalizer",
    "mean_loss",
    "mean_resultant_length",
    "sample",
]

_OLVER_MIN_ORDER = 20.0
"""Orders at or above this use Olver's expansion directly; lower orders recur down from it."""

_N_DEBYE = 16
"""Number of Debye polynomials u_1 … u_16 kept in Olver's expansion."""

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2PI_EXT = np.longdouble("1.83787706640934548356065947281123527972")
"""log 2π in numpy's extended precision (80-bit on x86-64 Linux; float64 on some platforms)."""

FloatOrArray = float | NDArray[np.float64]


def _debye_polynomials(n_terms: int) -> NDArray[np.float64]:
    """Monomial coefficients of u_1 … u_n and of their first two derivatives.

    Uses the exact recurrence (DLMF 10.41.10)
    ``u_{k+1}(p) = ½ p² (1 − p²) u_k'(p) + ⅛ ∫_0^p (1 − 5t²) u_k(t) dt``, ``u_0 = 1``, in rational
    arithmetic, then rounds once. Returns a ``(3n + 1, 3, n)`` array: ``[j, m, k − 1]`` is the
    coefficient of ``p^j`` in the m-th derivative of ``u_k``.
    """
    polys: list[list[Fraction]] = [[Fraction(1)]]
    for _ in range(n_terms):
        u = polys[-1]
        nxt = [Fraction(0)] * (len(u) + 3)
        for j, c in enumerate(u):
            nxt[j + 1] += j * c / 2 + c / (8 * (j + 1))
            nxt[j + 3] -= j * c / 2 + 5 * c / (8 * (j + 3))
        polys.append(nxt)
    degree = 3 * n_terms
    coef = np.zeros((degree + 1, 3, n_terms))
    for k in range(1, n_terms + 1):
        for j, c in enumerate(polys[k]):
            coef[j, 0, k - 1] = float(c)
    power = np.arange(degree + 1, dtype=np.float64)[:, None]
    coef[:-1, 1] = coef[1:, 0] * power[1:]
    coef[:-2, 2] = coef[2:, 0] * power[2:] * power[1:-1]
    return coef


_DEBYE = _debye_polynomials(_N_DEBYE).reshape(3 * _N_DEBYE + 1, 3 * _N_DEBYE)
_P_POWERS = np.arange(3 * _N_DEBYE + 1)
_NU_POWERS = np.arange(1, _N_DEBYE + 1)
_GEMM_ROWS = 64
"""Rows per matrix product in ``_debye_sum``: small enough (64·48·49 < 2¹⁸ flops) that OpenBLAS
stays on one thread. Its threaded GEMM was 10–100 times slower on oversubscribed CI cores."""


_MATH = SimpleNamespace(
    hypot=math.hypot,
    log=math.log,
    log1p=math.log1p,
    maximum=max,
    where=lambda cond, a, b: a if cond else b,
)
"""The few array functions the formulas below use, on Python floats: a single value then runs
them without NumPy's per-call overhead (about 1 µs per ufunc call on a scalar)."""


def _debye_tails(p: Any, mu: Any) -> tuple[Any, Any, Any]:
    """``Σ − 1 = Σ_{k=1}^{16} u_k(p)/μ^k`` and its first two p-derivatives (DLMF 10.41.3).

    ``p`` and ``mu`` are 1-d arrays, or Python floats (then the results are floats).
    """
    if isinstance(p, float):
        u = np.power(p, _P_POWERS) @ _DEBYE
        tails = u.reshape(3, _N_DEBYE) @ np.power(1.0 / mu, _NU_POWERS)
        return float(tails[0]), float(tails[1]), float(tails[2])
    p_pow = p[:, None] ** _P_POWERS
    u = np.empty((p.size, _DEBYE.shape[1]))
    for start in range(0, p.size, _GEMM_ROWS):
        np.matmul(p_pow[start : start + _GEMM_ROWS], _DEBYE, out=u[start : start + _GEMM_ROWS])
    mu_pow = (1.0 / mu)[:, None] ** _NU_POWERS
    tail, tail_p, tail_pp = np.einsum("nmk,nk->mn", u.reshape(p.size, 3, _N_DEBYE), mu_pow)
    return tail, tail_p, tail_pp


def _debye_sum(p: Any, mu: Any, xp: Any = np) -> tuple[Any, ...]:
    """``L = log Σ``, ``dL/dp`` and ``d²L/dp²`` for ``Σ(p) = 1 + Σ_{k=1}^{16} u_k(p)/μ^k``."""
    tail, tail_p, tail_pp = _debye_tails(p, mu)
    dlog = tail_p / (1.0 + tail)
    return xp.log1p(tail), dlog, tail_pp / (1.0 + tail) - dlog * dlog


def _olver(mu: Any, x: Any, xp: Any = np) -> tuple[Any, ...]:
    """``(log ive, A, 1 − A, W)`` at order ``mu ≥ 20`` by Olver's expansion (DLMF 10.41.3).

    With ``z = x/μ``, ``s = √(1 + z²)``, ``p = 1/s`` and ``Σ(p) = 1 + Σ_k u_k(p)/μ^k``:
    ``log I_μ(μz) = μη − ½ log(2πμ) − ½ log s + log Σ``, ``η = s + log(z/(1 + s))`` (DLMF 10.41.3,
    10.41.7). Differentiating in ``x = μz`` (``dp/dz = −z p³``):
    ``A = z/(1 + s) − zp²/(2μ) − (zp³/μ) L'``,
    ``W = μ(1 − p) − ½(1 − p²)(2p² − 1) + g[(2 − 3p²) L' + g L'']``, ``g = p(1 − p²)``,
    where ``L = log Σ`` and primes are d/dp. ``1 − p²`` is evaluated as ``(zp)²`` and
    ``1 − p`` as ``(zp)²/(1 + p)``, so nothing cancels for small or large z. ``xp`` is numpy for
    arrays or :data:`_MATH` for Python floats.
    """
    z = x / mu
    s = xp.hypot(1.0, z)
    p = 1.0 / s
    zp = z / s
    # log(z/(1+s)); log z as log x − log μ (z may underflow), for z > 1 as
    # −log1p((1 + 1/(s+z))/z), which keeps full precision as z → ∞.
    log_z_ratio = xp.where(
        z <= 1.0,
        xp.log(x) - xp.log(mu) - xp.log1p(s),
        -xp.log1p((1.0 + 1.0 / (s + z)) / xp.maximum(z, 1.0)),
    )
    log_sum, dlog, d2log = _debye_sum(p, mu, xp)

    log_ive = (
        mu / (s + z)
        + mu * log_z_ratio
        - 0.5 * xp.log(2.0 * math.pi * mu)
        - 0.5 * xp.log(s)
        + log_sum
    )
    correction = zp * p / (2.0 * mu) + zp * p * p * dlog / mu
    ratio = z / (1.0 + s) - correction
    one_minus = (1.0 + 1.0 / (s + z)) / (1.0 + s) + correction
    one_minus_p2 = zp * zp
    g = p * one_minus_p2
    w = (
        mu * one_minus_p2 / (1.0 + p)
        - 0.5 * one_minus_p2 * (2.0 * p * p - 1.0)
        + g * ((2.0 - 3.0 * p * p) * dlog + g * d2log)
    )
    return log_ive, ratio, one_minus, w


def _bessel(
    nu: NDArray[np.float64], x: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """``(log ive(ν, x), A, 1 − A, W)`` for 1-d arrays ``nu ≥ 0``, ``x > 0`` (see the table).

    ``A = I_{ν+1}(x)/I_ν(x)`` and ``W = x² dA/dx``. Orders below 20 start from Olver's expansion at
    ``ν + M`` (the same ``M`` for every such element) and recur down ``M`` times (DLMF 10.29.1).
    """
    low = nu < _OLVER_MIN_ORDER
    steps = math.ceil(_OLVER_MIN_ORDER - float(nu[low].min())) if low.any() else 0
    log_ive, ratio, one_minus, w = _olver(np.where(low, nu + steps, nu), x)
    if steps:
        log_step, ratio[low], one_minus[low], w[low] = _recur_down(
            nu[low], x[low], one_minus[low], w[low], steps, np
        )
        log_ive[low] += log_step
    return log_ive, ratio, one_minus, w


def _bessel_scalar(nu: float, x: float) -> tuple[float, ...]:
    """:func:`_bessel` for one order ``nu ≥ 0`` and argument ``x > 0``, on Python floats."""
    steps = math.ceil(_OLVER_MIN_ORDER - nu) if nu < _OLVER_MIN_ORDER else 0
    log_ive, ratio, one_minus, w = _olver(nu + steps, x, _MATH)
    if steps:
        log_step, ratio, one_minus, w = _recur_down(nu, x, one_minus, w, steps, _MATH)
        log_ive += log_step
    return log_ive, ratio, one_minus, w


def _recur_down(order: Any, x: Any, om: Any, ww: Any, steps: int, xp: Any) -> tuple[Any, ...]:
    """``steps`` backward steps (DLMF 10.29.1) from ``(1 − A, W)`` at order ``order + steps``.

    With ``δ = I_{μ−1}/I_μ − 1 = 2μ/x − (1 − A_μ)`` one step is ``A_{μ−1} = 1/(1 + δ)``,
    ``1 − A_{μ−1} = δ/(1 + δ)``, ``W_{μ−1} = A_{μ−1}² (2μ − W_μ)`` and
    ``log ive_{μ−1} = log ive_μ + log(1 + δ)``. Returns the summed ``log(1 + δ)`` and
    ``(A, 1 − A, W)`` at ``order``.
    """
    log_step = 0.0
    ux = x
    for k in range(steps, 0, -1):
        two_mu = 2.0 * (order + k)  # μ: the order of (om, ww) before this step
        u = two_mu - x * om  # = x·δ; never overflows, unlike δ itself at tiny x
        ux = u + x
        ratio = x / ux
        ww = ratio * ratio * (two_mu - ww)
        om = u / ux
        log_step = log_step + _log_one_plus_delta(u, ux, x, xp)
    return log_step, x / ux, om, ww


def _log_one_plus_delta(u: Any, ux: Any, x: Any, xp: Any) -> Any:
    """``log(1 + δ)`` from ``u = xδ`` and ``ux = x(1 + δ)``, without overflow or cancellation."""
    if xp is _MATH:
        return math.log(ux) - math.log(x) if u > x else math.log1p(u / x)
    return np.where(u > x, np.log(ux) - np.log(x), np.log1p(np.minimum(u, x) / x))


def _log_normalizer_large_order(nu: Any, kappa: Any) -> Any:
    """``log C_d(κ)`` for ``ν ≥ 20`` with its large terms in extended precision.

    Inserting Olver's expansion (DLMF 10.41.3) into
    ``log C = ν log κ − (ν + 1) log 2π − log I_ν(κ)`` and using ``κ = νz``, ``s − z = 1/(s + z)``
    gives
    ``log C = ν [log(ν/2π) + log1p(s) − s] − log 2π + ½ log(2πν) + ½ log s − log Σ``.
    The bracket times ν is of size ~10⁷ at d ~ 10⁶ while ``log C`` crosses zero near
    κ ≈ (d/2) log κ; in float64 its rounding alone is ~10⁻⁹ there, so it is evaluated in
    ``np.longdouble`` (error ~10⁻¹² where that type is 80-bit). ``nu`` and ``kappa`` are 1-d
    arrays, or Python floats (then the result is a float).
    """
    xp = _MATH if isinstance(nu, float) else np
    nu_ext = np.longdouble(nu)
    s_ext = np.hypot(np.longdouble(1.0), np.longdouble(kappa) / nu_ext)
    bracket = np.log(nu_ext) - _LOG_2PI_EXT + np.log1p(s_ext) - s_ext
    s = s_ext.astype(np.float64)
    if xp is _MATH:
        s = float(s)
    log_sum = _debye_sum(1.0 / s, nu, xp)[0]
    rest = -_LOG_2PI + 0.5 * xp.log(2.0 * math.pi * nu) + 0.5 * xp.log(s) - log_sum
    return (nu_ext * bracket).astype(np.float64) + rest


def _log_normalizer_small_order(nu: Any, kappa: Any, log_ive: Any, xp: Any) -> Any:
    """``log C_d(κ) = ν log κ − (d/2) log 2π − log ive(ν, κ) − κ`` for ``ν < 20`` (App. E)."""
    return nu * xp.log(kappa) - (nu + 1.0) * _LOG_2PI - log_ive - kappa


def _plain_float(value: Any) -> float | None:
    """A Python or NumPy real scalar (not a bool) as a float; None for anything else."""
    plain = isinstance(value, int | float | np.integer | np.floating)
    return float(value) if plain and not isinstance(value, bool | np.bool_) else None


def _scalar_args(d: Any, kappa: Any) -> tuple[float, float] | None:
    """``(d, κ)`` as floats when both are single valid numbers, else None.

    Single numbers then take the array-free path (:func:`_bessel_scalar`); anything else, including
    every invalid input, goes through :func:`_params`, which validates and reports.
    """
    dim, kap = _plain_float(d), _plain_float(kappa)
    if dim is None or kap is None:
        return None
    valid = dim >= 2.0 and dim == math.floor(dim) and 0.0 < kap < math.inf
    return (dim, kap) if valid else None


def _params(d: ArrayLike, kappa: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    """Validate ``d`` (integer ≥ 2) and ``kappa`` (finite, > 0) and broadcast them."""
    dim = np.asarray(check_dimension(d), dtype=np.float64)
    kap = check_positive("kappa", kappa)
    return tuple(np.broadcast_arrays(dim, kap))


def _shaped(values: Any, shape: tuple[int, ...] | None) -> FloatOrArray:
    """A Python float for scalar input (``shape`` None or ``()``), an array of ``shape`` otherwise.

    ``shape`` is None when ``values`` is already a single number (the array-free path).
    """
    if shape is None:
        return float(values)
    return float(values[0]) if shape == () else values.reshape(shape)


def _evaluate(d: ArrayLike, kappa: ArrayLike) -> tuple[Any, ...]:
    """Shape, d, ν, κ and the four Bessel quantities at ``(ν = d/2 − 1, κ)``, and the math module.

    Single valid numbers give Python floats, shape None and :data:`_MATH`; anything else flattened
    arrays, their shape and numpy.
    """
    scalars = _scalar_args(d, kappa)
    if scalars is not None:
        dim_f, kap_f = scalars
        nu_f = 0.5 * dim_f - 1.0
        return (None, dim_f, nu_f, kap_f, *_bessel_scalar(nu_f, kap_f), _MATH)
    dim, kap = _params(d, kappa)
    shape = dim.shape
    dim, kap = dim.ravel(), kap.ravel()
    nu = 0.5 * dim - 1.0
    return (shape, dim, nu, kap, *_bessel(nu, kap), np)


def log_bessel_ive(nu: ArrayLike, x: ArrayLike) -> FloatOrArray:
    r"""Logarithm of the exponentially scaled modified Bessel function, ``log(I_ν(x) e^{−x})``.

    Stable for every order ``ν ≥ 0`` and argument ``x > 0``, including where ``I_ν`` itself
    under- or overflows (e.g. ν = 5·10⁵, x = 10⁻⁶ gives ≈ −1.33·10⁷). Method: Olver's uniform
    expansion (DLMF 10.41.3) for ν ≥ 20, backward recurrence (DLMF 10.29.1) from an order ≥ 20
    below that (see the module docstring).

    Parameters
    ----------
    nu : array_like
        Order ν ≥ 0 (any real, not only half-integers).
    x : array_like
        Argument x > 0, finite. Broadcast against ``nu``.

    Returns
    -------
    float or ndarray
        ``log I_ν(x) − x``; a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``nu`` is negative or not finite, or ``x`` is not finite and positive.
    """
    order_f, arg_f = _plain_float(nu), _plain_float(x)
    if (order_f is not None and arg_f is not None
            and 0.0 <= order_f < math.inf and 0.0 < arg_f < math.inf):
        return _bessel_scalar(order_f, arg_f)[0]
    order = check_in_range("nu", nu, 0.0, math.inf)
    arg = check_positive("x", x)
    order, arg = np.broadcast_arrays(order, arg)
    log_ive = _bessel(order.ravel(), arg.ravel())[0]
    return _shaped(log_ive, order.shape)


def mean_resultant_length(d: ArrayLike, kappa: ArrayLike) -> FloatOrArray:
    r"""Mean resultant length ``A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ)`` (arXiv:2511.07308, App. E).

    ``A_d(κ) = E[μᵀx]`` for ``x ~ VMF(μ, κ)`` on ``S^{d−1}``; it lies in (0, 1), grows from
    ``κ/d`` at small κ to ``1 − (d − 1)/(2κ)`` at large κ.

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2 (the sphere is ``S^{d−1}``).
    kappa : array_like
        Concentration κ > 0, finite (κ = 1/T). Broadcast against ``d``.

    Returns
    -------
    float or ndarray
        ``A_d(κ)``, relative accuracy ~10⁻¹⁵; a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2 or ``kappa`` is not finite and positive.
    """
    shape, _, _, _, _, ratio, _, _, _ = _evaluate(d, kappa)
    return _shaped(ratio, shape)


def mean_loss(d: ArrayLike, kappa: ArrayLike) -> FloatOrArray:
    r"""Internal energy ``U = 1 − A_d(κ)``: the stationary mean of ``L(w̄) = 1 + μᵀw̄``.

    The stationary law is VMF with mean direction ``−μ`` and ``κ = 1/T`` (arXiv:2511.07308,
    App. E). ``1 − A`` is computed directly, never as a difference, so it keeps full relative
    accuracy at κ ≫ d, where ``U = (d − 1)/(2κ) − (d − 1)(d − 3)/(8κ²) + O(κ⁻³)``.

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2.
    kappa : array_like
        Concentration κ = 1/T > 0, finite. Broadcast against ``d``.

    Returns
    -------
    float or ndarray
        ``U`` in (0, 1); a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2 or ``kappa`` is not finite and positive.
    """
    shape, _, _, _, _, _, one_minus, _, _ = _evaluate(d, kappa)
    return _shaped(one_minus, shape)


def log_normalizer(d: ArrayLike, kappa: ArrayLike) -> FloatOrArray:
    r"""Log of the VMF normaliser, ``log C_d(κ)``, ``C_d(κ) = κ^ν / ((2π)^{d/2} I_ν(κ))``.

    ``ν = d/2 − 1`` (arXiv:2511.07308, App. E). The density on ``S^{d−1}`` w.r.t. surface measure
    is ``C_d(κ) exp(κ μᵀx)``. For d ≤ 41 it is evaluated as
    ``ν log κ − (d/2) log 2π − log ive(ν, κ) − κ``; for d ≥ 42 from Olver's expansion with the
    terms of size ν in extended precision (``log C`` crosses zero near κ ≈ (d/2) log κ when
    d ≥ 20, and at d ~ 10⁶ float64 rounding of those terms alone would be ~10⁻⁹ absolute).

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2.
    kappa : array_like
        Concentration κ > 0, finite. Broadcast against ``d``.

    Returns
    -------
    float or ndarray
        ``log C_d(κ)``; a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2 or ``kappa`` is not finite and positive.
    """
    scalars = _scalar_args(d, kappa)
    if scalars is not None:
        nu_f, kap_f = 0.5 * scalars[0] - 1.0, scalars[1]
        if nu_f >= _OLVER_MIN_ORDER:
            return float(_log_normalizer_large_order(nu_f, kap_f))
        return _log_normalizer_small_order(nu_f, kap_f, _bessel_scalar(nu_f, kap_f)[0], _MATH)
    dim, kap = _params(d, kappa)
    shape = dim.shape
    nu, kap = 0.5 * dim.ravel() - 1.0, kap.ravel()
    large = nu >= _OLVER_MIN_ORDER
    value = np.empty_like(kap)
    if large.any():
        value[large] = _log_normalizer_large_order(nu[large], kap[large])
    if not large.all():
        small_nu, small_kappa = nu[~large], kap[~large]
        log_ive = _bessel(small_nu, small_kappa)[0]
        value[~large] = _log_normalizer_small_order(small_nu, small_kappa, log_ive, np)
    return _shaped(value, shape)


def entropy(d: ArrayLike, kappa: ArrayLike) -> FloatOrArray:
    r"""Differential entropy (nats) of VMF on ``S^{d−1}`` w.r.t. surface measure.

    ``S = −log C_d(κ) − κ A_d(κ)`` (arXiv:2511.07308, App. E), evaluated without cancellation as
    ``S = (d/2) log 2π − ν log κ + log ive(ν, κ) + κ (1 − A_d(κ))``, ``ν = d/2 − 1``.
    Limits: ``S → log|S^{d−1}|`` (:func:`entropy_uniform`) as κ → 0, and
    ``S = ((d − 1)/2) log(2πe/κ) − (d − 1)(d − 3)/(4κ) + O(κ⁻²)`` as κ → ∞.

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2.
    kappa : array_like
        Concentration κ = 1/T > 0, finite. Broadcast against ``d``.

    Returns
    -------
    float or ndarray
        ``S``; a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2 or ``kappa`` is not finite and positive.
    """
    shape, dim, nu, kap, log_ive, _, one_minus, _, xp = _evaluate(d, kappa)
    value = 0.5 * dim * _LOG_2PI - nu * xp.log(kap) + log_ive + kap * one_minus
    return _shaped(value, shape)


def heat_capacity(d: ArrayLike, kappa: ArrayLike) -> FloatOrArray:
    r"""Exact heat capacity ``C_V = dU/dT`` of the VMF model at ``T = 1/κ``.

    ``C_V = κ² A_d'(κ)`` with ``A_d' = 1 − A_d² − (d − 1) A_d/κ`` (Appendix D.4 and E of
    arXiv:2511.07308); it equals ``κ² Var(μᵀx)``. That formula cancels to O(d/κ²), so it is
    evaluated instead from the second κ-derivative of Olver's expansion (DLMF 10.41.3) and the
    differentiated recurrence ``W_{μ−1} = A_{μ−1}² (2μ − W_μ)`` (see the module docstring).
    ``C_V → (d − 1)/2`` (the gas constant R) as T → 0 and ``C_V ≈ κ²/d → 0`` as T → ∞. From
    ``U = (d − 1)T/2 − (d − 1)(d − 3)T²/8 + O(T³)``, ``C_V`` approaches R from below for d ≥ 4 and
    from above for d = 2 (it exceeds R there, e.g. 0.53 at κ = 10).

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2.
    kappa : array_like
        Concentration κ = 1/T > 0, finite. Broadcast against ``d``.

    Returns
    -------
    float or ndarray
        ``C_V``; a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2 or ``kappa`` is not finite and positive.
    """
    shape, _, _, _, _, _, _, w, _ = _evaluate(d, kappa)
    return _shaped(w, shape)


def entropy_uniform(d: ArrayLike) -> FloatOrArray:
    r"""Entropy of the uniform law on ``S^{d−1}``: ``log|S^{d−1}| = log(2 π^{d/2} / Γ(d/2))``.

    This is the κ → 0 limit of :func:`entropy` and its upper bound.

    Parameters
    ----------
    d : array_like of int
        Ambient dimension, an integer ≥ 2.

    Returns
    -------
    float or ndarray
        ``log|S^{d−1}|`` in nats (negative for d ≥ 19); a float for scalar input.

    Raises
    ------
    InvalidParameterError
        If ``d`` is not an integer ≥ 2.
    """
    from scipy.special import gammaln  # here: scipy.special would double `import thermocheck.laws`

    dim = np.asarray(check_dimension(d), dtype=np.float64)
    value = math.log(2.0) + 0.5 * dim * math.log(math.pi) - gammaln(0.5 * dim)
    return float(value) if dim.ndim == 0 else value


def sample(
    d: int,
    kappa: float,
    size: int,
    *,
    mean_direction: ArrayLike | None = None,
    rng: np.random.Generator | int | None = None,
) -> NDArray[np.float64]:
    r"""Draw ``size`` unit vectors from VMF(mean_direction, κ) on ``S^{d−1}``.

    Wood's (1994) rejection sampler for ``t = μᵀx``: with ``m = d − 1``,
    ``b = m / (2κ + √(4κ² + m²))`` (the textbook ``(−2κ + √(4κ² + m²))/m`` cancels at large κ),
    ``x₀ = (1 − b)/(1 + b)``, draw ``z ~ Beta(m/2, m/2)``, ``t = (1 − (1 + b)z)/(1 − (1 − b)z)``
    and accept when ``κ(t − x₀) + m log((1 − x₀t)/(1 − x₀²)) ≥ log u``, ``u ~ U(0, 1)``. The sampler
    works with ``1 − t = 2bz/((1 − z) + bz)`` and ``1 − x₀ = 2b/(1 + b)`` so that concentrated
    samples (κ up to 10¹⁰) keep their distance from the mean direction; the tangent part,
    ``√((1 − t)(1 + t))`` times a uniform direction of ``R^{d−1}``, is then exact too. The draw
    around ``e₁`` is carried to the mean direction by one Householder reflection, O(size·d).

    Parameters
    ----------
    d : int
        Ambient dimension, an integer ≥ 2 (tested up to 10⁵).
    kappa : float
        Concentration κ > 0, finite.
    size : int
        Number of samples, ≥ 1.
    mean_direction : array_like, optional
        Nonzero finite vector of length ``d``; normalised here. Default ``e₁``.
    rng : numpy.random.Generator or int, optional
        Generator or seed for :func:`numpy.random.default_rng`.

    Returns
    -------
    ndarray, shape (size, d)
        Unit vectors; their mean resultant length is ``A_d(κ)``.

    Raises
    ------
    InvalidParameterError
        If ``d``, ``kappa``, ``size`` or ``mean_direction`` is invalid; the message names it.
    """
    dim = check_dimension(d)
    if not isinstance(dim, int):
        raise InvalidParameterError(f"d={d!r} is invalid: d must be a single integer >= 2")
    kap = check_positive("kappa", kappa)
    if kap.ndim:
        raise InvalidParameterError(f"kappa={kappa!r} is invalid: kappa must be a single number")
    n = check_dimension(size, name="size", low=1)
    if not isinstance(n, int):
        raise InvalidParameterError(f"size={size!r} is invalid: size must be a single integer >= 1")
    direction = _unit_direction(mean_direction, dim)
    gen = np.random.default_rng(rng)

    k, m = float(kap), dim - 1.0
    b = m / (2.0 * k + math.hypot(2.0 * k, m))
    x0 = (1.0 - b) / (1.0 + b)
    e0 = 2.0 * b / (1.0 + b)  # 1 − x0
    log_norm = math.log(e0) + math.log1p(x0)  # log(1 − x0²)
    one_minus_t = np.empty(n)
    filled = 0
    while filled < n:
        batch = n - filled
        z = gen.beta(0.5 * m, 0.5 * m, size=batch)
        e = 2.0 * b * z / ((1.0 - z) + b * z)
        log_accept = k * (e0 - e) + m * (np.log(e0 + x0 * e) - log_norm)
        keep = e[np.log(gen.random(batch)) <= log_accept]
        one_minus_t[filled : filled + keep.size] = keep
        filled += keep.size

    out = gen.standard_normal((n, dim))
    tangent = out[:, 1:]
    tangent_norm = np.sqrt(np.einsum("ij,ij->i", tangent, tangent))
    tangent *= (np.sqrt(one_minus_t * (2.0 - one_minus_t)) / tangent_norm)[:, None]
    if direction is None:
        out[:, 0] = 1.0 - one_minus_t
        return out
    # Reflect e₁ onto ±direction with v = e₁ ± direction, |v|² = 2(1 ± direction₁) ≥ 2.
    sign = 1.0 if direction[0] >= 0.0 else -1.0
    out[:, 0] = -sign * (1.0 - one_minus_t)
    v = sign * direction
    v[0] += 1.0
    coef = out @ v * (2.0 / (v @ v))
    block = max(1, 2**20 // dim)  # rows per rank-1 update, bounding the temporary to 8 MB
    for start in range(0, n, block):
        out[start : start + block] -= np.outer(coef[start : start + block], v)
    return out


def _unit_direction(mean_direction: ArrayLike | None, d: int) -> NDArray[np.float64] | None:
    """The mean direction as a unit float64 vector of length ``d``; None stays None (``e₁``)."""
    if mean_direction is None:
        return None
    try:
        vec = np.array(mean_direction, dtype=np.float64)
    except (TypeError, ValueError):
        vec = np.full(1, np.nan)
    norm = float(np.linalg.norm(vec)) if vec.shape == (d,) else math.nan
    if not (math.isfinite(norm) and norm > 0.0):
        raise InvalidParameterError(
            f"mean_direction is invalid: it must be a finite nonzero vector of length d={d}"
        )
    return vec / norm
