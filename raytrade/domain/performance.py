"""The one place performance metrics are computed: pure numpy, conventions equal to empyrical / quantstats.

Inputs are per-period SIMPLE returns ``r[i] = equity[i+1] / equity[i] - 1`` (see :func:`simple_returns`)
and ``periods_per_year``, the annualisation factor of the instrument's calendar (see
:func:`periods_per_year`), never one inferred from the bar spacing. Inputs are expected finite: there
is no NaN skipping, a NaN propagates into the result.

Conventions (each checked against empyrical-reloaded and quantstats on real equity data):

* volatility and Sharpe use the sample standard deviation (``ddof=1``), risk-free rate 0;
* Sortino's downside deviation is ``sqrt(mean(min(r, 0)**2))`` over ALL observations;
* CAGR is ``(1 + total_return) ** (periods_per_year / n) - 1`` with ``n`` the number of returns;
* drawdowns are measured from an anchor equity of 1 before the first return, and are negative fractions;
* VaR / CVaR are returns (a loss is negative), not positive loss amounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from raytrade.domain.round_trips import (
    RoundTrip,
    average_holding_ns,
    expectancy,
    profit_factor,
    round_trips,
    total_fees,
    traded_notional,
    win_rate,
)

__all__ = [
    "Calendar",
    "RoundTrip",
    "annual_volatility",
    "average_holding_ns",
    "cagr",
    "calmar",
    "cvar_historical",
    "cvar_parametric",
    "downside_risk",
    "drawdown_series",
    "expectancy",
    "exposure",
    "max_drawdown",
    "max_drawdown_duration",
    "max_drawdown_duration_ns",
    "monthly_returns",
    "periods_per_year",
    "profit_factor",
    "rolling_sharpe",
    "round_trips",
    "sharpe",
    "simple_returns",
    "sortino",
    "summarize",
    "total_fees",
    "total_return",
    "traded_notional",
    "turnover",
    "underwater_spans",
    "var_historical",
    "var_parametric",
    "win_rate",
]

FloatArray = npt.NDArray[np.float64]
Metric = float | int | str | None

DAY_S = 86_400.0
EQUITY_SESSION_S = 390 * 60.0  # a 6.5-hour US equity session
_STD_NORMAL = NormalDist()


class Calendar(StrEnum):
    """The trading calendar of an instrument: it, not the bar spacing, sets the annualisation."""

    CRYPTO = "24/7"
    EQUITY = "equity"


def periods_per_year(calendar: Calendar, bar_seconds: float) -> float:
    """Bars per year for ``bar_seconds``-long bars traded on ``calendar``.

    24/7: ``365 * 86400 / bar_seconds`` (525,600 for 1-minute bars, 365 for daily). Equity, daily or
    slower bars (``bar_seconds`` counted in sessions of 86,400 s: a weekly bar is ``5 * 86400``):
    ``252 * 86400 / bar_seconds`` (252 for daily). Equity intraday bars: ``252 * 390 * 60 / bar_seconds``
    (98,280 for 1-minute bars).
    """
    if not (math.isfinite(bar_seconds) and bar_seconds > 0):
        raise ValueError(f"bar_seconds must be > 0, found {bar_seconds}")
    if Calendar(calendar) is Calendar.CRYPTO:
        return 365.0 * DAY_S / bar_seconds
    if bar_seconds >= DAY_S:
        return 252.0 * DAY_S / bar_seconds
    return 252.0 * EQUITY_SESSION_S / bar_seconds


def _arr(values: npt.ArrayLike) -> FloatArray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D array, found shape {a.shape}")
    return a


def _ratio(num: float, den: float) -> float:
    """``num / den`` with IEEE semantics: ±inf for a non-zero over zero, NaN for 0/0."""
    if den == 0 or math.isnan(den):
        return math.nan if (num == 0 or math.isnan(num) or math.isnan(den)) else math.copysign(math.inf, num)
    return num / den


def simple_returns(equity: npt.ArrayLike) -> FloatArray:
    """``equity[1:] / equity[:-1] - 1``; empty for fewer than 2 points."""
    e = _arr(equity)
    if len(e) < 2:
        return np.empty(0, dtype=np.float64)
    return e[1:] / e[:-1] - 1.0


def total_return(returns: npt.ArrayLike) -> float:
    """Compounded return ``prod(1 + r) - 1`` (empyrical ``cum_returns_final``); NaN when empty."""
    r = _arr(returns)
    return float(np.prod(1.0 + r) - 1.0) if len(r) else math.nan


def cagr(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Compound annual growth rate ``(1 + total) ** (1 / (n / periods_per_year)) - 1``, ``n`` = number of
    returns (empyrical ``annual_return``, quantstats ``cagr``); NaN when empty or the equity ends <= 0."""
    r = _arr(returns)
    if len(r) < 1:
        return math.nan
    ending = np.prod(1.0 + r)
    if not ending > 0:
        return math.nan
    return float(ending ** (1.0 / (len(r) / periods_per_year)) - 1.0)


def annual_volatility(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """``std(r, ddof=1) * sqrt(periods_per_year)`` (empyrical ``annual_volatility``); NaN under 2 returns."""
    r = _arr(returns)
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year)) if len(r) >= 2 else math.nan


def _std1(r: FloatArray) -> float:
    """Sample std, exactly 0 when all values are equal (no 1e-18 residue from the mean)."""
    return 0.0 if r.max() == r.min() else float(np.std(r, ddof=1))


def sharpe(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Annualised Sharpe ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``, risk-free 0
    (empyrical ``sharpe_ratio``, quantstats ``sharpe``). NaN under 2 returns; ±inf (NaN for a zero
    mean) when every return is equal."""
    r = _arr(returns)
    if len(r) < 2:
        return math.nan
    return _ratio(float(np.mean(r)), _std1(r)) * math.sqrt(periods_per_year)


def downside_risk(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """Annualised downside deviation ``sqrt(mean(min(r, 0)**2)) * sqrt(periods_per_year)``, the mean over
    ALL observations (empyrical ``downside_risk``, target 0); NaN when empty."""
    r = _arr(returns)
    if len(r) < 1:
        return math.nan
    return float(np.sqrt(np.mean(np.square(np.minimum(r, 0.0)))) * math.sqrt(periods_per_year))


def sortino(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """``mean(r) * periods_per_year / downside_risk`` (empyrical ``sortino_ratio``, quantstats ``sortino``).

    NaN under 2 returns; +inf when no return is negative but the mean is positive (empyrical; quantstats
    gives NaN there), NaN for a zero mean.
    """
    r = _arr(returns)
    if len(r) < 2:
        return math.nan
    return _ratio(float(np.mean(r)) * periods_per_year, downside_risk(r, periods_per_year))


def drawdown_series(returns: npt.ArrayLike) -> FloatArray:
    """Drawdown after each return, ``equity / running peak - 1`` (<= 0), with the running peak
    anchored at the starting equity (empyrical ``drawdown_series``, quantstats ``to_drawdown_series``)."""
    r = _arr(returns)
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    dd: FloatArray = equity / peak - 1.0
    return dd


def max_drawdown(returns: npt.ArrayLike) -> float:
    """Worst drawdown as a NEGATIVE fraction (-0.25 = a 25 % fall), 0 when the equity never fell
    (empyrical ``max_drawdown``, quantstats ``max_drawdown``); NaN when empty."""
    r = _arr(returns)
    return float(np.min(drawdown_series(r))) if len(r) else math.nan


def calmar(returns: npt.ArrayLike, periods_per_year: float) -> float:
    """``cagr / |max_drawdown|`` (empyrical ``calmar_ratio``); NaN when there is no drawdown."""
    mdd = max_drawdown(returns)
    if not mdd < 0:
        return math.nan
    out = cagr(returns, periods_per_year) / abs(mdd)
    return out if math.isfinite(out) else math.nan


def underwater_spans(returns: npt.ArrayLike) -> list[tuple[int, int]]:
    """Every drawdown as ``(peak, end)`` indexes into the equity points ``0..n`` (point 0 is the anchor
    before the first return, point ``i`` the equity after return ``i - 1``).

    ``peak`` is the last point at the running high before the fall; ``end`` the first point back at or
    above it (the recovery), or ``n`` when the equity is still under water at the end.
    """
    r = _arr(returns)
    n = len(r)
    equity = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    under = (equity < np.maximum.accumulate(equity)).astype(np.int8)
    edges = np.diff(np.concatenate(([0], under, [0])))
    starts = np.flatnonzero(edges == 1)  # first point under water
    stops = np.flatnonzero(edges == -1)  # one past the last point under water = the recovery point
    return [(int(s) - 1, min(int(e), n)) for s, e in zip(starts, stops, strict=True)]


def max_drawdown_duration(returns: npt.ArrayLike) -> int:
    """Longest time under water in periods: from the peak to the recovery (or to the last point)."""
    return max((end - peak for peak, end in underwater_spans(returns)), default=0)


def max_drawdown_duration_ns(returns: npt.ArrayLike, ts_ns: npt.ArrayLike) -> int:
    """Longest time under water in nanoseconds; ``ts_ns`` are the ``n + 1`` equity point times."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    spans = underwater_spans(returns)
    if len(ts) != len(_arr(returns)) + 1:
        raise ValueError(f"expected {len(_arr(returns)) + 1} timestamps (one per equity point), found {len(ts)}")
    return max((int(ts[end] - ts[peak]) for peak, end in spans), default=0)


def var_historical(returns: npt.ArrayLike, cutoff: float = 0.05) -> float:
    """Historical VaR: the ``cutoff`` percentile of the returns, linear interpolation (empyrical
    ``value_at_risk``). A return: a loss is negative. NaN when empty."""
    r = _arr(returns)
    return float(np.percentile(r, 100.0 * cutoff)) if len(r) else math.nan


def cvar_historical(returns: npt.ArrayLike, cutoff: float = 0.05) -> float:
    """Historical CVaR: the mean of the ``int((n - 1) * cutoff) + 1`` lowest returns (empyrical
    ``conditional_value_at_risk``). A return: a loss is negative. NaN when empty."""
    r = _arr(returns)
    if len(r) < 1:
        return math.nan
    k = int((len(r) - 1) * cutoff)
    return float(np.mean(np.partition(r, k)[: k + 1]))


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), found {confidence}")
    return 1.0 - confidence


def var_parametric(returns: npt.ArrayLike, confidence: float = 0.95) -> float:
    """Normal (variance-covariance) VaR ``mean + std(ddof=1) * z(1 - confidence)`` (quantstats
    ``value_at_risk``). A return: a loss is negative. NaN under 2 returns; the mean when std is 0
    (quantstats' scipy call gives NaN there)."""
    alpha = _check_confidence(confidence)
    r = _arr(returns)
    if len(r) < 2:
        return math.nan
    return float(np.mean(r)) + _std1(r) * _STD_NORMAL.inv_cdf(alpha)


def cvar_parametric(returns: npt.ArrayLike, confidence: float = 0.95) -> float:
    """Normal expected shortfall ``mean - std(ddof=1) * pdf(z(alpha)) / alpha``, ``alpha = 1 - confidence``
    (quantstats ``cvar``, method "parametric"). A return: a loss is negative. NaN under 2 returns."""
    alpha = _check_confidence(confidence)
    r = _arr(returns)
    if len(r) < 2:
        return math.nan
    return float(np.mean(r)) - _std1(r) * _STD_NORMAL.pdf(_STD_NORMAL.inv_cdf(alpha)) / alpha


def rolling_sharpe(returns: npt.ArrayLike, window: int, periods_per_year: float) -> FloatArray:
    """Sharpe (ddof=1, annualised) of each trailing ``window`` of returns; NaN for the first ``window - 1``
    (quantstats ``rolling_sharpe``). O(n) via centred cumulative sums, so it suits million-point series."""
    if window < 2:
        raise ValueError(f"window must be >= 2, found {window}")
    r = _arr(returns)
    n = len(r)
    out = np.full(n, np.nan)
    if n < window:
        return out
    centre = float(np.mean(r))
    x = r - centre
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    s1 = c1[window:] - c1[:-window]
    s2 = c2[window:] - c2[:-window]
    var = np.maximum((s2 - s1 * s1 / window) / (window - 1), 0.0)
    changes = np.concatenate(([0], np.cumsum(r[1:] != r[:-1])))
    flat = changes[window - 1 :] == changes[: n - window + 1]  # every return in the window equal
    std = np.where(flat, 0.0, np.sqrt(var))
    mean = s1 / window + centre
    with np.errstate(divide="ignore", invalid="ignore"):
        out[window - 1 :] = mean / std * math.sqrt(periods_per_year)
    return out


def monthly_returns(ts_ns: npt.ArrayLike, equity: npt.ArrayLike) -> list[tuple[int, int, float]]:
    """``(year, month, return)`` for each UTC calendar month in which a return ends, in time order.

    A month's return compounds its returns: the equity at its last point over the equity at the last
    point before the month (for the first month, the first equity point). ``ts_ns`` ascending.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    e = _arr(equity)
    if len(ts) != len(e):
        raise ValueError(f"ts_ns and equity differ in length: {len(ts)} != {len(e)}")
    if len(e) < 2:
        return []
    months = ts[1:].astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    first = np.flatnonzero(np.concatenate(([True], months[1:] != months[:-1])))
    last = np.concatenate((first[1:] - 1, [len(months) - 1]))
    values = e[last + 1] / e[first] - 1.0
    return [(int(m // 12 + 1970), int(m % 12 + 1), float(v)) for m, v in zip(months[first], values, strict=True)]


def turnover(traded_notional: Decimal | float, equity: npt.ArrayLike, periods_per_year: float) -> tuple[float, float]:
    """``(traded notional / mean equity, the same per year)``; per year divides by ``n / periods_per_year``
    years, ``n`` = number of returns (NaN with fewer than 2 equity points)."""
    e = _arr(equity)
    if len(e) < 1:
        return math.nan, math.nan
    t = _ratio(float(traded_notional), float(np.mean(e)))
    years = (len(e) - 1) / periods_per_year
    return t, (t / years if years > 0 else math.nan)


def exposure(gross_exposure: npt.ArrayLike, equity: npt.ArrayLike) -> float:
    """Mean over the equity points of gross exposure (sum of |position value|) / equity; NaN when empty."""
    g, e = _arr(gross_exposure), _arr(equity)
    if len(g) != len(e):
        raise ValueError(f"gross_exposure and equity differ in length: {len(g)} != {len(e)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(g / e)) if len(e) else math.nan


def _iso(ts_ns: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ts_ns, "ns"), unit="s", timezone="UTC"))


def _json(value: float | Decimal) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def summarize(
    ts_ns: npt.ArrayLike,
    equity: npt.ArrayLike,
    periods_per_year: float,
    trades: Sequence[RoundTrip],
    traded_notional: Decimal,
    fees: Decimal,
    gross_exposure: npt.ArrayLike | None,
) -> dict[str, Metric]:
    """Every metric in one flat, JSON-ready dict (snake_case keys; non-finite values become None).

    Return metrics come from :func:`simple_returns` of ``equity`` sampled at ``ts_ns``; with fewer than 2
    equity points they are None. ``var_*_95`` / ``cvar_*_95`` are per-period returns (negative = loss);
    ``max_drawdown`` is a negative fraction; durations and holding times are in seconds; ``fees``,
    ``traded_notional`` and ``expectancy`` are in the quote currency.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    e = _arr(equity)
    if len(ts) != len(e):
        raise ValueError(f"ts_ns and equity differ in length: {len(ts)} != {len(e)}")
    r = simple_returns(e)
    enough = len(r) >= 1
    to, to_year = turnover(traded_notional, e, periods_per_year)
    out: dict[str, Metric] = {
        "start": _iso(int(ts[0])) if len(ts) else None,
        "end": _iso(int(ts[-1])) if len(ts) else None,
        "periods": len(r),
        "periods_per_year": _json(periods_per_year),
        "start_equity": _json(e[0]) if len(e) else None,
        "end_equity": _json(e[-1]) if len(e) else None,
        "total_return": _json(total_return(r)),
        "cagr": _json(cagr(r, periods_per_year)),
        "annual_volatility": _json(annual_volatility(r, periods_per_year)),
        "sharpe": _json(sharpe(r, periods_per_year)),
        "sortino": _json(sortino(r, periods_per_year)),
        "calmar": _json(calmar(r, periods_per_year)),
        "max_drawdown": _json(max_drawdown(r)),
        "max_drawdown_duration_periods": max_drawdown_duration(r) if enough else None,
        "max_drawdown_duration_s": max_drawdown_duration_ns(r, ts) / 1e9 if enough else None,
        "var_hist_95": _json(var_historical(r, 0.05)),
        "cvar_hist_95": _json(cvar_historical(r, 0.05)),
        "var_param_95": _json(var_parametric(r, 0.95)),
        "cvar_param_95": _json(cvar_parametric(r, 0.95)),
        "trades": len(trades),
        "win_rate": _json(win_rate(trades)),
        "profit_factor": _json(profit_factor(trades)),
        "expectancy": _json(expectancy(trades)),
        "avg_holding_s": _json(average_holding_ns(trades) / 1e9),
        "traded_notional": _json(traded_notional),
        "turnover": _json(to) if enough else None,
        "turnover_per_year": _json(to_year),
        "exposure": _json(exposure(gross_exposure, e)) if gross_exposure is not None and enough else None,
        "fees": _json(fees),
    }
    return out
