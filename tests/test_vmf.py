"""Tests of ``thermocheck.vmf``: pinned mpmath values, properties, the sampler and bad input."""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import scipy.special
from hypothesis import example, given, settings, target
from hypothesis import strategies as st
from scipy.stats import vonmises_fisher

from thermocheck import vmf
from thermocheck.errors import InvalidParameterError

_SPEC = importlib.util.spec_from_file_location(
    "vmf_reference", Path(__file__).with_name("vmf_reference.py")
)
assert _SPEC is not None and _SPEC.loader is not None
ref = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ref)

pytestmark = pytest.mark.fast

TOL = 1e-10
FUNCTIONS = {
    "A": vmf.mean_resultant_length,
    "one_minus_A": vmf.mean_loss,
    "log_C": vmf.log_normalizer,
    "S": vmf.entropy,
    "C_V": vmf.heat_capacity,
}
# log C and S change sign: their error is relative to max(|value|, 1).
FLOOR = {"A": 0.0, "one_minus_A": 0.0, "log_C": 1.0, "S": 1.0, "C_V": 0.0}
NETWORK_DIMS = (24408, 43692, 97200)

dims = st.floats(math.log(2.0), math.log(1e6)).map(lambda t: round(math.exp(t)))
small_dims = st.integers(2, 1000)
kappas = st.floats(-6.0, 10.0).map(lambda e: 10.0**e)
prop_settings = settings(derandomize=True, deadline=None, max_examples=60)


def _pinned(quantity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    column = 2 + ref.QUANTITIES.index(quantity)
    d = np.array([row[0] for row in ref.PINNED], dtype=np.int64)
    kappa = np.array([row[1] for row in ref.PINNED])
    values = np.array([float(row[column]) for row in ref.PINNED])
    return d, kappa, values


def _relative_error(got: np.ndarray, want: np.ndarray, floor: float) -> np.ndarray:
    return np.abs(got - want) / np.maximum(np.abs(want), floor)


# --------------------------------------------------------------------------- pinned values


def test_pinned_table_covers_the_range() -> None:
    d, kappa, _ = _pinned("A")
    assert {2, 3, 10, 100, 1000, *NETWORK_DIMS, 1_000_000} <= set(d.tolist())
    assert kappa.min() == 1e-6 and kappa.max() == 1e10
    for dim in NETWORK_DIMS:  # the transition κ ≈ ν is pinned on both sides
        nu = dim / 2 - 1
        assert {0.9 * nu, nu, 1.1 * nu} <= set(kappa[d == dim].tolist())


@pytest.mark.parametrize("quantity", ref.QUANTITIES)
def test_pinned_values_vectorised(quantity: str) -> None:
    d, kappa, want = _pinned(quantity)
    got = FUNCTIONS[quantity](d, kappa)
    err = _relative_error(got, want, FLOOR[quantity])
    worst = int(np.argmax(err))
    assert err[worst] <= TOL, f"{quantity} at d={d[worst]}, kappa={kappa[worst]}: {err[worst]:.2e}"


@pytest.mark.parametrize("quantity", ref.QUANTITIES)
def test_pinned_values_scalar(quantity: str) -> None:
    d, kappa, want = _pinned(quantity)
    for dim, k, w in zip(d[::5].tolist(), kappa[::5].tolist(), want[::5].tolist(), strict=True):
        got = FUNCTIONS[quantity](dim, k)
        assert isinstance(got, float)
        assert abs(got - w) <= TOL * max(abs(w), FLOOR[quantity]), (dim, k)


@pytest.mark.parametrize("index", [0, 14, 40, 75, 101, 125])
def test_reference_reproduces_pinned_rows(index: int) -> None:
    d, kappa, *values = ref.PINNED[index]
    fresh = ref.mp_vmf(d, kappa)
    with mp.workdps(40):
        for quantity, text in zip(ref.QUANTITIES, values, strict=True):
            assert mp.almosteq(fresh[quantity], mp.mpf(text), rel_eps=1e-30, abs_eps=1e-300)


@pytest.mark.parametrize(("d", "kappa"), [(3, 17.1), (43692, 21845.0), (1_000_000, 1e4)])
def test_reference_agrees_with_quadrature(d: int, kappa: float) -> None:
    """The two independent mpmath evaluations agree to 30 digits (DLMF 10.32.2 vs besseli/Olver)."""
    fresh = ref.mp_vmf(d, kappa)
    check = ref.mp_quad(d, kappa, dps=40)
    with mp.workdps(40):
        log_i = ref.mp_log_bessel_i(mp.mpf(d) / 2 - 1, kappa)
        assert mp.almosteq(log_i, check["log_I"], rel_eps=1e-30)
        assert mp.almosteq(fresh["one_minus_A"], check["one_minus_A"], rel_eps=1e-30)


def test_log_bessel_ive_against_mpmath() -> None:
    cases = [(0.0, 1e-6), (0.3, 2.5), (7.5, 1e10), (19.999, 20.0), (20.0, 1e-3), (5e4, 1e6),
             (5e5, 1e-6), (5e5, 5e5), (123.4, 1e8)]  # fmt: skip
    for nu, x in cases:
        with mp.workdps(40):
            want = ref.mp_log_bessel_i(nu, x) - mp.mpf(x)
        got = vmf.log_bessel_ive(nu, x)
        assert abs(got - float(want)) <= 1e-13 * max(1.0, abs(float(want))), (nu, x)


def test_log_bessel_ive_matches_scipy_where_finite() -> None:
    nu = np.array([0.0, 0.5, 1.0, 3.7, 12.5, 19.5, 20.0, 50.0, 240.0])[:, None]
    x = np.logspace(-3, 8, 23)[None, :]
    want = scipy.special.ive(nu, x)
    ok = want > 1e-280
    got = vmf.log_bessel_ive(nu, x)
    np.testing.assert_allclose(got[ok], np.log(want[ok]), rtol=1e-12, atol=1e-13)


def test_log_bessel_ive_extreme_arguments_stay_finite() -> None:
    got = vmf.log_bessel_ive([0.0, 2.5, 30.0, 0.0, 2.5], [1e-300, 1e-300, 1e-300, 1e300, 1e300])
    assert np.all(np.isfinite(got))
    # Leading terms: ν log(x/2) − log Γ(ν + 1) at x → 0, −½ log(2πx) at x → ∞.
    small = 2.5 * math.log(0.5e-300) - math.lgamma(3.5)
    assert got[1] == pytest.approx(small, rel=1e-14)
    assert got[4] == pytest.approx(-0.5 * math.log(2 * math.pi * 1e300), rel=1e-14)


@settings(derandomize=True, deadline=None, max_examples=40)
@given(d=dims, kappa=kappas)
@example(d=43692, kappa=21844.0)
@example(d=41, kappa=19.5)
@example(d=42, kappa=1e10)
def test_matches_mpmath_at_drawn_points(d: int, kappa: float) -> None:
    """All five quantities at Hypothesis-drawn (d, κ); ``target`` steers towards the worst error."""
    want = ref.mp_vmf(d, kappa)
    worst = 0.0
    for quantity, function in FUNCTIONS.items():
        got = function(d, kappa)
        err = abs(got - float(want[quantity])) / max(abs(float(want[quantity])), FLOOR[quantity])
        worst = max(worst, err)
        assert err <= TOL, (quantity, err)
    target(worst / TOL, label="relative error / tolerance")


# --------------------------------------------------------------------------- shapes


def test_scalar_input_gives_float_and_arrays_broadcast() -> None:
    assert isinstance(vmf.entropy(3, 1.0), float)
    assert isinstance(vmf.entropy_uniform(3), float)
    assert isinstance(vmf.log_bessel_ive(0.5, 1.0), float)
    d = np.array([[2], [3], [97200]])
    kappa = np.array([1e-6, 1.0, 1e3, 1e10])
    for function in FUNCTIONS.values():
        out = function(d, kappa)
        assert isinstance(out, np.ndarray) and out.shape == (3, 4) and out.dtype == np.float64
        for i in range(3):
            for j in range(4):
                want = function(int(d[i, 0]), float(kappa[j]))
                assert out[i, j] == pytest.approx(want, rel=1e-13, abs=1e-13)
    assert vmf.mean_loss([3, 10], 2.0).shape == (2,)
    assert vmf.entropy_uniform([2, 3]).shape == (2,)


@pytest.mark.parametrize("dim", [2, 3, 41, 42, 97200, np.int64(10), 10.0])
@pytest.mark.parametrize("kappa", [1e-6, 17.1, 2.5e4, np.float64(3.0), 7])
def test_single_numbers_take_the_array_free_path(
    monkeypatch: pytest.MonkeyPatch, dim: object, kappa: object
) -> None:
    """Single numbers never build arrays (no per-call NumPy overhead) and equal the array path."""
    vectorised = {name: f(np.array([dim]), np.array([kappa]))[0] for name, f in FUNCTIONS.items()}
    log_ive = vmf.log_bessel_ive(np.array([float(dim) / 2 - 1]), np.array([kappa]))[0]

    def no_arrays(*args: object, **kwargs: object) -> None:
        raise AssertionError("a single (d, kappa) went through the array path")

    monkeypatch.setattr(vmf, "_bessel", no_arrays)
    monkeypatch.setattr(vmf, "_params", no_arrays)
    for name, function in FUNCTIONS.items():
        got = function(dim, kappa)
        assert isinstance(got, float)
        assert got == pytest.approx(vectorised[name], rel=1e-14, abs=1e-14 * FLOOR[name]), name
    assert vmf.log_bessel_ive(float(dim) / 2 - 1, kappa) == pytest.approx(log_ive, rel=1e-14)


def test_entropy_uniform_closed_forms() -> None:
    assert vmf.entropy_uniform(2) == pytest.approx(math.log(2 * math.pi), rel=1e-15)
    assert vmf.entropy_uniform(3) == pytest.approx(math.log(4 * math.pi), rel=1e-15)
    d = 10**6
    want = math.log(2) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)
    assert vmf.entropy_uniform(d) == pytest.approx(want, rel=1e-14)


# --------------------------------------------------------------------------- properties


@prop_settings
@given(d=dims, kappa=kappas)
@example(d=43692, kappa=21845.0)
@example(d=2, kappa=1e10)
def test_resultant_length_in_unit_interval_and_increasing(d: int, kappa: float) -> None:
    a1, a2 = vmf.mean_resultant_length(d, [kappa, 1.5 * kappa])
    u1, u2 = vmf.mean_loss(d, [kappa, 1.5 * kappa])
    assert 0.0 < a1 <= a2 < 1.0
    assert 0.0 < u2 < u1 < 1.0
    assert a1 + u1 == pytest.approx(1.0, abs=5e-16)


@prop_settings
@given(d=dims, kappa=kappas)
@example(d=97200, kappa=1e-6)
def test_entropy_below_uniform_and_tends_to_it(d: int, kappa: float) -> None:
    s, s0 = vmf.entropy(d, kappa), vmf.entropy_uniform(d)
    rounding = 1e-13 * max(1.0, abs(s0))
    assert s <= s0 + rounding
    # S = log|S^{d−1}| − κ²/(2d) + O(κ⁴/d²): dS/dκ = −κ A'(κ) and A'(0) = 1/d.
    gap = kappa * kappa / (2 * d)
    if gap > 1e3 * rounding:
        assert s < s0
    if kappa <= 1e-2 * math.sqrt(d):
        assert abs(s0 - s - gap) <= 1e-3 * gap + rounding


@prop_settings
@given(d=small_dims, factor=st.floats(100.0, 1e4))
@example(d=2, factor=1e4)
@example(d=1000, factor=100.0)
def test_low_temperature_asymptotics(d: int, factor: float) -> None:
    """U = (d−1)/(2κ) − (d−1)(d−3)/(8κ²) + O(d³/κ³), S = ((d−1)/2) log(2πe/κ) − (d−1)(d−3)/(4κ) + …

    Checked through the scaled remainders κ²(U − (d−1)/(2κ)) and κ(S − ((d−1)/2) log(2πe/κ)),
    which tend to their constants at the rate d²/κ (coefficients −1/8 and −3/16 at large d).
    """
    kappa = factor * d * d
    u, s = vmf.mean_loss(d, kappa), vmf.entropy(d, kappa)
    c2 = (d - 1) * (d - 3) / 8
    rem_u = kappa**2 * (u - (d - 1) / (2 * kappa)) + c2
    rem_s = kappa * (s - (d - 1) / 2 * math.log(2 * math.pi * math.e / kappa)) + 2 * c2
    assert abs(rem_u) <= d * d / (4 * kappa) + 1e-13 * kappa * d
    assert abs(rem_s) <= d * d / (4 * kappa) + 1e-14 * kappa * max(1.0, abs(s))
    assert abs(u * 2 * kappa / (d - 1) - 1) <= d / kappa
    assert abs(vmf.heat_capacity(d, kappa) / ((d - 1) / 2) - 1) <= d / kappa


@prop_settings
@given(d=dims, kappa=kappas)
@example(d=24408, kappa=12203.0)
@example(d=10**6, kappa=1e-6)
def test_heat_capacity_matches_finite_difference(d: int, kappa: float) -> None:
    """C_V = dU/dT = −dA/dT at T = 1/κ: a central difference of whichever of U, A is smaller."""
    h = 1e-4
    temps = np.array([1 + h, 1 - h]) / kappa
    u = vmf.mean_loss(d, 1 / temps)
    if u[0] > 0.5:
        u = -vmf.mean_resultant_length(d, 1 / temps)
    fd = (u[0] - u[1]) / (temps[0] - temps[1])
    cv = vmf.heat_capacity(d, kappa)
    assert cv > 0.0
    assert cv == pytest.approx(fd, rel=1e-6)


def test_heat_capacity_limits() -> None:
    for d in (2, 3, 100, 97200):
        assert vmf.heat_capacity(d, 1e-6) == pytest.approx(1e-12 / d, rel=1e-6)
    assert vmf.heat_capacity(3, 1e10) == pytest.approx(1.0, rel=1e-12)
    assert vmf.heat_capacity(97200, 1e10) == pytest.approx(97199 / 2, rel=1e-4)


@prop_settings
@given(d=small_dims, kappa=st.floats(-6.0, 8.0).map(lambda e: 10.0**e))
@example(d=3, kappa=17.1)
def test_agrees_with_scipy_where_finite(d: int, kappa: float) -> None:
    """scipy's entropy is accurate where ``ive(d/2, κ)`` is a normal float (it loses digits once
    that value is subnormal: 4·10⁻³ absolute at d = 301, κ = 1.07, then NaN)."""
    mu = np.zeros(d)
    mu[0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = float(vonmises_fisher(mu, kappa).entropy())
    if math.isfinite(want) and scipy.special.ive(d / 2, kappa) > 1e-290:
        assert vmf.entropy(d, kappa) == pytest.approx(want, rel=TOL, abs=TOL)


# --------------------------------------------------------------------------- sampler


def _z_score(values: np.ndarray, expected: float) -> float:
    return float((values.mean() - expected) / (values.std(ddof=1) / math.sqrt(values.size)))


@pytest.mark.parametrize(
    ("d", "kappa", "size"),
    [(2, 0.5, 20000), (3, 2.0, 20000), (100, 60.0, 5000), (10_000, 5000.0, 1000)],
)
def test_sample_moments_match_closed_forms(d: int, kappa: float, size: int) -> None:
    """Mean and variance of μᵀx match A_d(κ) and A_d'(κ) = C_V/κ² within 4 standard errors."""
    direction = np.random.default_rng(d).standard_normal(d)
    x = vmf.sample(d, kappa, size, mean_direction=direction, rng=12345)
    assert x.shape == (size, d)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-13)
    t = x @ (direction / np.linalg.norm(direction))
    assert abs(_z_score(t, vmf.mean_resultant_length(d, kappa))) < 4
    squared = (t - t.mean()) ** 2
    assert abs(_z_score(squared, vmf.heat_capacity(d, kappa) / kappa**2)) < 4


@pytest.mark.parametrize("d", [3, 10_000])
def test_sample_huge_concentration_keeps_tangent_part(d: int) -> None:
    """At κ = 10¹⁰ the squared distance to the mean, 2(1 − μᵀx), still has mean 2(1 − A)."""
    kappa, size = 1e10, 200
    direction = -np.ones(d) / math.sqrt(d)
    x = vmf.sample(d, kappa, size, mean_direction=direction, rng=7)
    half_sq = 0.5 * np.sum((x - direction) ** 2, axis=1)
    assert abs(_z_score(half_sq, vmf.mean_loss(d, kappa))) < 4


def test_sample_network_size_is_fast() -> None:
    d, kappa, size = 100_000, 1e5, 200
    start = time.perf_counter()
    x = vmf.sample(d, kappa, size, rng=3)
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-13)
    assert abs(_z_score(x[:, 0], vmf.mean_resultant_length(d, kappa))) < 4


def test_sample_default_direction_seed_and_normalisation() -> None:
    a = vmf.sample(5, 3.0, 50, rng=11)
    b = vmf.sample(5, 3.0, 50, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert a[:, 0].mean() > 0.3  # mean direction e₁
    e1 = vmf.sample(5, 3.0, 50, mean_direction=[2.0, 0, 0, 0, 0], rng=11)
    np.testing.assert_allclose(e1, a, atol=1e-15)
    flipped = vmf.sample(5, 3.0, 50, mean_direction=[-1.0, 0, 0, 0, 0], rng=11)
    np.testing.assert_allclose(flipped[:, 0], -a[:, 0], atol=1e-15)


# --------------------------------------------------------------------------- bad input

BAD_D = [1, 2.5, math.nan, [3, 0]]
BAD_KAPPA = [0.0, -1.0, math.inf, math.nan, [1.0, 0.0]]


@pytest.mark.parametrize("function", [*FUNCTIONS.values()])
@pytest.mark.parametrize("d", BAD_D)
def test_bad_dimension(function: Callable[..., object], d: object) -> None:
    with pytest.raises(InvalidParameterError, match="d must be an integer >= 2"):
        function(d, 1.0)


@pytest.mark.parametrize("function", [*FUNCTIONS.values()])
@pytest.mark.parametrize("kappa", BAD_KAPPA)
def test_bad_concentration(function: Callable[..., object], kappa: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"kappa must be finite and > 0"):
        function(3, kappa)


def test_bad_entropy_uniform_dimension() -> None:
    with pytest.raises(InvalidParameterError, match="d must be an integer >= 2"):
        vmf.entropy_uniform(1)


def test_bad_bessel_arguments() -> None:
    with pytest.raises(InvalidParameterError, match=r"nu must lie in \[0, inf\]"):
        vmf.log_bessel_ive(-0.5, 1.0)
    with pytest.raises(InvalidParameterError, match=r"nu must lie in \[0, inf\]"):
        vmf.log_bessel_ive(math.inf, 1.0)
    with pytest.raises(InvalidParameterError, match=r"x must be finite and > 0"):
        vmf.log_bessel_ive(1.0, 0.0)
    with pytest.raises(InvalidParameterError, match=r"x must be finite and > 0"):
        vmf.log_bessel_ive(1.0, math.nan)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d": 1}, "d must be an integer >= 2"),
        ({"d": 3.5}, "d must be an integer >= 2"),
        ({"d": [3, 4]}, "d must be a single integer >= 2"),
        ({"kappa": 0.0}, "kappa must be finite and > 0"),
        ({"kappa": math.inf}, "kappa must be finite and > 0"),
        ({"kappa": [1.0, 2.0]}, "kappa must be a single number"),
        ({"size": 0}, "size must be an integer >= 1"),
        ({"size": 2.5}, "size must be an integer >= 1"),
        ({"size": [2, 3]}, "size must be a single integer >= 1"),
        ({"mean_direction": [1.0, 0.0]}, "mean_direction .* length d=3"),
        ({"mean_direction": [0.0, 0.0, 0.0]}, "mean_direction .* nonzero"),
        ({"mean_direction": [1.0, math.nan, 0.0]}, "mean_direction .* finite"),
        ({"mean_direction": "abc"}, "mean_direction"),
    ],
)
def test_bad_sample_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"d": 3, "kappa": 1.0, "size": 4} | kwargs
    with pytest.raises(InvalidParameterError, match=message):
        vmf.sample(**args)  # type: ignore[arg-type]
