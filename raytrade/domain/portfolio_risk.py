"""Portfolio value-at-risk, expected shortfall and correlation-aware exposure.

Conventions shared by every function here:

* ``returns`` is a ``(T, n)`` matrix of simple one-bar returns of ``n`` symbols aligned in time
  (oldest row first), ``exposures`` is the ``(n,)`` signed notional held in each symbol (quote currency).
* A scenario's P&L is ``returns_row @ exposures``: a short exposure loses on an up move.
* VaR and CVaR are reported as positive currency losses; 0.0 when even the tail scenario is a gain.
* ``quantile`` is the confidence level ``q`` in ``(0.5, 1)``; at least ``ceil(1/(1-q))`` observations are needed
  (``1/(1-q)`` is rounded to 9 decimals first, so ``q = 0.9`` needs 10, not 11 from float noise).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class VarEstimate:
    """One VaR/CVaR estimate: positive currency losses over ``horizon_bars`` at confidence ``quantile``."""

    method: str
    quantile: float
    horizon_bars: int
    var: float
    cvar: float
    observations: int


def min_observations(quantile: float) -> int:
    """The fewest observations for which the ``1 - quantile`` tail holds at least one of them."""
    return math.ceil(round(1.0 / (1.0 - quantile), 9))


def _as_inputs(returns: npt.ArrayLike, exposures: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Check shapes and finiteness; return float64 copies-or-views of both arrays."""
    r = np.asarray(returns, dtype=np.float64)
    e = np.asarray(exposures, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be a (T, n) matrix, found shape {r.shape}")
    if r.shape[1] == 0:
        raise ValueError("returns must cover at least one symbol (n >= 1)")
    if e.ndim != 1 or e.shape[0] != r.shape[1]:
        raise ValueError(f"exposures must have shape ({r.shape[1]},) to match returns {r.shape}, found {e.shape}")
    if not (np.isfinite(r).all() and np.isfinite(e).all()):
        raise ValueError("returns and exposures must be finite (found NaN or infinity)")
    return r, e


def _check_quantile_horizon(quantile: float, horizon_bars: int) -> None:
    """Reject a confidence level outside (0.5, 1) or a horizon that is not a positive integer."""
    if not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0.5, 1), found {quantile!r}")
    if isinstance(horizon_bars, bool) or not isinstance(horizon_bars, int) or horizon_bars < 1:
        raise ValueError(f"horizon_bars must be a positive integer, found {horizon_bars!r}")


def _check_count(count: int, quantile: float, what: str) -> None:
    """Reject too few observations for the tail at ``quantile``."""
    need = min_observations(quantile)
    if count < need:
        raise ValueError(f"{count} {what} are too few for quantile {quantile}: need at least {need}")


def horizon_returns(returns: FloatArray, horizon_bars: int) -> FloatArray:
    """Overlapping ``horizon_bars``-bar summed returns: row ``i`` is ``returns[i:i+h].sum(axis=0)``."""
    if horizon_bars == 1:
        return returns
    windows = np.lib.stride_tricks.sliding_window_view(returns, horizon_bars, axis=0)
    return np.asarray(windows.sum(axis=-1), dtype=np.float64)


def historical_var(
    returns: npt.ArrayLike, exposures: npt.ArrayLike, quantile: float = 0.99, horizon_bars: int = 1
) -> VarEstimate:
    """Historical-simulation VaR and CVaR over overlapping ``horizon_bars``-bar scenarios.

    VaR is minus the lower empirical ``1 - quantile`` quantile of scenario P&L (``np.quantile(..., method="lower")``,
    always an observed scenario); CVaR is minus the mean of the scenarios at or below it.
    """
    r, e = _as_inputs(returns, exposures)
    _check_quantile_horizon(quantile, horizon_bars)
    scenarios = r.shape[0] - horizon_bars + 1
    _check_count(scenarios, quantile, f"{horizon_bars}-bar scenarios")
    pnl = horizon_returns(r, horizon_bars) @ e
    cutoff = float(np.quantile(pnl, 1.0 - quantile, method="lower"))
    tail_mean = float(pnl[pnl <= cutoff].mean())
    return VarEstimate("historical", quantile, horizon_bars, max(0.0, -cutoff), max(0.0, -tail_mean), scenarios)


def portfolio_sigma(returns: FloatArray, exposures: FloatArray) -> float:
    """One-bar P&L standard deviation ``sqrt(e' S e)`` with ``S`` the sample covariance (ddof=1)."""
    cov = np.atleast_2d(np.cov(returns, rowvar=False, ddof=1))
    return math.sqrt(max(0.0, float(exposures @ cov @ exposures)))


def parametric_var(
    returns: npt.ArrayLike, exposures: npt.ArrayLike, quantile: float = 0.99, horizon_bars: int = 1
) -> VarEstimate:
    """Zero-mean Gaussian VaR and CVaR from the sample covariance, scaled by ``sqrt(horizon_bars)``.

    ``VaR = z_q * s``, ``CVaR = s * pdf(z_q) / (1 - q)`` with ``s = sqrt(e' S e) * sqrt(h)``. The covariance is
    estimated from all ``T`` one-bar rows, so ``observations`` is ``T`` and the horizon does not shrink it.
    """
    r, e = _as_inputs(returns, exposures)
    _check_quantile_horizon(quantile, horizon_bars)
    _check_count(r.shape[0], quantile, "return rows")
    sigma = portfolio_sigma(r, e) * math.sqrt(horizon_bars)
    normal = NormalDist()
    z = normal.inv_cdf(quantile)
    return VarEstimate(
        "parametric", quantile, horizon_bars, z * sigma, sigma * normal.pdf(z) / (1.0 - quantile), r.shape[0]
    )


def correlation_matrix(returns: npt.ArrayLike) -> FloatArray:
    """Sample correlation of the columns; a constant column is uncorrelated with the rest (1 on its diagonal)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] == 0:
        raise ValueError(f"need a (T, n) matrix with T >= 2 and n >= 1, found shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("returns must be finite (found NaN or infinity)")
    centered = r - r.mean(axis=0)
    cov = centered.T @ centered / (r.shape[0] - 1)
    sd = np.sqrt(np.diag(cov))
    flat = (np.ptp(r, axis=0) == 0) | ~(sd > 0)
    safe_sd = np.where(flat, 1.0, sd)
    corr = np.clip(cov / np.outer(safe_sd, safe_sd), -1.0, 1.0)
    corr[flat, :] = 0.0
    corr[:, flat] = 0.0
    np.fill_diagonal(corr, 1.0)
    return np.asarray(corr, dtype=np.float64)


def correlated_exposure(returns: npt.ArrayLike, exposures: npt.ArrayLike) -> float:
    """``sqrt(e' R e)`` with ``R`` the return correlation matrix: gross exposure net of diversification.

    Equals the gross exposure when every pair is perfectly correlated and the exposures share a sign,
    and ``sqrt(sum(e_i ** 2))`` when the symbols are uncorrelated.
    """
    r, e = _as_inputs(returns, exposures)
    corr = correlation_matrix(r)
    return math.sqrt(max(0.0, float(e @ corr @ e)))


class _Series:
    """One symbol's last accepted bar and its most recent one-bar returns keyed by bar start."""

    __slots__ = ("last_close", "last_start", "returns")

    def __init__(self, size: int) -> None:
        self.last_start: int | None = None
        self.last_close: float | None = None
        self.returns: deque[tuple[int, float]] = deque(maxlen=size)


class ReturnWindow:
    """Rolling window of the last ``size`` one-bar simple returns per symbol, aligned by bar start time.

    A bar's return is ``close / previous accepted close - 1`` for the same symbol and is keyed by the bar's start.
    Bars that are not later than the symbol's last accepted bar, and bars with a non-finite or non-positive close,
    are ignored. A gap (a missing bar) is not detected: the next return spans it.
    """

    __slots__ = ("_cache", "_series", "_version", "size")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, found {size!r}")
        self.size = size
        self._series: dict[str, _Series] = {}
        self._version = 0  # bumped by every new return; the matrices below are cached until then
        self._cache: dict[tuple[str, ...], tuple[int, FloatArray]] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickled (the gate's state in the ledger) without the matrix cache, rebuilt on demand."""
        return {"size": self.size, "_series": self._series, "_version": self._version}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.size = state["size"]  # type: ignore[assignment]
        self._series = state["_series"]  # type: ignore[assignment]
        self._version = state["_version"]  # type: ignore[assignment]
        self._cache = {}

    def update(self, symbol: str, start: int, close: float) -> None:
        """Fold in one closed bar of ``symbol``."""
        if not (math.isfinite(close) and close > 0.0):
            return
        series = self._series.get(symbol)
        if series is None:
            series = self._series[symbol] = _Series(self.size)
        if series.last_start is not None and start <= series.last_start:
            return
        if series.last_close is not None:
            series.returns.append((start, close / series.last_close - 1.0))
            self._version += 1
        series.last_start, series.last_close = start, close

    def matrix(self, symbols: Sequence[str]) -> FloatArray:
        """``(T, n)`` returns over the bar starts every requested symbol has a return for, oldest
        first (read-only: cached until the next return arrives, as the gate asks per order)."""
        key = tuple(symbols)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        out = self._build(key)
        out.flags.writeable = False
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[key] = (self._version, out)
        return out

    def _build(self, symbols: Sequence[str]) -> FloatArray:
        columns: list[dict[int, float]] = []
        for symbol in symbols:
            series = self._series.get(symbol)
            columns.append(dict(series.returns) if series is not None else {})
        if not columns:
            return np.empty((0, 0), dtype=np.float64)
        common = set(columns[0]).intersection(*columns[1:])
        starts = sorted(common)[-self.size :]
        out = np.empty((len(starts), len(columns)), dtype=np.float64)
        for j, column in enumerate(columns):
            out[:, j] = [column[t] for t in starts]
        return out
