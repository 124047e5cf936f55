"""Cost-aware backtest of a signal: positions decided at bar close t earn the return of bar t+1."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from raytrade.domain import performance
from raytrade.training.datasets import Dataset


@dataclass(frozen=True)
class BacktestResult:
    """Portfolio of equal capital per symbol, each in ``{-1, 0, +1}`` units of that capital."""

    sharpe: float  # annualized (ddof=1), net of costs
    sharpe_gross: float  # the same positions without costs
    max_drawdown: float  # worst peak-to-trough fall of the net equity curve, as a fraction
    total_return: float  # net, compounded
    turnover: float  # mean |position change| per bar per symbol
    exposure: float  # mean |position|

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 6) for k, v in self.__dict__.items()}


def threshold_positions(prob_up: np.ndarray, long_above: float, short_below: float, hold: np.ndarray) -> np.ndarray:
    """Target per row in time order of ONE symbol: +1 above, -1 below, else keep; ``hold`` rows keep too."""
    pos = np.empty(len(prob_up))
    cur = 0.0
    for i, (p, h) in enumerate(zip(prob_up.tolist(), hold.tolist(), strict=True)):
        if not h:
            if p > long_above:
                cur = 1.0
            elif p < short_below:
                cur = -1.0
        pos[i] = cur
    return pos


def sharpe(returns: np.ndarray, bars_per_year: float) -> float:
    """:func:`raytrade.domain.performance.sharpe` (ddof=1); 0.0 where undefined (under 2 returns, no dispersion)."""
    value = performance.sharpe(returns, bars_per_year)
    return value if math.isfinite(value) else 0.0


def max_drawdown(returns: np.ndarray) -> float:
    """Worst peak-to-trough fall as a POSITIVE fraction (the negated :func:`raytrade.domain.performance.max_drawdown`),
    0.0 for no returns."""
    return abs(performance.max_drawdown(returns)) if len(returns) else 0.0


def backtest(
    data: Dataset, rows: np.ndarray, positions: np.ndarray, cost_bps: float, bars_per_year: float
) -> BacktestResult:
    """Portfolio returns per bar time from per-row positions (rows sorted by time, then symbol).

    Each symbol's P&L at row ``t`` is ``pos[t] * (exp(next_return[t]) - 1) - cost * |pos[t] - pos[t-1]|``
    (the first row trades from flat); the portfolio return of a bar time is the sum over symbols
    divided by the number of symbols in the dataset (equal capital, idle capital earns nothing).
    """
    cost = cost_bps / 1e4
    sym = data.symbol[rows]
    prev = np.zeros(len(rows))
    for s in np.unique(sym):
        idx = np.flatnonzero(sym == s)
        prev[idx[1:]] = positions[idx[:-1]]
    trade = np.abs(positions - prev)
    gross_row = positions * np.expm1(data.next_return[rows])
    times, inverse = np.unique(data.start[rows], return_inverse=True)
    n_sym = len(data.symbols)
    gross = np.bincount(inverse, weights=gross_row, minlength=len(times)) / n_sym
    net = gross - np.bincount(inverse, weights=trade * cost, minlength=len(times)) / n_sym
    return BacktestResult(
        sharpe=sharpe(net, bars_per_year),
        sharpe_gross=sharpe(gross, bars_per_year),
        max_drawdown=max_drawdown(net),
        total_return=float(np.prod(1.0 + net) - 1.0),
        turnover=float(trade.mean()) if len(trade) else 0.0,
        exposure=float(np.abs(positions).mean()) if len(positions) else 0.0,
    )


def per_symbol_positions(
    data: Dataset, rows: np.ndarray, prob_up: np.ndarray, long_above: float, short_below: float, hold: np.ndarray
) -> np.ndarray:
    """:func:`threshold_positions` applied to each symbol's rows separately."""
    out = np.empty(len(rows))
    sym = data.symbol[rows]
    for s in np.unique(sym):
        idx = np.flatnonzero(sym == s)
        out[idx] = threshold_positions(prob_up[idx], long_above, short_below, hold[idx])
    return out
