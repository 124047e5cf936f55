"""One simulator: the training evaluation's signal backtest, the RL environment and ``raytrade backtest``
trade through the same paper broker; on a shared case (real BTCUSDT minutes, one target path) they make
the same fills, fees and P&L."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from raytrade.backtest.data import load_market
from raytrade.backtest.runner import Backtest
from raytrade.cluster.config import RunConfig
from raytrade.domain.bar_simulator import BarSimulator
from raytrade.domain.bars import Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.orders import Side, TimeInForce
from raytrade.strategy import Strategy
from raytrade.training.datasets import build_dataset
from raytrade.training.rl.env import broker_config
from raytrade.training.signal_backtest import Costs, simulate

REPO = Path(__file__).resolve().parents[2]
FILE = REPO.parent / "shared" / "data" / "crypto_1m_2023-01" / "BTCUSDT_1m.csv"
BTC = Instrument("BTCUSDT", D("0.01"), D("0.00001"))
NOTIONAL = D(10_000)
N = 400

pytestmark = pytest.mark.skipif(not FILE.exists(), reason=f"real market data not found at {FILE}")


def targets(closes: list[float]) -> list[int]:
    """A deterministic path: long after a rise over 5 bars, short after a fall, flat in between."""
    out = []
    for t in range(len(closes)):
        move = closes[t] / closes[max(0, t - 5)] - 1
        out.append(1 if move > 0.0005 else -1 if move < -0.0005 else 0)
    return out


class Follow(Strategy):
    """Sends what the simulator sends: an IOC market order sized notional / close on a new target."""

    def __init__(self, strategy_id: str, path: dict[int, int]) -> None:
        super().__init__(strategy_id)
        self.path, self.units = path, 0

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        target = self.path.get(bar.start)
        if target is None or target == self.units:
            return
        self.units = target
        ctx = self.ctx
        price = D(repr(bar.close)).quantize(BTC.price_increment)
        unit = (NOTIONAL / price).quantize(BTC.size_increment, rounding="ROUND_DOWN")
        delta = unit * target - ctx.position(symbol)
        if delta:
            ctx.order(symbol, Side.BUY if delta > 0 else Side.SELL, abs(delta), tif=TimeInForce.IOC)


def test_signal_backtest_rl_env_and_backtest_engine_fill_alike(tmp_path: Path) -> None:
    raw = pl.read_csv(FILE, try_parse_dates=True).head(N)
    file = tmp_path / "BTCUSDT_1m.csv"
    raw.write_csv(file)
    bars_frame = raw.select(
        pl.lit("BTCUSDT").alias("symbol"),
        pl.col("timestamp").cast(pl.Datetime("ns")).cast(pl.Int64).alias("start"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    )
    data = build_dataset(bars_frame, 1)  # the training data shape (warm-up rows dropped)
    rows = np.arange(len(data))
    path = targets(data.close.tolist())
    costs = Costs(fee_bps=2.0, half_spread_bps=0.5, impact_coef=1.0, max_participation=0.1, notional=10_000.0)

    # 1. The training evaluation's signal backtest.
    pnl, fills = simulate(data, rows, np.array(path, dtype=float), costs.broker(), costs.notional, {"BTCUSDT": BTC})
    # 2. The RL environment's simulator, stepped by hand with the same targets.
    s = {"fee_bps": "2", "half_spread_bps": "0.5", "impact_coef": 1.0, "max_participation": 0.1}
    sim = BarSimulator(BTC, data.bars(rows), broker_config(s), NOTIONAL)
    rl = [sim.step(u).pnl for u in path[:-1]]
    assert np.array_equal(np.asarray(rl) / 10_000.0, pnl[:-1]) and fills.sum() == sim.fills > 20
    # 3. raytrade backtest's engine (RiskGate steps, Execution, ledger) with the paper broker, no latency.
    cfg = RunConfig.model_validate(
        {
            "kafka": {"partitions": 1},
            "instruments": [{"symbol": "BTCUSDT", "price_increment": "0.01", "size_increment": "0.00001"}],
            "strategies": [{"id": "bh", "path": "raytrade.strategy.builtins:BuyAndHold", "params": {"qty": 1}}],
            "model": None,
            "risk": {"max_order_notional": "1e9", "max_position_notional": "1e9", "max_gross_exposure": "1e9"},
            "execution": {
                "initial_cash": "1000000",
                "fee_bps": "2",
                "half_spread_bps": "0.5",
                "impact_coef": 1.0,
                "max_participation": 0.1,
                "order_latency_ms": 0,
            },
            "backtest": {"fills": "paper"},
        }
    )
    follow = Follow("f", {int(st): u for st, u in zip(data.start.tolist(), path, strict=True)})
    engine: Any = Backtest(cfg, None, lambda: [follow], str(tmp_path / "ledger.db"))
    first = int(data.start[0])  # the same bars as the dataset (its warm-up rows dropped): same volatility state
    engine.run(load_market(file, ["BTCUSDT"], start_ns=first))
    ledger_fills = [(f.price, f.qty, f.fee) for f in engine.core.ledger.fills()]
    sim_fills = [(f.price, f.qty, f.fee) for f in sim.broker_fills]
    assert ledger_fills == sim_fills
    # Same P&L: the engine's equity at the last bar equals the simulator's.
    assert engine.core.portfolio.realized == sim.portfolio.realized and engine.core.portfolio.fees == sim.portfolio.fees
