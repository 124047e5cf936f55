"""The backtest lets quiet groups wait for the next gate/Execution call (``Backtest._may_defer``). It must
change nothing anyone can observe: the same fills, the same equity curve, and the same equity each
strategy reads (per shard, as of its own last group), with and without breakers, on real bars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raytrade.backtest.data import load_market, parse_time
from raytrade.backtest.runner import Backtest, fresh_output
from raytrade.cluster.config import config_from_dict
from raytrade.domain.bars import Bar
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
