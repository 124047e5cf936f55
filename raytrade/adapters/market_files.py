"""Read market data files (Parquet or CSV) as ticks, in event-time order.

Two shapes are understood:

* ticks: ``symbol, ts|timestamp, price, size``;
* 1-minute bars: ``[symbol,] timestamp, open, high, low, close, volume``. Each bar becomes
  four trades (open at +0 s, the nearer extreme at +20 s, the other at +40 s, close at
  +59 s), each a quarter of the volume; zero-volume bars produce no trades. Without a
  ``symbol`` column the symbol is the file name up to the first ``_`` (``BTCUSDT_1m.csv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from raytrade.domain.ticks import Tick

NS = 1_000_000_000
BAR_COLUMNS = {"open", "high", "low", "close", "volume"}


def read_frame(path: str | Path) -> pl.DataFrame:
    """Load a Parquet or CSV file."""
    p = Path(path)
    if p.suffix == ".parquet":
        return pl.read_parquet(p)
    if p.suffix == ".csv":
        return pl.read_csv(p, try_parse_dates=True)
    raise ValueError(f"{p}: expected a .parquet or .csv file")


def _ts_ns(df: pl.DataFrame, name: str) -> pl.Series:
    col = df[name]
    if isinstance(col.dtype, pl.Datetime | pl.Date):
        return col.cast(pl.Datetime("ns")).cast(pl.Int64)
    if col.dtype.is_integer():
        return col.cast(pl.Int64)
    raise ValueError(f"column {name!r}: expected datetime or integer nanoseconds, found {col.dtype}")


def ticks_frame(path: str | Path) -> pl.DataFrame:
    """The file as a ticks DataFrame ``symbol, ts, price, size`` sorted by ``ts``."""
    df = read_frame(path)
    if "symbol" not in df.columns:
        df = df.with_columns(pl.lit(Path(path).stem.split("_")[0]).alias("symbol"))
    time_col = "ts" if "ts" in df.columns else "timestamp"
    if time_col not in df.columns:
        raise ValueError(f"{path}: expected a 'ts' or 'timestamp' column, found {df.columns}")
    df = df.with_columns(_ts_ns(df, time_col).alias("ts"))
    if {"price", "size"} <= set(df.columns):
        return df.select("symbol", "ts", "price", "size").sort("ts", maintain_order=True)
    if set(df.columns) >= BAR_COLUMNS:
        up = pl.col("close") >= pl.col("open")
        legs = [
            (0, pl.col("open")),
            (20, pl.when(up).then(pl.col("low")).otherwise(pl.col("high"))),
            (40, pl.when(up).then(pl.col("high")).otherwise(pl.col("low"))),
            (59, pl.col("close")),
        ]
        bars = df.filter(pl.col("volume") > 0)
        parts = [
            bars.select(
                "symbol",
                (pl.col("ts") + sec * NS).alias("ts"),
                price.cast(pl.Float64).alias("price"),
                (pl.col("volume") / 4.0).alias("size"),
            )
            for sec, price in legs
        ]
        return pl.concat(parts).sort("ts", "symbol")
    raise ValueError(f"{path}: expected tick columns (price, size) or bar columns {sorted(BAR_COLUMNS)}")


def iter_ticks(path: str | Path) -> Iterator[Tick]:
    """Yield the file's ticks in time order."""
    for symbol, ts, price, size in ticks_frame(path).iter_rows():
        yield Tick(symbol, price, size, ts)


def bars_frame(path: str | Path) -> pl.DataFrame:
    """OHLCV bars ``symbol, start, open, high, low, close, volume`` from a file or a folder of files.

    ``start`` is the bar-open time in epoch nanoseconds. A file without a ``symbol`` column names
    its symbol by the file name up to the first ``_`` (``BTCUSDT_1m.csv``). When ``adjusted_close``
    is present (split/dividend-adjusted equities), open/high/low/close are scaled by
    ``adjusted_close / close`` and volume by its inverse, so splits are not price jumps.
    """
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.suffix in {".csv", ".parquet"}) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"{p}: no .csv or .parquet files")
    parts = []
    for f in files:
        df = read_frame(f)
        missing = BAR_COLUMNS - set(df.columns)
        if missing:
            raise ValueError(f"{f}: not bars, missing columns {sorted(missing)}")
        if "symbol" not in df.columns:
            df = df.with_columns(pl.lit(f.stem.split("_")[0]).alias("symbol"))
        time_col = "start" if "start" in df.columns else "timestamp"
        if time_col not in df.columns:
            raise ValueError(f"{f}: expected a 'start' or 'timestamp' column, found {df.columns}")
        df = df.with_columns(_ts_ns(df, time_col).alias("start"))
        prices = ["open", "high", "low", "close"]
        df = df.with_columns(*(pl.col(c).cast(pl.Float64) for c in [*prices, "volume"]))
        if "adjusted_close" in df.columns:
            factor = pl.col("adjusted_close").cast(pl.Float64) / pl.col("close")
            df = df.with_columns(*(pl.col(c) * factor for c in prices), pl.col("volume") / factor)
        parts.append(df.select("symbol", "start", *prices, "volume"))
    out = pl.concat(parts).sort("symbol", "start")
    bad = out.filter(~pl.all_horizontal(pl.col("open", "high", "low", "close").is_finite() & (pl.col("close") > 0)))
    if bad.height:
        raise ValueError(f"{p}: {bad.height} bars with non-finite or non-positive prices, first: {bad.row(0)}")
    return out
