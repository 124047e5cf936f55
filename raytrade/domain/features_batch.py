"""Batch (polars) twins of the incremental indicators and features, for training.

Same definitions as :mod:`raytrade.domain.indicators`; rows before warm-up are null.
"""

from __future__ import annotations

import polars as pl

from raytrade.domain.features import FEATURE_NAMES, INDICATOR_NAMES, WARMUP_BARS


def _wilder(expr: pl.Expr, n: int) -> pl.Expr:
    return expr.ewm_mean(alpha=1.0 / n, adjust=False)


def _ema(expr: pl.Expr, n: int) -> pl.Expr:
    return expr.ewm_mean(alpha=2.0 / (n + 1), adjust=False)


def compute_features(bars: pl.DataFrame) -> pl.DataFrame:
    """Add indicator and feature columns to one symbol's bars (sorted by time).

    ``bars`` needs ``open, high, low, close, volume``; other columns pass through.
    """
    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    prev_close = close.shift(1)
    change = close - prev_close
    out = bars.with_columns(
        _ema(close, 12).alias("ema_12"),
        _ema(close, 26).alias("ema_26"),
        close.rolling_mean(20).alias("sma_20"),
        close.rolling_std(20, ddof=0).alias("_sd20"),
        _wilder(change.clip(lower_bound=0.0), 14).alias("_gain"),
        _wilder((-change).clip(lower_bound=0.0), 14).alias("_loss"),
        _wilder(
            pl.when(prev_close.is_null())
            .then(high - low)
            .otherwise(pl.max_horizontal(high - low, (high - prev_close).abs(), (low - prev_close).abs())),
            14,
        ).alias("atr_14"),
        (close / prev_close).log().pow(2).rolling_mean(30).sqrt().alias("rv_30"),
        pl.col("volume").rolling_mean(20).alias("_vol20"),
    )
    out = out.with_columns((pl.col("ema_12") - pl.col("ema_26")).alias("macd"))
    out = out.with_columns(_ema(pl.col("macd"), 9).alias("macd_signal"))
    out = out.with_columns(
        (pl.col("macd") - pl.col("macd_signal")).alias("macd_hist"),
        (pl.col("sma_20") + 2.0 * pl.col("_sd20")).alias("bb_upper"),
        (pl.col("sma_20") - 2.0 * pl.col("_sd20")).alias("bb_lower"),
        pl.when(pl.col("_loss") == 0.0)
        .then(pl.when(pl.col("_gain") == 0.0).then(50.0).otherwise(100.0))
        .otherwise(100.0 - 100.0 / (1.0 + pl.col("_gain") / pl.col("_loss")))
        .alias("rsi_14"),
    )
    band = pl.col("bb_upper") - pl.col("bb_lower")
    out = out.with_columns(
        (close / close.shift(1)).log().alias("ret_1"),
        (close / close.shift(5)).log().alias("ret_5"),
        (close / close.shift(15)).log().alias("ret_15"),
        (pl.col("rsi_14") / 100.0 - 0.5).alias("_rsi_feat"),
        (pl.col("macd_hist") / close).alias("macd_hist_rel"),
        pl.when(band > 0).then((close - pl.col("bb_lower")) / band).otherwise(0.5).alias("bb_pct_b"),
        (band / pl.col("sma_20")).alias("bb_width"),
        (pl.col("atr_14") / close).alias("atr_rel"),
        (close / pl.col("ema_26") - 1.0).alias("ema_gap"),
        pl.when(pl.col("_vol20") > 0).then(pl.col("volume") / pl.col("_vol20")).otherwise(1.0).alias("vol_ratio"),
    )
    warm = pl.int_range(pl.len()) >= WARMUP_BARS - 1
    indicator_cols = [pl.when(warm).then(pl.col(c)).alias(c) for c in INDICATOR_NAMES]
    feature_cols = [
        pl.when(warm).then(pl.col("_rsi_feat" if c == "rsi_14" else c)).alias(f"f_{c}") for c in FEATURE_NAMES
    ]
    return out.with_columns(*indicator_cols, *feature_cols).drop("_sd20", "_gain", "_loss", "_vol20", "_rsi_feat")


def feature_matrix_columns() -> list[str]:
    """Column names of the feature vector in :func:`compute_features` output, in model order."""
    return [f"f_{c}" for c in FEATURE_NAMES]
