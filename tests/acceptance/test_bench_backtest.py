"""The backtest benchmark's agreement check on a small slice of real bars: ``raytrade backtest`` makes the
exact reference's trades (entry/exit bars and prices) on BTCUSDT and on the 4-symbol portfolio. The
peers' venv runs only in the benchmark itself (scripts/bench_backtest.py), not here."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "crypto_1m_2023-01"
sys.path.insert(0, str(REPO / "scripts"))

from bench_backtest import peer_module  # noqa: E402

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real market data not found at {DATA}")


def test_raytrade_makes_the_reference_trades_on_a_slice(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench_backtest.py"),
            "--limit",
            "2500",
            "--no-peers",
            "--no-sweep",
            "--repeat",
            "1",
            "--datasets",
            "btc,all4",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["agree"] is True
    for name, bars in (("btc", 2500), ("all4", 4 * 2500)):
        engines = report["datasets"][name]["engines"]
        rt, ref = engines["raytrade"], engines["reference"]
        assert report["datasets"][name]["bars"] == bars
        assert rt["differences"] == [] and rt["trades"] == ref["trades"] > 20
        assert rt["pnl"] == pytest.approx(ref["pnl"], abs=1e-6)
        assert rt["bars_per_s"] > 0 and rt["process_s"] > rt["backtest_s"] > 0


def test_the_comparison_catches_a_different_trade() -> None:
    compare = peer_module("compare").compare
    reference: dict[str, Any] = {
        "bars": 100,
        "trades": [{"symbol": "X", "entry_ts": 60, "entry_price": 10.0, "exit_ts": 120, "exit_price": 11.0}],
        "open": [],
    }
    assert compare(reference, copy.deepcopy(reference)) == []
    later = copy.deepcopy(reference)
    later["trades"][0]["exit_ts"] = 180
    assert compare(reference, later)
    cheaper = copy.deepcopy(reference)
    cheaper["trades"][0]["entry_price"] = 10.01
    assert compare(reference, cheaper)
    assert compare(reference, {**reference, "trades": []})
