"""Per-symbol incremental feature state: indicators and the model's feature vector."""

from __future__ import annotations

import math
from collections import deque

from raytrade.domain.bars import Bar
from raytrade.domain.indicators import Atr, Ema, Rsi, Window

FEATURE_VERSION = "v1"
FEATURE_NAMES: tuple[str, ...] = (
    "ret_1",
    "ret_5",
    "ret_15",
    "rsi_14",
    "macd_hist_rel",
    "bb_pct_b",
    "bb_width",
    "atr_rel",
    "rv_30",
    "ema_gap",
    "vol_ratio",
)
INDICATOR_NAMES: tuple[str, ...] = (
    "sma_20",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_lower",
    "atr_14",
    "rv_30",
)
# Bars needed before a feature vector is emitted: the longest window (30 returns) + 1.
WARMUP_BARS = 31


class FeatureState:
    """Indicators for one symbol, advanced one closed bar at a time."""

    __slots__ = (
        "atr",
        "bars_seen",
        "closes",
        "ema12",
        "ema26",
        "indicators",
        "macd_signal",
        "rsi",
        "sq_returns",
        "volumes",
        "window20",
    )

    def __init__(self) -> None:
        self.bars_seen = 0
        self.closes: deque[float] = deque(maxlen=16)
        self.window20 = Window(20)
        self.volumes = Window(20)
        self.sq_returns = Window(30)
        self.ema12 = Ema.span(12)
        self.ema26 = Ema.span(26)
        self.macd_signal = Ema.span(9)
        self.rsi = Rsi(14)
        self.atr = Atr(14)
        self.indicators: dict[str, float] = {}

    def update(self, bar: Bar) -> tuple[float, ...] | None:
        """Add a closed bar; return the feature vector once warmed up, else ``None``."""
        close = bar.close
        prev = self.closes[-1] if self.closes else None
        self.closes.append(close)
        self.bars_seen += 1
        self.window20.push(close)
        self.volumes.push(bar.volume)
        if prev is not None:
            self.sq_returns.push(math.log(close / prev) ** 2)
        e12 = self.ema12.update(close)
        e26 = self.ema26.update(close)
        macd = e12 - e26
        signal = self.macd_signal.update(macd)
        rsi = self.rsi.update(close)
        atr = self.atr.update(bar.high, bar.low, close)
        if self.bars_seen < WARMUP_BARS or rsi is None:
            return None
        mid = self.window20.mean()
        sd = self.window20.pstd()
        rv = math.sqrt(self.sq_returns.mean())
        upper, lower = mid + 2.0 * sd, mid - 2.0 * sd
        self.indicators = {
            "sma_20": mid,
            "ema_12": e12,
            "ema_26": e26,
            "rsi_14": rsi,
            "macd": macd,
            "macd_signal": signal,
            "macd_hist": macd - signal,
            "bb_upper": upper,
            "bb_lower": lower,
            "atr_14": atr,
            "rv_30": rv,
        }
        closes = self.closes
        vol_mean = self.volumes.mean()
        return (
            math.log(close / closes[-2]),
            math.log(close / closes[-6]),
            math.log(close / closes[-16]),
            rsi / 100.0 - 0.5,
            (macd - signal) / close,
            (close - lower) / (upper - lower) if upper > lower else 0.5,
            (upper - lower) / mid,
            atr / close,
            rv,
            close / e26 - 1.0,
            bar.volume / vol_mean if vol_mean > 0 else 1.0,
        )
