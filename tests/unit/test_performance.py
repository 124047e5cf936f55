"""Performance metrics: every metric against empyrical-reloaded / quantstats on real equities, plus hand examples."""

from __future__ import annotations

import importlib
import json
import math
import random
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raytrade.domain import performance as perf
from raytrade.domain.money import MONEY_CONTEXT
from raytrade.domain.orders import Fill, Side

# The oracles (dev dependencies; raytrade never imports them). Missing ones fail here, never skip.
ep: Any = importlib.import_module("empyrical")
pd: Any = importlib.import_module("pandas")
qs: Any = importlib.import_module("quantstats")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "us_equities_daily_60.parquet"
# TSLA starts in 2010, later than the others; CCL and AMD have deep, long drawdowns.
SYMBOLS = ("AAPL", "BA", "CCL", "AMD", "BRK.B", "TSLA")
TOL = {"rel": 1e-9, "abs": 1e-9}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NS = 86_400 * 10**9


@pytest.fixture(scope="module")
def closes() -> dict[str, Any]:
    if not DATA.exists():
        pytest.skip(f"real equities data not found at {DATA} (../shared/data beside the checkout)")
    df = pd.read_parquet(DATA, columns=["symbol", "timestamp", "adjusted_close"])
    return {s: df[df.symbol == s].set_index("timestamp")["adjusted_close"].sort_index() for s in SYMBOLS}


def close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=TOL["rel"], abs_tol=TOL["abs"])


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_metrics_equal_empyrical_and_quantstats_on_real_equities(closes: dict[str, Any], symbol: str) -> None:
    prices = closes[symbol]
    rs = prices.pct_change().dropna()  # pandas Series with a DatetimeIndex for quantstats
    r = perf.simple_returns(prices.to_numpy())
    np.testing.assert_allclose(r, rs.to_numpy(), rtol=1e-12, atol=0)
    ppy = perf.periods_per_year(perf.Calendar.EQUITY, 86_400)
    assert ppy == 252.0

    checks: dict[str, tuple[float, list[float]]] = {
        "total_return": (perf.total_return(r), [ep.cum_returns_final(r), qs.stats.comp(rs)]),
        "cagr": (perf.cagr(r, ppy), [ep.cagr(r, annualization=ppy), qs.stats.cagr(rs, periods=ppy)]),
        "annual_volatility": (
            perf.annual_volatility(r, ppy),
            [ep.annual_volatility(r, annualization=ppy), qs.stats.volatility(rs, periods=ppy)],
        ),
        "sharpe": (perf.sharpe(r, ppy), [ep.sharpe_ratio(r, annualization=ppy), qs.stats.sharpe(rs, periods=ppy)]),
        "sortino": (perf.sortino(r, ppy), [ep.sortino_ratio(r, annualization=ppy), qs.stats.sortino(rs, periods=ppy)]),
        "downside_risk": (perf.downside_risk(r, ppy), [ep.downside_risk(r, annualization=ppy)]),
        "calmar": (perf.calmar(r, ppy), [ep.calmar_ratio(r, annualization=ppy), qs.stats.calmar(rs, periods=ppy)]),
        "max_drawdown": (perf.max_drawdown(r), [ep.max_drawdown(r), qs.stats.max_drawdown(rs)]),
        "var_historical": (perf.var_historical(r, 0.05), [ep.value_at_risk(r, cutoff=0.05)]),
        "cvar_historical": (perf.cvar_historical(r, 0.05), [ep.conditional_value_at_risk(r, cutoff=0.05)]),
        "var_parametric": (perf.var_parametric(r, 0.95), [qs.stats.value_at_risk(rs, confidence=0.95)]),
        "cvar_parametric": (perf.cvar_parametric(r, 0.95), [qs.stats.cvar(rs, confidence=0.95, method="parametric")]),
    }
    for name, (mine, oracles) in checks.items():
        assert math.isfinite(mine), name
        for oracle in oracles:
            assert close(mine, oracle), f"{symbol} {name}: {mine!r} != {float(oracle)!r}"

    np.testing.assert_allclose(perf.drawdown_series(r), ep.stats.drawdown_series(r), rtol=1e-9, atol=1e-9)
    qs_drawdowns = qs.stats.to_drawdown_series(rs).to_numpy()
    np.testing.assert_allclose(perf.drawdown_series(r), qs_drawdowns, rtol=1e-9, atol=1e-9)
    # quantstats' rolling_sharpe: pandas rolling mean / rolling std (ddof=1), annualised.
    expected_rolling = qs.stats.rolling_sharpe(rs, rolling_period=63, periods_per_year=ppy).to_numpy()
    rolling = perf.rolling_sharpe(r, 63, ppy)
    assert np.isnan(rolling[:62]).all() and np.isfinite(rolling[62:]).all()
    np.testing.assert_allclose(rolling, expected_rolling, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_drawdown_spans_and_months_equal_quantstats(closes: dict[str, Any], symbol: str) -> None:
    prices = closes[symbol]
    rs = prices.pct_change().dropna()
    ts = prices.index.to_numpy().astype("datetime64[ns]").astype(np.int64)
    equity = prices.to_numpy()
    r = perf.simple_returns(equity)
    dd = perf.drawdown_series(r)
    # quantstats.drawdown_details lists each drawdown by its first and last date under water.
    details = qs.stats.drawdown_details(qs.stats.to_drawdown_series(rs))
    dates = prices.index.strftime("%Y-%m-%d")
    spans = perf.underwater_spans(r)
    assert len(spans) == len(details) > 0
    for (peak, end), (_, row) in zip(spans, details.iterrows(), strict=True):
        recovered = dd[end - 1] == 0.0  # point i is the equity after return i - 1
        last_under = end - 1 if recovered else end
        assert (dates[peak + 1], dates[last_under]) == (row["start"], row["end"])
        assert close(dd[peak:end].min() * 100, row["max drawdown"])
    longest = max(spans, key=lambda s: s[1] - s[0])
    assert perf.max_drawdown_duration(r) == longest[1] - longest[0]
    assert perf.max_drawdown_duration_ns(r, ts) == max(int(ts[e] - ts[p]) for p, e in spans)

    table = qs.stats.monthly_returns(rs, eoy=False)
    months = perf.monthly_returns(ts, equity)
    assert len(months) == sum(1 for _ in rs.groupby(rs.index.strftime("%Y-%m")))
    for year, month, value in months:
        assert close(value, table.loc[str(year), MONTHS[month - 1]]), (year, month)


def test_pinned_values_for_aapl(closes: dict[str, Any]) -> None:
    """The numbers the oracles agree on for AAPL 1999-11-01 → 2021-04-21 (daily, 5,401 returns)."""
    r = perf.simple_returns(closes["AAPL"].to_numpy())
    assert len(r) == 5401
    assert perf.sharpe(r, 252) == pytest.approx(0.83299200855312, rel=1e-9)
    assert perf.sortino(r, 252) == pytest.approx(1.18947385752461, rel=1e-9)
    assert perf.cagr(r, 252) == pytest.approx(0.287144995470501, rel=1e-9)
    assert perf.max_drawdown(r) == pytest.approx(-0.818017893057511, rel=1e-9)
    assert perf.calmar(r, 252) == pytest.approx(0.351025323415894, rel=1e-9)
    assert perf.var_historical(r) == pytest.approx(-0.0376414440776992, rel=1e-9)
    assert perf.cvar_historical(r) == pytest.approx(-0.056864934779987, rel=1e-9)
    assert perf.var_parametric(r) == pytest.approx(-0.0408158281868889, rel=1e-9)
    assert perf.cvar_parametric(r) == pytest.approx(-0.0515263795931982, rel=1e-9)


def test_periods_per_year_follows_the_calendar() -> None:
    assert perf.periods_per_year(perf.Calendar.CRYPTO, 60) == 525_600.0
    assert perf.periods_per_year(perf.Calendar.CRYPTO, 86_400) == 365.0
    assert perf.periods_per_year(perf.Calendar.EQUITY, 60) == 98_280.0
    assert perf.periods_per_year(perf.Calendar.EQUITY, 86_400) == 252.0
    assert perf.periods_per_year(perf.Calendar.EQUITY, 5 * 86_400) == pytest.approx(50.4)
    assert perf.periods_per_year(perf.Calendar("24/7"), 3_600) == 8_760.0
    with pytest.raises(ValueError, match="bar_seconds"):
        perf.periods_per_year(perf.Calendar.EQUITY, 0)


def test_equity_minutes_annualised_as_24_7_inflate_sharpe() -> None:
    r = np.random.default_rng(7).normal(2e-5, 4e-4, 20_000)
    wrong = perf.sharpe(r, perf.periods_per_year(perf.Calendar.CRYPTO, 60))
    right = perf.sharpe(r, perf.periods_per_year(perf.Calendar.EQUITY, 60))
    assert right > 0
    assert wrong / right == pytest.approx(math.sqrt(525_600 / 98_280), rel=1e-12)
    assert wrong / right == pytest.approx(2.3125, abs=1e-4)


def test_degenerate_inputs() -> None:
    assert math.isnan(perf.sharpe(np.array([0.01]), 252))
    assert perf.sharpe(np.full(5, 0.01), 252) == math.inf  # no dispersion, positive mean
    assert math.isnan(perf.sharpe(np.zeros(5), 252))
    assert perf.sortino(np.array([0.01, 0.02]), 1) == math.inf  # no downside (empyrical)
    assert math.isnan(perf.calmar(np.array([0.01, 0.02]), 252))  # no drawdown
    assert perf.max_drawdown(np.array([0.01, 0.02])) == 0.0
    assert math.isnan(perf.max_drawdown(np.array([])))
    assert math.isnan(perf.total_return(np.array([])))
    assert perf.var_parametric(np.full(4, -0.01)) == pytest.approx(-0.01)
    assert perf.simple_returns(np.array([100.0])).size == 0
    with pytest.raises(ValueError, match="confidence"):
        perf.var_parametric(np.array([0.1, 0.2]), 95)


def test_max_drawdown_duration_by_hand() -> None:
    # equity 1, 1.1, 0.99, 1.045, 1.21, 1.089 (under water from point 4 to the end)
    r = np.array([0.1, -0.1, 0.05 / 0.99, 1.21 / 1.045 - 1, -0.1])
    assert perf.underwater_spans(r) == [(1, 4), (4, 5)]
    assert perf.max_drawdown_duration(r) == 3
    ts = np.array([0, 1, 2, 10, 11, 30]) * DAY_NS
    assert perf.max_drawdown_duration_ns(r, ts) == 19 * DAY_NS  # the unrecovered one is longer in time
    assert perf.max_drawdown(r) == pytest.approx(-0.1)


def test_rolling_sharpe_by_hand() -> None:
    out = perf.rolling_sharpe(np.array([0.01, 0.02, 0.03, 0.03, 0.03]), 3, 4.0)
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx(0.02 / 0.01 * 2.0, rel=1e-9)
    assert out[3] == pytest.approx(0.08 / 3 * math.sqrt(30_000) * 2.0, rel=1e-9)  # std = sqrt(1/30000)
    assert out[4] == math.inf  # three equal returns: no dispersion
    assert np.isnan(perf.rolling_sharpe(np.array([0.01, 0.02]), 3, 1.0)).all()


def _ns(day: str) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


def test_monthly_returns_by_hand() -> None:
    ts = [_ns("2024-01-31"), _ns("2024-02-01"), _ns("2024-02-29T23:59"), _ns("2024-03-01")]
    months = perf.monthly_returns(ts, [100.0, 110.0, 121.0, 108.9])
    # January holds only the first point: February is measured from it.
    assert [(y, m) for y, m, _ in months] == [(2024, 2), (2024, 3)]
    assert months[0][2] == pytest.approx(0.21, rel=1e-12)
    assert months[1][2] == pytest.approx(-0.1, rel=1e-12)
    same = perf.monthly_returns([_ns("2023-12-01"), _ns("2023-12-15"), _ns("2024-01-02")], [100.0, 105.0, 99.75])
    assert [(y, m) for y, m, _ in same] == [(2023, 12), (2024, 1)]
    assert same[0][2] == pytest.approx(0.05) and same[1][2] == pytest.approx(-0.05)
    assert perf.monthly_returns([_ns("2024-01-01")], [100.0]) == []


def fill(n: int, symbol: str, side: Side, qty: str, price: str, fee: str, ts_s: int) -> Fill:
    return Fill(f"f{n}", f"o{n}", symbol, side, Decimal(qty), Decimal(price), Decimal(fee), ts_s * 10**9)


FILLS = [
    fill(1, "X", Side.BUY, "10", "100", "1", 1),
    fill(2, "X", Side.BUY, "5", "106", "0.5", 2),  # scale in: 15 @ 102
    fill(3, "Y", Side.SELL, "2", "50", "0.2", 2),
    fill(4, "X", Side.SELL, "5", "110", "0.55", 3),  # partial close
    fill(5, "X", Side.SELL, "16", "108", "1.6", 4),  # closes 10 (fee 1.0), opens a 6 short (fee 0.6)
    fill(6, "X", Side.BUY, "6", "100", "0.3", 6),  # closes the short
    fill(7, "Y", Side.BUY, "2", "55", "0.2", 7),
    fill(8, "X", Side.BUY, "3", "100", "0.1", 9),  # still open at the end: not a round trip
]


def test_round_trips_with_scale_in_partial_close_flip_and_fees() -> None:
    shuffled = FILLS.copy()
    random.Random(3).shuffle(shuffled)
    trips = perf.round_trips(shuffled)
    assert trips == perf.round_trips(FILLS)
    assert [(t.symbol, t.side, t.entry_ts // 10**9, t.exit_ts // 10**9) for t in trips] == [
        ("X", "LONG", 1, 4),
        ("X", "SHORT", 4, 6),
        ("Y", "SHORT", 2, 7),
    ]
    long_x, short_x, short_y = trips
    assert long_x.qty == Decimal(15)
    assert long_x.entry_price == Decimal(102)
    with localcontext(MONEY_CONTEXT):
        assert long_x.exit_price == Decimal(1630) / Decimal(15)  # (5 * 110 + 10 * 108) / 15
    assert long_x.fees == Decimal("3.05")
    assert long_x.pnl == Decimal("96.95")  # 1630 - 1530 - 3.05
    assert (short_x.qty, short_x.entry_price, short_x.exit_price) == (Decimal(6), Decimal(108), Decimal(100))
    assert short_x.fees == Decimal("0.9")
    assert short_x.pnl == Decimal("47.1")  # 648 - 600 - 0.9
    assert short_y.pnl == Decimal("-10.4")  # 100 - 110 - 0.4
    assert perf.traded_notional(FILLS) == Decimal("4918")
    assert perf.total_fees(FILLS) == Decimal("4.45")

    assert perf.win_rate(trips) == pytest.approx(2 / 3)
    assert perf.profit_factor(trips) == pytest.approx(144.05 / 10.4, rel=1e-12)
    assert perf.expectancy(trips) == pytest.approx(44.55, rel=1e-12)
    assert perf.average_holding_ns(trips) == pytest.approx((3 + 2 + 5) / 3 * 1e9)


def test_flip_fee_split_is_exact() -> None:
    trips = perf.round_trips(
        [
            fill(1, "Z", Side.BUY, "1", "10", "0", 1),
            fill(2, "Z", Side.SELL, "3", "11", "1", 2),  # a third of the fee closes, two thirds open
            fill(3, "Z", Side.BUY, "2", "9", "0", 3),
        ]
    )
    assert [t.side for t in trips] == ["LONG", "SHORT"]
    assert trips[0].fees + trips[1].fees == Decimal(1)
    with localcontext(MONEY_CONTEXT):
        third = Decimal(1) / Decimal(3)
    assert trips[0].fees == third
    assert trips[0].pnl + trips[1].pnl == Decimal(1) + Decimal(4) - Decimal(1)  # gross 1 + 4, fees 1
    with pytest.raises(ValueError, match="qty"):
        perf.round_trips([fill(9, "Z", Side.BUY, "0", "10", "0", 1)])


def test_trade_stats_edge_cases() -> None:
    assert math.isnan(perf.win_rate([])) and math.isnan(perf.profit_factor([])) and math.isnan(perf.expectancy([]))
    win = perf.round_trips([fill(1, "A", Side.BUY, "1", "10", "0", 1), fill(2, "A", Side.SELL, "1", "12", "0", 2)])
    loss = perf.round_trips([fill(1, "B", Side.BUY, "1", "10", "0", 1), fill(2, "B", Side.SELL, "1", "7", "0", 2)])
    assert perf.profit_factor(win) == math.inf
    assert perf.profit_factor(loss) == 0.0
    assert perf.profit_factor(win + loss) == pytest.approx(2 / 3)


def test_turnover_and_exposure() -> None:
    t, per_year = perf.turnover(Decimal(300), np.array([100.0, 100.0, 100.0]), 252.0)
    assert t == 3.0 and per_year == pytest.approx(3.0 * 252 / 2)
    assert perf.exposure(np.array([50.0, 100.0, 0.0]), np.array([100.0, 100.0, 100.0])) == pytest.approx(0.5)


def test_summarize_is_json_safe() -> None:
    ts = np.array([_ns("2024-01-01"), _ns("2024-01-02"), _ns("2024-01-03"), _ns("2024-01-04")])
    equity = np.array([100.0, 110.0, 99.0, 121.0])
    trips = perf.round_trips(FILLS)
    gross = np.array([0.0, 50.0, 99.0, 0.0])
    out = perf.summarize(ts, equity, 3.0, trips, perf.traded_notional(FILLS), perf.total_fees(FILLS), gross)
    json.dumps(out, allow_nan=False)
    assert out["start"] == "2024-01-01T00:00:00Z" and out["end"] == "2024-01-04T00:00:00Z"
    assert out["periods"] == 3 and out["periods_per_year"] == 3.0
    assert out["total_return"] == pytest.approx(0.21)
    assert out["cagr"] == pytest.approx(0.21)  # exactly one year of periods
    assert out["max_drawdown"] == pytest.approx(-0.1)
    assert out["max_drawdown_duration_periods"] == 2
    assert out["max_drawdown_duration_s"] == 2 * 86_400.0
    assert out["calmar"] == pytest.approx(2.1)
    r = np.array([0.1, -0.1, 121 / 99 - 1])
    assert out["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(3.0), rel=1e-12)
    assert out["sortino"] == pytest.approx(r.mean() * 3.0 / (math.sqrt(0.01 / 3) * math.sqrt(3.0)), rel=1e-12)
    assert out["var_hist_95"] == pytest.approx(-0.1 + 0.1 * (0.1 + 0.1))  # 10th percentile of 3 points
    assert out["cvar_hist_95"] == pytest.approx(-0.1)
    assert out["trades"] == 3 and out["win_rate"] == pytest.approx(2 / 3)
    assert out["expectancy"] == pytest.approx(44.55) and out["avg_holding_s"] == pytest.approx(10 / 3)
    assert out["turnover"] == pytest.approx(4918 / 107.5)
    assert out["turnover_per_year"] == pytest.approx(4918 / 107.5)  # 3 periods at 3 per year = 1 year
    assert out["exposure"] == pytest.approx((50 / 110 + 99 / 99) / 4)
    assert out["fees"] == 4.45 and out["traded_notional"] == 4918.0

    flat = perf.summarize(ts[:3], np.full(3, 100.0), 252.0, [], Decimal(0), Decimal(0), None)
    json.dumps(flat, allow_nan=False)
    assert flat["sharpe"] is None and flat["sortino"] is None and flat["calmar"] is None
    assert flat["max_drawdown"] == 0.0 and flat["profit_factor"] is None and flat["exposure"] is None

    for n in (0, 1):
        tiny = perf.summarize(ts[:n], equity[:n], 252.0, [], Decimal(0), Decimal(0), np.zeros(n))
        json.dumps(tiny, allow_nan=False)
        assert tiny["periods"] == 0 and tiny["trades"] == 0
        for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "max_drawdown_duration_s", "turnover"):
            assert tiny[key] is None, key
