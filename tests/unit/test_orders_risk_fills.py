from __future__ import annotations

from decimal import Decimal as D

import pytest

from raytrade.domain.instruments import Instrument
from raytrade.domain.orders import OrderIntent, Side, order_id_for
from raytrade.domain.risk import RiskLimits, RiskRules, TradingState
from raytrade.domain.strategy import ThresholdStrategy

BTC = Instrument("BTCUSDT", D("0.01"), D("0.00001"))


def intent(side: Side, qty: str, price: str = "20000", oid: str = "x") -> OrderIntent:
    return OrderIntent(oid, "s", "BTCUSDT", side, D(qty), D(price), 1, 1, 0.6)


def test_strategy_targets_with_hysteresis_and_deterministic_ids() -> None:
    s = ThresholdStrategy("s1", 0.55, 0.45, D("10000"), allow_short=True)
    buy = s.decide(BTC, 0.6, D(0), D("20000"), partition=1, offset=42, ts_event=5, ts_consumed=6)
    assert buy is not None and buy.side is Side.BUY and buy.qty == D("0.5")
    assert buy.order_id == order_id_for("s1", "BTCUSDT", 1, 42) == "s1:BTCUSDT:1:42"
    assert s.decide(BTC, 0.5, D("0.5"), D("20000"), partition=1, offset=43, ts_event=5, ts_consumed=6) is None
    flip = s.decide(BTC, 0.4, D("0.5"), D("20000"), partition=1, offset=44, ts_event=5, ts_consumed=6)
    assert flip is not None and flip.side is Side.SELL and flip.qty == D("1.0")
    long_only = ThresholdStrategy("s2", 0.55, 0.45, D("10000"), allow_short=False)
    exit_ = long_only.decide(BTC, 0.1, D("0.5"), D("20000"), partition=0, offset=1, ts_event=5, ts_consumed=6)
    assert exit_ is not None and exit_.qty == D("0.5") and exit_.side is Side.SELL
    with pytest.raises(ValueError, match="short_below <= long_above"):
        ThresholdStrategy("bad", 0.4, 0.6, D(1), True)


def test_intent_rejects_non_positive_quantities() -> None:
    with pytest.raises(ValueError, match="qty must be > 0"):
        intent(Side.BUY, "0")


def test_risk_limits_and_kill_switch() -> None:
    rules = RiskRules(RiskLimits(D("15000"), D("25000"), D("30000")))
    assert not rules.check(intent(Side.BUY, "1")).approved  # 20k order > 15k
    assert rules.check(intent(Side.BUY, "0.7")).approved  # 14k
    denied = rules.check(intent(Side.BUY, "0.7"))  # projected 28k > 25k position limit
    assert not denied.approved and "position notional" in denied.reason
    assert rules.check(intent(Side.SELL, "0.7")).approved  # reducing is fine
    rules.halt("operator")
    assert rules.state is TradingState.HALTED
    halted = rules.check(intent(Side.SELL, "0.1"))
    assert not halted.approved and halted.reason == "halted: operator"
    rules.resume()
    assert rules.check(intent(Side.BUY, "0.1")).approved


def test_gross_exposure_limit_counts_all_symbols() -> None:
    rules = RiskRules(RiskLimits(D("100000"), D("100000"), D("30000")))
    rules.confirm({"ETHUSDT": D("10")}, {}, seq=1)
    rules.marks["ETHUSDT"] = D("2000")  # 20k gross already
    d = rules.check(intent(Side.BUY, "0.6"))  # +12k -> 32k
    assert not d.approved and "gross exposure" in d.reason


def test_gate_view_takes_executions_positions_and_never_double_counts() -> None:
    rules = RiskRules(RiskLimits(D("100000"), D("25000"), D("100000")))
    a, b = intent(Side.BUY, "0.5", oid="a"), intent(Side.BUY, "0.5", oid="b")
    assert rules.check(a).approved and rules.check(b).approved
    assert rules.position("BTCUSDT") == D("1.0")  # both reserved
    # Execution filled a (confirmed position 0.5 at ledger seq 7); b is still in flight.
    rules.release([a])
    rules.confirm({"BTCUSDT": D("0.5")}, {"BTCUSDT": D(0)}, seq=7)
    assert rules.position("BTCUSDT") == D("1.0")
    # A replayed batch reports a's fill again: the confirmed position is replaced, not added to.
    rules.confirm({"BTCUSDT": D("0.5")}, {}, seq=7)
    assert rules.position("BTCUSDT") == D("1.0")
    # b reached Execution and is working there (not filled yet): it counts as working.
    rules.release([b])
    rules.confirm({"BTCUSDT": D("0.5")}, {"BTCUSDT": D("0.5")}, seq=9)
    assert rules.position("BTCUSDT") == D("1.0") and rules.reserved == {}
    rules.confirm({"BTCUSDT": D("0.2")}, {"BTCUSDT": D(0)}, seq=8)  # a stale read arriving late is ignored
    assert rules.position("BTCUSDT") == D("1.0")
    c = intent(Side.SELL, "0.5", oid="c")
    assert rules.check(c).approved
    rules.release([c])  # the call to Execution failed: the reservation goes away
    assert rules.position("BTCUSDT") == D("1.0")
