"""The counter-based normal streams of the simulator (thermocheck.simulator.rng)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from thermocheck.simulator import rng
from thermocheck.simulator.rng import philox4x32, point_id, standard_normals

pytestmark = pytest.mark.fast

N = 1_000_000


@pytest.mark.parametrize(("counter", "key", "expected"), [
    # Random123's kat_vectors (philox4x32 10): counter[4] key[2] -> output[4]
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(counter: tuple[int, ...], key: tuple[int, ...],
                              expected: tuple[int, ...]) -> None:
    out = philox4x32(*(np.uint64(c) for c in counter), *(np.uint64(k) for k in key))
    assert tuple(int(v) for v in out) == expected


@pytest.fixture(scope="module")
def normals() -> np.ndarray:
    return standard_normals(seed=7, pid=point_id(0.01, 0.1), n=N)


def test_moments_are_standard(normals: np.ndarray) -> None:
    """Mean, variance, skewness and kurtosis within 5 standard errors of N(0, 1)'s."""
    z = normals
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / N)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)


def test_kolmogorov_smirnov_and_tails(normals: np.ndarray) -> None:
    """KS against N(0, 1), the law of |z| beyond the ziggurat's base R = 3.654 (the tail branch),
    and the tail mass beyond R, all at the 1e-3 level."""
    assert stats.kstest(normals, "norm").pvalue > 1e-3
    r = 3.6541528853610088
    tail = np.abs(normals[np.abs(normals) > r])
    assert stats.kstest(tail, lambda x: 1 - stats.norm.sf(x) / stats.norm.sf(r)).pvalue > 1e-3
    assert stats.binomtest(tail.size, N, 2 * stats.norm.sf(r)).pvalue > 1e-3


def test_histogram_chi_square(normals: np.ndarray) -> None:
    edges = np.linspace(-4, 4, 81)
    counts, _ = np.histogram(normals, edges)
    expected = np.diff(stats.norm.cdf(edges)) * N
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert stats.chi2.sf(chi2, edges.size - 2) > 1e-3


def test_streams_of_distinct_points_and_seeds_are_uncorrelated(normals: np.ndarray) -> None:
    other_point = standard_normals(seed=7, pid=point_id(0.01, 0.2), n=N)
    other_seed = standard_normals(seed=8, pid=point_id(0.01, 0.1), n=N)
    for z in (other_point, other_seed):
        assert abs(np.corrcoef(normals, z)[0, 1]) < 5 / np.sqrt(N)
    lagged = np.corrcoef(normals[:-1], normals[1:])[0, 1]
    assert abs(lagged) < 5 / np.sqrt(N)


def test_a_stream_is_a_pure_function_of_seed_and_point() -> None:
    a = standard_normals(seed=3, pid=point_id(0.5, 2.0), n=1000)
    assert np.array_equal(a, standard_normals(seed=3, pid=point_id(0.5, 2.0), n=1000))
    assert np.array_equal(a[:100], standard_normals(seed=3, pid=point_id(0.5, 2.0), n=100))
    assert point_id(0.5, 2.0) != point_id(2.0, 0.5)


def test_buffered_normals_are_those_of_a_word_at_a_time_ziggurat() -> None:
    """A refill turns a buffer of words into normals at once; normal ``j`` must still be the
    ziggurat of word ``j`` of the main stream, with the rejection sub-stream drawn in the order of
    ``j``. Checked against the ziggurat run one word at a time in Python over 4096 normals whose
    draws include rejections in the wedges and one in the tail, and cut at buffer boundaries."""
    seed, pid, n = 7, point_id(0.01, 0.1), 4096
    mask = 0xFFFFFFFF
    expected, rejections, rejected = [], 0, np.uint64(0)
    for j in range(n):
        x = [int(v) for v in philox4x32(*(np.uint64(c) for c in (
            (j // 2) & mask, (j // 2) >> 32, pid & mask, pid >> 32, seed & mask, seed >> 32)))]
        word = np.uint64(x[0] << 32 | x[1] if j % 2 == 0 else x[2] << 32 | x[3])
        z, layer, negative, accepted = rng._ziggurat_try(word)
        if not accepted:
            rejections += 1
            z, j_next = rng._ziggurat_rejection(np.uint64(seed), np.uint64(pid), rejected, z,
                                                layer, negative)
            rejected = np.uint64(j_next)
        expected.append(z)
    assert rejections > 0 and max(abs(z) for z in expected) > 3.6541528853610088
    normals = standard_normals(seed, pid, n)
    assert np.array_equal(normals, expected)
    for m in (1, 63, 64, 65, 129):
        assert np.array_equal(standard_normals(seed, pid, m), normals[:m])
