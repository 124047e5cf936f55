"""Market history for ``raytrade backtest``: bars or ticks from CSV/Parquet files or folders, checked.

Shapes (one file may hold one symbol, named by the file up to the first ``_``, or a ``symbol`` column):

* bars: ``timestamp|start, open, high, low, close, volume`` (bar-open time). ``adjusted_close``,
  when present, scales open/high/low/close by ``adjusted_close / close`` (and volume by the
  inverse), so splits are not price moves;
* ticks: ``ts|timestamp, price, size``.

Timestamps are datetimes (UTC) or integer epoch nanoseconds. Every problem is a
:class:`DataError` naming the file and the first offending row: an empty file, a missing
timestamp, timestamps out of order within a symbol (or repeated, for bars), NaN/infinite/non-positive
prices, a bar whose high/low do not contain its open and close, negative volume, a symbol
the config does not list. A bar's span is the symbol's smallest step between bars (one
minute, one day); events of all symbols are merged in time order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

BAR_COLUMNS = ("open", "high", "low", "close", "volume")
SUFFIXES = {".csv", ".parquet"}


class DataError(ValueError):
    """The market data cannot be used as it is; the message says where and why."""


@dataclass(frozen=True)
class MarketData:
    """Validated history: ``frame`` sorted by (``ts``, ``symbol``).

    Bars: ``symbol, ts (bar start), open, high, low, close, volume, span``. Ticks: ``symbol, ts, price, size``.
    """

    kind: str  # "bars" | "ticks"
    frame: pl.DataFrame
    files: tuple[str, ...]

    @property
    def symbols(self) -> list[str]:
        """The symbols present, sorted."""
        return sorted(self.frame["symbol"].unique().to_list())

    def as_ticks(self) -> MarketData:
        """Bars blown up into four trades each (``backtest.bars_as_ticks``): the open at the bar's start, the
        nearer extreme at a third, the other at two thirds, the close just before the end, a quarter of the
        volume each (zero-volume bars trade nothing), as ``raytrade produce`` publishes bar files."""
        if self.kind != "bars":
            return self
        up = pl.col("close") >= pl.col("open")
        legs = [
            (0.0, pl.col("open")),
            (1 / 3, pl.when(up).then(pl.col("low")).otherwise(pl.col("high"))),
            (2 / 3, pl.when(up).then(pl.col("high")).otherwise(pl.col("low"))),
            (59 / 60, pl.col("close")),
        ]
        bars = self.frame.filter(pl.col("volume") > 0)
        parts = [
            bars.select(
                "symbol",
                (pl.col("ts") + (pl.col("span") * share).cast(pl.Int64)).alias("ts"),
                price.alias("price"),
                (pl.col("volume") / 4.0).alias("size"),
            )
            for share, price in legs
        ]
        frame = pl.concat(parts).sort("ts", "symbol", maintain_order=True)
        return MarketData("ticks", frame, self.files)


def parse_time(text: str, what: str) -> int:
    """An ISO date or datetime (UTC unless it says otherwise) as epoch nanoseconds."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(
            f"{what} {text!r} is not an ISO date or datetime (e.g. 2023-01-05 or 2023-01-05T12:00)"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in SUFFIXES)
        if not files:
            raise DataError(f"{path}: no .csv or .parquet files in this folder")
        return files
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .parquet file (or a folder of them)")
    return [path]


def _read(file: Path) -> pl.DataFrame:
    try:
        df = pl.read_parquet(file) if file.suffix == ".parquet" else pl.read_csv(file, try_parse_dates=True)
    except Exception as exc:  # polars raises many kinds for unreadable files
        raise DataError(f"{file}: cannot read it: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if df.height == 0:
        raise DataError(f"{file}: the file has no rows")
    return df


def _ts(df: pl.DataFrame, file: Path, names: tuple[str, ...]) -> pl.Series:
    name = next((n for n in names if n in df.columns), None)
    if name is None:
        raise DataError(f"{file}: expected a time column ({' or '.join(names)}), found {df.columns}")
    col = df[name]
    nulls = col.is_null()
    if nulls.any():
        row = int(nulls.arg_true()[0])
        raise DataError(f"{file}: {int(nulls.sum())} rows without a timestamp (first: row {row + 1})")
    if isinstance(col.dtype, pl.Datetime):
        if col.dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(pl.Datetime("ns")).cast(pl.Int64)
    if isinstance(col.dtype, pl.Date):
        return col.cast(pl.Datetime("ns")).cast(pl.Int64)
    if col.dtype.is_integer():
        return col.cast(pl.Int64)
    raise DataError(f"{file}: column {name!r} must hold datetimes or integer nanoseconds, found {col.dtype}")


def _first(df: pl.DataFrame, mask: pl.Series) -> str:
    row = int(mask.arg_true()[0])
    values = ", ".join(f"{k}={v}" for k, v in df.row(row, named=True).items())
    return f"row {row + 1}: {values}"


def _check_order(df: pl.DataFrame, file: Path, strict: bool) -> None:
    """Within each symbol, timestamps increase in file order (bars: strictly; ticks may share a time)."""
    step = df.select((pl.col("ts") - pl.col("ts").shift(1).over("symbol")).alias("d"))["d"]
    dup = step == 0
    if strict and dup.any():
        raise DataError(f"{file}: {int(dup.sum())} repeated timestamps within a symbol; first at {_first(df, dup)}")
    back = step < 0
    if back.any():
        raise DataError(f"{file}: timestamps out of order within a symbol; first at {_first(df, back)}")


def _check_numbers(df: pl.DataFrame, file: Path, prices: Iterable[str], volume: str) -> None:
    price_ok = pl.all_horizontal([pl.col(c).is_finite() & (pl.col(c) > 0) for c in prices])
    bad = df.select(~price_ok.fill_null(False)).to_series()
    if bad.any():
        raise DataError(
            f"{file}: {int(bad.sum())} rows with a NaN, infinite or non-positive price; first at {_first(df, bad)}"
        )
    vol_bad = df.select(~(pl.col(volume).is_finite() & (pl.col(volume) >= 0)).fill_null(True)).to_series()
    if vol_bad.any():
        raise DataError(
            f"{file}: {int(vol_bad.sum())} rows with a missing or negative {volume}; first at {_first(df, vol_bad)}"
        )


def _bars(df: pl.DataFrame, file: Path) -> pl.DataFrame:
    prices = ["open", "high", "low", "close"]
    df = df.with_columns(*(pl.col(c).cast(pl.Float64, strict=False) for c in [*prices, "volume"]))
    _check_numbers(df, file, prices, "volume")
    if "adjusted_close" in df.columns:
        factor = pl.col("adjusted_close").cast(pl.Float64) / pl.col("close")
        df = df.with_columns(*(pl.col(c) * factor for c in prices), pl.col("volume") / factor)
    bad = df.select(
        (pl.col("high") < pl.max_horizontal("open", "close")) | (pl.col("low") > pl.min_horizontal("open", "close"))
    ).to_series()
    if bad.any():
        raise DataError(
            f"{file}: {int(bad.sum())} bars whose high/low do not contain open and close; first at {_first(df, bad)}"
        )
    return df.select("symbol", "ts", *prices, "volume")


def _ticks(df: pl.DataFrame, file: Path) -> pl.DataFrame:
    df = df.with_columns(pl.col("price").cast(pl.Float64, strict=False), pl.col("size").cast(pl.Float64, strict=False))
    _check_numbers(df, file, ["price"], "size")
    return df.select("symbol", "ts", "price", "size")


def load_market(
    path: str | Path,
    symbols: Iterable[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    subset: Iterable[str] | None = None,
) -> MarketData:
    """Read, check and merge every file under ``path``; keep ``[start_ns, end_ns)`` (bar start / tick time).

    ``subset``: keep only these of ``symbols`` (a sweep run's universe): a file named for another
    symbol is not even read, rows of other known symbols are dropped.
    """
    known = set(symbols)
    keep = known if subset is None else set(subset)
    parts: list[pl.DataFrame] = []
    kinds: set[str] = set()
    files = _files(Path(path))
    if subset is not None:
        files = [f for f in files if f.stem.split("_")[0] in keep or f.stem.split("_")[0] not in known]
    for file in files:
        df = _read(file)
        if "symbol" not in df.columns:
            df = df.with_columns(pl.lit(file.stem.split("_")[0]).alias("symbol"))
        df = df.with_columns(_ts(df, file, ("ts", "start", "timestamp")).alias("ts"))
        is_bars = set(BAR_COLUMNS) <= set(df.columns)
        _check_order(df, file, strict=is_bars)
        if is_bars:
            kinds.add("bars")
            part = _bars(df, file)
        elif {"price", "size"} <= set(df.columns):
            kinds.add("ticks")
            part = _ticks(df, file)
        else:
            raise DataError(f"{file}: neither bars ({', '.join(BAR_COLUMNS)}) nor ticks (price, size): {df.columns}")
        unknown = sorted(set(part["symbol"].unique().to_list()) - known)
        if unknown:
            raise DataError(f"{file}: symbols {unknown} are not in the config's instruments (known: {sorted(known)})")
        if keep != known:
            part = part.filter(pl.col("symbol").is_in(sorted(keep)))
        if part.height:
            parts.append(part)
    if len(kinds) > 1:
        raise DataError(f"{path}: mixes bar files and tick files; give one kind")
    if not parts:
        raise DataError(f"{path}: no rows of {sorted(keep)}")
    kind = kinds.pop()
    frame = pl.concat(parts)
    dup = frame.select(pl.struct("symbol", "ts").is_duplicated()).to_series() if kind == "bars" else None
    if dup is not None and dup.any():
        raise DataError(f"{path}: the same symbol and timestamp appear in two files; first: {_first(frame, dup)}")
    if start_ns is not None:
        frame = frame.filter(pl.col("ts") >= start_ns)
    if end_ns is not None:
        frame = frame.filter(pl.col("ts") < end_ns)
    if frame.height == 0:
        raise DataError(f"{path}: no rows between the requested start and end")
    if kind == "bars":
        span = frame.group_by("symbol").agg(
            (pl.col("ts").sort().diff().filter(pl.col("ts").sort().diff() > 0).min()).alias("span")
        )
        frame = frame.join(span, on="symbol").with_columns(pl.col("span").fill_null(60 * 10**9).cast(pl.Int64))
    # Stable: rows of one time keep the files' order (a tick file's own order, as a feed published it).
    return MarketData(kind, frame.sort("ts", maintain_order=True), tuple(str(f) for f in files))
