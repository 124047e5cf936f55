"""Supervised datasets from bars: the shards' feature definitions, forward-return labels, time order kept.

Features at bar ``t`` come from :func:`raytrade.domain.features_batch.compute_features`, the batch twin
of the shards' incremental features, so they use bars ``<= t`` only (``tests/unit/test_datasets.py``
proves it by perturbing the future). Labels look ahead by construction: ``forward_return`` is
``log(close[t + horizon] / close[t])`` and ``next_return`` is ``log(close[t + 1] / close[t])``, the
return a position decided at the close of ``t`` earns over the next bar (what backtests use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from raytrade.domain.bars import Bar
from raytrade.domain.features_batch import compute_features, feature_matrix_columns


@dataclass(frozen=True)
class Dataset:
    """Rows sorted by (time, symbol); row ``i`` is symbol ``symbols[symbol[i]]`` at bar ``start[i]``."""

    x: np.ndarray  # (n, n_features) float64
    forward_return: np.ndarray  # log return over the label horizon
    next_return: np.ndarray  # log return over the next bar
    start: np.ndarray  # bar-open time, epoch ns
    close: np.ndarray  # the bar's close, where positions are decided
    symbol: np.ndarray  # int32 index into ``symbols``
    symbols: tuple[str, ...]
    horizon: int
    _prev: np.ndarray  # row of the same symbol one bar earlier, or the row itself at its first bar
    open: np.ndarray  # the bar's open, high, low and volume: what the paper broker fills against
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray

    @property
    def y(self) -> np.ndarray:
        """Binary label: 1.0 where the forward return is positive."""
        return (self.forward_return > 0).astype(np.float64)

    def __len__(self) -> int:
        return len(self.forward_return)

    def bars(self, rows: np.ndarray) -> list[Bar]:
        """``rows`` (one symbol's, in time order) as bars: what the paper broker trades on."""
        return [
            Bar(int(st), float(o), float(h), float(lo), float(c), float(v))
            for st, o, h, lo, c, v in zip(
                self.start[rows], self.open[rows], self.high[rows], self.low[rows], self.close[rows],
                self.volume[rows], strict=True,
            )
        ]  # fmt: skip

    def windows(self, rows: np.ndarray, length: int) -> np.ndarray:
        """Feature sequences ``(len(rows), length, n_features)`` ending at each row, oldest first.

        Earlier rows of the same symbol only; a symbol's first rows repeat its first vector.
        """
        idx = np.empty((len(rows), length), dtype=np.int64)
        cur = np.asarray(rows, dtype=np.int64)
        for k in range(length - 1, -1, -1):
            idx[:, k] = cur
            cur = self._prev[cur]
        return self.x[idx]


def build_dataset(bars: pl.DataFrame, horizon: int) -> Dataset:
    """Features at bar t and labels ahead of it; rows in warm-up or without ``horizon`` bars ahead are dropped.

    ``bars`` holds ``symbol, start, open, high, low, close, volume`` for any number of symbols.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, found {horizon}")
    missing = {"symbol", "start", "open", "high", "low", "close", "volume"} - set(bars.columns)
    if missing:
        raise ValueError(f"bars are missing columns {sorted(missing)}")
    cols = feature_matrix_columns()
    symbols = tuple(sorted(bars["symbol"].unique().to_list()))
    parts = []
    for i, sym in enumerate(symbols):
        group = bars.filter(pl.col("symbol") == sym).sort("start")
        f = compute_features(group).with_columns(
            (pl.col("close").shift(-horizon) / pl.col("close")).log().alias("fwd"),
            (pl.col("close").shift(-1) / pl.col("close")).log().alias("nxt"),
            pl.lit(i, dtype=pl.Int32).alias("code"),
        )
        parts.append(
            f.select("start", "code", "open", "high", "low", "close", "volume", *cols, "fwd", "nxt").drop_nulls()
        )
    df = pl.concat(parts).sort("start", "code")
    code: np.ndarray = df["code"].to_numpy()
    prev = np.arange(len(df), dtype=np.int64)
    last: dict[int, int] = {}
    for i, c in enumerate(code.tolist()):
        prev[i] = last.get(c, i)
        last[c] = i
    return Dataset(
        x=df.select(cols).to_numpy().astype(np.float64),
        forward_return=df["fwd"].to_numpy(),
        next_return=df["nxt"].to_numpy(),
        start=df["start"].to_numpy(),
        close=df["close"].to_numpy().astype(np.float64),
        symbol=code.astype(np.int32),
        symbols=symbols,
        horizon=horizon,
        _prev=prev,
        open=df["open"].to_numpy().astype(np.float64),
        high=df["high"].to_numpy().astype(np.float64),
        low=df["low"].to_numpy().astype(np.float64),
        volume=df["volume"].to_numpy().astype(np.float64),
    )
