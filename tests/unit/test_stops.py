from __future__ import annotations

import pickle
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrade.domain.bars import Bar
from raytrade.domain.stops import AtrTrailingStop

LONG, SHORT, FLAT = D("0.5"), D("-0.5"), D(0)

# (high, low, close). atr_period=2 -> Wilder alpha 1/2, so every ATR below is exact in binary.
#   bar  TR                               ATR                    long level (multiple 2)
#   1    102-98 = 4 (first: high - low)   4                      warm-up: none
#   2    max(4, |103-100|, |99-100|) = 4  4                      fresh: close 102 - 8 = 94
#   3    max(7, |108-102|, |101-102|) = 7 (7 + 4) / 2 = 5.5      low 101 > 94; max(94, 108 - 11) = 97
#   4    max(3, |107-107|, |104-107|) = 3 (3 + 5.5) / 2 = 4.25   low 104 > 97; max(97, 107 - 8.5) = 98.5
#   5    max(6, |106-105|, |100-105|) = 6 (6 + 4.25) / 2 = 5.125 low 100 > 98.5; 106 - 10.25 = 95.75 < 98.5: stays
#   6    max(4, |102-101|, |98-101|) = 4  (4 + 5.125) / 2 = 4.5625 low 98 <= 98.5: triggered at 98.5
LONG_BARS = [(102.0, 98.0, 100.0), (103.0, 99.0, 102.0), (108.0, 101.0, 107.0), (107.0, 104.0, 105.0)]
LONG_BARS += [(106.0, 100.0, 101.0), (102.0, 98.0, 99.0)]


def bar(t: int, high: float, low: float, close: float) -> Bar:
    return Bar(t, close, high, low, close, 1.0)


def mirrored(bars: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Price p -> 200 - p: the same true ranges (so the same ATRs), with up and down swapped."""
    return [(200.0 - low, 200.0 - high, 200.0 - close) for high, low, close in bars]


def test_long_levels_by_hand() -> None:
    stop = AtrTrailingStop(multiple=2.0, atr_period=2)
    results, levels = [], []
    for t, (h, lo, c) in enumerate(LONG_BARS):
        results.append(stop.on_bar("BTC", bar(t, h, lo, c), LONG))
        levels.append(stop.level("BTC"))
    assert levels == [None, 94.0, 97.0, 98.5, 98.5, 98.5]
    assert results == [None, None, None, None, None, 98.5]
    assert stop._stops["BTC"].atr.avg.value == 4.5625
    assert stop.side("BTC") == 1
    # Still long next bar: a fired stop keeps firing at the same level until the position is flat.
    assert stop.on_bar("BTC", bar(6, 99.0, 97.0, 98.0), LONG) == 98.5
    # Flat clears it.
    assert stop.on_bar("BTC", bar(7, 99.0, 97.0, 98.0), FLAT) is None
    assert stop.level("BTC") is None and stop.side("BTC") == 0


def test_short_side_is_symmetric() -> None:
    stop = AtrTrailingStop(multiple=2.0, atr_period=2)
    results, levels = [], []
    for t, (h, lo, c) in enumerate(mirrored(LONG_BARS)):
        results.append(stop.on_bar("BTC", bar(t, h, lo, c), SHORT))
        levels.append(stop.level("BTC"))
    assert levels == [None, 106.0, 103.0, 101.5, 101.5, 101.5]  # 200 - the long levels
    assert results == [None, None, None, None, None, 101.5]  # bar 6 high 102 >= 101.5
    assert stop.side("BTC") == -1


def test_warm_up_flip_and_fresh_entry() -> None:
    stop = AtrTrailingStop(multiple=2.0, atr_period=3)
    # Flat during warm-up still feeds the ATR: TRs 4, 4 -> ATR 4 after two bars (alpha 1/3, equal inputs).
    assert stop.on_bar("X", bar(0, 102.0, 98.0, 100.0), FLAT) is None
    assert stop.on_bar("X", bar(1, 102.0, 98.0, 100.0), LONG) is None
    assert stop.level("X") is None  # 2 of 3 bars seen: still warming up
    assert stop.on_bar("X", bar(2, 102.0, 98.0, 100.0), LONG) is None
    assert stop.level("X") == 92.0  # third bar: fresh from close, 100 - 2 * 4
    # A bar whose low is under the fresh level on entry does not trigger it.
    fresh = AtrTrailingStop(multiple=0.5, atr_period=1)
    assert fresh.on_bar("Y", bar(0, 110.0, 90.0, 105.0), LONG) is None  # TR 20 -> level 105 - 10 = 95 > low 90
    assert fresh.level("Y") == 95.0
    # Side flip: the long stop is replaced by a fresh short stop from the close, not checked against this bar.
    assert stop.on_bar("X", bar(3, 102.0, 98.0, 100.0), SHORT) is None
    assert stop.level("X") == 108.0 and stop.side("X") == -1
    # Symbols are independent.
    assert stop.level("Y") is None and fresh.level("X") is None


def test_default_period_needs_fourteen_bars() -> None:
    stop = AtrTrailingStop()
    for t in range(13):
        assert stop.on_bar("Z", bar(t, 101.0, 99.0, 100.0), LONG) is None
        assert stop.level("Z") is None
    stop.on_bar("Z", bar(13, 101.0, 99.0, 100.0), LONG)
    assert stop.level("Z") == pytest.approx(94.0, rel=1e-15)  # ATR 2 (every TR is 2), 100 - 3 * 2


def test_pickles_with_state() -> None:
    stop = AtrTrailingStop(multiple=2.0, atr_period=2)
    for t, (h, lo, c) in enumerate(LONG_BARS[:4]):
        stop.on_bar("BTC", bar(t, h, lo, c), LONG)
    clone = pickle.loads(pickle.dumps(stop))
    assert clone.level("BTC") == 98.5 and clone.multiple == 2.0 and clone.atr_period == 2
    for s in (stop, clone):
        assert s.on_bar("BTC", bar(4, *LONG_BARS[4]), LONG) is None
        assert s.on_bar("BTC", bar(5, *LONG_BARS[5]), LONG) == 98.5


def test_validation() -> None:
    for multiple in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="multiple must be"):
            AtrTrailingStop(multiple=multiple)
    for period in (0, -3, True):
        with pytest.raises(ValueError, match="atr_period must be a positive integer"):
            AtrTrailingStop(atr_period=period)
    with pytest.raises(ValueError, match="bar prices must be finite"):
        AtrTrailingStop().on_bar("X", bar(0, float("nan"), 1.0, 1.0), LONG)


bars_strategy = st.lists(
    st.tuples(
        st.floats(min_value=1.0, max_value=1000.0),
        st.floats(min_value=0.0, max_value=50.0),
        st.floats(min_value=0.0, max_value=1.0),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(raw=bars_strategy, multiple=st.floats(min_value=0.1, max_value=5.0), period=st.integers(1, 5))
def test_long_stop_never_loosens_and_fires_at_the_standing_level(
    raw: list[tuple[float, float, float]], multiple: float, period: int
) -> None:
    stop = AtrTrailingStop(multiple, period)
    previous: float | None = None
    for t, (low, span, where) in enumerate(raw):
        high = low + span
        close = low + where * span
        fired = stop.on_bar("S", bar(t, high, low, close), LONG)
        level = stop.level("S")
        if fired is not None:
            assert previous is not None and fired == previous and low <= previous and level == previous
        if previous is not None:
            assert level is not None and level >= previous
        else:
            assert fired is None
        previous = level
        if t + 1 >= period:
            assert level is not None
        else:
            assert level is None


@settings(max_examples=100, deadline=None)
@given(raw=bars_strategy, multiple=st.floats(min_value=0.1, max_value=5.0), period=st.integers(1, 5))
def test_short_stop_never_loosens(raw: list[tuple[float, float, float]], multiple: float, period: int) -> None:
    stop = AtrTrailingStop(multiple, period)
    previous: float | None = None
    for t, (low, span, where) in enumerate(raw):
        fired = stop.on_bar("S", bar(t, low + span, low, low + where * span), SHORT)
        level = stop.level("S")
        if previous is not None:
            assert level is not None and level <= previous
            assert (fired is not None) == (low + span >= previous)
        previous = level
