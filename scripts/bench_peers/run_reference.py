"""Exact pure-Python reference for the peer benchmark (``math.fsum`` SMAs, raytrade's rule).

Usage: ``python run_reference.py --data PATH [PATH...] --out result.json [--limit N]``
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OpenEntry, Trade, load_dataset, make_result, parse_args, reference_trades, timed, write_result


def main() -> None:
    """Load, run the reference over every symbol, write the result."""
    args = parse_args(__doc__ or "")
    frames, load_s = timed(lambda: load_dataset(args.data, args.limit))
    columns, setup_s = timed(
        lambda: {s: (f["close"].tolist(), f["open"].tolist(), f["ts"].tolist()) for s, f in frames.items()}
    )
    trades: list[Trade] = []
    open_entries: list[OpenEntry] = []

    def run() -> None:
        for symbol, (closes, opens, times) in columns.items():
            closed, entry = reference_trades(closes, opens, times)
            trades.extend(
                Trade(symbol=symbol, entry_ts=a, entry_price=b, exit_ts=c, exit_price=d) for a, b, c, d in closed
            )
            if entry is not None:
                open_entries.append(OpenEntry(symbol=symbol, entry_ts=entry[0], entry_price=entry[1]))

    _, backtest_s = timed(run)
    result = make_result(
        "reference",
        f"python {platform.python_version()}",
        frames,
        load_s,
        backtest_s,
        trades,
        open_entries,
        setup_s=setup_s,
        note="pure Python, math.fsum SMAs, one symbol after another",
    )
    write_result(args.out, result)
    print(f"reference: {result['bars']} bars, {len(trades)} trades, {backtest_s:.3f} s")


if __name__ == "__main__":
    main()
