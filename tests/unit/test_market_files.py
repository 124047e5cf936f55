from __future__ import annotations

from pathlib import Path

import pytest

from raytrade.adapters.market_files import iter_ticks


def test_bar_csv_becomes_ordered_ticks_and_zero_volume_bars_trade_nothing(tmp_path: Path) -> None:
    p = tmp_path / "SOLUSDT_1m.csv"
    p.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2023-01-01 00:00:00,10,12,9,11,8\n"
        "2023-01-01 00:01:00,11,11,11,11,0\n"
        "2023-01-01 00:02:00,11,11.5,10,10.5,4\n"
    )
    ticks = list(iter_ticks(p))
    assert [t.price for t in ticks] == [10, 9, 12, 11, 11, 11.5, 10, 10.5]
    assert {t.symbol for t in ticks} == {"SOLUSDT"}
    assert [t.size for t in ticks] == [2.0] * 4 + [1.0] * 4
    assert ticks[0].ts == 1_672_531_200_000_000_000 and ticks[-1].ts == ticks[0].ts + 180 * 10**9 - 10**9
    with pytest.raises(ValueError, match="expected tick columns"):
        (tmp_path / "x.csv").write_text("timestamp,foo\n2023-01-01 00:00:00,1\n")
        list(iter_ticks(tmp_path / "x.csv"))
