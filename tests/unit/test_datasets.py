"""Datasets: features use only the past, labels are the forward return, splits are purged walk-forward."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.features import FEATURE_NAMES, WARMUP_BARS
from raytrade.training.datasets import build_dataset
from raytrade.training.splits import holdout, walk_forward


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return ticks_to_bars(SyntheticMarket(seed=3).ticks_frame(6 * 3600))


def test_no_feature_at_t_changes_when_the_future_is_perturbed(bars: pl.DataFrame) -> None:
    times = bars["start"].unique().sort()
    cut = int(times[len(times) // 2])
    rng = np.random.default_rng(0)
    future = pl.col("start") > cut
    noise = pl.Series(rng.uniform(0.5, 2.0, bars.height))
    shocked = bars.with_columns(
        *(pl.when(future).then(pl.col(c) * noise).otherwise(pl.col(c)).alias(c) for c in ("open", "close")),
        pl.when(future).then(pl.col("high") * noise * 3).otherwise(pl.col("high")).alias("high"),
        pl.when(future).then(pl.col("low") * noise / 3).otherwise(pl.col("low")).alias("low"),
        pl.when(future).then(pl.col("volume") * 7).otherwise(pl.col("volume")).alias("volume"),
    )
    a, b = build_dataset(bars, 5), build_dataset(shocked, 5)
    past_a, past_b = a.start <= cut, b.start <= cut
    assert past_a.sum() == past_b.sum() > 500
    np.testing.assert_array_equal(a.x[past_a], b.x[past_b])  # bit-identical: nothing from the future
    assert not np.allclose(a.x[~past_a], b.x[~past_b])  # the perturbation does reach later features
    # Labels do look ahead (by design): the last `horizon` rows before the cut see the shocked prices.
    assert not np.array_equal(a.forward_return[past_a], b.forward_return[past_b])


def test_labels_are_forward_log_returns_and_rows_are_time_ordered(bars: pl.DataFrame) -> None:
    d = build_dataset(bars, 7)
    assert np.all(np.diff(d.start) >= 0)
    sym = d.symbols.index("ETHUSDT")
    eth = bars.filter(pl.col("symbol") == "ETHUSDT").sort("start")
    closes = dict(zip(eth["start"].to_list(), eth["close"].to_list(), strict=True))
    starts = eth["start"].to_list()
    rows = np.flatnonzero(d.symbol == sym)
    assert len(rows) == eth.height - (WARMUP_BARS - 1) - 7  # warm-up and the last horizon dropped
    for r in rows[:50]:
        t = int(d.start[r])
        i = starts.index(t)
        assert d.close[r] == closes[t]
        assert d.forward_return[r] == pytest.approx(np.log(closes[starts[i + 7]] / closes[t]), abs=1e-15)
        assert d.next_return[r] == pytest.approx(np.log(closes[starts[i + 1]] / closes[t]), abs=1e-15)
    assert set(np.unique(d.y)) == {0.0, 1.0} and np.array_equal(d.y, (d.forward_return > 0).astype(float))
    assert d.x.shape[1] == len(FEATURE_NAMES) and np.isfinite(d.x).all()


def test_windows_use_earlier_rows_of_the_same_symbol_only(bars: pl.DataFrame) -> None:
    d = build_dataset(bars, 1)
    rows = np.flatnonzero(d.symbol == 2)
    w = d.windows(rows[[0, 1, 10]], 4)
    np.testing.assert_array_equal(w[0], np.repeat(d.x[rows[0]][None], 4, axis=0))  # first bar: padded with itself
    np.testing.assert_array_equal(w[2], d.x[rows[7:11]])


def test_walk_forward_folds_are_purged_and_in_time_order(bars: pl.DataFrame) -> None:
    d = build_dataset(bars, 15)
    times = np.unique(d.start)
    folds = walk_forward(d.start, 3, purge=15)
    assert [f.index for f in folds] == [0, 1, 2]
    for f in folds:
        last_train = np.searchsorted(times, d.start[f.train].max())
        first_test = np.searchsorted(times, d.start[f.test].min())
        assert first_test - last_train == 16  # 15 bar times purged between them
        assert len(np.intersect1d(f.train, f.test)) == 0
    assert np.all(np.diff([d.start[f.test].min() for f in folds]) > 0)
    assert d.start[folds[1].train].max() > d.start[folds[0].test].min()  # expanding window
    fit, valid = holdout(folds[0].train, d.start, 0.2, 15)
    assert np.searchsorted(times, d.start[valid].min()) - np.searchsorted(times, d.start[fit].max()) == 16
    with pytest.raises(ValueError, match="too few bar times"):
        walk_forward(d.start[:50], 10, purge=15)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        build_dataset(bars, 0)
