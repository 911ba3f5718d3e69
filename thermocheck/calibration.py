r"""Calibrated bias of the k-NN sphere-entropy estimators, and what it does across a grid.

In the networks' dimensions (d ≈ 2·10⁴–10⁵) every k-NN estimate of the direction entropy from
N ≤ 4000 snapshots is off by thousands of nats, and the error depends on the temperature. The
paper (arXiv:2511.07308, Section 5) assumes it is the same at every point of a grid, so that the
Maxwell relations (V3), which are derivatives, survive. This module ships a measured table of that
bias and answers three questions with it:

* :func:`estimator_drift`: by how much does the bias change over a temperature span
  ``κ ∈ [κ_min, κ_max]`` (κ = 1/T), and how steep is it (``∂bias/∂ln κ``)?
* :func:`surface_drift`: by how much does that bias move each coefficient combination of the
  quadratic entropy surface of Eq. 34 fitted over a given grid (what V3 compares with theory)?
* :func:`corrected_entropy`: an estimate with the bias at its own concentration removed.

What the table says (N = 1000, R = (d − 1)/2; ``benchmarks/entropy_calibration.py``)
-------------------------------------------------------------------------------------
Every method is rotation-invariant (``angles`` takes its chart in the sample's own frame), so
these numbers hold for any mean direction; the samples behind them have random mean directions.

* d ≤ 10: every method is within 0.05 R of the entropy; no drift beyond 0.05 R.
* ``geodesic`` (the default): bias ≈ 0 for spread-out laws (κ/d ≲ 0.1), rising for
  concentrated ones to 0.13 R (d = 30), 0.31 R (d = 100), 0.53 R (d = 1000), 0.61–0.63 R
  (d ≥ 10⁴) at κ/d = 10. The rise is steepest at κ/d ≈ 1: 0.05 R (d = 30), 0.12 R (d = 100) to
  0.23 R (d ≥ 10⁴) per unit ln κ. Over κ/d ∈ [0.1, 10] it changes by 0.13 R (d = 30), 0.31 R
  (d = 100), 0.52 R (d = 1000), 0.60–0.62 R (d ≥ 10⁴): the paper's "the bias is the same over
  the grid" is false for it.
* ``angles`` (the paper's method): its bias moves with κ too, the other way at high d: over
  κ/d ∈ [0.1, 10] by −0.11 R (d = 30), −0.13 R (d = 100), +0.79 R (d = 1000) and −1.25 to
  −1.29 R (d ≥ 10⁴, from 1.95–2.0 R down to 0.70–0.72 R). Flat only in raw coordinates with the
  mean on the chart's pole e₁, which is not a property of a sample.
* ``chord``: 0.15–0.68 R for d ≥ 30, nearly flat in κ: over κ/d ∈ [0.1, 10] it changes by
  −0.07 R (d = 30), −0.05 R (d = 100), −0.019 R (d = 1000) down to −0.002 R (d = 10⁵).
* The scatter of one estimate (``BiasEstimate.scatter``, nats, N = 1000, κ/d = 0.1 / 1 / 10):
  geodesic 0.06–0.08 (d = 3), 0.06–0.10 (d = 30), 0.07–0.28 (d = 100), 0.09–0.59 (d = 1000),
  0.03–3.5 (d ≥ 10⁴); angles about the same up to d = 100, then 0.5–6 (d = 1000) and 3.6–25
  (d ≥ 10⁴); chord 0.08–0.29 (d ≤ 100), 0.4–3.7 (d ≥ 1000). It shrinks about as 1/√N.
* N = 4000 instead of 1000 lowers the bias by 8 % at d = 100, 2–3 % at d = 1000 and about 1 %
  at d ≥ 10⁴; N = 250 raises it by about as much. N = 50 and 100 (d ≤ 100) are tabulated for the
  simulator's slowest grid points.

Why V3 survives anyway: at stationarity the direction process depends on η_eff alone under fixed
ELR and on ηλ alone under fixed LR (rescale w by (λ/η)^{1/4}); see :func:`surface_drift`.

The table
---------
``thermocheck/data/entropy_bias_v2.json`` (schema version :data:`SCHEMA_VERSION`; made by
``OMP_NUM_THREADS=1 python benchmarks/entropy_calibration.py --package-table
thermocheck/data/entropy_bias_v2.json``): for each method of
:func:`thermocheck.entropy.sphere_entropy` (k = 1, digamma constant), dimension d and sample
size N, the bias ``Ŝ − S`` on independent von Mises–Fisher samples about random mean directions
(exact S from :func:`thermocheck.vmf.entropy`) per degree of freedom ``d − 1``, against
``log10(κ/d)``, with its standard error over seeds and the scatter (standard deviation) of one
estimate. Nodes: d ∈ {2, 3, 10, 30, 100, 1000, 10⁴, 24408, 10⁵}, N ∈ {250, 1000, 4000} (and 50,
100 for d ≤ 100), κ/d a quarter decade apart from 0.03 to 100 (to 1000 for d ≤ 1000); N = 4000
at d ≥ 10⁴ and d = 10⁵ have 3–5 values of κ/d in [0.1, 10] only, and ``angles`` stops at
d = 24408 (N ≤ 1000) and 10⁴ (N = 4000). Version 1 was made with raw ``angles`` about e₁ only.

Interpolation
-------------
At ``x = log10(κ/d)`` a curve is evaluated by a weighted local cubic fit to its
:data:`LOCAL_NODES` nearest nodes (weights 1/stderr², covariance inflated by the reduced χ² when
the nodes scatter more than their errors), which gives the value and the slope ``∂bias/∂ln κ``
with standard errors. A sparser curve is read as a dense reference curve (same d, nearest N; or
same N, nearest d) times a ratio linear in x fitted to its nodes (:class:`ScaledCurve`). Between
dimensions the bias per degree of freedom is interpolated linearly in ``log d``, between sample
sizes linearly in ``log N``. Outside the table every coordinate is held at its nearest edge (the
bias per degree of freedom then stays constant and the slope is 0, the right limit at both ends
of κ: the uniform law as κ → 0, and the Gaussian tangent-plane law, whose k-NN bias does not
depend on its scale, as κ → ∞); the result is then flagged ``extrapolated``, with the reasons.

Uncertainty: the local fits' standard errors, and between two tabulated dimensions an
interpolation mode common to all κ, ``INTERPOLATION_FRACTION`` times the difference of the two
dimensions' biases (largest halfway). Leaving one dimension out and predicting it from its
neighbours (twice the real gap), the errors of the bias and of its change over a span were within
about one stated standard error, except ``angles`` at d = 10, whose κ-dependence neither d = 3 nor
d = 100 has. The interpolation in N carries no model term.

Scope: the table is for VMF laws and independent rows. Network snapshots are neither; for them it
is a proxy at the same ``κ = 1/T``, good for the size and shape of the drift, not its last digit.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from thermocheck import vmf
from thermocheck.errors import (
    InvalidParameterError,
    check_choice,
    check_dimension,
    check_in_range,
    check_positive,
)

__all__ = [
    "SCHEMA_VERSION",
    "TABLE_VERSION",
    "BiasEstimate",
    "CalibrationTable",
    "CorrectedEntropy",
    "DriftBound",
    "SurfaceDrift",
    "corrected_entropy",
    "estimator_bias",
    "estimator_drift",
    "surface_drift",
]

#: Version of the table's layout; :class:`CalibrationTable` refuses any other.
SCHEMA_VERSION = 1
#: Name of the shipped table (its file is ``data/<TABLE_VERSION>.json``).
TABLE_VERSION = "entropy_bias_v2"
#: A curve needs at least this many nodes (a sparse one: a ratio a + b·x with a residual).
MIN_NODES = 3
#: Nodes of a curve used by one local cubic fit; curves with fewer are read as scaled ones.
LOCAL_NODES = 7
#: Interpolation error between two dimensions, as a fraction of their difference in bias.
INTERPOLATION_FRACTION = 0.5
#: Points at which :func:`estimator_drift` looks for the steepest slope.
_SLOPE_POINTS = 33
_METHODS = ("geodesic", "angles", "chord")
_LN10 = math.log(10.0)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFit:
    """One curve at one ``x = log10(κ/d)``, in nats: the bias, its standard error, the scatter of
    one estimate, the slope ``∂bias/∂ln κ`` and its standard error; ``extrapolated`` when ``x`` is
    outside the curve's nodes (then held at the edge, slope 0)."""

    value: float
    stderr: float
    scatter: float
    slope: float
    slope_stderr: float
    extrapolated: bool


@dataclass(frozen=True)
class BiasEstimate:
    """Calibrated bias ``Ŝ − S`` (nats) of one estimator at the given concentrations.

    Attributes
    ----------
    d, n_samples, method :
        The query.
    kappa : ndarray
        The concentrations κ = 1/T.
    value, stderr : ndarray
        The expected bias and the standard error of the fits behind it.
    scatter : ndarray
        Standard deviation of one estimate about the expected bias.
    slope, slope_stderr : ndarray
        ``∂bias/∂ln κ`` (nats) and its standard error.
    model, model_slope : ndarray
        The interpolation error between dimensions, as one signed mode common to all the points
        (``INTERPOLATION_FRACTION`` times the difference of the bracketing dimensions, largest
        halfway between them; zero at a tabulated d): the bias may be off by ``±model`` and its
        slope by ``±model_slope`` all together.
    extrapolated : bool
        Whether any coordinate lay outside the table (``reasons`` says which).
    reasons : tuple of str
        Why the result is extrapolated; empty otherwise.
    """

    d: int
    n_samples: int
    method: str
    kappa: NDArray[np.float64]
    value: NDArray[np.float64]
    stderr: NDArray[np.float64]
    scatter: NDArray[np.float64]
    slope: NDArray[np.float64]
    slope_stderr: NDArray[np.float64]
    model: NDArray[np.float64]
    model_slope: NDArray[np.float64]
    extrapolated: bool
    reasons: tuple[str, ...]

    @property
    def total_stderr(self) -> NDArray[np.float64]:
        """Error of the bias at each point, the interpolation mode included."""
        return np.hypot(self.stderr, self.model)


@dataclass(frozen=True)
class DriftBound:
    """How much the calibrated bias of one estimator changes over ``κ ∈ [κ_min, κ_max]``.

    Attributes
    ----------
    d, n_samples, method, kappa_min, kappa_max :
        The query.
    change, change_stderr : float
        ``bias(κ_max) − bias(κ_min)`` in nats, and its standard error.
    slope, slope_stderr : float
        Mean slope ``change / ln(κ_max/κ_min)`` (nats per unit ln κ; the local slope when the span
        is a point) and its standard error.
    max_slope, max_slope_stderr : float
        The steepest ``|∂bias/∂ln κ|`` over the span, and its standard error there.
    extrapolated : bool
        Whether the table was left (``reasons`` says how).
    reasons : tuple of str
        Why the result is extrapolated; empty otherwise.
    table_version : str
        The table used.
    """

    d: int
    n_samples: int
    method: str
    kappa_min: float
    kappa_max: float
    change: float
    change_stderr: float
    slope: float
    slope_stderr: float
    max_slope: float
    max_slope_stderr: float
    extrapolated: bool
    reasons: tuple[str, ...]
    table_version: str

    def bound(self, z: float = 2.0) -> float:
        """``|change| + z·change_stderr``: the bias change the span can produce, at z errors."""
        return abs(self.change) + z * self.change_stderr

    @property
    def relative_change(self) -> float:
        """``change / R`` with the gas constant ``R = (d − 1)/2``: the scale of a Maxwell ratio."""
        return self.change / ((self.d - 1) / 2)


@dataclass(frozen=True)
class SurfaceDrift:
    """The calibrated bias carried through the quadratic surface fit of Eq. 34.

    Attributes
    ----------
    shifts : ndarray
        For each coefficient combination, the amount by which the estimator's bias moves it
        (the combination of the bias's own fitted surface).
    stderrs : ndarray
        Standard error of each shift: the per-point fit errors taken as independent, and the
        interpolation mode (:attr:`BiasEstimate.model`) carried through the fit.
    span : DriftBound
        The drift over the grid's κ range.
    bias : BiasEstimate
        The bias at every grid point.
    """

    shifts: NDArray[np.float64]
    stderrs: NDArray[np.float64]
    span: DriftBound
    bias: BiasEstimate

    def bounds(self, z: float = 2.0) -> NDArray[np.float64]:
        """``|shift| + z·stderr`` per combination."""
        return np.abs(self.shifts) + z * self.stderrs


@dataclass(frozen=True)
class CorrectedEntropy:
    """A k-NN entropy estimate with the VMF-calibrated bias at its own concentration removed.

    Attributes
    ----------
    value : float
        ``estimate − bias``, nats.
    estimate : float
        The uncorrected estimate.
    kappa_hat : float
        The concentration κ̂ at which ``S_VMF(κ̂) + bias(κ̂) = estimate``.
    bias, bias_stderr : float
        The calibrated bias at κ̂ that was removed, and its error (interpolation mode included).
    noise_gain : float
        ``∂value/∂estimate = S′/(S′ + bias′)`` (derivatives in ln κ at κ̂): the factor by which
        the estimate's own scatter reaches ``value`` (meaningless when κ̂ is held at an edge).
    extrapolated : bool
        Whether κ̂ or the query left the table (``reasons`` says how).
    reasons : tuple of str
        Why the result is extrapolated; empty otherwise.
    """

    value: float
    estimate: float
    kappa_hat: float
    bias: float
    bias_stderr: float
    noise_gain: float
    extrapolated: bool
    reasons: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """The bias of one (method, d, N) against ``x = log10(κ/d)``, per degree of freedom.

    :meth:`at` needs :data:`LOCAL_NODES` nodes; a sparser curve is read through
    :class:`ScaledCurve`."""

    method: str
    d: int
    n_samples: int
    seeds: int
    x: NDArray[np.float64]
    bias: NDArray[np.float64]
    stderr: NDArray[np.float64]
    scatter: NDArray[np.float64]

    def at(self, x: float) -> LocalFit:
        """The curve at ``x`` (nats), by a weighted local cubic fit to the nearest nodes."""
        m = self.d - 1
        xc = min(max(x, float(self.x[0])), float(self.x[-1]))
        extrapolated = xc != x
        near = np.sort(np.argsort(np.abs(self.x - xc), kind="stable")[:LOCAL_NODES])
        u = self.x[near] - xc
        se = np.maximum(self.stderr[near], 1e-12)
        X = np.vander(u, 4, increasing=True) / se[:, None]
        z = self.bias[near] / se
        coef, *_ = np.linalg.lstsq(X, z, rcond=None)
        cov = np.linalg.pinv(X.T @ X)
        cov *= max(float(np.sum((z - X @ coef) ** 2)) / (near.size - 4), 1.0)
        slope, slope_se = coef[1] / _LN10, math.sqrt(cov[1, 1]) / _LN10
        if extrapolated:
            slope = slope_se = 0.0
        return LocalFit(value=m * float(coef[0]), stderr=m * math.sqrt(cov[0, 0]),
                        scatter=m * float(np.interp(xc, self.x, self.scatter)),
                        slope=m * float(slope), slope_stderr=m * float(slope_se),
                        extrapolated=extrapolated)


@dataclass(frozen=True)
class ScaledCurve:
    """A sparse curve (fewer than :data:`LOCAL_NODES` nodes), read as a dense reference curve
    times a ratio ``q(x) = a + b·x`` fitted to its nodes.

    The nodes alone cannot resolve the sigmoid shape of the bias, but the measured curves differ
    between neighbouring N, and between neighbouring d per degree of freedom, by a nearly constant
    factor (0.98–1.06). Outside its own nodes the ratio is held at the edge, with an error that
    grows as the fitted trend ``|b|·distance``; the curve then spans the reference's range.
    """

    raw: Curve
    reference: Curve
    coef: NDArray[np.float64]
    cov: NDArray[np.float64]

    @property
    def x(self) -> NDArray[np.float64]:
        return self.reference.x

    @property
    def d(self) -> int:
        return self.raw.d

    @classmethod
    def fit(cls, raw: Curve, reference: Curve) -> ScaledCurve:
        """Fit the ratio of ``raw`` to ``reference`` (per degree of freedom) at raw's nodes."""
        m_ref = reference.d - 1
        fits = [reference.at(float(x)) for x in raw.x]
        ref = np.array([f.value for f in fits]) / m_ref
        ref_se = np.array([f.stderr for f in fits]) / m_ref
        ratio = raw.bias / ref
        se = np.hypot(raw.stderr, ratio * ref_se) / np.abs(ref)
        X = np.column_stack([np.ones_like(raw.x), raw.x]) / se[:, None]
        coef, *_ = np.linalg.lstsq(X, ratio / se, rcond=None)
        cov = np.linalg.pinv(X.T @ X)
        dof = raw.x.size - 2
        cov *= max(float(np.sum((ratio / se - X @ coef) ** 2)) / dof, 1.0)
        return cls(raw, reference, np.asarray(coef, dtype=np.float64),
                   np.asarray(cov, dtype=np.float64))

    def at(self, x: float) -> LocalFit:
        """The curve at ``x`` (nats): the reference's local fit times the ratio."""
        ref = self.reference.at(x)
        lo, hi = float(self.raw.x[0]), float(self.raw.x[-1])
        xc = min(max(x, lo), hi)
        row = np.array([1.0, xc])
        q = float(row @ self.coef)
        q_se = math.hypot(math.sqrt(float(row @ self.cov @ row)), float(self.coef[1]) * (x - xc))
        dq = float(self.coef[1]) / _LN10 if xc == x else 0.0
        dq_se = math.sqrt(float(self.cov[1, 1])) / _LN10 if xc == x else 0.0
        scale = (self.raw.d - 1) / (self.reference.d - 1)
        return LocalFit(
            value=scale * q * ref.value,
            stderr=scale * math.hypot(q * ref.stderr, ref.value * q_se),
            scatter=(self.raw.d - 1) * float(np.interp(xc, self.raw.x, self.raw.scatter)),
            slope=scale * (q * ref.slope + dq * ref.value),
            slope_stderr=scale * math.hypot(q * ref.slope_stderr, ref.slope * q_se,
                                            ref.value * dq_se),
            extrapolated=ref.extrapolated)


class CalibrationTable:
    """A loaded calibration table (schema :data:`SCHEMA_VERSION`).

    Parameters
    ----------
    data : mapping
        The parsed JSON: ``schema_version``, ``table_version`` and ``curves``, each curve with
        ``method``, ``d``, ``n_samples``, ``seeds`` and equal-length lists ``log10_c`` (increasing),
        ``bias``, ``stderr`` and ``scatter`` (per degree of freedom ``d − 1``).

    Raises
    ------
    InvalidParameterError
        If the schema version is not :data:`SCHEMA_VERSION` or a curve is malformed.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InvalidParameterError(
                f"calibration table schema_version={version!r} is not supported: this "
                f"thermocheck reads schema_version={SCHEMA_VERSION}")
        self.version = str(data.get("table_version", "unknown"))
        self.schema_version = SCHEMA_VERSION
        parsed = [_parse_curve(raw) for raw in data.get("curves", [])]
        if not parsed:
            raise InvalidParameterError("calibration table has no curves")
        dense = [c for c in parsed if c.x.size >= LOCAL_NODES]
        self._curves: dict[tuple[str, int, int], Curve | ScaledCurve] = {}
        for curve in parsed:
            key = (curve.method, curve.d, curve.n_samples)
            if curve.x.size >= LOCAL_NODES:
                self._curves[key] = curve
                continue
            candidates = [c for c in dense if c.method == curve.method
                          and (c.d == curve.d or c.n_samples == curve.n_samples)]
            if not candidates:
                raise InvalidParameterError(
                    f"calibration table curve ({key}) has {curve.x.size} nodes and no curve of "
                    f">= {LOCAL_NODES} nodes at its d or its N to scale")
            reference = min(candidates, key=lambda c: (
                c.d != curve.d, abs(math.log(c.d / curve.d)), abs(math.log(c.n_samples /
                                                                          curve.n_samples))))
            self._curves[key] = ScaledCurve.fit(curve, reference)

    @classmethod
    def load(cls, path: str | Path | None = None) -> CalibrationTable:
        """Read a table from ``path``, or the one shipped with thermocheck (default)."""
        if path is None:
            return _shipped()
        return cls(json.loads(Path(path).read_text()))

    def curve(self, method: str, d: int, n_samples: int) -> Curve | ScaledCurve | None:
        """The curve of one (method, d, N), or None when the table has none."""
        return self._curves.get((method, d, n_samples))

    def sizes(self, method: str) -> list[int]:
        """The sample sizes N the table holds for ``method``."""
        return sorted({n for m, _, n in self._curves if m == method})

    def dimensions(self, method: str, n_samples: int) -> list[int]:
        """The dimensions the table holds for ``method`` at sample size ``n_samples``."""
        return sorted(d for m, d, n in self._curves if (m, n) == (method, n_samples))

    def bias(self, d: int, n_samples: int, kappa: ArrayLike, method: str = "geodesic"
             ) -> BiasEstimate:
        """The calibrated bias at dimension ``d``, sample size ``n_samples`` and each ``kappa``.

        See :func:`estimator_bias` (which calls this on the shipped table).
        """
        d, n_samples, kap, method = _check_query(d, n_samples, kappa, method)
        if method not in {m for m, _, _ in self._curves}:
            raise InvalidParameterError(f"method={method!r} has no curve in calibration table "
                                        f"{self.version}")
        reasons: set[str] = set()
        flat = kap.ravel()
        fields = np.empty((len(_FIELDS), flat.size))
        for i, k in enumerate(flat):
            fields[:, i] = self._point(d, n_samples, math.log10(k / d), method, reasons)
        named = {name: f.reshape(kap.shape) for name, f in zip(_FIELDS, fields, strict=True)}
        return BiasEstimate(d=d, n_samples=n_samples, method=method, kappa=kap, **named,
                            extrapolated=bool(reasons), reasons=tuple(sorted(reasons)))

    # -- interpolation ----------------------------------------------------------------------------
    def _point(self, d: int, n: int, x: float, method: str, reasons: set[str]
               ) -> NDArray[np.float64]:
        """The :data:`_FIELDS` in nats at one point; linear in log N."""
        sizes = self.sizes(method)
        (lo, hi), t = _bracket(sizes, n)
        if lo == hi and n != lo:
            reasons.add(f"N={n} outside the table's sizes {sizes[0]}–{sizes[-1]} for {method} "
                        f"(held at N={lo})")
        a = self._at_size(d, lo, x, method, reasons)
        if hi == lo:
            return a
        return _mix(a, self._at_size(d, hi, x, method, reasons), t)

    def _at_size(self, d: int, n: int, x: float, method: str, reasons: set[str]
                 ) -> NDArray[np.float64]:
        """As :meth:`_point` at one tabulated N: linear in log d on the bias per dof."""
        dims = self.dimensions(method, n)
        (lo, hi), t = _bracket(dims, d)
        if lo == hi and d != lo:
            reasons.add(f"d={d} outside the table's dimensions {dims[0]}–{dims[-1]} for {method} "
                        f"at N={n} (bias per degree of freedom held at d={lo})")
        per_dof = []
        for node in (lo, hi) if hi != lo else (lo,):
            curve = self._curves[method, node, n]
            fit = curve.at(x)
            if fit.extrapolated:
                reasons.add(f"κ/d outside the table's {10 ** curve.x[0]:.3g}–"
                            f"{10 ** curve.x[-1]:.3g} for {method} at d={node}, N={n} (held at "
                            "the edge)")
            per_dof.append(np.array([fit.value, fit.stderr, fit.scatter, fit.slope,
                                     fit.slope_stderr, 0.0, 0.0]) / (node - 1))
        if len(per_dof) == 1:
            return per_dof[0] * (d - 1)
        out = _mix(per_dof[0], per_dof[1], t)
        gap = INTERPOLATION_FRACTION * 2 * min(t, 1 - t) * (per_dof[1] - per_dof[0])
        out[5], out[6] = gap[0], gap[3]
        return out * (d - 1)


#: What :meth:`CalibrationTable._point` returns, in this order (the fields of BiasEstimate).
_FIELDS = ("value", "stderr", "scatter", "slope", "slope_stderr", "model", "model_slope")


def _mix(a: NDArray[np.float64], b: NDArray[np.float64], t: float) -> NDArray[np.float64]:
    """Linear mix of two :data:`_FIELDS` rows: values and model modes mix linearly, standard
    errors in quadrature."""
    out = (1 - t) * a + t * b
    out[1] = math.hypot((1 - t) * a[1], t * b[1])
    out[4] = math.hypot((1 - t) * a[4], t * b[4])
    return out


def _bracket(nodes: Sequence[int], value: int) -> tuple[tuple[int, int], float]:
    """The two nodes around ``value`` and the weight of the upper one, in log coordinates; the
    nearest node twice outside the range."""
    if value <= nodes[0] or value >= nodes[-1] or value in nodes:
        node = min(nodes, key=lambda n: abs(math.log(value / n)))
        return (node, node), 0.0
    hi = int(np.searchsorted(nodes, value))
    lo = hi - 1
    t = math.log(value / nodes[lo]) / math.log(nodes[hi] / nodes[lo])
    return (nodes[lo], nodes[hi]), t


def _parse_curve(raw: Mapping[str, Any]) -> Curve:
    try:
        arrays = [np.asarray(raw[k], dtype=np.float64)
                  for k in ("log10_c", "bias", "stderr", "scatter")]
        curve = Curve(method=str(raw["method"]), d=int(raw["d"]), n_samples=int(raw["n_samples"]),
                      seeds=int(raw["seeds"]), x=arrays[0], bias=arrays[1], stderr=arrays[2],
                      scatter=arrays[3])
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidParameterError(f"calibration table curve is malformed: {err}") from None
    sizes = {a.shape for a in arrays}
    if (len(sizes) != 1 or arrays[0].ndim != 1 or arrays[0].size < MIN_NODES
            or not np.all(np.diff(arrays[0]) > 0) or not all(np.isfinite(a).all() for a in arrays)):
        raise InvalidParameterError(
            f"calibration table curve ({curve.method}, d={curve.d}, N={curve.n_samples}) needs "
            f">= {MIN_NODES} finite nodes with increasing log10_c and equal-length lists")
    return curve


@cache
def _shipped() -> CalibrationTable:
    text = resources.files("thermocheck").joinpath(f"data/{TABLE_VERSION}.json").read_text()
    return CalibrationTable(json.loads(text))


def _check_query(d: Any, n_samples: Any, kappa: Any, method: Any
                 ) -> tuple[int, int, NDArray[np.float64], str]:
    dim = check_dimension(d)
    if not isinstance(dim, int):
        raise InvalidParameterError(f"d={d!r} is invalid: d must be a single integer >= 2")
    n = check_dimension(n_samples, name="n_samples", low=2)
    if not isinstance(n, int):
        raise InvalidParameterError(
            f"n_samples={n_samples!r} is invalid: n_samples must be a single integer >= 2")
    kap = check_positive("kappa", kappa)
    method = check_choice("method", method, _METHODS)
    return dim, n, kap, method


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------


def estimator_bias(d: int, n_samples: int, kappa: ArrayLike, method: str = "geodesic", *,
                   table: CalibrationTable | None = None) -> BiasEstimate:
    """Calibrated bias ``Ŝ − S`` of :func:`~thermocheck.entropy.sphere_entropy` on VMF samples.

    Parameters
    ----------
    d : int
        Ambient dimension (>= 2); the sphere is ``S^{d−1}``.
    n_samples : int
        Number of directions N behind one estimate (>= 2).
    kappa : array_like
        Concentrations κ = 1/T (> 0, finite).
    method : {"geodesic", "angles", "chord"}
        The estimator (k = 1, digamma constant).
    table : CalibrationTable, optional
        Default: the table shipped with thermocheck.

    Returns
    -------
    BiasEstimate
        Bias, its standard error, the scatter of one estimate and the slope ``∂bias/∂ln κ`` at each
        κ; ``extrapolated`` with reasons where the table was left.

    Raises
    ------
    InvalidParameterError
        If an argument is out of range.
    """
    return (table or _shipped()).bias(d, n_samples, kappa, method)


def estimator_drift(d: int, n_samples: int, kappa_min: float, kappa_max: float,
                    method: str = "geodesic", *, table: CalibrationTable | None = None
                    ) -> DriftBound:
    """How much the calibrated estimator bias changes over a temperature span.

    Parameters
    ----------
    d : int
        Ambient dimension (>= 2).
    n_samples : int
        Directions N behind one estimate (>= 2).
    kappa_min, kappa_max : float
        The span of κ = 1/T, ``0 < kappa_min <= kappa_max``.
    method : {"geodesic", "angles", "chord"}
        The estimator (k = 1, digamma constant).
    table : CalibrationTable, optional
        Default: the table shipped with thermocheck.

    Returns
    -------
    DriftBound
        The change of the bias over the span and its mean and steepest slope per unit ln κ, with
        standard errors; ``extrapolated`` with reasons where the table was left.

    Raises
    ------
    InvalidParameterError
        If an argument is out of range or ``kappa_min > kappa_max``.

    Notes
    -----
    The errors of the two ends are combined as independent, which overstates the error of the
    change when they come from overlapping local fits.
    """
    lo = float(check_positive("kappa_min", kappa_min))
    hi = float(check_positive("kappa_max", kappa_max))
    if lo > hi:
        raise InvalidParameterError(f"kappa_min={lo!r} must be <= kappa_max={hi!r}")
    table = table or _shipped()
    kappas = np.geomspace(lo, hi, _SLOPE_POINTS)
    b = table.bias(d, n_samples, kappas, method)
    change = float(b.value[-1] - b.value[0])
    change_se = math.hypot(float(b.stderr[-1]), float(b.stderr[0]),
                           float(b.model[-1] - b.model[0]))
    span = math.log(hi / lo)
    if span > 0:
        slope, slope_se = change / span, change_se / span
    else:
        slope = float(b.slope[0])
        slope_se = math.hypot(float(b.slope_stderr[0]), float(b.model_slope[0]))
    steepest = int(np.argmax(np.abs(b.slope)))
    return DriftBound(d=b.d, n_samples=b.n_samples, method=b.method, kappa_min=lo, kappa_max=hi,
                      change=change, change_stderr=change_se, slope=slope, slope_stderr=slope_se,
                      max_slope=float(abs(b.slope[steepest])),
                      max_slope_stderr=math.hypot(float(b.slope_stderr[steepest]),
                                                  float(b.model_slope[steepest])),
                      extrapolated=b.extrapolated, reasons=b.reasons, table_version=table.version)


def surface_drift(d: int, n_samples: int, kappa: ArrayLike, x: ArrayLike, y: ArrayLike,
                  combinations: Sequence[ArrayLike], *, se: ArrayLike | None = None,
                  method: str = "geodesic", table: CalibrationTable | None = None
                  ) -> SurfaceDrift:
    r"""The calibrated estimator bias carried through the entropy surface of Eq. 34.

    The Maxwell check (V3) fits ``S = a0 + a1 u + a2 v + a3 u² + a4 v² + a5 uv`` with
    ``u = x − mean(x)``, ``v = y − mean(y)`` (``x = log η`` or ``log η_eff``, ``y = log λ``) to
    the measured entropies and compares combinations of the coefficients with the theory. The
    estimator adds its bias ``b_i`` at grid point i; since the fit is linear, every combination
    moves by the same combination of the bias's own fitted surface. This function fits the
    calibrated ``b_i`` (at ``κ_i``) exactly as V3 fits S (weighted by ``1/se²`` when every ``se``
    is positive, else unweighted) and returns the shifts.

    Why the shifts are small although the bias is not: at stationarity the direction process
    depends on η_eff alone under fixed ELR and on ηλ alone under fixed LR (rescale w by
    (λ/η)^{1/4}: ``u ← (1 − ηλ)u − sqrt(ηλ)∇L_B(u)``; under fixed ELR the pair (w̄, η_eff λ‖w‖²)
    evolves without λ). So is the law of the snapshots, hence the bias of any estimator: it is a
    function of x (fixed ELR) or of x + y (fixed LR) only. The fixed ELR combinations
    ``a2, 2a4, a5`` vanish for every function of x on a complete product grid with equal (or
    product-form) weights. The fixed LR combinations ``a1 − a2, 2a3 − a5, 2a4 − a5`` vanish for
    every quadratic in x + y on any grid; beyond that, ``a1 − a2`` picks up the third derivative
    of the bias in ln κ where the grid is not symmetric in x and y (uniform grids of half-widths
    h_x, h_y: ``(h_x² − h_y²) B‴/(120 R)``, B‴ = ∂³bias/∂(ln κ)³, σ² constant), and
    ``2a3 − a5, 2a4 − a5`` the fourth. Incomplete grids and uneven weights leak a little more.
    Measured on the paper's network grids all shifts are below 0.005 (fixed LR) and 1e-15 (fixed
    ELR) while the bias itself changes by 0.5–0.65 R across them.

    The calibration errors of the points are taken as independent; a common error that is itself
    a smooth function of κ would cancel in the same way, so this is conservative. The
    interpolation mode between dimensions is carried through the fit as one common error.

    Parameters
    ----------
    d, n_samples : int
        Dimension and directions N behind each entropy estimate.
    kappa : array_like, shape (n,)
        κ = 1/T at each grid point.
    x, y : array_like, shape (n,)
        The fit's coordinates at each grid point (natural logs of the hyperparameters).
    combinations : sequence of array_like, each of length 6
        Coefficient rows over a0..a5 (e.g. ``(0, 1, −1, 0, 0, 0)/R`` for ``(a1 − a2)/R``).
    se : array_like, shape (n,), optional
        The standard errors V3 weights the fit with.
    method : {"geodesic", "angles", "chord"}
        The estimator.
    table : CalibrationTable, optional
        Default: the table shipped with thermocheck.

    Returns
    -------
    SurfaceDrift
        Shift and standard error per combination, the drift over the κ span and the bias at each
        point.

    Raises
    ------
    InvalidParameterError
        If the arrays' lengths differ, fewer than 7 points are given, a combination does not have
        6 entries, or another argument is out of range.
    """
    kap = check_positive("kappa", kappa).ravel()
    u = np.asarray(x, dtype=np.float64).ravel()
    v = np.asarray(y, dtype=np.float64).ravel()
    if not (kap.size == u.size == v.size) or kap.size < 7:
        raise InvalidParameterError(
            f"kappa, x and y need one equal length >= 7 (got {kap.size}, {u.size}, {v.size})")
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        raise InvalidParameterError("x and y must be finite")
    rows = np.asarray([np.asarray(c, dtype=np.float64) for c in combinations])
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise InvalidParameterError("each combination needs 6 entries (over a0..a5)")
    table = table or _shipped()
    b = table.bias(d, n_samples, kap, method)
    weights = np.ones_like(kap)
    if se is not None:
        s = np.asarray(se, dtype=np.float64).ravel()
        if s.size != kap.size:
            raise InvalidParameterError(f"se has {s.size} entries, expected {kap.size}")
        if np.all(s > 0):
            weights = 1 / s
    u, v = u - u.mean(), v - v.mean()
    X = np.column_stack([np.ones_like(u), u, v, u * u, v * v, u * v]) * weights[:, None]
    hat = np.linalg.pinv(X) * weights[None, :]  # coefficients = hat @ bias
    shifts = rows @ (hat @ b.value)
    stderrs = np.hypot(np.sqrt(((rows @ hat) ** 2) @ (b.stderr**2)), rows @ (hat @ b.model))
    span = estimator_drift(d, n_samples, float(kap.min()), float(kap.max()), method, table=table)
    return SurfaceDrift(shifts=shifts, stderrs=stderrs, span=span, bias=b)


def corrected_entropy(estimate: float, d: int, n_samples: int, method: str = "geodesic", *,
                      table: CalibrationTable | None = None) -> CorrectedEntropy:
    """Remove the VMF-calibrated bias from a k-NN entropy estimate, at the sample's own
    concentration.

    The concentration is read off the estimate itself: κ̂ solves
    ``S_VMF(d, κ̂) + bias(d, N, κ̂) = estimate`` (the left side decreases with κ̂, since the bias
    never grows faster than a quarter of the entropy falls), and the result is
    ``estimate − bias(κ̂)``. Because it uses the k-NN estimate rather than a global statistic such
    as the mean resultant length, it works for multi-modal laws too.

    Measured by ``benchmarks/entropy_calibration.py`` (N = 1000, d ∈ {100, 1000},
    κ/d ∈ [0.3, 3]): VMF |bias| ≤ 0.008 R (uncorrected up to 0.44 R); an equal mixture of two
    VMFs with orthogonal means ≤ 0.027 R (uncorrected up to 0.45 R); an anisotropic Bingham-type
    law (tangent variances in ratio 10) 0.43–0.53 R (uncorrected 0.51–0.87 R), nearly constant
    over κ (its change over κ/d ∈ [1, 3] is 0.005–0.012 R, against 0.13–0.28 R uncorrected).
    So it removes the isotropic part of the bias and most of its temperature dependence, but not
    the part that comes from the law's anisotropy, which no calibration on isotropic laws can
    know: on networks' direction laws the corrected value is still not the entropy.

    Parameters
    ----------
    estimate : float
        The :func:`~thermocheck.entropy.sphere_entropy` estimate (nats, finite).
    d : int
        Ambient dimension (>= 2).
    n_samples : int
        Directions N behind the estimate (>= 2).
    method : {"geodesic", "angles", "chord"}
        The method that made ``estimate``.
    table : CalibrationTable, optional
        Default: the table shipped with thermocheck.

    Returns
    -------
    CorrectedEntropy

    Raises
    ------
    InvalidParameterError
        If an argument is out of range.
    """
    est = float(check_in_range("estimate", estimate, -math.inf, math.inf, closed="neither"))
    dim, n, _, method = _check_query(d, n_samples, 1.0, method)
    table = table or _shipped()
    lo, hi = math.log(10**-1.5 * dim), math.log(100.0 * dim)

    def excess(log_kappa: float) -> float:
        kappa = math.exp(log_kappa)
        return float(vmf.entropy(dim, kappa)
                     + table.bias(dim, n, kappa, method).value.item()) - est

    reasons: list[str] = []
    if excess(lo) <= 0:
        root = lo
        reasons.append(f"the estimate is at or above the table's most spread VMF (κ/d = "
                       f"{10**-1.5:.3g}); κ̂ held there")
    elif excess(hi) >= 0:
        root = hi
        reasons.append("the estimate is at or below the table's most concentrated VMF (κ/d = "
                       "100); κ̂ held there")
    else:
        from scipy import optimize  # imported here: 0.2 s that `import thermocheck` need not pay

        root = optimize.brentq(excess, lo, hi, xtol=1e-9)
    kappa = math.exp(root)
    b = table.bias(dim, n, kappa, method)
    entropy_slope = -float(vmf.heat_capacity(dim, kappa))  # ∂S_VMF/∂ln κ = −C_V
    gain = entropy_slope / (entropy_slope + b.slope.item())
    return CorrectedEntropy(value=est - b.value.item(), estimate=est, kappa_hat=kappa,
                            bias=b.value.item(), bias_stderr=b.total_stderr.item(),
                            noise_gain=gain, extrapolated=b.extrapolated or bool(reasons),
                            reasons=(*reasons, *b.reasons))
