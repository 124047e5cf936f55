"""The README's "Your own Kafka and data" path, as a new user runs it, and a whole-process crash against a
broker that outlives the run: the ledger equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from raytrade.adapters.embedded_broker import EmbeddedBroker
from tests.acceptance.test_embedded_ops import tree, wait_gone
from tests.conftest import SHARED_DATA
from tests.integration.chaos_harness import read_ledger

REPO = Path(__file__).resolve().parents[2]
RAYTRADE = [sys.executable, "-m", "raytrade.cluster.cli"]
BTC_FILE = SHARED_DATA / "crypto_1m_2023-01" / "BTCUSDT_1m.csv"
N_TICKS = 8_000


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker that is not the run's: it outlives every run of the test."""
    with EmbeddedBroker(log_path=tmp_path / "own-tansu.log") as b:
        yield b


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RAYTRADE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def base_env(tmp: Path, models: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RAYTRADE__MODEL__REGISTRY": str(models), "RAYTRADE__MODEL__BOOTSTRAP_DAYS": "1", **extra}


class Run:
    """`raytrade run` in its own process group, its progress read as it comes."""

    def __init__(self, env: dict[str, str], duration_s: float) -> None:
        self.proc = subprocess.Popen(
            [*RAYTRADE, "run", "--duration", str(duration_s)], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.consumed = -1
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "consumed=" in line:
                self.consumed = int(line.split("consumed=")[1].split()[0])

    def wait_for(self, pred: Callable[[int], bool], timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while not pred(self.consumed):
            assert self.proc.poll() is None, "".join(self.lines[-30:])
            assert time.monotonic() < deadline, f"consumed {self.consumed}:\n{''.join(self.lines[-10:])}"
            time.sleep(0.1)

    def finish(self, timeout_s: float = 300) -> tuple[int, dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        self._reader.join(timeout=10)
        return self.proc.returncode, json.loads(out) if out.strip() else {}

    def interrupt(self) -> tuple[int, dict[str, Any]]:
        """Ctrl-C, as a terminal sends it to the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.finish(120)


@pytest.mark.slow
@pytest.mark.skipif(not BTC_FILE.exists(), reason=f"real data not found at {BTC_FILE} (../shared/data)")
def test_your_own_kafka_and_data_as_the_readme_says(own_broker: EmbeddedBroker, tmp_path: Path) -> None:
    out_dir = tmp_path / "runs-latest"
    env = base_env(tmp_path, tmp_path / "models", RAYTRADE__OUTPUT_DIR=str(out_dir))
    # 1. `make run`: the embedded default leaves snapshots of its own broker's log behind.
    first = cli("run", "--duration", "15", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    snapshots = sorted((out_dir / "state").glob("shard-*.db"))
    assert snapshots
    stamps = {p: p.stat().st_mtime_ns for p in snapshots}
    # 2. A separate broker with the user's data: 2,000 one-minute bars, four trades each. (Each bar's close is a
    # decision point taken in event-time order, a round trip through the gate: 100-200 bars/s on this 2-core
    # machine while the test suite runs, so 8,000 ticks are caught up well within the 45 s run.)
    bootstrap = own_broker.bootstrap_servers
    produced = cli("produce", "--bootstrap", bootstrap, "--file", str(BTC_FILE), "--limit", str(N_TICKS), env=env)
    assert produced.returncode == 0, produced.stderr[-3000:]
    assert json.loads(produced.stdout)["sent"] == N_TICKS
    external = {**env, "RAYTRADE__KAFKA__BOOTSTRAP_SERVERS": bootstrap, "RAYTRADE__FEED__SOURCE": "none"}
    # 3. The old snapshots belong to another log: refused at start, one clear line, nothing touched.
    refused = cli("run", "--duration", "60", env=external)
    assert refused.returncode == 2, refused.stderr[-3000:]
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("raytrade")]
    assert "Traceback" not in refused.stderr and len(errors) == 1, refused.stderr
    assert "was taken on another log" in errors[0] and f"remove {out_dir / 'state'}" in errors[0]
    assert {p: p.stat().st_mtime_ns for p in snapshots} == stamps
    # 4. As the line says: a fresh start for this broker trades every tick, until --duration.
    for p in [out_dir / "state", *out_dir.glob("ledger.db*")]:
        subprocess.run(["rm", "-rf", str(p)], check=True)
    run = Run(external, 45)
    run.wait_for(lambda n: n >= N_TICKS)
    code, summary = run.finish()
    assert code == 0, "".join(run.lines[-30:])
    assert summary["ticks_consumed"] == summary["ticks_accepted"] == N_TICKS and summary["consumer_lag"] == 0
    assert summary["duration_s"] >= 45  # caught up long before, it kept trading until --duration
    assert any("produced=external" in line for line in run.lines)
    assert summary["reconciliation"]["ok"] and summary["shard_errors"] == []
    # 5. Its own snapshots are accepted: a restart resumes where it stopped (nothing is read twice).
    again = Run(external, 8)
    code, summary = again.finish()
    assert code == 0, "".join(again.lines[-30:])
    assert summary["ticks_consumed"] == N_TICKS


@pytest.mark.slow
def test_a_whole_process_crash_mid_stream_leaves_the_ledger_of_an_uninterrupted_run(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    n = 60_000
    bootstrap = own_broker.bootstrap_servers
    models = tmp_path / "models"
    common = {
        "RAYTRADE__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RAYTRADE__FEED__SOURCE": "none",
        "RAYTRADE__BATCH_SIZE": "500",
        # Ledgers are compared fill for fill with every risk check of the default config on: the gate
        # takes the shards' groups in event-time order.
    }

    def env(name: str) -> dict[str, str]:
        return base_env(tmp_path, models, **common, RAYTRADE__KAFKA__TOPIC=name,
                        RAYTRADE__KAFKA__DEAD_LETTER_TOPIC=f"{name}.dlq", RAYTRADE__KAFKA__GROUP_ID=f"g-{name}",
                        RAYTRADE__OUTPUT_DIR=str(tmp_path / name))  # fmt: skip

    # The uninterrupted run reads the whole feed from a backlog.
    done = cli("produce", "--bootstrap", bootstrap, "--topic", "ticks-a", "--limit", str(n), env=env("ticks-a"))
    assert done.returncode == 0 and json.loads(done.stdout)["sent"] == n, done.stderr[-2000:]
    a = Run(env("ticks-a"), 600)
    a.wait_for(lambda c: c >= n)
    code, _ = a.interrupt()
    assert code == 130

    # The same feed, live at 4,000 ticks/s; the whole run killed a third of the way in, then restarted.
    live = ["produce", "--bootstrap", bootstrap, "--topic", "ticks-b", "--limit", str(n), "--rate", "4000"]
    feed = subprocess.Popen([*RAYTRADE, *live], cwd=REPO, env=env("ticks-b"), stdout=subprocess.PIPE, text=True)
    b = Run(env("ticks-b"), 600)
    b.wait_for(lambda c: c >= n // 3)
    pids = tree(b.proc.pid)
    os.killpg(b.proc.pid, signal.SIGKILL)  # the host crash: driver, Ray, everything the run started
    b.proc.communicate()
    assert not wait_gone(pids)
    restarted = Run(env("ticks-b"), 600)
    restarted.wait_for(lambda c: c >= n)
    code, summary = restarted.interrupt()
    assert code == 130 and feed.wait(60) == 0
    assert summary["ticks_consumed"] == n and summary["reconciliation"]["ok"]

    orders_a, fills_a, pnl_a, pos_a = read_ledger(str(tmp_path / "ticks-a" / "ledger.db"), Decimal(100_000))
    orders_b, fills_b, pnl_b, pos_b = read_ledger(str(tmp_path / "ticks-b" / "ledger.db"), Decimal(100_000))
    assert len(orders_a) >= 20 and len(fills_a) >= 20, "the feed should trade enough to compare"
    assert orders_b == orders_a  # none lost, none doubled: same ids, statuses, quantities, reasons
    assert fills_b == fills_a
    assert pnl_b == pnl_a and pos_b == pos_a
