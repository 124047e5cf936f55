"""Shared helpers for the peer backtest runners (stdlib + numpy + pandas only).

The strategy everywhere: SMA(10)/SMA(30) crossover on closes, long only, ``QTY`` units, decided at
the bar close, market order filled at the next bar's open, no costs, cash that never binds. The rule
is raytrade's ``SmaCross`` (``raytrade/strategy/builtins/sma_cross.py``): once both SMAs exist,
``rel`` is 0 when ``|fast - slow| <= 1e-9 * |slow|`` else the sign of ``fast - slow``; a cross is a
bar whose ``rel`` is +1/-1 and differs from the last non-zero ``rel`` before it (ties carry the
previous side, the first side after warm-up is not a cross).

A trade record is ``{"symbol", "entry_ts", "entry_price", "exit_ts", "exit_price"}`` with the
timestamps as the bar-open time (int ns UTC) of the bar whose open filled the order.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd

FAST = 10
SLOW = 30
QTY = 1
CASH = 10_000_000
TIE_TOLERANCE = 1e-9
COLUMNS = ("open", "high", "low", "close", "volume")


class Trade(TypedDict):
    """One closed round trip (long ``QTY``)."""

    symbol: str
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float


class OpenEntry(TypedDict):
    """A position still open at the end of the data (not a trade)."""

    symbol: str
    entry_ts: int
    entry_price: float


# -- data ------------------------------------------------------------------------------------------


def _to_ns(column: pd.Series) -> np.ndarray:
    """Bar-open times as int64 ns UTC (ints are taken as ns; text and datetimes as UTC)."""
    if pd.api.types.is_integer_dtype(column):
        return np.asarray(column, dtype=np.int64)
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = column if getattr(column.dt, "tz", None) is not None else column.dt.tz_localize("UTC")
    else:
        stamps = pd.to_datetime(column, utc=True, format="ISO8601")
    return np.asarray(stamps.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64"), dtype=np.int64)


def _frame(raw: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if limit is not None:
        raw = raw.iloc[:limit]
    frame = pd.DataFrame({"ts": _to_ns(raw["timestamp"])})
    for name in COLUMNS:
        frame[name] = raw[name].to_numpy(dtype=np.float64)
    if len(frame) > 1 and not bool(np.all(np.diff(frame["ts"].to_numpy()) > 0)):
        raise ValueError("timestamps must be strictly increasing")
    return frame


def load_dataset(paths: Sequence[str | Path], limit: int | None = None) -> dict[str, pd.DataFrame]:
    """Symbol -> frame with columns ts (int64 ns UTC bar-open time), open, high, low, close, volume.

    Each path is a CSV of one symbol (symbol = file stem before ``_``) or a Parquet file with a
    ``symbol`` column (the random walk). ``limit`` keeps the first N bars of each symbol.
    """
    frames: dict[str, pd.DataFrame] = {}
    for raw_path in paths:
        path = Path(raw_path)
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            for symbol, part in table.groupby("symbol", sort=True, observed=True):
                frames[str(symbol)] = _frame(part.sort_values("timestamp"), limit)
        else:
            frames[path.stem.split("_")[0]] = _frame(pd.read_csv(path), limit)
    if not frames:
        raise ValueError("no data")
    return dict(sorted(frames.items()))


def decimals(values: np.ndarray, most: int = 10) -> int:
    """Fewest decimals that write every value exactly (for engines with fixed-point prices)."""
    for places in range(most + 1):
        scaled = values * 10.0**places
        if bool(np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled)))):
            return places
    return most


# -- the rule and the exact reference --------------------------------------------------------------


def relation(fast: float, slow: float, tolerance: float = TIE_TOLERANCE) -> int:
    """+1 when fast is above slow beyond the tolerance, -1 below, 0 for a tie (as raytrade)."""
    gap = fast - slow
    if abs(gap) <= tolerance * abs(slow):
        return 0
    return 1 if gap > 0 else -1


class CrossRule:
    """The tie/carry rule for one symbol, fed one (fast, slow) pair per bar once both exist."""

    __slots__ = ("side",)

    def __init__(self) -> None:
        self.side = 0  # last non-zero relation, 0 before the first

    def step(self, fast: float, slow: float) -> int:
        """+1 on a cross up, -1 on a cross down, else 0 (NaN SMAs: not warm yet, state kept)."""
        if math.isnan(fast) or math.isnan(slow):
            return 0
        rel = relation(fast, slow)
        if rel == 0:
            return 0
        previous, self.side = self.side, rel
        return rel if previous not in (0, rel) else 0


def reference_trades(
    closes: Sequence[float], opens: Sequence[float], times: Sequence[int], fast: int = FAST, slow: int = SLOW
) -> tuple[list[tuple[int, float, int, float]], tuple[int, float] | None]:
    """Closed (entry_ts, entry_price, exit_ts, exit_price) round trips and the open entry, if any.

    Pure Python: SMAs are ``math.fsum`` of the window divided by its length, as raytrade's; a signal
    at bar i fills at bar i + 1's open (a signal on the last bar never fills).
    """
    rule = CrossRule()
    trades: list[tuple[int, float, int, float]] = []
    entry: tuple[int, float] | None = None
    long = False
    for i in range(slow - 1, len(closes) - 1):
        slow_sma = math.fsum(closes[i - slow + 1 : i + 1]) / slow
        fast_sma = math.fsum(closes[i - fast + 1 : i + 1]) / fast
        signal = rule.step(fast_sma, slow_sma)
        if signal > 0 and not long:
            long, entry = True, (times[i + 1], opens[i + 1])
        elif signal < 0 and long:
            assert entry is not None
            trades.append((entry[0], entry[1], times[i + 1], opens[i + 1]))
            long, entry = False, None
    return trades, entry


def trades_from_fills(symbol: str, fills: Iterable[tuple[int, float, float]]) -> tuple[list[Trade], list[OpenEntry]]:
    """Pair (ts, signed qty, price) fills of a long-only ``QTY`` position into round trips."""
    trades: list[Trade] = []
    entry: tuple[int, float] | None = None
    for ts, qty, price in fills:
        if qty == QTY and entry is None:
            entry = (int(ts), float(price))
        elif qty == -QTY and entry is not None:
            trades.append(
                Trade(symbol=symbol, entry_ts=entry[0], entry_price=entry[1], exit_ts=int(ts), exit_price=float(price))
            )
            entry = None
        else:
            raise ValueError(f"{symbol}: unexpected fill {qty} at {ts} (entry {entry})")
    opened = [OpenEntry(symbol=symbol, entry_ts=entry[0], entry_price=entry[1])] if entry else []
    return trades, opened


# -- results ---------------------------------------------------------------------------------------


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    """(func(), seconds it took)."""
    start = time.perf_counter()
    value = func()
    return value, time.perf_counter() - start


def make_result(
    engine: str,
    version: str,
    frames: dict[str, pd.DataFrame],
    load_s: float,
    backtest_s: float,
    trades: list[Trade],
    open_entries: list[OpenEntry],
    **extra: Any,
) -> dict[str, Any]:
    """The result document every runner writes (trades sorted, pnl from the closed trades)."""
    bars = sum(len(frame) for frame in frames.values())
    trades = sorted(trades, key=lambda t: (t["symbol"], t["entry_ts"]))
    open_entries = sorted(open_entries, key=lambda t: (t["symbol"], t["entry_ts"]))
    return {
        "engine": engine,
        "version": version,
        "symbols": list(frames),
        "bars": bars,
        "load_s": load_s,
        "backtest_s": backtest_s,
        "bars_per_s": bars / backtest_s if backtest_s > 0 else None,
        **extra,
        "n_trades": len(trades),
        "pnl": math.fsum((t["exit_price"] - t["entry_price"]) * QTY for t in trades),
        "trades": trades,
        "open": open_entries,
    }


def write_result(path: str | Path, result: dict[str, Any]) -> None:
    """Write the result as JSON (one trade per line keeps big files readable)."""
    head = {k: v for k, v in result.items() if k not in ("trades", "open")}
    lines = [json.dumps(head, indent=1)[:-2] + ","]
    for key in ("trades", "open"):
        rows = ",\n  ".join(json.dumps(row) for row in result[key])
        lines.append(f' "{key}": [\n  {rows}\n ]' if rows else f' "{key}": []')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(lines[0] + "\n" + ",\n".join(lines[1:]) + "\n}\n")


def parse_args(description: str) -> argparse.Namespace:
    """``--data PATH [PATH...] --out result.json [--limit N]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", nargs="+", required=True, help="CSV per symbol, or one Parquet file")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--limit", type=int, default=None, help="first N bars per symbol")
    return parser.parse_args()
