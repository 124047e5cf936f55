"""Signal metrics and the cost-aware backtest, against numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from raytrade.training.datasets import Dataset
from raytrade.training.metrics import hit_rate, information_coefficient, rank_ic
from raytrade.training.signal_backtest import backtest, max_drawdown, per_symbol_positions


def two_symbol_data(next_returns: list[tuple[float, float]]) -> Dataset:
    n = len(next_returns)
    nr = np.array(next_returns).reshape(-1)
    return Dataset(
        x=np.zeros((2 * n, 11)),
        forward_return=nr,
        next_return=nr,
        start=np.repeat(np.arange(n) * 60, 2),
        close=np.ones(2 * n),
        symbol=np.tile(np.array([0, 1], dtype=np.int32), n),
        symbols=("A", "B"),
        horizon=1,
        _prev=np.arange(2 * n),
    )


def test_metrics() -> None:
    f = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    assert information_coefficient(f * 3 + 1, f) == pytest.approx(1.0)
    assert rank_ic(np.exp(f * 100), f) == pytest.approx(1.0)  # monotone but not linear
    assert information_coefficient(np.ones(5), f) == 0.0
    assert hit_rate(np.array([0.6, 0.4, 0.4, 0.9, 0.1]), f) == pytest.approx(3 / 4)  # the zero return is skipped


def test_backtest_charges_costs_on_position_changes_and_splits_capital() -> None:
    data = two_symbol_data([(np.log(1.01), np.log(0.98)), (np.log(1.02), np.log(1.05))])
    rows = np.arange(4)
    # A: long, long. B: short, flat.
    res = backtest(data, rows, np.array([1.0, -1.0, 1.0, 0.0]), cost_bps=10.0, bars_per_year=1.0)
    bar1 = (0.01 - 0.001 + 0.02 - 0.001) / 2  # A long +1% pays entry; B short earns 2%, pays entry
    bar2 = (0.02 + 0.0 - 0.001) / 2  # A holds (no cost); B closes the short (cost), flat earns nothing
    assert res.total_return == pytest.approx((1 + bar1) * (1 + bar2) - 1, abs=1e-6)
    assert res.turnover == pytest.approx(3 / 4)
    assert res.max_drawdown == 0.0
    assert max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    # Hysteresis: between the thresholds a position is kept; a held (anomalous) row never trades.
    probs = np.array([0.6, 0.5, 0.5, 0.2])
    keep = np.array([False, False, False, True])
    data2 = two_symbol_data([(0, 0), (0, 0)])
    np.testing.assert_array_equal(per_symbol_positions(data2, rows, probs, 0.55, 0.45, keep), [1.0, 0.0, 1.0, 0.0])
