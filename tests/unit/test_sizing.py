from __future__ import annotations

import math
import re
from decimal import Decimal as D

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrade.domain.money import MONEY_CONTEXT, quantize
from raytrade.domain.sizing import (
    SIZERS,
    AdaptiveThresholds,
    FixedFraction,
    FixedNotional,
    Kelly,
    Sizer,
    SizingInputs,
    VolTarget,
    sizer_from,
)
from raytrade.domain.strategy import ThresholdStrategy


def inputs(
    score: float = 0.6, direction: int = 1, vol: float | None = None, equity: str = "10000", price: str = "20000"
) -> SizingInputs:
    return SizingInputs(D(equity), D(price), score, direction, vol)


def test_fixed_notional_and_fixed_fraction_exact() -> None:
    assert FixedNotional.name == "fixed_notional" and FixedFraction.name == "fixed_fraction"
    assert FixedNotional(D("2500")).notional(inputs()) == D("2500")
    assert FixedNotional(D("2500")).notional(inputs(equity="1")) == D("2500")  # ignores equity by design
    assert FixedFraction(0.1).notional(inputs(equity="12345.67")) == D("1234.567")
    assert FixedFraction(1.0).notional(inputs(equity="12345.67")) == D("12345.67")
    assert FixedFraction(0.07).notional(inputs(equity="100")) == D("7")  # 0.07 enters as Decimal("0.07"), not binary
    # Model outputs may be numpy scalars (float32 is not a float subclass); they are accepted.
    from_numpy = SizingInputs(D(100), D(1), np.float32(0.75), 1, np.float64(0.01))  # type: ignore[arg-type]
    assert FixedFraction(0.07).notional(from_numpy) == D("7")
    for bad in (0.0, -0.1, 1.01, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            FixedFraction(bad)
    for amount in (D(0), D(-1), D("NaN"), D("Infinity")):
        with pytest.raises(ValueError, match="notional must be a positive Decimal"):
            FixedNotional(amount)


def test_kelly_exact_fractions() -> None:
    k = Kelly()  # payoff 1, half Kelly, cap 0.25
    assert k.name == "kelly"
    # long, p = 0.6: f* = 0.6 - 0.4 = 0.2, half -> 0.1 of 10 000
    assert k.notional(inputs(0.6, 1)) == D("1000")
    assert k.fraction(inputs(0.6, 1)) == D("0.1")
    # short on score 0.3: p = 0.7, f* = 0.4, half -> 0.2
    assert k.notional(inputs(0.3, -1)) == D("2000")
    # payoff 2, p = 0.4: f* = 0.4 - 0.6 / 2 = 0.1, half -> 0.05
    assert Kelly(payoff_ratio=2.0).notional(inputs(0.4, 1)) == D("500")
    # payoff 3, p = 0.5: f* = 0.5 - 0.5 / 3 = 1/3, half -> 1/6 of 6000 = 1000 (to 40 significant digits)
    assert quantize(Kelly(payoff_ratio=3.0).notional(inputs(0.5, 1, equity="6000")), D("0.000001")) == D("1000")


def test_kelly_clamps_at_zero_and_cap() -> None:
    k = Kelly()
    assert k.notional(inputs(0.4, 1)) == 0  # f* = 0.4 - 0.6 = -0.2 -> no bet
    assert k.notional(inputs(0.6, -1)) == 0  # short with P(down) = 0.4 -> no bet
    assert k.notional(inputs(0.5, 1)) == 0  # no edge at even odds
    assert k.notional(inputs(0.0, -1)) == D("2500")  # p = 1: f* = 1, half = 0.5, capped at 0.25
    assert Kelly(1.0, 1.0, 0.25).notional(inputs(0.9, 1)) == D("2500")  # f* = 0.8 -> cap
    assert Kelly(1.0, 1.0, 0.9).notional(inputs(0.9, 1)) == D("8000")  # under the cap: full Kelly 0.8
    assert not Kelly().notional(inputs(0.0, 1)).is_signed()  # a clamped zero is never -0
    for kwargs, field in (
        ({"payoff_ratio": 0.0}, "payoff_ratio"),
        ({"kelly_fraction": 0.0}, "kelly_fraction"),
        ({"kelly_fraction": 1.5}, "kelly_fraction"),
        ({"cap": 0.0}, "cap"),
        ({"cap": math.nan}, "cap"),
    ):
        with pytest.raises(ValueError, match=field):
            Kelly(**kwargs)


def test_vol_target_exact_and_leverage_cap() -> None:
    v = VolTarget(0.2, bars_per_year=10_000.0)
    assert v.name == "vol_target"
    # annual vol = 0.004 * sqrt(10 000) = 0.4 -> leverage 0.2 / 0.4 = 0.5
    assert v.notional(inputs(vol=0.004)) == D("5000")
    # annual vol 0.1 -> wants 2x, capped at 1.5x
    assert VolTarget(0.2, 10_000.0, max_leverage=1.5).notional(inputs(vol=0.001)) == D("15000")
    assert v.notional(inputs(vol=0.001)) == D("10000")  # default cap 1x
    # default: one-minute bars, 525 600 a year
    got = VolTarget(0.2).notional(inputs(vol=0.0005))
    assert float(got) == pytest.approx(10_000 * 0.2 / (0.0005 * math.sqrt(525_600.0)), rel=1e-14)
    assert float(got) == pytest.approx(5517.3725906824, rel=1e-12)
    for vol in (None, 0.0):
        with pytest.raises(ValueError, match=r"^vol_target needs a volatility forecast$"):
            v.notional(inputs(vol=vol))
    for kwargs, field in (
        ({"annual_vol_target": 0.0}, "annual_vol_target"),
        ({"annual_vol_target": 0.2, "bars_per_year": -1.0}, "bars_per_year"),
        ({"annual_vol_target": 0.2, "max_leverage": math.inf}, "max_leverage"),
    ):
        with pytest.raises(ValueError, match=field):
            VolTarget(**kwargs)


def test_every_sizer_rejects_bad_inputs() -> None:
    sizers: list[Sizer] = [FixedNotional(D(100)), FixedFraction(0.5), Kelly(), VolTarget(0.2)]
    bad: list[tuple[SizingInputs, str]] = [
        (inputs(equity="0", vol=0.001), "equity must be a positive"),
        (inputs(equity="-5", vol=0.001), "equity must be a positive"),
        (SizingInputs(D("NaN"), D(1), 0.6, 1, 0.001), "equity must be a positive"),
        (inputs(price="0", vol=0.001), "price must be a positive"),
        (inputs(price="-1", vol=0.001), "price must be a positive"),
        (inputs(score=1.5, vol=0.001), r"score must be a probability in \[0, 1\]"),
        (inputs(score=math.nan, vol=0.001), "score must be a probability"),
        (inputs(direction=0, vol=0.001), "direction must be"),
        (SizingInputs(D(1), D(1), 0.6, True, 0.001), "direction must be"),
        (inputs(vol=-0.001), "vol_per_bar must be"),
        (inputs(vol=math.inf), "vol_per_bar must be"),
    ]
    for sizer in sizers:
        for x, message in bad:
            with pytest.raises(ValueError, match=message):
                sizer.notional(x)


def test_sizer_from_builds_each_method() -> None:
    assert sorted(SIZERS) == ["fixed_fraction", "fixed_notional", "kelly", "vol_target"]
    assert sizer_from({"method": "fixed_notional", "notional": "2500"}) == FixedNotional(D("2500"))
    assert sizer_from({"method": "fixed_notional", "notional": 2500.5}) == FixedNotional(D("2500.5"))
    assert sizer_from({"method": "fixed_notional", "notional": 2500}) == FixedNotional(D(2500))
    assert sizer_from({"method": "fixed_fraction", "fraction": 0.05}) == FixedFraction(0.05)
    assert sizer_from({"method": "kelly"}) == Kelly(1.0, 0.5, 0.25)
    assert sizer_from({"method": "kelly", "cap": 0.1, "payoff_ratio": "2"}) == Kelly(2.0, 0.5, 0.1)
    built = sizer_from({"method": "vol_target", "annual_vol_target": 0.3, "max_leverage": 2})
    assert built == VolTarget(0.3, 525_600.0, 2.0) and isinstance(built.max_leverage, float)
    assert sizer_from({"method": "fixed_fraction", "fraction": 0.25}).notional(inputs()) == D("2500")


def test_sizer_from_errors_name_the_problem() -> None:
    valid = "valid methods: fixed_fraction, fixed_notional, kelly, vol_target"
    with pytest.raises(ValueError, match=f"unknown sizing method 'martingale'; {valid}"):
        sizer_from({"method": "martingale"})
    with pytest.raises(ValueError, match=f"unknown sizing method None; {valid}"):
        sizer_from({"fraction": 0.1})
    with pytest.raises(
        ValueError, match=re.escape("kelly: unknown parameter(s) leverage; valid: cap, kelly_fraction, payoff_ratio")
    ):
        sizer_from({"method": "kelly", "leverage": 2})
    with pytest.raises(ValueError, match=re.escape("fixed_notional: unknown parameter(s) amount; valid: notional")):
        sizer_from({"method": "fixed_notional", "amount": 5})
    with pytest.raises(ValueError, match=re.escape("fixed_fraction: missing parameter(s) fraction; valid: fraction")):
        sizer_from({"method": "fixed_fraction"})
    with pytest.raises(ValueError, match=r"vol_target: missing parameter.s. annual_vol_target; valid: annual_vol_t"):
        sizer_from({"method": "vol_target", "max_leverage": 2.0})
    with pytest.raises(ValueError, match=r"fixed_fraction: fraction must be in \(0, 1\], found 1.5"):
        sizer_from({"method": "fixed_fraction", "fraction": 1.5})
    with pytest.raises(ValueError, match="fixed_notional: notional must be a positive Decimal"):
        sizer_from({"method": "fixed_notional", "notional": "-5"})
    with pytest.raises(ValueError, match="fixed_notional: notional must be a positive Decimal"):
        sizer_from({"method": "fixed_notional", "notional": "NaN"})
    with pytest.raises(ValueError, match=r"kelly: cap must be in \(0, 1\], found nan"):
        sizer_from({"method": "kelly", "cap": "nan"})
    for value in (True, "abc", [0.1], None):
        with pytest.raises(ValueError, match="kelly: parameter 'cap' must be a number"):
            sizer_from({"method": "kelly", "cap": value})
    with pytest.raises(ValueError, match="fixed_notional: parameter 'notional' must be a number"):
        sizer_from({"method": "fixed_notional", "notional": "12abc"})


def test_adaptive_thresholds_widen_with_volatility() -> None:
    a = AdaptiveThresholds(long_above=0.625, short_below=0.375, vol_ref=0.25, vol_k=0.5)
    assert a.thresholds(None, None) == (0.625, 0.375)
    assert a.thresholds(0.125, None) == (0.625, 0.375)  # calm: below the reference, no change
    assert a.thresholds(0.25, None) == (0.625, 0.375)  # at the reference
    assert a.widening(0.5) == 1.5 and a.thresholds(0.5, None) == (0.6875, 0.3125)  # half-widths 0.125 -> 0.1875
    assert a.widening(0.75) == 2.0 and a.thresholds(0.75, None) == (0.75, 0.25)  # half-widths double
    assert a.widening(2.0) == 4.5 and a.thresholds(2.0, None) == (1.0, 0.0)  # 0.5 +- 0.5625 clamped
    assert AdaptiveThresholds(0.625, 0.375, 0.25, vol_k=0.0).thresholds(2.0, None) == (0.625, 0.375)


def test_adaptive_thresholds_rsi_extremes() -> None:
    a = AdaptiveThresholds(long_above=0.625, short_below=0.375, vol_ref=0.25)
    assert a.thresholds(None, 75.0) == (1.0, 0.375)  # overbought: no new longs
    assert a.thresholds(None, 70.0) == (0.625, 0.375)  # the boundary itself is not overbought
    assert a.thresholds(None, 25.0) == (0.625, 0.0)  # oversold: no new shorts
    assert a.thresholds(None, 30.0) == (0.625, 0.375)
    assert a.thresholds(0.75, 80.0) == (1.0, 0.25)  # both rules at once
    # 1.0 / 0.0 really mean "never" for the strict comparisons of ThresholdStrategy.
    long_above, short_below = a.thresholds(0.75, 80.0)
    s = ThresholdStrategy("s", long_above, short_below, D(1000), allow_short=True)
    assert s.target(1.0, D(0), D(1)) == 0  # even a certain "up" does not open a long
    _, never_short = a.thresholds(None, 10.0)
    s2 = ThresholdStrategy("s", 0.625, never_short, D(1000), allow_short=True)
    assert s2.target(0.0, D(0), D(1)) == 0


def test_adaptive_thresholds_validation() -> None:
    with pytest.raises(ValueError, match=r"short_below <= 0\.5 <= long_above"):
        AdaptiveThresholds(0.45, 0.4, 0.25)
    with pytest.raises(ValueError, match="vol_ref must be > 0"):
        AdaptiveThresholds(0.6, 0.4, 0.0)
    with pytest.raises(ValueError, match="vol_k must be >= 0"):
        AdaptiveThresholds(0.6, 0.4, 0.1, vol_k=-1.0)
    with pytest.raises(ValueError, match="rsi_oversold < rsi_overbought"):
        AdaptiveThresholds(0.6, 0.4, 0.1, rsi_overbought=30.0, rsi_oversold=30.0)
    a = AdaptiveThresholds(0.6, 0.4, 0.1)
    for vol in (-0.1, math.nan):
        with pytest.raises(ValueError, match="vol must be"):
            a.thresholds(vol, None)
    for rsi in (101.0, -1.0, math.nan):
        with pytest.raises(ValueError, match=r"rsi must be in \[0, 100\]"):
            a.thresholds(None, rsi)


positive_money = st.decimals(min_value=D("0.01"), max_value=D("1e12"), places=2)
unit_interval_open_left = st.floats(min_value=0.0, max_value=1.0, exclude_min=True)


@settings(max_examples=200, deadline=None)
@given(
    equity=positive_money,
    price=positive_money,
    score=st.floats(min_value=0.0, max_value=1.0),
    direction=st.sampled_from([1, -1]),
    vol=st.none() | st.floats(min_value=0.0, max_value=10.0),
    amount=positive_money,
    fraction=unit_interval_open_left,
    payoff=st.floats(min_value=1e-3, max_value=1e3),
    kelly_fraction=unit_interval_open_left,
    cap=unit_interval_open_left,
    target=st.floats(min_value=1e-4, max_value=5.0),
    bars_per_year=st.floats(min_value=1.0, max_value=1e7),
    max_leverage=st.floats(min_value=1e-3, max_value=10.0),
)
def test_every_sizer_is_finite_non_negative_and_bounded(
    equity: D,
    price: D,
    score: float,
    direction: int,
    vol: float | None,
    amount: D,
    fraction: float,
    payoff: float,
    kelly_fraction: float,
    cap: float,
    target: float,
    bars_per_year: float,
    max_leverage: float,
) -> None:
    x = SizingInputs(equity, price, score, direction, vol)
    bounded: list[tuple[Sizer, D]] = [
        (FixedNotional(amount), amount),
        (FixedFraction(fraction), equity),
        (Kelly(payoff, kelly_fraction, cap), MONEY_CONTEXT.multiply(D(repr(cap)), equity)),
    ]
    vt = VolTarget(target, bars_per_year, max_leverage)
    if vol is None or vol <= 0.0:
        with pytest.raises(ValueError, match="vol_target needs a volatility forecast"):
            vt.notional(x)
    else:
        bounded.append((vt, MONEY_CONTEXT.multiply(D(repr(max_leverage)), equity)))
    for sizer, bound in bounded:
        got = sizer.notional(x)
        assert isinstance(got, D) and got.is_finite() and got >= 0 and not got.is_signed(), (sizer, got)
        assert got <= bound, (sizer, got, bound)
