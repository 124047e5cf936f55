"""The backtest lets quiet groups wait for the next gate/Execution call (``Backtest._may_defer``). It must
change nothing anyone can observe: the same fills, the same equity curve, and the same equity each
strategy reads (per shard, as of its own last group), with and without breakers, on real bars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from raytrade.backtest.data import load_market, parse_time
from raytrade.backtest.runner import Backtest, fresh_output
from raytrade.cluster.config import config_from_dict
from raytrade.domain.bars import Bar
from raytrade.domain.order_lifecycle import OrderEvent
from raytrade.domain.orders import OrderType, Side
from raytrade.strategy.base import Strategy
from raytrade.strategy.builtins import SmaCross

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "crypto_1m_2023-01"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real market data not found at {DATA}")

SYMBOLS = {"BTCUSDT": ("0.01", "0.00001"), "ETHUSDT": ("0.01", "0.0001"), "XRPUSDT": ("0.0001", "1")}


class EquitySized(Strategy):
    """Reads its equity on every bar; every 97th bar of a symbol flips between 1% of equity long and flat."""

    uses_features = False

    def __init__(self, strategy_id: str, params: Any = None) -> None:
        super().__init__(strategy_id, params)
        self.count: dict[str, int] = {}
        self.seen: list[tuple[str, int, Decimal]] = []

    def on_bar(self, symbol: str, bar: Bar, features: Any, score: float | None) -> None:
        equity = self.ctx.equity
        self.seen.append((symbol, bar.start, equity))
        n = self.count[symbol] = self.count.get(symbol, 0) + 1
        if n % 97 == 0:
            qty = (equity * Decimal("0.01") / Decimal(repr(bar.close))).quantize(Decimal("0.0001"))
            self.ctx.target_position(symbol, qty if (n // 97) % 2 else Decimal(0))


def config(breakers: bool) -> Any:
    raw = {
        "kafka": {"partitions": 2},
        "instruments": [{"symbol": s, "price_increment": p, "size_increment": q} for s, (p, q) in SYMBOLS.items()],
        "strategies": [{"id": "eq", "path": "raytrade.strategy.builtins:BuyAndHold", "params": {"qty": "1"}}],
        "model": None,
        "risk": {
            "max_order_notional": "10000000",
            "max_position_notional": "10000000",
            "max_gross_exposure": "100000000",
            "drawdown_halt": "0.000005" if breakers else None,  # halts within the slice: the breaker is live
            "drawdown_reduce": None,
        },
        "execution": {"initial_cash": "10000000", "fee_bps": "1"},
        "backtest": {"fills": "next_bar_open"},
    }
    return config_from_dict(raw)


def run(tmp: Path, breakers: bool, defer: bool, kind: str) -> dict[str, Any]:
    cfg = config(breakers)
    every = [*SYMBOLS, "SOLUSDT"]
    data = load_market(DATA, every, parse_time("2023-01-03", "start"), parse_time("2023-01-06", "end"), list(SYMBOLS))
    strategies: list[Strategy] = []

    def make() -> list[Strategy]:
        s: Strategy = EquitySized("eq") if kind == "equity" else SmaCross("sma", {"fast": 5, "slow": 20, "qty": "1"})
        strategies.append(s)
        return [s]

    bt = Backtest(cfg, None, make, str(fresh_output(tmp / f"{kind}-{breakers}-{defer}")))
    if not defer:
        bt._may_defer = lambda: False  # type: ignore[method-assign]
    out = bt.run(data)
    fills = [(f.fill_id, f.qty, f.price, f.ts) for f in out.core.ledger.fills()]
    return {
        "fills": fills,
        "curve": (np.asarray(out.curve.ts), np.asarray(out.curve.equity), np.asarray(out.curve.gross)),
        "seen": [getattr(s, "seen", None) for s in strategies],
        "state": out.gate.rules.state,
        "events": out.core.ledger.risk_events(),
        "marks": out.core.ledger.bar_marks(),
        "deferred_calls": out.core.calls,
    }


@pytest.mark.parametrize(("kind", "breakers"), [("equity", False), ("equity", True), ("sma", False), ("sma", True)])
def test_waiting_groups_change_nothing_observable(tmp_path: Path, kind: str, breakers: bool) -> None:
    direct = run(tmp_path, breakers, False, kind)
    waited = run(tmp_path, breakers, True, kind)
    assert direct["fills"] and waited["fills"] == direct["fills"]
    for a, b in zip(direct["curve"], waited["curve"], strict=True):
        assert np.array_equal(a, b)
    assert waited["seen"] == direct["seen"]
    assert waited["state"] == direct["state"] and waited["events"] == direct["events"]
    assert waited["marks"] == direct["marks"]
    if breakers:
        assert direct["events"], "the drawdown breaker should have fired"
    # SmaCross never reads its equity: its quiet groups waited (fewer Execution calls). EquitySized reads it on
    # every bar, which brings the account up to date each time: one call per group, as without waiting.
    # With a breaker on, only groups on a flat account wait.
    if kind == "sma":
        assert waited["deferred_calls"] < direct["deferred_calls"] * (0.99 if breakers else 0.5)
    else:
        assert waited["deferred_calls"] == direct["deferred_calls"]


class HaltScript(Strategy):
    """Two shards: AAA (partition 0) buys and sells at a loss, which trips the drawdown breaker; CCC (partition 1)
    rests a limit order the kill switch cancels, and later sends an order the halted gate refuses."""

    uses_features = False

    def __init__(self, strategy_id: str, params: Any = None) -> None:
        super().__init__(strategy_id, params)
        self.count: dict[str, int] = {}
        self.log: list[tuple[Any, ...]] = []

    def on_bar(self, symbol: str, bar: Bar, features: Any, score: float | None) -> None:
        n = self.count[symbol] = self.count.get(symbol, 0) + 1
        if symbol == "AAA" and n in (2, 5):
            self.ctx.target_position("AAA", Decimal(1 if n == 2 else 0))
        if symbol == "CCC":
            if n == 2:
                self.ctx.order("CCC", Side.BUY, Decimal(1), OrderType.LIMIT, limit_price=Decimal(10))
            if n == 6:  # its first bar after the halt: its shard does not know yet, the gate refuses
                self.ctx.target_position("CCC", Decimal(2))
            self.log.append((n, self.ctx.position("CCC")))

    def on_order_event(self, event: OrderEvent) -> None:
        self.log.append((event.order_id, event.kind.value, event.reason))


def test_a_kill_switch_in_one_shard_reaches_the_other_as_without_waiting(tmp_path: Path) -> None:
    """CCC's shard learns of the cancellation from its next reply, and its later order is refused by the gate
    (not dropped by the shard): the ledger, the events and the positions a strategy reads are as without waiting."""
    m, t0 = 60 * 10**9, 1_700_000_000 * 10**9 // (60 * 10**9) * (60 * 10**9)
    closes = [100.0, 101.0, 102.0, 103.0, 104.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0]
    rows = [("AAA", t0 + i * m, c, c, c, c, 1000.0) for i, c in enumerate(closes)]
    rows += [("CCC", t0 + i * m, 50.0, 50.0, 50.0, 50.0, 1000.0) for i in range(len(closes)) if i != 5]
    pl.DataFrame(rows, schema=["symbol", "ts", "open", "high", "low", "close", "volume"], orient="row").write_csv(
        tmp_path / "bars.csv"
    )
    cfg = config_from_dict(
        {
            "kafka": {"partitions": 2},
            "instruments": [{"symbol": s, "price_increment": "0.01", "size_increment": "1"} for s in ("AAA", "CCC")],
            "strategies": [{"id": "s", "path": "raytrade.strategy.builtins:BuyAndHold", "params": {"qty": "1"}}],
            "model": None,
            "risk": {"drawdown_halt": "0.00001", "drawdown_reduce": None, "price_band": None},
            "execution": {"initial_cash": "100000", "fee_bps": "0"},
            "backtest": {"fills": "next_bar_open"},
        }
    )
    outcomes = []
    for defer in (False, True):
        scripts: list[HaltScript] = []

        def make(scripts: list[HaltScript] = scripts) -> list[Strategy]:
            scripts.append(HaltScript("s"))  # one instance per shard
            return [scripts[-1]]

        bt = Backtest(cfg, None, make, str(fresh_output(tmp_path / str(defer))))
        if not defer:
            bt._may_defer = lambda: False  # type: ignore[method-assign]
        out = bt.run(load_market(tmp_path / "bars.csv", ["AAA", "CCC"]))
        log = [entry for script in scripts for entry in script.log]
        outcomes.append((out.core.ledger.status_counts(), out.core.ledger.risk_events(), log, out.gate.denied))
    assert outcomes[0] == outcomes[1]
    statuses, events, log, denied = outcomes[0]
    assert statuses == {"FILLED": 2, "CANCELLED": 1, "REJECTED": 1} and denied == 1 and len(events) == 1
    assert (9, Decimal(0)) in log  # CCC's view lost the cancelled order


def test_tick_data_waits_the_same(tmp_path: Path) -> None:
    """Bars blown up into ticks (one group per trade): the same fills and curve with and without waiting."""
    cfg = config(breakers=False)
    cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update={"bars_as_ticks": True})})
    every = [*SYMBOLS, "SOLUSDT"]
    data = load_market(DATA, every, parse_time("2023-01-03", "start"), parse_time("2023-01-04", "end"), list(SYMBOLS))
    runs = []
    for defer in (False, True):

        def make() -> list[Strategy]:
            return [SmaCross("sma", {"fast": 5, "slow": 20, "qty": "1"})]

        bt = Backtest(cfg, None, make, str(fresh_output(tmp_path / str(defer))))
        if not defer:
            bt._may_defer = lambda: False  # type: ignore[method-assign]
        out = bt.run(data.as_ticks())
        runs.append(([(f.fill_id, f.price) for f in out.core.ledger.fills()], out.curve.ts, out.curve.equity))
    assert runs[0][0] and runs[0] == runs[1]
