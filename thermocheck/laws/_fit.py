"""Least-squares fits shared by the laws: the quadratic entropy surface of Eq. 34 (Maxwell
relations, adiabats), straight lines and polynomials (λ_eff against T, U against T).

Weights: with every standard error positive the fit is weighted (``w = 1/se²``) and the
covariance ``(XᵀWX)⁻¹`` is inflated by the reduced χ² when that exceeds 1 (the Birge ratio: a model
that does not fit the data within their errors gets the wider uncertainty its residuals show).
With any standard error zero or missing the fit is ordinary least squares and the covariance comes
from the residual variance, ``s² (XᵀX)⁻¹`` with ``s² = RSS / (n − p)``, which then measures the
model's misfit.

Identifiability: before solving, the (weighted) design must determine every coefficient. It needs
more points than coefficients (a residual to estimate the error from), full column rank (points on
a line ``log η = log λ + c`` cannot separate a1 from a2 in Eq. 34) and a condition number, after
scaling each column to unit length, of at most ``1/√ε`` (ε the float64 machine epsilon): beyond it
the solve keeps fewer than half of the digits of the coefficients. A design that fails raises
:class:`UnidentifiableFit`, whose message says what the points cannot determine; the laws turn it
into an ``inconclusive`` verdict (or leave out the point whose local fit it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from thermocheck.errors import UnidentifiableFit

__all__ = ["MAX_CONDITION", "SURFACE_COEFFICIENTS", "Fit", "QuadraticSurface", "UnidentifiableFit",
           "identifiability", "least_squares", "quadratic_design", "quadratic_surface"]

_EPS = float(np.finfo(np.float64).eps)
_SQRT_EPS = math.sqrt(_EPS)

#: Largest condition number of a column-scaled design: κ·ε ≤ √ε keeps half of float64's digits.
MAX_CONDITION = 1 / _SQRT_EPS

#: The coefficients of Eq. 34 with their terms, in order.
SURFACE_COEFFICIENTS = ("a0 (1)", "a1 (x)", "a2 (y)", "a3 (x²)", "a4 (y²)", "a5 (xy)")


def _scaled_svd(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(norms, U, s, Vt)``: the column norms of ``X`` and the thin SVD of ``X / norms``."""
    norms = np.linalg.norm(X, axis=0)
    U, s, vt = np.linalg.svd(X / np.where(norms > 0, norms, 1.0), full_matrices=False)
    return norms, U, s, vt


def identifiability(X: ArrayLike, names: Sequence[str] | None = None) -> str | None:
    """Why the design ``X`` (n points × p coefficients) cannot determine its coefficients, or None.

    Checks, in order: ``n > p``; finite entries; no term zero at every point; full column rank
    (singular values of the column-scaled design above ``max(n, p) · ε · s_max``, numpy's rank
    rule); condition number ``s_max / s_min ≤`` :data:`MAX_CONDITION`. ``names`` label the
    coefficients in the message (default ``a0, a1, …``); a rank deficiency names those the points
    do not separate (the ones with weight in the design's null space).
    """
    X = np.asarray(X, dtype=np.float64)
    n, p = X.shape
    names = list(names) if names is not None else [f"a{k}" for k in range(p)]
    if n <= p:
        return (f"a fit of {p} coefficients ({', '.join(names)}) needs more than {p} points to "
                f"leave a residual for its errors; got {n}")
    if not np.all(np.isfinite(X)):
        return "the fit's design holds non-finite values"
    norms, _, s, vt = _scaled_svd(X)
    zero = [names[k] for k in np.flatnonzero(norms == 0)]
    if zero:
        return f"the term of {', '.join(zero)} is zero at every point, so it is undetermined"
    rank = int(np.sum(s > s[0] * max(n, p) * _EPS))
    if rank < p:
        loose = [names[k] for k in np.flatnonzero(np.abs(vt[rank:]).max(axis=0) > _SQRT_EPS)]
        return (f"the {n} points give the fit's design rank {rank} < {p}: {', '.join(loose)} are "
                f"not separately identifiable (points on one line, or too few distinct values "
                f"along an axis)")
    condition = float(s[0] / s[-1])
    if condition > MAX_CONDITION:
        return (f"the fit is ill-conditioned (condition number {condition:.3g} > "
                f"{MAX_CONDITION:.3g}): the points barely separate {', '.join(names)}")
    return None


@dataclass(frozen=True)
class Fit:
    """Coefficients ``coef`` of ``z ≈ X @ coef`` with covariance ``cov``; ``r2`` is the coefficient
    of determination (unweighted, as the paper's Table 4), ``chi2_red`` the reduced χ² of a weighted
    fit (None for ordinary least squares), ``weighted`` which of the two was done."""

    coef: np.ndarray
    cov: np.ndarray
    r2: float
    chi2_red: float | None
    weighted: bool
    dof: int

    def combination(self, c: ArrayLike) -> tuple[float, float]:
        """Value and standard error of the linear combination ``cᵀ coef``."""
        c = np.asarray(c, dtype=np.float64)
        return float(c @ self.coef), math.sqrt(max(float(c @ self.cov @ c), 0.0))

    @property
    def method(self) -> str:
        if self.weighted:
            return f"weighted least squares (reduced chi2 = {self.chi2_red:.3g})"
        return "ordinary least squares (errors from the residual variance)"


def least_squares(
    X: ArrayLike, z: ArrayLike, se: ArrayLike | None = None, names: Sequence[str] | None = None
) -> Fit:
    """Fit ``z ≈ X a``; weighted when every ``se > 0`` (see the module docstring).

    Raises :class:`UnidentifiableFit` when the weighted design cannot determine the coefficients
    (:func:`identifiability`; ``names`` label them in the message).
    """
    X = np.asarray(X, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    n, p = X.shape
    weighted = se is not None and bool(np.all(np.asarray(se) > 0))
    w = 1 / np.asarray(se, dtype=np.float64) if weighted else np.ones(n)
    reason = identifiability(X * w[:, None], names)
    if reason is not None:
        raise UnidentifiableFit(reason)
    # solve and invert through the SVD of the column-scaled design: (XᵀWX)⁻¹ = D⁻¹ V S⁻² Vᵀ D⁻¹
    # without forming XᵀWX, whose condition number is the square of the design's
    norms, U, s, vt = _scaled_svd(X * w[:, None])
    coef = (vt.T @ ((U.T @ (z * w)) / s)) / norms
    resid = z - X @ coef
    dof = n - p
    chi2 = float(np.sum((resid * w) ** 2)) / dof
    cov = (vt.T / s**2) @ vt / np.outer(norms, norms)
    cov = cov * (max(chi2, 1.0) if weighted else chi2)
    tss = float(np.sum((z - z.mean()) ** 2))
    r2 = 1 - float(resid @ resid) / tss if tss > 0 else 1.0
    return Fit(coef, cov, r2, chi2 if weighted else None, weighted, dof)


@dataclass(frozen=True)
class QuadraticSurface:
    """``S(x, y) = a0 + a1 x + a2 y + a3 x² + a4 y² + a5 x y`` (Eq. 34) with x, y centred at
    ``(x0, y0)``, the grid's mean. Centring changes a0–a2 only: a1 − a2 (or a2) is then the relation
    at the grid's centre rather than at η = λ = 1, far outside the grid, where extrapolation would
    inflate its error."""

    fit: Fit
    x0: float
    y0: float

    @property
    def coef(self) -> np.ndarray:
        return self.fit.coef

    def gradient_rows(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """``c_x, c_y`` with ``∂S/∂x = c_xᵀ a`` and ``∂S/∂y = c_yᵀ a`` at ``(x, y)`` (uncentred)."""
        u, v = x - self.x0, y - self.y0
        return (np.array([0, 1, 0, 2 * u, 0, v], dtype=np.float64),
                np.array([0, 0, 1, 0, 2 * v, u], dtype=np.float64))


def quadratic_design(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, float, float]:
    """The design of Eq. 34 at ``(x, y)`` centred on their mean, and that centre ``(x0, y0)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x0, y0 = float(x.mean()), float(y.mean())
    u, v = x - x0, y - y0
    return np.column_stack([np.ones_like(u), u, v, u**2, v**2, u * v]), x0, y0


def quadratic_surface(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, se: ArrayLike | None = None
) -> QuadraticSurface:
    """Fit Eq. 34 to ``z`` at ``(x, y)`` (e.g. ``x = log η``, ``y = log λ``, ``z = S``).

    Raises :class:`UnidentifiableFit` when the points cannot determine a0..a5."""
    X, x0, y0 = quadratic_design(x, y)
    return QuadraticSurface(least_squares(X, z, se, SURFACE_COEFFICIENTS), x0, y0)
