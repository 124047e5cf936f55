"""Signal metrics and the cost-aware backtest, against numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from raytrade.training.datasets import Dataset
from raytrade.training.metrics import hit_rate, information_coefficient, rank_ic
from raytrade.training.signal_backtest import Costs, backtest, max_drawdown, per_symbol_positions


def two_symbol_data(bars: list[tuple[tuple[float, ...], tuple[float, ...]]]) -> Dataset:
    """Rows of two symbols per time; each bar (open, high, low, close)."""
    n = len(bars)
    flat = [b for pair in bars for b in pair]
    col = np.array(flat, dtype=np.float64)
    return Dataset(
        x=np.zeros((2 * n, 11)),
        forward_return=np.zeros(2 * n),
        next_return=np.zeros(2 * n),
        start=np.repeat(np.arange(n) * 60_000_000_000, 2),
        close=col[:, 3],
        symbol=np.tile(np.array([0, 1], dtype=np.int32), n),
        symbols=("A", "B"),
        horizon=1,
        _prev=np.arange(2 * n),
        open=col[:, 0],
        high=col[:, 1],
        low=col[:, 2],
        volume=np.full(2 * n, 1e6),
    )


def test_metrics() -> None:
    f = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
    assert information_coefficient(f * 3 + 1, f) == pytest.approx(1.0)
    assert rank_ic(np.exp(f * 100), f) == pytest.approx(1.0)  # monotone but not linear
    assert information_coefficient(np.ones(5), f) == 0.0
    assert hit_rate(np.array([0.6, 0.4, 0.4, 0.9, 0.1]), f) == pytest.approx(3 / 4)  # the zero return is skipped


def test_backtest_trades_through_the_paper_broker_and_splits_capital() -> None:
    data = two_symbol_data(
        [
            ((100.0, 100.0, 100.0, 100.0), (50.0, 50.0, 50.0, 50.0)),
            ((100.5, 101.0, 100.5, 101.0), (49.5, 49.5, 49.0, 49.0)),
            ((101.5, 102.0, 101.5, 102.0), (48.5, 48.5, 48.0, 48.0)),
        ]
    )
    rows = np.arange(6)
    costs = Costs(fee_bps=10.0, half_spread_bps=0.0, impact_coef=0.0, max_participation=None, notional=100.0)
    # A: long, long (held: no re-sizing), -. B: short, flat, -. The last row has no next bar.
    res = backtest(data, rows, np.array([1.0, -1.0, 1.0, 0.0, 0.0, 0.0]), costs, bars_per_year=1.0)
    a1 = ((101 - 100.5) * 1 - 100.5 * 0.001) / 100  # bought 1 at the next open 100.5, marked at 101, fee
    b1 = (-2 * (49 - 49.5) - 49.5 * 2 * 0.001) / 100  # sold 2 (100 / 50) at 49.5
    a2 = (102 - 101) * 1 / 100  # held
    b2 = (-2 * (48.5 - 49) - 48.5 * 2 * 0.001) / 100  # bought back at the next open 48.5
    t1, t2 = (a1 + b1) / 2, (a2 + b2) / 2
    assert res.total_return == pytest.approx((1 + t1) * (1 + t2) - 1, rel=1e-12)
    gross = backtest(data, rows, np.array([1.0, -1.0, 1.0, 0.0, 0.0, 0.0]), Costs(0.0, 0.0, 0.0, None, 100.0), 1.0)
    assert gross.total_return > res.total_return
    assert res.turnover == pytest.approx(4 / 6)  # |change| per row: A 1, 0, 1; B 1, 1, 0
    assert res.max_drawdown == 0.0
    assert max_drawdown(np.array([0.1, -0.5, 0.2])) == pytest.approx(0.5)
    # Hysteresis: between the thresholds a position is kept; a held (anomalous) row never trades.
    probs = np.array([0.6, 0.5, 0.5, 0.2])
    keep = np.array([False, False, False, True])
    data2 = two_symbol_data([((1.0,) * 4, (1.0,) * 4)] * 2)
    got = per_symbol_positions(data2, np.arange(4), probs, 0.55, 0.45, keep)
    np.testing.assert_array_equal(got, [1.0, 0.0, 1.0, 0.0])
