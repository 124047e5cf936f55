"""A sweep on Ray: one task per run (explicit ``num_cpus``, at most ``max_concurrent`` in flight), each
reading its own slice of the data and writing its own ledger and report; one row per run.

Why plain tasks rather than Ray Tune: a backtest is one pass with no intermediate result worth
stopping early on (ASHA would rank strategies by their first weeks), grid and seeded random
search are deterministic as plain lists, and a task per run keeps a failing run to its own row.
Tune's adaptive searchers (Optuna, HyperOpt) choose the next trial from the finished ones, so
the table would depend on which runs finished first.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import ray

from raytrade.backtest.cluster import in_flight, research_cluster
from raytrade.backtest.session import configured, load_data, run_backtest
from raytrade.backtest.sweep_config import RunSpec, Sweep
from raytrade.cluster.config import config_from_dict

TIMING = ("wall_s", "process_s", "bars_per_s")  # differ between identical sweeps; everything else does not


def execute_run(raw: dict[str, Any], run: RunSpec, out_dir: str, known: tuple[str, ...]) -> dict[str, Any]:
    """One run, in whatever process calls it; its row (``status`` ``failed`` with ``error`` if it failed).
    ``known``: the base config's symbols (the data may hold them all; the run reads only its own)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {**run.row(), "status": "ok", "error": ""}
    try:
        cfg = config_from_dict(raw, f"sweep run {run.run_id}")
        path, data = load_data(cfg, subset=run.symbols, known=known)
        info = {"data": path, "files": list(data.files), "symbols": data.symbols, "run": run.row()}
        summary, _ = run_backtest(cfg, data, Path(out_dir), info, configured(cfg))
        row.update({k: float(v) for k, v in summary["metrics"].items() if isinstance(v, int | float)})
        row.update(
            events=int(summary["events"]),
            bars=int(summary["bars"]),
            orders=int(summary["orders"]),
            fills=int(summary["fills"]),
            net_pnl=float(summary["net_pnl"]),
            wall_s=float(summary["wall_s"]),
            bars_per_s=float(summary["events_per_s"]),
        )
    except Exception as exc:  # a failed run is a row, not the end of the sweep
        row.update(status="failed", error=_one_line(exc))
        (Path(out_dir) / "error.txt").parent.mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "error.txt").write_text("".join(traceback.format_exception(exc)))
    row["process_s"] = time.perf_counter() - t0
    return row


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@ray.remote(max_retries=0)
def _remote_run(raw: dict[str, Any], run: RunSpec, out_dir: str, known: tuple[str, ...]) -> dict[str, Any]:
    return execute_run(raw, run, out_dir, known)


def run_sweep(
    sweep: Sweep, out_root: Path, address: str | None = None, progress: Callable[[dict[str, Any]], None] | None = None
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every run of ``sweep`` on the cluster; the table (sorted by run id) and the sweep's own figures."""
    res = sweep.config.resources
    runs = sweep.runs()
    known = tuple(i.symbol for i in sweep.base.instruments)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with research_cluster(address, res.num_cpus, res.max_concurrent, res.local_cpus) as (cpus, limit):
        options: dict[str, Any] = {"num_cpus": res.num_cpus}
        if res.memory_mb:
            options["memory"] = res.memory_mb * 1024 * 1024

        def submit(run: RunSpec) -> ray.ObjectRef[Any]:
            out = str(out_root / "runs" / run.run_id)
            return _remote_run.options(**options).remote(sweep.run_config(run), run, out, known)

        for run, ref in in_flight(runs, submit, limit):
            try:
                row = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the worker died: still one row
                row = {**run.row(), "status": "failed", "error": _one_line(exc)}
            rows.append(row)
            if progress is not None:
                progress(row)
    wall = time.perf_counter() - t0
    frame = pl.from_dicts(sorted(rows, key=lambda r: r["run_id"]), infer_schema_length=None)
    bars = int(frame["bars"].sum()) if "bars" in frame.columns else 0
    figures = {
        "runs": len(runs),
        "failed": int((frame["status"] == "failed").sum()),
        "max_concurrent": limit,
        "cluster_cpus": cpus,
        "wall_s": round(wall, 3),
        "bars": bars,
        "bars_per_s": round(bars / wall, 1) if wall > 0 else 0.0,
    }
    return frame, figures
