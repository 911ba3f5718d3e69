"""Tests of thermocheck.entropy: k-NN entropy in R^m and of directions on the sphere."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import special

from thermocheck import entropy, vmf
from thermocheck.entropy import kl_entropy, log_cap_volume, sphere_entropy
from thermocheck.errors import InvalidParameterError

pytestmark = pytest.mark.fast

METHODS = ("geodesic", "angles", "chord")

#: The acceptance bounds (nats) for the default estimator at N = 4000.
VMF_BOUND = 0.1
UNIFORM_BOUND = 0.3


def _vmf_sample(d: int, kappa: float, n: int, seed: int) -> np.ndarray:
    return vmf.sample(d, kappa, n, rng=seed)


def _random_walk(d: int, n: int, step: float, seed: int) -> np.ndarray:
    """``n`` snapshots of a walk on S^{d−1} that moves exactly ``step`` rad between snapshots."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d)
    x /= np.linalg.norm(x)
    out = np.empty((n, d))
    for i in range(n):
        out[i] = x
        v = rng.standard_normal(d)
        v -= (v @ x) * x
        v /= np.linalg.norm(v)
        x = math.cos(step) * x + math.sin(step) * v
    return out


def _neighbour_angles(w: np.ndarray, k: int = 1) -> np.ndarray:
    """Geodesic angle from each row's direction to its k-th nearest other direction."""
    t, be = entropy._as_array("w", w)
    block_bytes = entropy._DEFAULT_BLOCK_BYTES
    theta, _ = entropy._distinct_kth_distances(
        entropy._directions(t, be, block_bytes),
        k,
        geodesic=True,
        tol=entropy._SAME_DIRECTION_RAD,
        name="w",
        block_bytes=block_bytes,
    )
    return theta


# ---------------------------------------------------------------------------------------------
# Kozachenko–Leonenko in R^m
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_kl_entropy_gaussian_matches_closed_form(m: int) -> None:
    # Exact: S = (m/2) log(2πe) + Σ log σ_j. The tolerance comes from the estimates' own spread
    # over seeds: the bias must stay below two standard deviations of one estimate (measured over
    # 100 seeds at N = 1000: bias −0.008 … −0.048, sd 0.055 … 0.076 for m = 1 … 5), and the spread
    # must be near its asymptotic value sqrt((Var log f + ψ'(1))/N), Var log f = m/2 (measured
    # 1.2× it; 2× is allowed).
    n, seeds = 1000, range(8)
    scales = np.linspace(0.5, 2.0, m)
    exact = 0.5 * m * math.log(2 * math.pi * math.e) + np.log(scales).sum()
    estimates = np.array(
        [kl_entropy(np.random.default_rng(s).standard_normal((n, m)) * scales) for s in seeds]
    )
    spread = estimates.std(ddof=1)
    assert abs(estimates.mean() - exact) < 2 * spread, (estimates.mean(), exact, spread)
    assert spread < 2 * math.sqrt((m / 2 + special.polygamma(1, 1)) / n)


def test_kl_entropy_accepts_1d_samples_and_torch() -> None:
    x = np.random.default_rng(0).standard_normal(500)
    expected = kl_entropy(x[:, None])
    assert kl_entropy(x) == expected
    assert kl_entropy(torch.from_numpy(x)) == pytest.approx(expected, rel=1e-12)


def test_paper_constant_differs_from_digamma_by_half_over_n() -> None:
    n = 400
    x = np.random.default_rng(1).standard_normal((n, 3))
    # log(N − 1) + γ_E − (ψ(N) − ψ(1)) = log(N − 1) − ψ(N) ≈ −1/(2N)
    diff = kl_entropy(x, constant="paper") - kl_entropy(x)
    assert diff == pytest.approx(math.log(n - 1) - special.digamma(n), abs=1e-12)
    assert abs(diff + 1 / (2 * n)) < 1 / n**2
    w = _vmf_sample(4, 5.0, n, seed=2)
    sphere_diff = sphere_entropy(w, constant="paper") - sphere_entropy(w)
    assert sphere_diff == pytest.approx(diff, abs=1e-12)


def test_kl_entropy_drops_duplicate_rows_with_a_warning() -> None:
    x = np.random.default_rng(3).standard_normal((300, 2))
    # 10 pairs and one group of 13 equal rows: more than the k + 4 shortlisted candidates.
    with_dups = np.vstack([x, x[:10], np.repeat(x[:1], 12, axis=0)])
    with pytest.warns(UserWarning, match="22 duplicate rows"):
        value = kl_entropy(with_dups)
    assert np.isfinite(value)
    assert value == kl_entropy(x)


def test_sphere_entropy_drops_duplicate_directions_with_a_warning() -> None:
    w = _vmf_sample(5, 10.0, 300, seed=4)
    scales = np.geomspace(0.1, 30.0, 12)[:, None]
    with_dups = np.vstack([w, 3.7 * w[:10], scales * w[5]])
    for method in METHODS:
        with pytest.warns(UserWarning, match="22 duplicate directions"):
            value = sphere_entropy(with_dups, method=method)
        assert value == pytest.approx(sphere_entropy(w, method=method), abs=1e-12)


def test_all_rows_equal_is_an_error() -> None:
    with pytest.raises(InvalidParameterError, match=r"N=1 rows.*distinct"):
        kl_entropy(np.ones((50, 2)))
    with pytest.raises(InvalidParameterError, match=r"N=1 rows.*distinct"):
        sphere_entropy(np.arange(1.0, 51.0)[:, None] * np.ones((50, 3)))


# ---------------------------------------------------------------------------------------------
# Geodesic caps
# ---------------------------------------------------------------------------------------------

# log|cap(θ)| on S^m from mpmath (dps = 40) by quadrature, independent of the incomplete beta:
#
#   def log_cap_reference(theta, m):
#       th = mp.mpf(theta)
#       if th > mp.pi / 2:
#           log_sphere = mp.log(2) + (m + 1) / mp.mpf(2) * mp.log(mp.pi) - mp.loggamma((m + 1) / 2)
#           return log_sphere + mp.log(1 - mp.exp(log_cap_reference(mp.pi - th, m) - log_sphere))
#       log_sm1 = mp.log(2) + mp.mpf(m) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(m) / 2)
#       s = mp.sin(th)
#       width = mp.tan(th) / max(m - 1, 1) if th < mp.pi / 2 else 1 / mp.sqrt(m)
#       points = sorted({mp.mpf(0), th, *(max(mp.mpf(0), th - c * width) for c in (300, 30, 3))})
#       integral = mp.quad(lambda t: mp.exp((m - 1) * (mp.log(mp.sin(t)) - mp.log(s))), points)
#       return log_sm1 + (m - 1) * mp.log(s) + mp.log(integral)
LOG_CAP_REFERENCE = [
    (2, 1e-06, -26.48629123007923),
    (2, 2.5, 2.42629887153772),
    (9, 0.3, -9.740549631813401),
    (9, 1.5707, 2.54537130479531),
    (99, 1.2, -95.8650067616271),
    (99, 2.0, -86.63610999081617),
    (97199, 0.001, -1091655.550572042),
    (97199, 1.55, -420245.79864703177),
    (97199, 1.5707963, -420222.6609658127),
    (97199, 1.58, -420221.9698702138),
]


@pytest.mark.parametrize(("m", "theta", "expected"), LOG_CAP_REFERENCE)
def test_log_cap_volume_matches_mpmath(m: int, theta: float, expected: float) -> None:
    assert log_cap_volume(np.array([theta]), m)[0] == pytest.approx(expected, rel=1e-13)


def test_log_cap_volume_limits() -> None:
    theta = np.array([1e-9, 0.3, 1.0, 2.0, math.pi])
    assert np.allclose(log_cap_volume(theta, 1), np.log(2 * theta), rtol=1e-14)
    assert np.allclose(
        log_cap_volume(theta, 2), np.log(4 * np.pi * np.sin(theta / 2) ** 2), rtol=1e-9
    )
    for m in (3, 50, 5000):
        log_sphere = math.log(2) + (m + 1) / 2 * math.log(math.pi) - special.gammaln((m + 1) / 2)
        assert log_cap_volume(np.array([math.pi]), m)[0] == pytest.approx(log_sphere, rel=1e-14)
        small = 1e-7
        log_ball = m / 2 * math.log(math.pi) - special.gammaln(m / 2 + 1) + m * math.log(small)
        assert log_cap_volume(np.array([small]), m)[0] == pytest.approx(log_ball, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Accuracy on the sphere (the acceptance points)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [3, 5])
@pytest.mark.parametrize("kappa", [0.1, 1.0, 10.0, 100.0, 1000.0])
def test_sphere_entropy_matches_exact_vmf_entropy(d: int, kappa: float) -> None:
    w = _vmf_sample(d, kappa, 4000, seed=0)
    assert abs(sphere_entropy(w) - vmf.entropy(d, kappa)) < VMF_BOUND


def test_sphere_entropy_matches_uniform_entropy_on_s9() -> None:
    w = np.random.default_rng(0).standard_normal((4000, 10))
    assert abs(sphere_entropy(w) - vmf.entropy_uniform(10)) < UNIFORM_BOUND


# ---------------------------------------------------------------------------------------------
# Invariances
# ---------------------------------------------------------------------------------------------

BASE = _vmf_sample(4, 3.0, 300, seed=5)


@settings(derandomize=True, deadline=None, max_examples=15)
@given(
    radii=arrays(np.float64, BASE.shape[0], elements=st.floats(1e-3, 1e3)),
    method=st.sampled_from(METHODS),
)
def test_sphere_entropy_ignores_row_norms(radii: np.ndarray, method: str) -> None:
    scaled = BASE * radii[:, None]
    assert sphere_entropy(scaled, method=method) == pytest.approx(
        sphere_entropy(BASE, method=method), abs=1e-9
    )


def _rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@settings(derandomize=True, deadline=None, max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), method=st.sampled_from(METHODS))
def test_sphere_entropy_is_rotation_invariant(seed: int, method: str) -> None:
    rotation = _rotation(4, seed)
    assert sphere_entropy(BASE @ rotation.T, method=method) == pytest.approx(
        sphere_entropy(BASE, method=method), abs=1e-9
    )


@pytest.mark.parametrize(("d", "kappa", "n"), [(2, 5.0, 200), (10, 50.0, 400), (300, 900.0, 150),
                                               (300, 3.0, 150)])
def test_angles_do_not_depend_on_the_mean_direction(d: int, kappa: float, n: int) -> None:
    """The paper's angle chart is taken in the sample's own frame: a rotated sample (d ≤ N: the
    principal axes of ZᵀZ; d > N: of the Gram matrix) gives the same estimate to round-off,
    whereas raw angles of the same sample about e₁ and about a random mean differ by far more
    than the estimate's scatter once d is large."""
    w = _vmf_sample(d, kappa, n, seed=d)
    reference = sphere_entropy(w, method="angles")
    for seed in range(3):
        rotated = w @ _rotation(d, seed).T
        assert sphere_entropy(rotated, method="angles") == pytest.approx(
            reference, rel=1e-10, abs=1e-9)
    assert sphere_entropy(torch.from_numpy(w @ _rotation(d, 9).T), method="angles") == \
        pytest.approx(reference, rel=1e-10, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Precision of neighbour angles
# ---------------------------------------------------------------------------------------------


def test_neighbour_angles_of_a_tiny_random_walk_in_high_dimension() -> None:
    step = 1e-6
    walk = _random_walk(20000, 60, step, seed=6)
    reference = np.array(
        [
            np.delete(
                2 * np.arctan2(np.linalg.norm(walk - x, axis=1), np.linalg.norm(walk + x, axis=1)),
                i,
            ).min()
            for i, x in enumerate(walk)
        ]
    )
    theta = _neighbour_angles(walk)
    assert np.all(theta > 0)
    assert np.allclose(theta, reference, rtol=1e-9, atol=0)
    assert np.all(theta <= step * (1 + 1e-9))  # the previous or next snapshot is `step` away

    # The test has teeth: chord² = 2 − 2x·y, what a plain Gram product or cdist computes, is off
    # by ~1e-3 in float64 and returns zero distances in float32.
    def naive_nearest(x: np.ndarray) -> np.ndarray:
        chord_sq = 2 - 2 * (x @ x.T)
        chord_sq[np.diag_indices_from(chord_sq)] = np.inf
        return np.sqrt(np.clip(chord_sq, 0, None)).min(axis=1)

    assert np.max(np.abs(naive_nearest(walk) / reference - 1)) > 1e-4
    assert np.any(naive_nearest(walk.astype(np.float32)) == 0)
    assert np.isfinite(sphere_entropy(walk))


def test_neighbour_angles_of_float32_snapshots() -> None:
    walk = _random_walk(5000, 40, 1e-4, seed=7).astype(np.float32)
    exact = walk.astype(np.float64)
    exact /= np.linalg.norm(exact, axis=1, keepdims=True)
    gaps = np.linalg.norm(exact[:, None, :] - exact[None, :, :], axis=2)
    gaps[np.diag_indices_from(gaps)] = np.inf
    theta = _neighbour_angles(walk)
    assert np.allclose(theta, 2 * np.arcsin(gaps.min(axis=1) / 2), rtol=1e-9)
    assert np.allclose(_neighbour_angles(torch.from_numpy(walk)), theta, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Backends and the angle map
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_torch_and_numpy_paths_agree(method: str) -> None:
    w = _vmf_sample(6, 20.0, 700, seed=8).astype(np.float32)
    expected = sphere_entropy(w, method=method)
    assert sphere_entropy(torch.from_numpy(w), method=method) == pytest.approx(expected, rel=1e-12)
    assert sphere_entropy(w.astype(np.float64), method=method) == expected
    assert kl_entropy(torch.from_numpy(w)) == pytest.approx(kl_entropy(w), rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method", METHODS)
def test_cuda_path_agrees_with_numpy(method: str) -> None:
    w = _vmf_sample(6, 20.0, 700, seed=8).astype(np.float32)
    on_gpu = sphere_entropy(torch.from_numpy(w).cuda(), method=method)
    assert on_gpu == pytest.approx(sphere_entropy(w, method=method), rel=1e-12)


@pytest.mark.parametrize("d", [2, 6, 100_000])
def test_hyperspherical_angles_and_log_jacobian(d: int) -> None:
    w = np.random.default_rng(9).standard_normal((4, d)) * 5.0
    t, be = entropy._as_array("w", w)
    phi, log_jacobian = entropy._hyperspherical_angles(t, be, entropy._DEFAULT_BLOCK_BYTES)
    # Rebuild w̄ from the angles: x_j = cos φ_j Π_{i<j} sin φ_i, last two with cos θ, sin θ.
    sines = np.hstack([np.ones((4, 1)), np.cumprod(np.sin(phi[:, : d - 2]), axis=1)])
    rebuilt = np.hstack([np.cos(phi[:, : d - 2]), np.cos(phi[:, -1:]), np.sin(phi[:, -1:])])
    rebuilt[:, : d - 1] *= sines
    rebuilt[:, d - 1] *= sines[:, -1]
    assert np.allclose(rebuilt, w / np.linalg.norm(w, axis=1, keepdims=True), atol=1e-12)
    weights = np.arange(d - 2, 0, -1)
    direct = np.log(np.sin(phi[:, : d - 2])) @ weights
    assert np.allclose(log_jacobian, direct, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

GOOD = np.random.default_rng(10).standard_normal((20, 3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kl_entropy(GOOD[:3], k=3), r"N=3 rows.*N > k = 3"),
        (lambda: kl_entropy(GOOD, k=0), r"k=0.*integer >= 1"),
        (lambda: kl_entropy(GOOD, k=1.5), r"k=1.5.*integer >= 1"),
        (lambda: kl_entropy(GOOD, k=True), r"k=True.*integer >= 1"),
        (lambda: kl_entropy(GOOD, constant="exact"), r"constant='exact'.*'digamma', 'paper'"),
        (lambda: kl_entropy(GOOD, k=2, constant="paper"), r"k = 1 only"),
        (lambda: kl_entropy(np.zeros((2, 3, 4))), r"must be 1-D.*or 2-D"),
        (lambda: kl_entropy(np.where(np.arange(20)[:, None] == 4, np.nan, GOOD)), r"row 4.*fin"),
        (lambda: kl_entropy(GOOD, block_bytes=0), r"block_bytes=0.*> 0"),
        (lambda: kl_entropy("abc"), r"x must be a real array"),
        (lambda: sphere_entropy(GOOD[:, :1]), r"d \(columns of w\)=1.*integer >= 2"),
        (lambda: sphere_entropy(GOOD[:1]), r"N=1 rows"),
        (lambda: sphere_entropy(GOOD, method="kde"), r"method='kde'.*'geodesic', 'angles'"),
        (lambda: sphere_entropy(GOOD[0]), r"must be 2-D"),
        (
            lambda: sphere_entropy(np.where(np.arange(20)[:, None] == 7, 0.0, GOOD)),
            r"row 7 is zero",
        ),
        (
            lambda: sphere_entropy(np.where(np.arange(20)[:, None] == 2, np.inf, GOOD)),
            r"row 2.*fin",
        ),
        (lambda: sphere_entropy(GOOD * 1e300), r"overflows float64"),
        (lambda: sphere_entropy(torch.ones(5, 3, dtype=torch.complex64)), r"must be real"),
        (lambda: log_cap_volume(np.array([4.0]), 3), r"theta=4.0.*\[0, 3.14159"),
        (lambda: log_cap_volume(np.array([1.0]), 0), r"m=0.*integer >= 1"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(call, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        call()


def test_rows_on_a_raw_chart_pole_are_fine_for_every_method() -> None:
    """[1, 0, 0] is singular for hyperspherical angles in raw coordinates; the angles are taken in
    the sample's own frame, where no sample direction sits on a pole."""
    w = np.vstack([GOOD, [[1.0, 0.0, 0.0]]])
    for method in METHODS:
        assert np.isfinite(sphere_entropy(w, method=method))


def _brute_kth_angles(w: np.ndarray, k: int) -> np.ndarray:
    unit = w / np.linalg.norm(w, axis=1, keepdims=True)
    angles = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0))
    np.fill_diagonal(angles, np.inf)
    return np.sort(angles, axis=1)[:, k - 1]


@pytest.mark.parametrize(("n", "d", "block_bytes"), [
    (600, 80, 2**20),  # 2 tiles a side
    (600, 500, 2**20),  # 2 tiles a side, 2 chunks of coordinates
    (1500, 80, 2_000_000),  # 3 tiles a side
    (300, 80, 64 * 2**20),  # one tile
])
def test_gram_shortlist_computes_each_pair_once_and_finds_the_true_neighbours(
    monkeypatch: pytest.MonkeyPatch, n: int, d: int, block_bytes: int
) -> None:
    """The Gram tiles on and above the diagonal cover every unordered pair exactly once, and the
    k-th neighbour angle equals a brute-force float64 reference, on both backends."""
    assert d > entropy._DIRECT_MAX_DIM  # the Gram shortlist, not a direct pass
    w = np.random.default_rng(n + d).standard_normal((n, d))
    tiles: list[tuple[int, int, int, int]] = []
    original = entropy._NumpyBackend.merge_tile

    def spy(self: object, tile: np.ndarray, row0: int, col0: int, *args: np.ndarray) -> None:
        tiles.append((row0, col0, *tile.shape))
        original(self, tile, row0, col0, *args)

    monkeypatch.setattr(entropy._NumpyBackend, "merge_tile", spy)
    theta, _ = entropy._distinct_kth_distances(
        entropy._directions(w, entropy._NumpyBackend(), block_bytes), 2, geodesic=True,
        tol=0.0, name="w", block_bytes=block_bytes)
    covered = np.zeros((n, n), dtype=int)
    for row0, col0, rows, cols in tiles:
        assert col0 >= row0
        covered[row0 : row0 + rows, col0 : col0 + cols] += 1
    pairs = np.triu_indices(n, 1)
    assert np.all(np.maximum(covered, covered.T)[pairs] == 1), "a pair computed twice or never"
    reference = _brute_kth_angles(w, 2)
    np.testing.assert_allclose(theta, reference, rtol=1e-7)
    torch_theta, _ = entropy._distinct_kth_distances(
        entropy._directions(torch.from_numpy(w), entropy._TorchBackend(torch.device("cpu")),
                            block_bytes), 2, geodesic=True, tol=0.0, name="w",
        block_bytes=block_bytes)
    np.testing.assert_allclose(torch_theta, theta, rtol=1e-12)


@pytest.mark.parametrize(("d", "k"), [(2, 2), (3, 1), (5, 3), (10, 1), (16, 2), (32, 1)])
def test_low_dimensional_shortlists_find_the_true_neighbours(d: int, k: int) -> None:
    """The slab search (d <= 3), the k-d tree (d <= 6) and the direct pairwise pass (d <= 32)
    keep only k candidates: their distances are direct differences, so the k-th angle is exact
    to rounding."""
    w = _vmf_sample(d, 5.0, 800, seed=d + k)
    np.testing.assert_allclose(_neighbour_angles(w, k), _brute_kth_angles(w, k), rtol=1e-7)


def _kth_squared_gaps(x: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th smallest squared distance to the rows ``idx`` names (direct differences)."""
    return np.sort(((x[:, None, :] - x[idx]) ** 2).sum(axis=2), axis=1)[:, k - 1]


def _brute_kth_squared_gaps(x: np.ndarray, k: int) -> np.ndarray:
    gaps = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(gaps, np.inf)
    return np.sort(gaps, axis=1)[:, k - 1]


def _awkward_points(kind: str, n: int, m: int, seed: int) -> np.ndarray:
    """Point sets that stress an exact low-dimensional search: heavy tails, exact ties and
    duplicates, a slow random walk, a flat axis, and points on a sphere."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, m))
    if kind == "cauchy":
        return rng.standard_cauchy((n, m))
    if kind == "grid":
        return np.round(2 * x) / 2
    if kind == "walk":
        return 1 + np.cumsum(1e-3 * x, axis=0)
    if kind == "flat":
        x[:, -1] *= 1e-9
        return x
    return x / np.linalg.norm(x, axis=1, keepdims=True) if m > 1 else x


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["gauss", "cauchy", "grid", "walk", "flat", "sphere"]),
       m=st.integers(1, 3), n=st.integers(2, 300), k=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_slab_search_finds_the_exact_k_nearest(kind: str, m: int, n: int, k: int,
                                               seed: int) -> None:
    """The slab search (up to 3 coordinates) stops on a bound that is exact in floating point,
    so its k-th distance is the brute-force one for any data, to rounding (it sums the
    coordinates in its own order)."""
    k = min(k, n - 1)
    x = _awkward_points(kind, n, m, seed)
    idx = entropy._slab_shortlist(entropy._Points(x, entropy._NumpyBackend()), k)
    assert np.all(idx != np.arange(n)[:, None])
    assert all(np.unique(row).size == k for row in idx)
    np.testing.assert_allclose(_kth_squared_gaps(x, idx, k), _brute_kth_squared_gaps(x, k),
                               rtol=4 * np.finfo(float).eps, atol=0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("m", "k"), [(5, 1), (12, 3), (40, 2)])
def test_pairwise_search_finds_the_exact_k_nearest(m: int, k: int, threads: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The all-pairs pass tests each pair against the larger of its two points' worst kept
    values first; with exact ties everywhere it still keeps k distinct others at the brute-force
    k-th distance, to rounding (it sums each squared distance in its own order), on one thread
    or split over two, whose lists are merged."""
    monkeypatch.setattr(entropy, "_SPLIT_WORK", 1 if threads == 2 else 10**18)
    monkeypatch.setattr(entropy.os, "cpu_count", lambda: 2)
    x = _awkward_points("grid", 500, m, seed=m)
    idx = entropy._direct_shortlist(entropy._Points(x, entropy._NumpyBackend()), k)
    assert all(np.unique(row).size == k and i not in row for i, row in enumerate(idx))
    np.testing.assert_allclose(_kth_squared_gaps(x, idx, k), _brute_kth_squared_gaps(x, k),
                               rtol=4 * np.finfo(float).eps, atol=0)


@pytest.mark.parametrize("sample", ["uniform", "walk", "duplicates"])
def test_gram_shortlist_refines_only_candidates_that_can_be_kth(sample: str) -> None:
    """Candidates whose shortlist value exceeds the k-th one by more than twice the derived
    round-off bound are not refined; the k-th angles and the duplicates found are exactly those
    of refining all of them. In high dimension about k candidates per point remain."""
    k, d = 2, 300
    rng = np.random.default_rng(11)
    if sample == "walk":
        w = _random_walk(d, 400, 1e-7, seed=12)
    else:
        w = rng.standard_normal((400, d))
    if sample == "duplicates":
        w[200:260] = 3.0 * w[:60]
    points = entropy._directions(w, entropy._NumpyBackend(), entropy._DEFAULT_BLOCK_BYTES)
    best_idx, needed = entropy._gram_shortlist(points, k, entropy._DEFAULT_BLOCK_BYTES)
    assert needed[:, :k].all()
    if sample == "uniform":
        assert needed.sum() < 1.1 * k * points.n
    refined = entropy._refine(points, best_idx, needed, geodesic=True, block_bytes=1)
    full = entropy._refine(points, best_idx, None, geodesic=True, block_bytes=1)
    np.testing.assert_array_equal(refined[0][:, :k], full[0][:, :k])
    np.testing.assert_array_equal(refined[1][:, :k], full[1][:, :k])
    if sample == "duplicates":
        with pytest.warns(UserWarning, match="60 duplicate directions"):
            _neighbour_angles(w, k)
    else:
        unit = w / np.linalg.norm(w, axis=1, keepdims=True)
        angles = np.array([2 * np.arctan2(np.linalg.norm(unit - x, axis=1),
                                          np.linalg.norm(unit + x, axis=1)) for x in unit])
        np.fill_diagonal(angles, np.inf)
        np.testing.assert_allclose(_neighbour_angles(w, k), np.sort(angles, axis=1)[:, k - 1],
                                   rtol=1e-9)


@pytest.mark.parametrize(("n", "tiles"), [(1000, 1), (2000, 3), (4000, 6)])
def test_gram_shortlist_uses_few_tiles(monkeypatch: pytest.MonkeyPatch, n: int,
                                       tiles: int) -> None:
    """Each BLAS call costs a thread wake-up, and a diagonal tile ``a aᵀ`` costs half a full one,
    so the tiles are as few as the merge's cache allows: one up to N = 1024, 3 a side at 4000."""
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(entropy._NumpyBackend, "merge_tile",
                        lambda self, tile, row0, col0, *args: seen.append((row0, col0)))
    w = np.random.default_rng(n).standard_normal((n, 80))
    points = entropy._directions(w, entropy._NumpyBackend(), entropy._DEFAULT_BLOCK_BYTES)
    entropy._gram_shortlist(points, 1, entropy._DEFAULT_BLOCK_BYTES)
    assert len(seen) == tiles
    blocks = len({row0 for row0, _ in seen})
    assert all(row0 == col0 for row0, col0 in seen[:blocks])  # first: they sum ‖a‖²
