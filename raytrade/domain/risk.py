"""Pre-trade risk rules and the trading state machine: the pure core of the RiskGate actor.

States: ACTIVE (orders within limits pass), REDUCING (only orders that shrink a position
toward zero pass), HALTED (nothing passes; the actor cancels every open order). Rules only
escalate (ACTIVE -> REDUCING -> HALTED); an admin command sets any state. Every
transition is a :class:`RiskEvent` with its reason; every decision carries its reason.

Exposure view per symbol: ``confirmed`` (Execution's position, read at ledger sequence
``seq``) + ``working`` (Execution's open orders, signed) + ``reserved`` (intents approved
but not yet answered by Execution). Limits are checked on the projected view *after* the
order, at the order's price; an order that reduces |position| without crossing zero only
faces the trading state, the order-size, fat-finger and rate checks.

Portfolio VaR (when ``max_var`` is set): the loss not exceeded with probability
``var_quantile`` over ``var_horizon_bars`` one-minute bars, of the post-trade exposures,
from the last ``var_window`` aligned bar returns: ``historical`` (empirical quantile of
overlapping h-bar P&L) or ``parametric`` (Gaussian, sample covariance, zero mean). Until
the window holds enough observations for the quantile the VaR check is skipped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum

import numpy as np

from raytrade.domain.bars import Bar
from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.orders import OrderIntent, RiskDecision, Side
from raytrade.domain.portfolio_risk import (
    ReturnWindow,
    correlated_exposure,
    historical_var,
    min_observations,
    parametric_var,
)
from raytrade.domain.stops import AtrTrailingStop

DAY_NS = 86_400 * 10**9
SECOND_NS = 10**9


class TradingState(StrEnum):
    """ACTIVE: trade within limits; REDUCING: only risk-reducing orders; HALTED: nothing (kill switch)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Hard limits in quote currency and instrument units; ``None`` switches a check off."""

    max_order_notional: Decimal
    max_position_notional: Decimal
    max_gross_exposure: Decimal
    max_net_exposure: Decimal | None = None
    max_order_qty: Mapping[str, Decimal] = field(default_factory=dict)
    max_position_qty: Mapping[str, Decimal] = field(default_factory=dict)
    max_orders_per_s: int | None = None
    max_orders_per_s_per_symbol: int | None = None
    price_band: Decimal | None = None  # max |price - last trade| / last trade
    min_cash: Decimal | None = None
    max_var: Decimal | None = None
    var_method: str = "historical"
    var_quantile: float = 0.99
    var_horizon_bars: int = 60
    var_window: int = 500
    max_correlated_exposure: Decimal | None = None
    drawdown_reduce: Decimal | None = None  # fraction below the equity peak -> REDUCING
    drawdown_halt: Decimal | None = None  # -> HALTED
    intraday_reduce: Decimal | None = None  # fraction below the UTC day's opening equity
    intraday_halt: Decimal | None = None
    stop_atr_multiple: float | None = None  # ATR trailing stop per position (None = off)
    stop_atr_period: int = 14

    def __post_init__(self) -> None:
        if self.var_method not in ("historical", "parametric"):
            raise ValueError(f"var_method must be historical or parametric, found {self.var_method!r}")
        for name in ("drawdown_reduce", "drawdown_halt", "intraday_reduce", "intraday_halt", "price_band"):
            v = getattr(self, name)
            if v is not None and not ZERO < v < 1:
                raise ValueError(f"{name} must be a fraction in (0, 1), found {v}")


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One trading-state transition and why."""

    ts: int
    kind: str  # "rule" or "admin"
    state: TradingState
    reason: str


def stop_exit_id(symbol: str, bar_start: int) -> str:
    """The order id of the ATR-stop exit the gate sends on ``symbol``'s bar starting at ``bar_start``."""
    return f"risk:atr_stop:{symbol}:{bar_start}"


def _reduces(current: Decimal, projected: Decimal) -> bool:
    """True when ``projected`` lies between zero and ``current`` (shrinks, never flips)."""
    return abs(projected) < abs(current) and (projected == ZERO or (projected > 0) == (current > 0))


@dataclass(slots=True)
class RiskRules:
    """Check intents against the state and the limits, tracking the gate's own view."""

    limits: RiskLimits
    state: TradingState = TradingState.ACTIVE
    halt_reason: str = ""
    confirmed: dict[str, Decimal] = field(default_factory=dict)
    confirmed_seq: dict[str, int] = field(default_factory=dict)
    account_seq: int = -1
    working: dict[str, Decimal] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)
    reserved_cash: Decimal = ZERO
    marks: dict[str, Decimal] = field(default_factory=dict)
    last_bar: dict[str, int] = field(default_factory=dict)
    cash: Decimal | None = None
    equity: Decimal | None = None
    peak_equity: Decimal | None = None
    day: int | None = None
    day_open_equity: Decimal | None = None
    events: list[RiskEvent] = field(default_factory=list)
    returns: ReturnWindow | None = None
    stops: AtrTrailingStop | None = None
    _recent: deque[tuple[int, str]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        lim = self.limits
        self.returns = ReturnWindow(lim.var_window)
        if lim.stop_atr_multiple is not None:
            self.stops = AtrTrailingStop(lim.stop_atr_multiple, lim.stop_atr_period)

    # -- state ----------------------------------------------------------------------------

    def set_state(self, state: TradingState, reason: str, ts: int, kind: str = "admin") -> RiskEvent | None:
        """Move to ``state`` (admin: any; rule: only up). Returns the event, None if no change."""
        if state is self.state or (kind == "rule" and _RANK[state] < _RANK[self.state]):
            return None
        self.state, self.halt_reason = state, ("" if state is TradingState.ACTIVE else reason)
        if state is TradingState.ACTIVE:
            self.peak_equity = self.equity  # resuming accepts the drawdown: a new baseline
            self.day_open_equity = self.equity
        event = RiskEvent(ts, kind, state, reason)
        self.events.append(event)
        return event

    def halt(self, reason: str, ts: int = 0) -> RiskEvent | None:
        """Engage the kill switch."""
        return self.set_state(TradingState.HALTED, reason, ts)

    def resume(self, ts: int = 0) -> RiskEvent | None:
        """Back to ACTIVE."""
        return self.set_state(TradingState.ACTIVE, "resumed", ts)

    # -- views ----------------------------------------------------------------------------

    def position(self, symbol: str) -> Decimal:
        """Confirmed + working + reserved."""
        return self.confirmed.get(symbol, ZERO) + self.working.get(symbol, ZERO) + self.reserved.get(symbol, ZERO)

    @property
    def positions(self) -> dict[str, Decimal]:
        """The gate's view of every symbol it knows."""
        names = set(self.confirmed) | set(self.working) | set(self.reserved)
        return {s: self.position(s) for s in sorted(names)}

    def exposures(self, override: Mapping[str, Decimal] | None = None) -> dict[str, Decimal]:
        """Signed notional per symbol at the marks (``override`` replaces some positions)."""
        pos = {**self.positions, **(override or {})}
        with localcontext(MONEY_CONTEXT):
            return {s: q * self.marks[s] for s, q in pos.items() if s in self.marks and q != ZERO}

    def gross_exposure(self) -> Decimal:
        """Sum of |position| * mark."""
        with localcontext(MONEY_CONTEXT):
            return sum((abs(v) for v in self.exposures().values()), ZERO)

    def var(self, exposures: Mapping[str, Decimal]) -> tuple[float, int] | None:
        """(VaR, observations) of ``exposures``, or None while the window is too short."""
        lim = self.limits
        symbols = sorted(exposures)
        if not symbols or self.returns is None:
            return None
        returns = self.returns.matrix(symbols)
        scenarios = len(returns) - lim.var_horizon_bars + 1 if lim.var_method == "historical" else len(returns)
        if scenarios < max(min_observations(lim.var_quantile), 2 * len(symbols)):
            return None
        e = np.array([float(exposures[s]) for s in symbols])
        fn = historical_var if lim.var_method == "historical" else parametric_var
        est = fn(returns, e, lim.var_quantile, lim.var_horizon_bars)
        return est.var, est.observations

    # -- market data and account ----------------------------------------------------------

    def on_bar(self, symbol: str, bar: Bar, price: Decimal) -> Decimal | None:
        """Fold in a closed bar (``price`` = its close on the price grid).

        Returns the ATR trailing-stop level if this bar breached the position's stop.
        """
        if bar.start <= self.last_bar.get(symbol, -1):
            return None  # a replayed bar (a shard re-reading after a restart): already folded in
        self.last_bar[symbol] = bar.start
        self.marks[symbol] = price
        day = bar.start // DAY_NS
        if self.day is None or day > self.day:
            self.day, self.day_open_equity = day, self.equity
        if self.returns is not None:
            self.returns.update(symbol, bar.start, bar.close)
        if self.stops is None:
            return None
        level = self.stops.on_bar(symbol, bar, self.confirmed.get(symbol, ZERO))
        return None if level is None else Decimal(repr(level))

    def stop_exit(self, symbol: str, bar: Bar, level: Decimal) -> OrderIntent | None:
        """The market order that closes ``symbol``'s confirmed position after its stop traded."""
        qty = self.confirmed.get(symbol, ZERO) + self.working.get(symbol, ZERO)
        if qty == ZERO:
            return None
        close_ts = bar.end
        return OrderIntent(
            stop_exit_id(symbol, bar.start),
            "risk:atr_stop",
            symbol,
            Side.SELL if qty > 0 else Side.BUY,
            abs(qty),
            self.marks[symbol],
            close_ts,
            close_ts,
            float(level),
        )

    def confirm(
        self,
        positions: Mapping[str, Decimal],
        working: Mapping[str, Decimal],
        seq: int,
        cash: Decimal | None = None,
        equity: Decimal | None = None,
        ts: int = 0,
    ) -> list[RiskEvent]:
        """Take Execution's view read at ledger sequence ``seq`` (older reads are ignored);
        apply the drawdown breakers to the new equity. Returns the transitions it caused."""
        for symbol in set(positions) | set(working):
            if seq >= self.confirmed_seq.get(symbol, -1):
                self.confirmed_seq[symbol] = seq
                self.confirmed[symbol] = positions.get(symbol, self.confirmed.get(symbol, ZERO))
                self.working[symbol] = working.get(symbol, self.working.get(symbol, ZERO))
        if seq < self.account_seq or equity is None:
            return []
        self.account_seq = seq
        if cash is not None:
            self.cash = cash
        self.equity = equity
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        if self.day_open_equity is None:
            self.day_open_equity = equity
        return self._breakers(ts)

    def _breakers(self, ts: int) -> list[RiskEvent]:
        lim, eq = self.limits, self.equity
        if eq is None or lim.drawdown_reduce is lim.drawdown_halt is lim.intraday_reduce is lim.intraday_halt is None:
            return []
        out: list[RiskEvent] = []
        with localcontext(MONEY_CONTEXT):
            for name, base, reduce_at, halt_at in (
                ("drawdown from peak", self.peak_equity, lim.drawdown_reduce, lim.drawdown_halt),
                ("intraday drawdown", self.day_open_equity, lim.intraday_reduce, lim.intraday_halt),
            ):
                if not base or base <= 0:
                    continue
                dd = 1 - eq / base
                for level, state in ((halt_at, TradingState.HALTED), (reduce_at, TradingState.REDUCING)):
                    if level is not None and dd >= level:
                        why = f"{name} {dd:.2%} >= {level:.2%} (equity {eq:.2f} from {base:.2f})"
                        event = self.set_state(state, why, ts, "rule")
                        if event is not None:
                            out.append(event)
                        break
        return out

    # -- decisions ------------------------------------------------------------------------

    def check(self, intent: OrderIntent, now_ns: int = 0) -> RiskDecision:
        """Approve or deny one intent; approval reserves its quantity until :meth:`release`."""
        if self.state is TradingState.HALTED:
            return RiskDecision(intent, False, f"halted: {self.halt_reason}")
        reason = self._deny_reason(intent, now_ns)
        if reason:
            return RiskDecision(intent, False, reason)
        with localcontext(MONEY_CONTEXT):
            s = intent.symbol
            self.reserved[s] = self.reserved.get(s, ZERO) + intent.signed_qty
            if intent.side is Side.BUY:
                self.reserved_cash += intent.qty * self._price(intent)
        self._recent.append((now_ns, intent.symbol))
        return RiskDecision(intent, True)

    @staticmethod
    def _price(intent: OrderIntent) -> Decimal:
        return intent.limit_price or intent.stop_price or intent.ref_price

    def _deny_reason(self, intent: OrderIntent, now_ns: int) -> str:
        lim, s = self.limits, intent.symbol
        price = self._price(intent)
        with localcontext(MONEY_CONTEXT):
            last = self.marks.get(s)
            dev = abs(price - last) / last if last else ZERO
            if lim.price_band is not None and dev > lim.price_band:
                return f"price {price} is {dev:.2%} from the last trade {last} (band {lim.price_band:.2%})"
            notional = intent.qty * price
            if notional > lim.max_order_notional:
                return f"order notional {notional} > max {lim.max_order_notional}"
            max_qty = lim.max_order_qty.get(s)
            if max_qty is not None and intent.qty > max_qty:
                return f"order qty {intent.qty} > max {max_qty} for {s}"
            throttled = self._throttled(s, now_ns)
            if throttled:
                return throttled
            current = self.position(s)
            projected = current + intent.signed_qty
            if _reduces(current, projected):
                return ""
            if self.state is TradingState.REDUCING:
                return f"reducing: only risk-reducing orders pass ({self.halt_reason}); {s} {current} -> {projected}"
            return self._increase_reason(intent, price, projected)

    def _throttled(self, symbol: str, now_ns: int) -> str:
        lim, recent = self.limits, self._recent
        while recent and recent[0][0] <= now_ns - SECOND_NS:
            recent.popleft()
        if lim.max_orders_per_s is not None and len(recent) >= lim.max_orders_per_s:
            return f"rate: {len(recent)} orders in the last second >= max {lim.max_orders_per_s}"
        if lim.max_orders_per_s_per_symbol is not None:
            n = sum(1 for _, s in recent if s == symbol)
            if n >= lim.max_orders_per_s_per_symbol:
                return f"rate: {n} {symbol} orders in the last second >= max {lim.max_orders_per_s_per_symbol}"
        return ""

    def _increase_reason(self, intent: OrderIntent, price: Decimal, projected: Decimal) -> str:
        lim, s = self.limits, intent.symbol
        max_qty = lim.max_position_qty.get(s)
        if max_qty is not None and abs(projected) > max_qty:
            return f"position qty {abs(projected)} > max {max_qty} for {s}"
        if abs(projected) * price > lim.max_position_notional:
            return f"position notional {abs(projected) * price} > max {lim.max_position_notional}"
        marks = self.marks
        old_mark = marks.get(s)
        marks[s] = price
        try:
            after = self.exposures({s: projected})
        finally:
            if old_mark is None:
                del marks[s]
            else:
                marks[s] = old_mark
        gross = sum((abs(v) for v in after.values()), ZERO)
        if gross > lim.max_gross_exposure:
            return f"gross exposure {gross} > max {lim.max_gross_exposure}"
        net = sum(after.values(), ZERO)
        if lim.max_net_exposure is not None and abs(net) > lim.max_net_exposure:
            return f"net exposure {net} beyond +-{lim.max_net_exposure}"
        if lim.min_cash is not None and intent.side is Side.BUY and self.cash is not None:
            left = self.cash - self.reserved_cash - intent.qty * price
            if left < lim.min_cash:
                return f"cash after order {left} < min {lim.min_cash}"
        return self._portfolio_reason(after)

    def _portfolio_reason(self, after: Mapping[str, Decimal]) -> str:
        lim = self.limits
        if lim.max_correlated_exposure is not None and self.returns is not None and len(after) > 1:
            symbols = sorted(after)
            returns = self.returns.matrix(symbols)
            if len(returns) >= 2 * len(symbols):
                ce = correlated_exposure(returns, np.array([float(after[x]) for x in symbols]))
                if ce > float(lim.max_correlated_exposure):
                    return f"correlated exposure {ce:.2f} > max {lim.max_correlated_exposure}"
        if lim.max_var is not None:
            v = self.var(after)
            if v is not None and v[0] > float(lim.max_var):
                how = f"{lim.var_method} {lim.var_quantile:.0%} {lim.var_horizon_bars}-bar"
                return f"VaR ({how}, {v[1]} obs) {v[0]:.2f} > max {lim.max_var}"
        return ""

    # -- settlement -----------------------------------------------------------------------

    def release(self, approved: Iterable[OrderIntent]) -> None:
        """Drop the reservations of ``approved`` intents (answered by Execution, or failed)."""
        with localcontext(MONEY_CONTEXT):
            for intent in approved:
                left = self.reserved.get(intent.symbol, ZERO) - intent.signed_qty
                if left == ZERO:
                    self.reserved.pop(intent.symbol, None)
                else:
                    self.reserved[intent.symbol] = left
                if intent.side is Side.BUY:
                    self.reserved_cash -= intent.qty * self._price(intent)
