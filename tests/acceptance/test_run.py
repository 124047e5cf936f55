"""`raytrade run` end to end on the embedded default; its summary is checked against the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from raytrade.adapters.ledger import Ledger
from raytrade.domain.portfolio import Portfolio
from raytrade.domain.round_trips import round_trips
from raytrade.domain.stats import percentile

REPO = Path(__file__).resolve().parents[2]
RAYTRADE = [sys.executable, "-m", "raytrade.cluster.cli"]


def env_for(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "RAYTRADE__MODEL__REGISTRY": str(tmp / "models"),
            "RAYTRADE__OUTPUT_DIR": str(tmp / "out"),
            "RAYTRADE__MODEL__BOOTSTRAP_DAYS": "1",
            "RAY_TMPDIR": str(tmp),
        }
    )
    return env


def start_run(tmp: Path, duration_s: int) -> subprocess.Popen[str]:
    """`raytrade run` in its own process group, as a terminal's foreground job is."""
    return subprocess.Popen(
        [*RAYTRADE, "run", "--config", str(REPO / "configs" / "default.yaml"), "--duration", str(duration_s)],
        cwd=REPO,
        env=env_for(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def assert_all_gone(pids: set[int], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    alive = pids
    while time.monotonic() < deadline:
        alive = {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"left behind: {[(p, psutil.Process(p).name()) for p in alive]}")


@pytest.mark.slow
def test_run_30s_summary_matches_ledger(tmp_path: Path) -> None:
    folders = set(Path(tempfile.gettempdir()).glob("raytrade-*"))
    proc = start_run(tmp_path, 30)
    seen: set[int] = set()
    while proc.poll() is None:
        seen |= descendants(proc.pid)
        time.sleep(0.5)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "produced=" in err  # progress was shown
    summary = json.loads(out)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert seen, "the run should have started Ray and the broker as child processes"
    assert_all_gone(seen)
    assert set(Path(tempfile.gettempdir()).glob("raytrade-*")) <= folders, "the run's temp folder outlived it"

    assert summary["ticks_consumed"] > 20_000
    assert summary["ticks_consumed"] == summary["ticks_accepted"] + summary["ticks_rejected"]
    assert summary["ticks_consumed"] <= summary["ticks_produced"]
    assert summary["shard_errors"] == [] and summary["feed_error"] is None
    ledger = Ledger(summary["ledger_path"])
    counts = ledger.status_counts()
    fills = ledger.fills()
    assert summary["orders"] > 0
    assert summary["orders"] == sum(counts.values())
    assert summary["fills"] == len(fills) >= counts.get("FILLED", 0) > 0
    assert summary["reconciliation"]["ok"] and summary["reconciliation"]["fills"] == len(fills)
    # P&L recomputed from the fills equals the reported P&L, to the last decimal.
    marks = {s: Decimal(p) for s, p in summary["marks"].items()}
    book = Portfolio.from_fills(Decimal("100000"), fills)
    assert summary["realized_pnl"] == str(book.realized)
    assert summary["unrealized_pnl"] == str(book.unrealized(marks))
    assert summary["fees"] == str(book.fees)
    assert summary["cash"] == str(book.cash)
    assert Decimal(summary["net_pnl"]) == book.equity(marks) - Decimal("100000")
    assert summary["positions"] == {s: str(q) for s, q in sorted(book.positions().items())}
    lat = [v / 1e6 for v in ledger.latencies_ns()]
    assert summary["latency_ms"]["tick_to_order_p50"] == percentile(lat, 50)
    assert summary["latency_ms"]["tick_to_order_p99"] == percentile(lat, 99)
    assert 0 < summary["latency_ms"]["tick_to_order_p50"] < 1000
    # The performance metrics come from the one metrics module, over one-minute equity points in event time.
    m = summary["metrics"]
    assert m["periods_per_year"] == 525_600 and m["periods"] >= 30  # 24/7 minutes, at least half an hour of market
    assert m["fees"] == float(book.fees) and m["end_equity"] is not None and m["sharpe"] is not None
    assert m["trades"] == len(round_trips(fills)) and -1 < m["max_drawdown"] <= 0


@pytest.mark.slow
def test_ctrl_c_shuts_down_cleanly(tmp_path: Path) -> None:
    proc = start_run(tmp_path, 300)
    assert proc.stderr is not None
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        seen |= descendants(proc.pid)
        if "consumed=" in line and "consumed=0 " not in line:
            break
        assert time.monotonic() < deadline, "the run never started consuming"
    seen |= descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["ticks_consumed"] > 0
    assert_all_gone(seen)


@pytest.mark.slow
def test_the_embedded_log_rolls_and_stays_small_while_trading(tmp_path: Path) -> None:
    """The short version of scripts/soak_embedded.py: generations of 30,000 ticks at the default 3,000 ticks/s,
    the consumed ones deleted while trading; lag stays within a few batches, the broker stays small."""
    env = {**env_for(tmp_path), "RAYTRADE__KAFKA__ROLL_RECORDS": "30000"}
    proc = subprocess.Popen(
        [*RAYTRADE, "run", "--config", str(REPO / "configs" / "default.yaml"), "--duration", "60"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    broker_rss: list[int] = []
    lags: list[int] = []
    assert proc.stderr is not None
    for line in proc.stderr:
        if "consumed=" in line:
            produced, consumed = (int(line.split(f"{k}=")[1].split()[0]) for k in ("produced", "consumed"))
            lags.append(produced - consumed)
            for p in psutil.Process(proc.pid).children(recursive=True):
                if p.name() == "tansu":
                    broker_rss.append(p.memory_info().rss)
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    generations = summary["ticks_log"]
    assert summary["ticks_consumed"] == summary["ticks_produced"] > 120_000
    assert (
        generations["open_generation"] >= 4 and generations["deleted_generations"] >= generations["open_generation"] - 2
    )
    assert max(lags[len(lags) // 3 :]) < 5_000, lags  # bounded once warm (a second and a half of feed)
    assert max(broker_rss) < 300 * 2**20, broker_rss
    assert summary["reconciliation"]["ok"] and summary["shard_errors"] == []
