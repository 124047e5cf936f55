from __future__ import annotations

import math

import pytest

from raytrade.domain.bars import BAR_NS, Bar, BarBuilder
from raytrade.domain.indicators import Atr, Ema, Rsi, Window, rsi_from


def test_bar_builder_closes_a_bar_on_the_first_tick_of_the_next_minute() -> None:
    b = BarBuilder()
    t0 = 1_000 * BAR_NS
    assert b.add(10.0, 1.0, t0) is None
    assert b.add(12.0, 2.0, t0 + 1) is None
    assert b.add(9.0, 0.5, t0 + 2) is None
    assert b.add(11.0, 1.0, t0 + BAR_NS - 1) is None
    closed = b.add(11.5, 3.0, t0 + BAR_NS)
    assert closed == Bar(t0, 10.0, 12.0, 9.0, 11.0, 4.5)
    assert b.current == Bar(t0 + BAR_NS, 11.5, 11.5, 11.5, 11.5, 3.0)


def test_ema_seeds_with_first_value_and_uses_span_alpha() -> None:
    e = Ema.span(3)  # alpha = 0.5
    assert e.update(10.0) == 10.0
    assert e.update(20.0) == 15.0
    assert e.update(0.0) == 7.5


def test_window_mean_and_population_std() -> None:
    w = Window(4)
    for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0][-4:]:
        w.push(x)
    assert w.full
    assert w.mean() == pytest.approx(6.5)
    assert w.pstd() == pytest.approx(math.sqrt(((5 - 6.5) ** 2 * 2 + 0.25 + 6.25) / 4))


def test_rsi_wilder_values() -> None:
    r = Rsi(2)  # alpha = 1/2
    assert r.update(10.0) is None
    assert r.update(12.0) == 100.0  # gain 2, loss 0
    # gain avg = .5*0 + .5*2 = 1; loss avg = .5*1 + .5*0 = 0.5 -> RS 2 -> RSI 66.67
    assert r.update(11.0) == pytest.approx(100 - 100 / 3)
    assert rsi_from(0.0, 0.0) == 50.0


def test_atr_uses_true_range_with_gaps() -> None:
    a = Atr(2)
    assert a.update(11.0, 9.0, 10.0) == 2.0  # first TR = high - low
    # gap up: TR = max(1, |15-10|, |14-10|) = 5 -> 0.5*5 + 0.5*2
    assert a.update(15.0, 14.0, 14.5) == 3.5
