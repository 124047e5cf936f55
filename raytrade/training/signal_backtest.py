"""Backtest of a signal through the paper broker: positions decided at bar close t trade on bar t+1."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from raytrade.domain import performance
from raytrade.domain.bar_simulator import BarSimulator
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.paper_broker import FeeSchedule, PaperBrokerConfig
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


@dataclass(frozen=True)
class Costs:
    """The paper broker's costs the evaluation trades under (``raytrade run``'s defaults), and the size
    of one unit of position per symbol (impact depends on the quantity against the bar's volume)."""

    fee_bps: float = 2.0
    half_spread_bps: float = 0.5
    impact_coef: float = 1.0
    max_participation: float | None = 0.1
    notional: float = 10_000.0

    def broker(self, gross: bool = False) -> PaperBrokerConfig:
        """The paper broker's settings (``gross``: no fee, spread, impact or volume cap), no latency."""
        if gross:
            return PaperBrokerConfig(FeeSchedule(ZERO, ZERO), ZERO, 0.0, None, 0)
        fees = FeeSchedule(Decimal(repr(self.fee_bps)), ZERO)
        return PaperBrokerConfig(fees, Decimal(repr(self.half_spread_bps)), self.impact_coef, self.max_participation, 0)


# Evaluation instruments: a fine grid, so that rounding does not move the comparison between models.
FINE = Decimal("0.00000001")


def simulate(
    data: Dataset,
    rows: np.ndarray,
    units: np.ndarray,
    config: PaperBrokerConfig,
    notional: float,
    instruments: Mapping[str, Instrument] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Trade each symbol's ``units`` (rows in time order) through :class:`BarSimulator`; (per-row P&L
    as a fraction of ``notional``, NaN on each symbol's last row, which has no next bar; fills)."""
    pnl = np.full(len(rows), np.nan)
    fills = np.zeros(len(rows))
    sym = data.symbol[rows]
    for s in np.unique(sym):
        idx = np.flatnonzero(sym == s)
        if len(idx) < 2:
            continue
        name = data.symbols[int(s)]
        inst = (instruments or {}).get(name) or Instrument(name, FINE, FINE)
        bars = data.bars(rows[idx])
        sim = BarSimulator(inst, bars, config, Decimal(repr(notional)))
        for k in range(len(idx) - 1):
            before = sim.fills
            pnl[idx[k]] = sim.step(int(units[idx[k]])).pnl / notional
            fills[idx[k]] = sim.fills - before
    return pnl, fills


def backtest(
    data: Dataset,
    rows: np.ndarray,
    positions: np.ndarray,
    costs: Costs,
    bars_per_year: float,
    instruments: Mapping[str, Instrument] | None = None,
) -> BacktestResult:
    """Portfolio returns per bar time from per-row target units (rows sorted by time, then symbol).

    Each symbol trades its targets through the paper broker (:class:`BarSimulator`): a target decided
    at row ``t``'s close fills on the next bar (its open, moved by the half spread and the square-root
    impact of one unit of ``costs.notional``, within the bar's range and volume cap) and pays the fee.
    A row's return is its P&L over the next bar / ``notional``; the portfolio return of a bar time is
    the sum over symbols divided by the number of symbols (equal capital, idle capital earns nothing).
    ``sharpe_gross`` trades the same targets with no costs at all.
    """
    net_rows, _ = simulate(data, rows, positions, costs.broker(), costs.notional, instruments)
    gross_rows, _ = simulate(data, rows, positions, costs.broker(gross=True), costs.notional, instruments)
    ok = ~np.isnan(net_rows)
    times, inverse = np.unique(data.start[rows][ok], return_inverse=True)
    n_sym = len(data.symbols)
    net = np.bincount(inverse, weights=net_rows[ok], minlength=len(times)) / n_sym
    gross = np.bincount(inverse, weights=gross_rows[ok], minlength=len(times)) / n_sym
    sym = data.symbol[rows]
    prev = np.zeros(len(rows))
    for s in np.unique(sym):
        idx = np.flatnonzero(sym == s)
        prev[idx[1:]] = positions[idx[:-1]]
    trade = np.abs(positions - prev)
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
