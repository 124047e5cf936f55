"""A seeded 1-minute random walk written as Parquet, for the peer benchmark (numpy + pyarrow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START_NS = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z
MINUTE_NS = 60_000_000_000


def write_random_walk(path: str | Path, bars: int = 1_000_000, seed: int = 7, symbol: str = "RWALK") -> Path:
    """Write ``bars`` one-minute bars of one symbol to ``path`` and return it.

    Columns: symbol, timestamp (bar open, ns UTC), open, high, low, close, volume. Closes follow a
    log-normal walk from 100 (0.05 % per minute); each bar opens at the previous close; high/low
    reach a little beyond open/close. Prices are rounded to 0.01 (so the SMAs tie now and then) and
    OHLC stays consistent after rounding; volume is positive. Same seed, same bytes.
    """
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 5e-4, bars)
    closes = np.round(100.0 * np.exp(np.cumsum(steps)), 2)
    closes = np.maximum(closes, 0.01)
    opens = np.concatenate(([100.0], closes[:-1]))
    top = np.maximum(opens, closes)
    bottom = np.minimum(opens, closes)
    highs = np.round(top * np.exp(np.abs(rng.normal(0.0, 2.5e-4, bars))), 2)
    lows = np.round(bottom * np.exp(-np.abs(rng.normal(0.0, 2.5e-4, bars))), 2)
    highs = np.maximum(highs, top)
    lows = np.maximum(np.minimum(lows, bottom), 0.01)
    volume = np.round(rng.lognormal(3.0, 1.0, bars), 3) + 0.001
    timestamps = START_NS + MINUTE_NS * np.arange(bars, dtype=np.int64)
    table = pa.table(
        {
            "symbol": pa.DictionaryArray.from_arrays(np.zeros(bars, np.int32), pa.array([symbol])),
            "timestamp": pa.array(timestamps, pa.timestamp("ns", tz="UTC")),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": volume,
        }
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=write_random_walk.__doc__)
    parser.add_argument("path")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    ns = parser.parse_args()
    print(write_random_walk(ns.path, ns.bars, ns.seed))
