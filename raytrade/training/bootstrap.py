"""First start: train the default model and anomaly gate on synthetic history when the registry has none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.shard_engine import ShardModel
from raytrade.training.datasets import Dataset, build_dataset
from raytrade.training.metrics import hit_rate, information_coefficient
from raytrade.training.model_loading import shard_model
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.xgb_model import XgbModel
from raytrade.training.registry import ModelMeta, ModelRegistry, RegistryError
from raytrade.training.splits import holdout
from raytrade.training.train import base_meta

MODEL_NAME = "xgb_direction"
GATE_NAME = "anomaly_iforest"


if TYPE_CHECKING:
    from raytrade.cluster.config import RunConfig


def _meta(
    name: str,
    kind: str,
    data: Dataset,
    params: dict[str, Any],
    metrics: dict[str, float],
    source: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    fields = base_meta(params, data, source)
    fields["extra"].update(extra)
    return {**fields, "name": name, "kind": kind, "params": params, "metrics": metrics}


def train_default(
    registry: ModelRegistry,
    data: Dataset,
    *,
    seed: int,
    rounds: int,
    name: str = MODEL_NAME,
    gate: str | None = GATE_NAME,
    source: str = "synthetic",
    extra: dict[str, Any] | None = None,
    approve: bool = True,
    params: dict[str, Any] | None = None,
) -> tuple[ModelMeta, ModelMeta | None]:
    """Train, validate (the last 20% of ``data``'s bar times, purged by its horizon) and register the
    default model (XGBoost direction) and, when ``gate`` names one, its IsolationForest anomaly gate."""
    extra = {"trained_by": "bootstrap", **(extra or {})}
    horizon = data.horizon
    rows = np.arange(len(data))
    fit, valid = holdout(rows, data.start, 0.2, horizon)
    model = XgbModel({"rounds": rounds}, seed)
    model.fit(data, fit)
    p = model.predict(data, valid)
    fwd = data.forward_return[valid]
    metrics = {"valid_ic": information_coefficient(p, fwd), "valid_hit_rate": hit_rate(p, fwd), "rows": float(len(fit))}
    mparams = {**model.params, "horizon": horizon, "seed": seed, **(params or {})}
    meta = registry.register(
        _meta(name, model.kind, data, mparams, metrics, source, extra), model.to_bytes(), approve=approve
    )
    if gate is None:
        return meta, None
    detector = AnomalyDetector(seed=seed)
    detector.fit(data.x[fit])
    blocked = float(detector.flags(data.x[valid]).mean())
    gparams = {**detector.params, "seed": seed, **(params or {})}
    gmeta = registry.register(
        _meta(gate, detector.kind, data, gparams, {"valid_blocked": blocked}, source, extra),
        detector.to_bytes(),
        approve=approve,
    )
    return meta, gmeta


def train_on_synthetic(registry: ModelRegistry, *, seed: int, days: float, horizon: int, rounds: int) -> ModelMeta:
    """Simulate ``days`` of history; train, validate (purged holdout) and register the default model and gate."""
    market = SyntheticMarket(seed=seed + 1_000)  # a different path from the one traded
    data = build_dataset(ticks_to_bars(market.ticks_frame(int(days * 86_400))), horizon)
    return train_default(registry, data, seed=seed, rounds=rounds, params={"days": days})[0]


def ensure_model(
    registry: ModelRegistry,
    version: str = "approved",
    *,
    seed: int,
    days: float,
    horizon: int,
    rounds: int,
    name: str = MODEL_NAME,
    gate: str | None = GATE_NAME,
) -> ShardModel:
    """The shards' model (and gate), training the default pair on synthetic history if the registry has none."""
    missing_gate = gate == GATE_NAME and not registry.versions(GATE_NAME)
    if name == MODEL_NAME and (not registry.versions(MODEL_NAME) or missing_gate):
        if version not in ("latest", "approved"):
            raise RegistryError(f"pinned model version {version!r} requested but the registry is empty")
        train_on_synthetic(registry, seed=seed, days=days, horizon=horizon, rounds=rounds)
    return shard_model(registry, name, version, gate)


def configured_model(cfg: RunConfig) -> ShardModel | None:
    """The model ``cfg.model`` names (trained on synthetic history at first start, as :func:`ensure_model`
    does), or ``None`` when the config has no model: what ``raytrade run`` and ``raytrade backtest`` score with."""
    m = cfg.model
    if m is None:
        return None
    return ensure_model(
        ModelRegistry(m.registry),
        m.version,
        name=m.name,
        gate=m.anomaly_gate,
        seed=cfg.feed.seed,
        days=m.bootstrap_days,
        horizon=m.horizon_bars,
        rounds=m.rounds,
    )
