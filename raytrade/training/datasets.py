"""Supervised datasets from bars: shared features, forward-return labels, time order kept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from raytrade.domain.features_batch import compute_features, feature_matrix_columns


@dataclass(frozen=True)
class Dataset:
    """Feature matrix, binary label (forward return > 0), forward return, and bar times."""

    x: np.ndarray
    y: np.ndarray
    forward_return: np.ndarray
    start: np.ndarray


def build_dataset(bars: pl.DataFrame, horizon: int) -> Dataset:
    """Features at bar t, label from close[t + horizon] / close[t]; rows sorted by time.

    ``bars`` holds ``symbol, start, open, high, low, close, volume`` for any number of symbols.
    Rows in warm-up or without a full horizon ahead are dropped.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 bar, found {horizon}")
    cols = feature_matrix_columns()
    parts = []
    for _, group in bars.sort("symbol", "start").group_by("symbol", maintain_order=True):
        f = compute_features(group)
        f = f.with_columns((pl.col("close").shift(-horizon) / pl.col("close")).log().alias("fwd"))
        parts.append(f.select("start", *cols, "fwd").drop_nulls())
    df = pl.concat(parts).sort("start", maintain_order=True)
    fwd = df["fwd"].to_numpy()
    return Dataset(df.select(cols).to_numpy(), (fwd > 0).astype(np.float64), fwd, df["start"].to_numpy())
