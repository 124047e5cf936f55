"""Walk-forward retrain-and-trade on Ray: per fold, train the configured model on the bars before a
test block (purged), register it as a walk-forward artifact, and backtest the block with it through
the strategy API. Folds are Ray tasks; each reads its own training and test slices.

No look-ahead, by construction: a fold's training slice ends ``purge_bars`` bar times before its
test block, and the dataset drops every row whose label (``horizon_bars`` ahead) leaves the slice,
so no label (and no feature) of a fold's model touches a bar of its own block.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import ray

from raytrade.backtest.cluster import in_flight
from raytrade.backtest.session import load_data, run_backtest
from raytrade.cluster.config import ConfigError, RunConfig, config_from_dict
from raytrade.domain.round_trips import RoundTrip, round_trips
from raytrade.training.bootstrap import train_default
from raytrade.training.datasets import build_dataset
from raytrade.training.model_loading import shard_model
from raytrade.training.registry import ModelRegistry


@dataclass(frozen=True)
class FoldPlan:
    """One fold's bar-time ranges, epoch ns, end exclusive: train ``[train_start, train_end)``, test
    ``[test_start, test_end)``; ``purge_bars`` bar times lie between them."""

    fold: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    purge_bars: int


def plan_folds(times: np.ndarray, span_ns: int, cfg: RunConfig) -> list[FoldPlan]:
    """Consecutive test blocks after the first ``min_train_fraction`` of the distinct bar ``times``."""
    wf = cfg.backtest.walk_forward
    assert cfg.model is not None
    purge = wf.purge_bars if wf.purge_bars is not None else cfg.model.horizon_bars
    t = np.unique(times)
    first = int(len(t) * wf.min_train_fraction)
    bounds = np.linspace(first, len(t), wf.folds + 1).astype(np.int64)
    plans = []
    for k in range(wf.folds):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        cut = lo - purge
        begin = 0 if wf.window == "expanding" else max(0, cut - (wf.train_bars or first))
        if hi <= lo or cut - begin < 100:
            raise ConfigError(
                f"walk_forward: {len(t)} bar times are too few for {wf.folds} folds "
                f"(min_train_fraction {wf.min_train_fraction}, purge {purge}): fold {k} would train on {cut - begin}"
            )
        end = int(t[hi]) if hi < len(t) else int(t[-1]) + span_ns
        plans.append(FoldPlan(k, int(t[begin]), int(t[cut]), int(t[lo]), end, purge))
    return plans


def run_fold(raw: dict[str, Any], plan: FoldPlan, out_dir: str, tag: str) -> dict[str, Any]:
    """Train, register and backtest one fold (in whatever process calls it); what the report needs."""
    t0 = time.perf_counter()
    cfg = config_from_dict(raw, f"walk-forward fold {plan.fold}")
    m = cfg.model
    assert m is not None
    train_path, train = load_data(cfg, start=plan.train_start, end=plan.train_end)
    bars = train.frame.rename({"ts": "start"})
    dataset = build_dataset(bars, m.horizon_bars)
    extra = {"trained_by": "walk_forward", "walk_forward": {"run": tag, **asdict(plan)}}
    registry = ModelRegistry(m.registry)
    meta, gate = train_default(
        registry,
        dataset,
        seed=cfg.backtest.walk_forward.seed,
        rounds=m.rounds,
        name=m.name,
        gate=m.anomaly_gate,
        source=train_path,
        extra=extra,
        approve=False,
    )
    model = shard_model(registry, m.name, meta.version, m.anomaly_gate, gate.version if gate else "approved")
    trained_s = time.perf_counter() - t0
    path, data = load_data(cfg, start=plan.test_start, end=plan.test_end)
    info = {"data": path, "files": list(data.files), "symbols": data.symbols, "walk_forward": asdict(plan)}
    summary, run = run_backtest(cfg, data, Path(out_dir), info, model)
    closes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if data.kind == "bars":
        for part in data.frame.partition_by("symbol", maintain_order=True):
            closes[str(part["symbol"][0])] = (part["ts"].to_numpy(), part["close"].to_numpy())
    return {
        "plan": plan,
        "model": f"{meta.name}/{meta.version}",
        "gate": f"{gate.name}/{gate.version}" if gate else "",
        "sha256": meta.sha256,
        "data_range": meta.data_range,
        "train_rows": len(dataset),
        "summary": summary,
        "curve": run.curve,
        "trades": round_trips(run.core.ledger.fills()),
        "prices": closes,
        "train_s": trained_s,
        "fold_s": time.perf_counter() - t0,
    }


@ray.remote(max_retries=0)
def _remote_fold(raw: dict[str, Any], plan: FoldPlan, out_dir: str, tag: str) -> dict[str, Any]:
    return run_fold(raw, plan, out_dir, tag)


def run_folds(
    raw: dict[str, Any], plans: list[FoldPlan], out_root: Path, tag: str, num_cpus: float, limit: int
) -> list[dict[str, Any]]:
    """Every fold as a Ray task (at most ``limit`` in flight), results in fold order."""

    def submit(plan: FoldPlan) -> ray.ObjectRef[Any]:
        out = str(out_root / "folds" / str(plan.fold))
        return _remote_fold.options(num_cpus=num_cpus).remote(raw, plan, out, tag)

    results = {plan.fold: ray.get(ref) for plan, ref in in_flight(plans, submit, limit)}
    return [results[k] for k in sorted(results)]


def fold_table(results: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per fold: ranges, model version, training rows and the block's metrics."""
    rows = []
    for r in results:
        p: FoldPlan = r["plan"]
        metrics = {k: v for k, v in r["summary"]["metrics"].items() if isinstance(v, int | float)}
        rows.append(
            {
                "fold": p.fold,
                "train_start": _iso(p.train_start),
                "train_end": _iso(p.train_end),
                "test_start": _iso(p.test_start),
                "test_end": _iso(p.test_end),
                "model": r["model"],
                "gate": r["gate"],
                "train_rows": r["train_rows"],
                "last_trained_bar": _iso(int(r["data_range"][1])),
                "orders": r["summary"]["orders"],
                "net_pnl": float(r["summary"]["net_pnl"]),
                **metrics,
                "train_s": round(r["train_s"], 3),
                "fold_s": round(r["fold_s"], 3),
            }
        )
    return pl.from_dicts(rows, infer_schema_length=None)


def _iso(ns: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ns, "ns"), unit="s", timezone="UTC"))


def all_trades(results: list[dict[str, Any]]) -> list[RoundTrip]:
    """Every fold's round trips, in time order."""
    return sorted((t for r in results for t in r["trades"]), key=lambda t: (t.exit_ts, t.symbol))
