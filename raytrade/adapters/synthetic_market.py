"""A seeded, multi-symbol synthetic market that produces trade ticks.

Per symbol, the log price is a *fair value* plus a mean-reverting *mispricing*:

* fair value: diffusion with stochastic volatility (log-vol Ornstein-Uhlenbeck) and
  Poisson jumps; diffusion shocks are correlated across symbols (Cholesky of a constant
  correlation matrix);
* mispricing: an OU process with a half-life of minutes (the predictable part a model
  can learn; set ``mispricing_sd=0`` for a pure random walk);
* trades: Poisson arrivals per simulated second with a U-shaped intraday seasonality;
  sizes log-normal, scaled by the same seasonality; prices on the instrument's tick grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl
from scipy.signal import lfilter

from raytrade.domain.bars import BAR_NS
from raytrade.domain.instruments import Instrument
from raytrade.domain.ticks import Tick

SECONDS_PER_YEAR = 365 * 86_400
NS = 1_000_000_000


@dataclass(frozen=True)
class SymbolSpec:
    """One synthetic symbol: start price, annualized volatility, trade rate and size."""

    instrument: Instrument
    start_price: float
    annual_vol: float = 0.6
    trades_per_second: float = 2.0
    mean_size: float = 1.0


DEFAULT_SPECS: tuple[SymbolSpec, ...] = (
    SymbolSpec(Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001")), 20_000.0, 0.55, 3.0, 0.05),
    SymbolSpec(Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.0001")), 1_500.0, 0.65, 2.5, 0.8),
    SymbolSpec(Instrument("SOLUSDT", Decimal("0.001"), Decimal("0.01")), 20.0, 0.9, 2.0, 40.0),
    SymbolSpec(Instrument("XRPUSDT", Decimal("0.0001"), Decimal("1")), 0.35, 0.7, 2.0, 3000.0),
)


@dataclass(frozen=True)
class MarketParams:
    """Dynamics shared by all symbols."""

    correlation: float = 0.6
    vol_of_vol: float = 0.8  # per sqrt(day), of log volatility
    vol_mean_reversion_days: float = 0.5
    jumps_per_day: float = 4.0
    jump_sd: float = 0.004
    mispricing_sd: float = 0.003
    mispricing_half_life_s: float = 900.0
    seasonality: float = 0.8  # amplitude of the U shape over the UTC day


def _to_grid(values: np.ndarray, increment: Decimal) -> np.ndarray:
    """Round to the increment's grid (at least one increment), as short decimal floats."""
    inc = float(increment)
    digits = max(0, -int(increment.as_tuple().exponent))
    return np.round(np.maximum(np.round(values / inc) * inc, inc), digits)


def intraday_seasonality(seconds_of_day: np.ndarray, amplitude: float) -> np.ndarray:
    """U-shaped activity multiplier over the day, mean 1."""
    x = seconds_of_day / 86_400.0 * 2.0 - 1.0  # -1 .. 1
    u = x * x  # mean 1/3 over the day
    return (1.0 - amplitude / 3.0) + amplitude * u


class SyntheticMarket:
    """Generate ticks chunk by chunk; identical output for identical seed and parameters."""

    def __init__(
        self,
        specs: tuple[SymbolSpec, ...] = DEFAULT_SPECS,
        *,
        seed: int = 7,
        start_ns: int = 1_672_531_200 * NS,  # 2023-01-01T00:00:00Z
        params: MarketParams | None = None,
    ) -> None:
        if not specs:
            raise ValueError("need at least one symbol")
        self.specs = specs
        self.params = params or MarketParams()
        self.rng = np.random.default_rng(seed)
        self.t_s = 0
        self.start_ns = start_ns
        n = len(specs)
        p = self.params
        corr = np.full((n, n), p.correlation)
        np.fill_diagonal(corr, 1.0)
        self._chol = np.linalg.cholesky(corr)
        self._base_sigma = np.array([s.annual_vol / math.sqrt(SECONDS_PER_YEAR) for s in specs])
        self._log_fair = np.log([s.start_price for s in specs])
        self._log_vol_dev = np.zeros(n)  # log(sigma / base_sigma)
        self._dev = np.zeros(n)

    @property
    def instruments(self) -> list[Instrument]:
        """The instruments traded."""
        return [s.instrument for s in self.specs]

    def _ar1(self, shocks: np.ndarray, phi: float, state: np.ndarray) -> np.ndarray:
        out, _ = lfilter([1.0], [1.0, -phi], shocks, axis=0, zi=(phi * state)[None, :])
        return np.asarray(out)

    def chunk_arrays(self, seconds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Simulate ``seconds`` more; return (symbol index, ts ns, price, size) sorted by time."""
        n, p, rng = len(self.specs), self.params, self.rng
        day = 86_400.0
        phi_v = math.exp(-1.0 / (p.vol_mean_reversion_days * day))
        sd_v = p.vol_of_vol / math.sqrt(day) * math.sqrt((1 - phi_v**2) / (2 * (1 - phi_v)))
        log_vol = self._ar1(rng.standard_normal((seconds, n)) * sd_v, phi_v, self._log_vol_dev)
        self._log_vol_dev = log_vol[-1]
        sigma = self._base_sigma * np.exp(log_vol)
        z = rng.standard_normal((seconds, n)) @ self._chol.T
        jumps = (rng.random((seconds, n)) < p.jumps_per_day / day) * rng.normal(0.0, p.jump_sd, (seconds, n))
        log_fair = self._log_fair + np.cumsum(sigma * z - 0.5 * sigma**2 + jumps, axis=0)
        self._log_fair = log_fair[-1]
        phi_d = 0.5 ** (1.0 / p.mispricing_half_life_s)
        dev = self._ar1(rng.standard_normal((seconds, n)) * p.mispricing_sd * math.sqrt(1 - phi_d**2), phi_d, self._dev)
        self._dev = dev[-1]
        mid = np.exp(log_fair + dev)

        secs = self.t_s + np.arange(seconds)
        season = intraday_seasonality((self.start_ns // NS + secs) % 86_400, p.seasonality)
        rates = np.array([s.trades_per_second for s in self.specs])
        counts = rng.poisson(season[:, None] * rates[None, :])  # (seconds, n)
        flat = counts.ravel()
        total = int(flat.sum())
        cell = np.repeat(np.arange(seconds * n), flat)
        row, sym = cell // n, cell % n
        ts = self.start_ns + (secs[row] * NS) + (rng.random(total) * NS).astype(np.int64)
        half_spread = 0.00005
        price = mid[row, sym] * (1.0 + half_spread * rng.choice([-1.0, 1.0], total))
        mean_size = np.array([s.mean_size for s in self.specs])
        size = mean_size[sym] * season[row] * rng.lognormal(-0.5, 1.0, total)
        for i, spec in enumerate(self.specs):
            mask = sym == i
            price[mask] = _to_grid(price[mask], spec.instrument.price_increment)
            size[mask] = _to_grid(size[mask], spec.instrument.size_increment)
        order = np.argsort(ts, kind="stable")
        self.t_s += seconds
        return sym[order], ts[order], price[order], size[order]

    def ticks(self, seconds: int, chunk_s: int = 60) -> Iterator[Tick]:
        """Yield ticks for the next ``seconds`` of simulated time, in time order."""
        names = [s.instrument.symbol for s in self.specs]
        done = 0
        while done < seconds:
            step = min(chunk_s, seconds - done)
            sym, ts, price, size = self.chunk_arrays(step)
            for i, t, pr, sz in zip(sym.tolist(), ts.tolist(), price.tolist(), size.tolist(), strict=True):
                yield Tick(names[i], pr, sz, t)
            done += step

    def ticks_frame(self, seconds: int, chunk_s: int = 3600) -> pl.DataFrame:
        """The next ``seconds`` of ticks as a DataFrame ``symbol, ts, price, size``."""
        names = [s.instrument.symbol for s in self.specs]
        frames = []
        done = 0
        while done < seconds:
            step = min(chunk_s, seconds - done)
            sym, ts, price, size = self.chunk_arrays(step)
            frames.append(
                pl.DataFrame({"symbol_idx": sym, "ts": ts, "price": price, "size": size}).with_columns(
                    pl.col("symbol_idx").replace_strict(list(range(len(names))), names).alias("symbol")
                )
            )
            done += step
        return pl.concat(frames).select("symbol", "ts", "price", "size")


def ticks_to_bars(ticks: pl.DataFrame) -> pl.DataFrame:
    """Aggregate ticks (``symbol, ts, price, size``) into 1-minute OHLCV bars per symbol."""
    return (
        ticks.with_columns((pl.col("ts") - pl.col("ts") % BAR_NS).alias("start"))
        .group_by("symbol", "start", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
        )
        .sort("symbol", "start")
    )


def write_bars_parquet(market: SyntheticMarket, seconds: int, path: str) -> pl.DataFrame:
    """Simulate ``seconds``, write the 1-minute bars to Parquet at ``path``, return them."""
    bars = ticks_to_bars(market.ticks_frame(seconds))
    bars.write_parquet(path)
    return bars
