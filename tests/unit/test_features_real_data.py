"""Features once: batch (polars) and incremental indicators agree to 1e-9 on real data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from raytrade.domain.bars import Bar
from raytrade.domain.features import FEATURE_NAMES, INDICATOR_NAMES, WARMUP_BARS, FeatureState
from raytrade.domain.features_batch import compute_features, feature_matrix_columns
from tests.conftest import SHARED_DATA

CRYPTO = SHARED_DATA / "crypto_1m_2023-01"
WARM_UP = 200  # bars after which seeds no longer matter at 1e-9 (0.93**200 ~ 5e-7 of one bar's move)


@pytest.mark.skipif(not CRYPTO.is_dir(), reason=f"real data folder {CRYPTO} is absent")
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"])
def test_batch_and_incremental_agree_on_real_bars(symbol: str) -> None:
    df = pl.read_csv(CRYPTO / f"{symbol}_1m.csv")
    assert df.height == 40_000
    batch = compute_features(df)
    state = FeatureState()
    vectors, indicators = [], []
    for o, h, lo, c, v in df.select("open", "high", "low", "close", "volume").iter_rows():
        vec = state.update(Bar(0, o, h, lo, c, v))
        vectors.append(vec)
        indicators.append(dict(state.indicators) if vec is not None else None)
    # Warm-up is the same in both: the first vector at bar WARMUP_BARS.
    assert vectors[WARMUP_BARS - 2] is None and vectors[WARMUP_BARS - 1] is not None
    assert batch[f"f_{FEATURE_NAMES[0]}"][WARMUP_BARS - 2] is None
    inc = np.array(vectors[WARM_UP:], dtype=float)
    bat = batch.select(feature_matrix_columns()).to_numpy()[WARM_UP:]
    np.testing.assert_allclose(inc, bat, rtol=1e-9, atol=1e-9)
    for name in INDICATOR_NAMES:
        inc_col = np.array([d[name] for d in indicators[WARM_UP:] if d is not None])
        np.testing.assert_allclose(inc_col, batch[name].to_numpy()[WARM_UP:], rtol=1e-9, atol=1e-9, err_msg=name)
    # Sanity of the values themselves: RSI in [0, 100], bands around the mean.
    rsi = batch["rsi_14"].drop_nulls().to_numpy()
    assert rsi.min() >= 0 and rsi.max() <= 100
    assert (batch["bb_upper"].drop_nulls() >= batch["bb_lower"].drop_nulls()).all()
