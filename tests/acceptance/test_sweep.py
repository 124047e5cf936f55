"""``raytrade backtest --sweep`` on real Binance bars, on a local Ray: one row per run with its params and
metrics, each run's own ledger and report, a failing run reported as a row, and the same table twice."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from raytrade.backtest.sweep import TIMING, execute_run
from raytrade.backtest.sweep_config import load_sweep

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "crypto_1m_2023-01"
RAYTRADE = str(Path(sys.executable).parent / "raytrade")

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real market data not found at {DATA}")

BASE = f"""
kafka: {{partitions: 2}}
instruments:
  - {{symbol: BTCUSDT, price_increment: '0.01', size_increment: '0.00001'}}
  - {{symbol: ETHUSDT, price_increment: '0.01', size_increment: '0.0001'}}
  - {{symbol: SOLUSDT, price_increment: '0.01', size_increment: '0.01'}}
  - {{symbol: XRPUSDT, price_increment: '0.0001', size_increment: '1'}}
strategies:
  - {{id: sma, path: 'raytrade.strategy.builtins:SmaCross', params: {{fast: 10, slow: 30, notional: '10000'}}}}
model: null
risk: {{max_order_notional: '1000000', max_position_notional: '1000000', max_gross_exposure: '10000000'}}
execution: {{initial_cash: '1000000', fee_bps: '2'}}
backtest: {{data: '{DATA}', fills: next_bar_open}}
"""

# 2 x 2 = 4 runs; fast 10 / slow 8 is not a valid SmaCross (fast must be < slow): that run fails alone.
SWEEP = """
base: base.yaml
search: grid
params:
  sma: {fast: [5, 10], slow: [30, 8]}
symbols: [[BTCUSDT, ETHUSDT]]
periods: [{start: "2023-01-02", end: "2023-01-05"}]
resources: {num_cpus: 1, max_concurrent: 2, local_cpus: 2}
metric: sharpe
"""


def sweep(tmp: Path, out: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    result = subprocess.run(
        [RAYTRADE, "backtest", "--no-progress", "--sweep", str(tmp / "sweep.yaml"), "--output", str(tmp / out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result, tmp / out


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("sweep")
    (tmp / "base.yaml").write_text(BASE)
    (tmp / "sweep.yaml").write_text(SWEEP)
    first, a = sweep(tmp, "a")
    assert first.returncode == 0, first.stderr[-3000:]
    second, b = sweep(tmp, "b")
    assert second.returncode == 0, second.stderr[-3000:]
    return tmp, a, b


def test_one_row_per_run_with_params_and_metrics(sweeps: tuple[Path, Path, Path]) -> None:
    _, a, _ = sweeps
    table = pl.read_parquet(a / "results.parquet")
    assert table["run_id"].to_list() == ["r0000", "r0001", "r0002", "r0003"]
    assert table.select("sma.fast", "sma.slow").rows() == [(5, 30), (5, 8), (10, 30), (10, 8)]
    assert table["status"].to_list() == ["ok", "ok", "ok", "failed"]
    failed = table.row(3, named=True)
    assert "fast (10) must be < slow (8)" in failed["error"] and failed["sharpe"] is None
    for row in table.head(3).iter_rows(named=True):
        assert row["symbols"] == "BTCUSDT,ETHUSDT" and row["start"] == "2023-01-02"
        assert row["bars"] == 2 * 3 * 1440  # both symbols, 3 days of 1-minute bars
        assert row["orders"] > 0 and math.isfinite(row["sharpe"]) and math.isfinite(row["max_drawdown"])
        run = a / "runs" / row["run_id"]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["orders"] == row["orders"] and float(summary["net_pnl"]) == pytest.approx(row["net_pnl"])
        assert (run / "report.html").stat().st_size > 10_000
        with sqlite3.connect(run / "ledger.db") as db:  # each run keeps its own ledger
            assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == row["orders"]
    assert "runs/r0003" in "".join(p.as_posix() for p in (a / "runs").iterdir())
    assert "fast (10) must be < slow (8)" in (a / "runs" / "r0003" / "error.txt").read_text()
    assert table["sharpe"].head(3).n_unique() == 3  # the params changed the result


def test_the_same_sweep_gives_the_same_table(sweeps: tuple[Path, Path, Path]) -> None:
    _, a, b = sweeps
    first = pl.read_parquet(a / "results.parquet").drop(*TIMING)
    second = pl.read_parquet(b / "results.parquet").drop(*TIMING)
    assert first.equals(second)


def test_a_run_equals_the_same_backtest_in_this_process(sweeps: tuple[Path, Path, Path], tmp_path: Path) -> None:
    tmp, a, _ = sweeps
    sw = load_sweep(tmp / "sweep.yaml")
    spec = sw.runs()[2]
    known = tuple(i.symbol for i in sw.base.instruments)
    row = execute_run(sw.run_config(spec), spec, str(tmp_path / "here"), known)
    remote = pl.read_parquet(a / "results.parquet").row(2, named=True)
    for key in ("orders", "fills", "net_pnl", "sharpe", "max_drawdown", "total_return", "trades"):
        assert row[key] == remote[key], key


def test_the_html_page_sorts_and_plots(sweeps: tuple[Path, Path, Path]) -> None:
    _, a, _ = sweeps
    page = (a / "sweep.html").read_text()
    assert page.count("<tr>") == 1 + 4 and "addEventListener('click'" in page
    assert page.count("data:image/png;base64,") == 2  # metric per param, and the heat map over fast x slow
    assert 'href="runs/r0000/report.html"' in page
    figures = json.loads((a / "sweep.json").read_text())
    assert figures["runs"] == 4 and figures["failed"] == 1 and figures["max_concurrent"] == 2
    assert figures["bars"] == 3 * 2 * 3 * 1440 and figures["bars_per_s"] > 0


def test_a_bad_sweep_file_gets_one_line(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace("sma: {fast", "nope: {fast"))
    result, _ = sweep(tmp_path, "out")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"raytrade: invalid sweep {tmp_path / 'sweep.yaml'}: params: no strategy 'nope' in "
        f"{tmp_path / 'base.yaml'} (have ['sma'])"
    ]
    for bad, message in (
        ("[[DOGEUSDT]]", "symbols: ['DOGEUSDT'] not in"),
        ("[[BTCUSDT, ETHUSDT]]\nignored: 1", "ignored: Extra inputs are not permitted"),
    ):
        (tmp_path / "sweep.yaml").write_text(SWEEP.replace("[[BTCUSDT, ETHUSDT]]", bad))
        result, _ = sweep(tmp_path, "out")
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # A misspelt param or a bad date would fail every run: refused before Ray starts.
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace("{fast: [5, 10]", "{fsat: [5, 10]"))
    result, _ = sweep(tmp_path, "out")
    assert result.returncode == 2 and "params.sma: unknown ['fsat']" in result.stderr
    (tmp_path / "sweep.yaml").write_text(SWEEP.replace('"2023-01-05"', '"2023-13-01"'))
    result, _ = sweep(tmp_path, "out")
    assert result.returncode == 2 and "periods[0].end:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / "results.parquet").exists()
