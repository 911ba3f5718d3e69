"""Least-squares fits shared by the laws: the quadratic entropy surface of Eq. 34 (Maxwell
relations, adiabats), straight lines and polynomials (λ_eff against T, U against T).

Weights: with every standard error positive the fit is weighted (``w = 1/se²``) and the
covariance ``(XᵀWX)⁻¹`` is inflated by the reduced χ² when that exceeds 1 (the Birge ratio: a model
that does not fit the data within their errors gets the wider uncertainty its residuals show).
With any standard error zero or missing the fit is ordinary least squares and the covariance comes
from the residual variance, ``s² (XᵀX)⁻¹`` with ``s² = RSS / (n − p)``, which then measures the
model's misfit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from thermocheck.errors import InvalidParameterError

__all__ = ["Fit", "QuadraticSurface", "least_squares", "quadratic_surface"]


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


def least_squares(X: ArrayLike, z: ArrayLike, se: ArrayLike | None = None) -> Fit:
    """Fit ``z ≈ X a``; weighted when every ``se > 0`` (see the module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    n, p = X.shape
    if n <= p:
        raise InvalidParameterError(f"a fit of {p} coefficients needs more than {p} points, "
                                    f"got {n}")
    weighted = se is not None and bool(np.all(np.asarray(se) > 0))
    w = 1 / np.asarray(se, dtype=np.float64) if weighted else np.ones(n)
    coef, *_ = np.linalg.lstsq(X * w[:, None], z * w, rcond=None)
    resid = z - X @ coef
    dof = n - p
    chi2 = float(np.sum((resid * w) ** 2)) / dof
    cov = np.linalg.pinv((X * w[:, None]).T @ (X * w[:, None]))
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


def quadratic_surface(
    x: ArrayLike, y: ArrayLike, z: ArrayLike, se: ArrayLike | None = None
) -> QuadraticSurface:
    """Fit Eq. 34 to ``z`` at ``(x, y)`` (e.g. ``x = log η``, ``y = log λ``, ``z = S``)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x0, y0 = float(x.mean()), float(y.mean())
    u, v = x - x0, y - y0
    X = np.column_stack([np.ones_like(u), u, v, u**2, v**2, u * v])
    return QuadraticSurface(least_squares(X, z, se), x0, y0)
