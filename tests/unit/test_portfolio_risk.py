from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from raytrade.domain.portfolio_risk import (
    ReturnWindow,
    VarEstimate,
    correlated_exposure,
    correlation_matrix,
    historical_var,
    horizon_returns,
    min_observations,
    parametric_var,
)

REL = 1e-12


def five_losses_and_95_small_gains() -> np.ndarray:
    """100 one-symbol returns: -5%, -4%, -3%, -2%, -1% and 95 bars of +0.1%, shuffled."""
    values = np.array([-0.05, -0.04, -0.03, -0.02, -0.01] + [0.001] * 95)
    return np.random.default_rng(7).permutation(values).reshape(100, 1)


def with_exact_covariance(cov: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Rows whose sample covariance (ddof=1) is exactly ``cov`` up to rounding: whiten noise, then colour it."""
    x = np.random.default_rng(seed).standard_normal((rows, cov.shape[0]))
    x -= x.mean(axis=0)
    white = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return white @ np.linalg.cholesky(cov).T


def test_min_observations_ignores_float_noise() -> None:
    assert math.ceil(1.0 / (1.0 - 0.9)) == 11  # the float noise the rounding removes: 1 - 0.9 < 0.1 in binary
    assert min_observations(0.99) == 100
    assert min_observations(0.95) == 20
    assert min_observations(0.975) == 40
    assert min_observations(0.9) == 10
    assert min_observations(0.7) == 4  # 1/0.3 = 3.33 -> 4


def test_historical_var_hand_computed_100_scenarios() -> None:
    r = five_losses_and_95_small_gains()
    # P&L of 10 000 long: -500, -400, -300, -200, -100 and 95 x +10.
    # q=0.95: lower quantile index floor(99 * 0.05) = 4 -> the 5th worst, -100; the tail is the 5 losses.
    est = historical_var(r, np.array([10_000.0]), 0.95)
    assert est.method == "historical" and est.quantile == 0.95 and est.horizon_bars == 1 and est.observations == 100
    assert est.var == pytest.approx(100.0, rel=REL)
    assert est.cvar == pytest.approx(300.0, rel=REL)  # mean(500, 400, 300, 200, 100)
    # q=0.99: index floor(99 * 0.01) = 0 -> the worst scenario alone.
    est99 = historical_var(r, np.array([10_000.0]), 0.99)
    assert est99.var == pytest.approx(500.0, rel=REL) and est99.cvar == pytest.approx(500.0, rel=REL)
    # q=0.9: index floor(99 * 0.1) = 9 -> a +10 scenario: a gain, so VaR is 0. Every scenario ties at or below +10,
    # so the tail is all 100: mean (-1500 + 95 * 10) / 100 = -5.5 -> CVaR 5.5 (still a loss on average).
    est90 = historical_var(r, np.array([10_000.0]), 0.9)
    assert est90.var == 0.0
    assert est90.cvar == pytest.approx(5.5, rel=1e-12)


def test_historical_var_two_symbols_hand_computed() -> None:
    # 10 scenarios; long 1000 of A, short 500 of B: pnl = 1000*a - 500*b.
    a = np.array([0.01, -0.02, 0.03, 0.00, -0.01, 0.02, -0.03, 0.01, 0.00, 0.02])
    b = np.array([0.02, 0.02, -0.01, 0.04, 0.00, 0.01, -0.02, 0.00, 0.01, -0.02])
    pnl = [0.0, -30.0, 35.0, -20.0, -10.0, 15.0, -20.0, 10.0, -5.0, 30.0]
    assert np.allclose(np.column_stack([a, b]) @ np.array([1000.0, -500.0]), pnl)
    # q=0.8: index floor(9 * 0.2) = 1 -> second worst of sorted [-30, -20, -20, -10, ...] = -20; tail = {-30,-20,-20}.
    est = historical_var(np.column_stack([a, b]), np.array([1000.0, -500.0]), 0.8)
    assert est.var == pytest.approx(20.0, rel=REL)
    assert est.cvar == pytest.approx(70.0 / 3.0, rel=REL)
    assert est.observations == 10


def test_short_position_loses_on_up_moves() -> None:
    up = np.full((20, 1), 0.01)
    up[::2] = 0.02  # every bar is an up move: +1% or +2%
    long_ = historical_var(up, np.array([1000.0]), 0.95)
    short = historical_var(up, np.array([-1000.0]), 0.95)
    assert long_.var == 0.0 and long_.cvar == 0.0  # a long only gains: no loss to report
    # short P&L: 10 x -20 and 10 x -10; index floor(19 * 0.05) = 0 -> -20; tail = the ten -20s.
    assert short.var == pytest.approx(20.0, rel=REL) and short.cvar == pytest.approx(20.0, rel=REL)


def test_horizon_uses_overlapping_summed_returns() -> None:
    r = np.array([0.01, -0.02, 0.03, -0.04, 0.05, -0.01, 0.02, -0.03, 0.01, 0.00, -0.02]).reshape(11, 1)
    sums = horizon_returns(r, 2)[:, 0]
    expected = [-0.01, 0.01, -0.01, 0.01, 0.04, 0.01, -0.01, -0.02, 0.01, -0.02]
    assert sums.tolist() == pytest.approx(expected, abs=1e-15)
    assert np.array_equal(horizon_returns(r, 1), r)
    # 11 rows, h=2 -> 10 scenarios, enough for q=0.9: index floor(9 * 0.1) = 0 -> worst 2-bar P&L = -0.02 * 100.
    est = historical_var(r, np.array([100.0]), 0.9, horizon_bars=2)
    assert est.observations == 10 and est.horizon_bars == 2
    assert est.var == pytest.approx(2.0, rel=1e-9) and est.cvar == pytest.approx(2.0, rel=1e-9)
    # h=3 over the same rows matches a brute-force rolling sum.
    brute = np.array([r[i : i + 3, 0].sum() for i in range(9)])
    assert np.allclose(horizon_returns(r, 3)[:, 0], brute, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"9 3-bar scenarios are too few for quantile 0\.9: need at least 10"):
        historical_var(r, np.array([100.0]), 0.9, horizon_bars=3)


def test_parametric_matches_closed_form_on_a_known_covariance() -> None:
    cov = np.array([[0.0004, 0.0001], [0.0001, 0.0009]])
    r = with_exact_covariance(cov, 250, seed=3)
    assert np.allclose(np.cov(r, rowvar=False), cov, rtol=1e-12, atol=0)
    e = np.array([1000.0, -2000.0])
    # e' S e = 1e6 * 4e-4 + 4e6 * 9e-4 - 2 * 1000 * 2000 * 1e-4 = 400 + 3600 - 400 = 3600 -> sigma_p = 60.
    z = 2.3263478740408408  # norm.ppf(0.99)
    assert z == pytest.approx(float(norm.ppf(0.99)), rel=1e-15)
    est = parametric_var(r, e, 0.99)
    assert est == VarEstimate("parametric", 0.99, 1, est.var, est.cvar, 250)
    assert est.var == pytest.approx(60.0 * z, rel=1e-10)
    assert est.cvar == pytest.approx(60.0 * float(norm.pdf(z)) / 0.01, rel=1e-10)
    assert est.cvar == pytest.approx(159.9128, rel=1e-6)
    # A 4-bar horizon doubles both (sqrt(4)); the covariance still uses all 250 rows.
    est4 = parametric_var(r, e, 0.99, horizon_bars=4)
    assert est4.var == pytest.approx(2 * est.var, rel=1e-14) and est4.cvar == pytest.approx(2 * est.cvar, rel=1e-14)
    assert est4.observations == 250
    # A short of the same size has the same (symmetric) Gaussian risk.
    assert parametric_var(r, -e, 0.99).var == pytest.approx(est.var, rel=1e-14)


def test_historical_converges_to_parametric_on_a_large_gaussian_sample() -> None:
    rng = np.random.default_rng(20240611)
    cov = np.array([[1.0e-4, 0.3e-4, -0.2e-4], [0.3e-4, 2.25e-4, 0.1e-4], [-0.2e-4, 0.1e-4, 0.64e-4]])
    r = rng.multivariate_normal(np.zeros(3), cov, size=200_000)
    e = np.array([5000.0, -3000.0, 8000.0])
    for q, h in ((0.99, 1), (0.95, 1), (0.975, 4)):
        hist = historical_var(r, e, q, h)
        para = parametric_var(r, e, q, h)
        assert hist.var == pytest.approx(para.var, rel=0.02), (q, h)
        assert hist.cvar == pytest.approx(para.cvar, rel=0.02), (q, h)
    # And the parametric sigma is the true one up to sampling error: e' cov e = 5641 -> sigma 75.11 per bar.
    exact_sigma = math.sqrt(float(e @ cov @ e))
    assert parametric_var(r, e, 0.99).var == pytest.approx(float(norm.ppf(0.99)) * exact_sigma, rel=0.01)


def test_validation_errors() -> None:
    r = np.zeros((100, 2))
    e = np.array([1.0, 2.0])
    for fn in (historical_var, parametric_var):
        with pytest.raises(ValueError, match=r"returns must be a \(T, n\) matrix, found shape \(100,\)"):
            fn(np.zeros(100), e)
        with pytest.raises(ValueError, match=r"exposures must have shape \(2,\)"):
            fn(r, np.array([1.0, 2.0, 3.0]))
        with pytest.raises(ValueError, match="at least one symbol"):
            fn(np.zeros((100, 0)), np.zeros(0))
        for q in (0.5, 1.0, 0.3, 1.2):
            with pytest.raises(ValueError, match=r"quantile must be in \(0.5, 1\)"):
                fn(r, e, q)
        for h in (0, -1, True):
            with pytest.raises(ValueError, match="horizon_bars must be a positive integer"):
                fn(r, e, 0.99, h)
        with pytest.raises(ValueError, match=r"99 .* too few for quantile 0\.99: need at least 100"):
            fn(r[:99], e, 0.99)
        bad = r.copy()
        bad[5, 1] = np.nan
        with pytest.raises(ValueError, match="must be finite"):
            fn(bad, e)
        with pytest.raises(ValueError, match="must be finite"):
            fn(r, np.array([1.0, np.inf]))
        assert fn(r[:20], e, 0.95).var == 0.0  # exactly enough rows is accepted
    with pytest.raises(ValueError, match="must be finite"):
        correlated_exposure(np.array([[0.1, np.nan], [0.2, 0.3]]), e)
    with pytest.raises(ValueError, match="T >= 2"):
        correlated_exposure(np.zeros((1, 2)), e)


def test_correlated_exposure_limits() -> None:
    a = np.array([0.01, -0.02, 0.03, 0.005, -0.01])
    perfectly = np.column_stack([a, 2.0 * a, 0.5 * a + 0.001])  # positive affine maps: every correlation is 1
    assert correlated_exposure(perfectly, np.array([100.0, 200.0, 300.0])) == pytest.approx(600.0, rel=1e-12)
    # Perfectly correlated long and short of equal size hedge to nothing.
    assert correlated_exposure(perfectly[:, :2], np.array([100.0, -100.0])) == pytest.approx(0.0, abs=1e-5)
    # Orthogonal zero-mean columns are uncorrelated: sqrt(3^2 + 4^2 + 12^2) = 13.
    uncorrelated = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=float) * 0.01
    assert correlated_exposure(uncorrelated, np.array([3.0, 4.0, 12.0])) == pytest.approx(13.0, rel=1e-14)
    # A constant column is uncorrelated with everything: sqrt(13^2 + 84^2) = 85.
    with_flat = np.column_stack([uncorrelated, np.full(4, 0.1)])
    corr = correlation_matrix(with_flat)
    assert corr[3].tolist() == [0.0, 0.0, 0.0, 1.0] and corr[:, 3].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert correlated_exposure(with_flat, np.array([3.0, 4.0, 12.0, 84.0])) == pytest.approx(85.0, rel=1e-14)
    # Perfect anti-correlation: a long in each of two opposite symbols nets out.
    anti = np.column_stack([a, -a])
    assert correlated_exposure(anti, np.array([300.0, 100.0])) == pytest.approx(200.0, rel=1e-12)


def test_correlated_exposure_against_numpy_corrcoef() -> None:
    r = np.random.default_rng(5).standard_normal((50, 4))
    e = np.array([1.0, -2.0, 3.0, 0.5])
    expected = math.sqrt(float(e @ np.corrcoef(r, rowvar=False) @ e))
    assert correlated_exposure(r, e) == pytest.approx(expected, rel=1e-12)


def test_return_window_alignment_and_eviction() -> None:
    w = ReturnWindow(3)
    for t, close in ((1, 100.0), (2, 110.0), (3, 99.0), (4, 99.0), (5, 108.9)):
        w.update("A", t, close)  # returns: t2 +10%, t3 -10%, t4 0, t5 +10%; size 3 evicts t2
    for t, close in ((1, 50.0), (2, 55.0), (4, 44.0), (5, 44.0)):
        w.update("B", t, close)  # returns: t2 +10%, t4 -20% (from t2's close: t3 is missing), t5 0
    w.update("B", 3, 1000.0)  # not later than B's last bar (t5): ignored
    w.update("B", 5, 1000.0)  # same start again: ignored
    assert w.matrix(["A"])[:, 0].tolist() == pytest.approx([-0.1, 0.0, 0.1], abs=1e-15)
    assert w.matrix(["B"])[:, 0].tolist() == pytest.approx([0.1, -0.2, 0.0], abs=1e-15)
    both = w.matrix(["A", "B"])  # common starts: t4, t5
    assert both.shape == (2, 2)
    assert np.allclose(both, [[0.0, -0.2], [0.1, 0.0]], rtol=0, atol=1e-15)
    assert np.allclose(w.matrix(["B", "A"]), [[-0.2, 0.0], [0.0, 0.1]], rtol=0, atol=1e-15)
    # Bad closes are ignored: the next good close's return is from the last good one.
    w.update("A", 6, 0.0)
    w.update("A", 7, float("nan"))
    w.update("A", 8, -5.0)
    w.update("A", 9, float("inf"))
    w.update("A", 10, 119.79)
    assert w.matrix(["A"])[:, 0].tolist() == pytest.approx([0.0, 0.1, 0.1], abs=1e-12)  # not the cached one
    assert not w.matrix(["A"]).flags.writeable  # cached matrices are shared: read-only
    assert [len(s.returns) for s in w._series.values()] == [3, 3]  # bounded memory per symbol
    assert w.matrix(["A", "C"]).shape == (0, 2)  # an unknown symbol has no returns
    assert w.matrix([]).shape == (0, 0)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        ReturnWindow(0)


def test_return_window_feeds_var() -> None:
    w = ReturnWindow(100)
    closes = 100.0 * np.cumprod(1.0 + np.where(np.arange(101) % 2 == 0, 0.01, -0.01))
    for t, c in enumerate(closes):
        w.update("X", t, float(c))
    m = w.matrix(["X"])
    assert m.shape == (100, 1)
    assert m[:, 0].tolist() == pytest.approx([-0.01, 0.01] * 50, abs=1e-14)
    est = historical_var(m, np.array([-1000.0]), 0.99)
    assert est.var == pytest.approx(10.0, rel=1e-10) and est.cvar == pytest.approx(10.0, rel=1e-10)
