"""``raytrade train``: load bars, evaluate walk-forward, fit on all data, register with the report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raytrade.adapters.market_files import bars_frame
from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.features import FEATURE_NAMES, FEATURE_VERSION
from raytrade.training.datasets import Dataset, build_dataset
from raytrade.training.evaluation import evaluate, render_markdown
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.ensemble import EnsembleModel
from raytrade.training.models.garch import GarchModel
from raytrade.training.registry import ModelMeta, ModelRegistry, config_hash
from raytrade.training.train_config import DataConfig, TrainConfig


def load_bars(cfg: DataConfig) -> pl.DataFrame:
    """The configured bars, filtered to the configured symbols and most recent bars."""
    if cfg.source == "synthetic":
        bars = ticks_to_bars(SyntheticMarket(seed=cfg.synthetic_seed).ticks_frame(int(cfg.synthetic_days * 86_400)))
    else:
        path = Path(cfg.source)
        if not path.exists():
            raise FileNotFoundError(f"data.source {cfg.source!r}: no such file or folder")
        bars = bars_frame(path)
    if cfg.symbols:
        unknown = sorted(set(cfg.symbols) - set(bars["symbol"].unique().to_list()))
        if unknown:
            raise ValueError(f"data.symbols {unknown} are not in {cfg.source}")
        bars = bars.filter(pl.col("symbol").is_in(list(cfg.symbols)))
    if cfg.last_bars:
        bars = bars.sort("symbol", "start").group_by("symbol", maintain_order=True).tail(cfg.last_bars)
    return bars


def dataset_for(cfg: DataConfig) -> Dataset:
    return build_dataset(load_bars(cfg), cfg.horizon_bars)


def _flat_metrics(report: dict[str, Any], model: str) -> dict[str, float]:
    m = report["models"][model]
    out = {
        "oos_ic": m["ic"],
        "oos_rank_ic": m["rank_ic"],
        "oos_hit_rate": m["hit_rate"],
        "oos_ic_tstat": m["ic_tstat"],
        "oos_sharpe": m["backtest"]["sharpe"],
        "oos_sharpe_gross": m["backtest"]["sharpe_gross"],
        "oos_max_drawdown": m["backtest"]["max_drawdown"],
    }
    for name, b in report["baselines"].items():
        out[f"baseline_{name}_sharpe"] = b["backtest"]["sharpe"]
    return {k: float(v) for k, v in out.items() if np.isfinite(v)}


def base_meta(cfg_dump: dict[str, Any], data: Dataset, source: str) -> dict[str, Any]:
    """The metadata every artifact of one training run shares."""
    return {
        "feature_version": FEATURE_VERSION,
        "feature_names": FEATURE_NAMES,
        "data_range": (int(data.start[0]), int(data.start[-1])),
        "config_hash": config_hash({**cfg_dump, "symbols": list(data.symbols), "rows": len(data)}),
        "extra": {"source": source, "symbols": list(data.symbols), "horizon_bars": data.horizon},
    }


def train(cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """Run the whole training job; returns the report with the registered versions under ``registered``."""
    t0 = time.monotonic()
    data = dataset_for(cfg.data)
    log(f"dataset: {len(data)} rows, symbols {list(data.symbols)}, horizon {data.horizon} bars")
    report = evaluate(data, cfg.eval_settings())
    log(f"walk-forward evaluation: {report['wall_s']} s")
    rows = np.arange(len(data))
    ensemble = EnsembleModel({"members": {k: dict(v) for k, v in cfg.members.items()}}, cfg.seed)
    ensemble.fit(data, rows)
    detector = AnomalyDetector(dict(cfg.anomaly), cfg.seed)
    detector.fit(data.x)
    garch = GarchModel()
    garch.fit({s: data.next_return[data.symbol == i] for i, s in enumerate(data.symbols)})
    dump = cfg.model_dump(mode="json")
    common = base_meta(dump, data, cfg.data.source)
    registry = ModelRegistry(cfg.registry)
    registered: dict[str, ModelMeta] = {}
    for name, kind, params, metrics, blob in (
        (cfg.name, ensemble.kind, ensemble.params, _flat_metrics(report, "ensemble"), ensemble.to_bytes()),
        (
            cfg.anomaly_name,
            detector.kind,
            detector.params,
            {"oos_blocked_fraction": report["models"]["ensemble+anomaly_gate"]["blocked_fraction"]},
            detector.to_bytes(),
        ),
        (
            cfg.garch_name,
            garch.kind,
            {"p": 1, "q": 1, "mean": "zero", "dist": "normal"},
            {k: v for k, v in report["garch"].items() if np.isfinite(v)},
            garch.to_bytes(),
        ),
    ):
        fields = {**common, "name": name, "kind": kind, "params": {**params, "seed": cfg.seed}, "metrics": metrics}
        registered[name] = registry.register(fields, blob, approve=cfg.approve)
    version = registered[cfg.name].version
    out = Path(cfg.output_dir) / f"{cfg.name}-{version}"
    out.mkdir(parents=True, exist_ok=True)
    report["registered"] = {k: m.version for k, m in registered.items()}
    report["ensemble_weights"] = ensemble.weights
    report["total_wall_s"] = round(time.monotonic() - t0, 2)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    (out / "report.md").write_text(render_markdown(report, f"{cfg.name} {version} on {cfg.data.source}"))
    report["report_dir"] = str(out)
    log(f"registered {report['registered']} in {cfg.registry}; report in {out}")
    return report
