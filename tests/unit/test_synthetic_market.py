from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars, write_bars_parquet


def test_seeded_market_is_reproducible_and_on_the_tick_grid() -> None:
    a = SyntheticMarket(seed=3).ticks_frame(600)
    b = SyntheticMarket(seed=3).ticks_frame(600)
    c = SyntheticMarket(seed=4).ticks_frame(600)
    assert a.equals(b) and not a.equals(c)
    assert a["ts"].is_sorted()
    for spec in SyntheticMarket().specs:
        px = a.filter(pl.col("symbol") == spec.instrument.symbol)["price"].to_list()
        inc = spec.instrument.price_increment
        assert all(Decimal(repr(p)) % inc == 0 for p in px[:500])
    assert (a["price"] > 0).all() and (a["size"] > 0).all()


def test_stylized_facts_correlation_fat_tails_seasonality() -> None:
    ticks = SyntheticMarket(seed=11).ticks_frame(2 * 86_400)
    bars = ticks_to_bars(ticks)
    rets = {}
    for sym in ("BTCUSDT", "ETHUSDT"):
        close = bars.filter(pl.col("symbol") == sym)["close"].to_numpy()
        rets[sym] = np.diff(np.log(close))
    n = min(len(rets["BTCUSDT"]), len(rets["ETHUSDT"]))
    corr = np.corrcoef(rets["BTCUSDT"][:n], rets["ETHUSDT"][:n])[0, 1]
    assert 0.3 < corr < 0.8  # configured diffusion correlation 0.6, diluted by jumps and noise
    r = rets["BTCUSDT"]
    kurt = ((r - r.mean()) ** 4).mean() / r.var() ** 2
    assert kurt > 3.4  # fatter tails than a normal (3, sd ~0.09 at this n): jumps + stochastic vol
    hour = (ticks["ts"] // 3_600_000_000_000) % 24
    counts = ticks.group_by(hour.alias("h")).len().sort("h")["len"].to_numpy()
    assert counts[[0, 23]].mean() > 1.5 * counts[[11, 12]].mean()  # U-shaped activity


def test_bars_to_parquet(tmp_path: Path) -> None:
    out = tmp_path / "bars.parquet"
    bars = write_bars_parquet(SyntheticMarket(seed=1), 1800, str(out))
    back = pl.read_parquet(out)
    assert back.equals(bars)
    assert back.columns == ["symbol", "start", "open", "high", "low", "close", "volume"]
    assert back.height == 4 * 30
    assert (back["high"] >= back["low"]).all() and (back["high"] >= back["close"]).all()
