"""First-start model: train XGBoost on synthetic history when the registry has none."""

from __future__ import annotations

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.features import FEATURE_NAMES, FEATURE_VERSION
from raytrade.training.datasets import build_dataset
from raytrade.training.registry import ModelMeta, ModelRegistry, RegistryError, config_hash
from raytrade.training.xgb_model import DEFAULT_PARAMS, XgbScorer, train_xgb

MODEL_NAME = "xgb_direction"


def train_on_synthetic(registry: ModelRegistry, *, seed: int, days: float, horizon: int, rounds: int) -> ModelMeta:
    """Simulate ``days`` of history, train, register, and return the new model's metadata."""
    market = SyntheticMarket(seed=seed + 1_000)  # a different path from the one traded
    bars = ticks_to_bars(market.ticks_frame(int(days * 86_400)))
    data = build_dataset(bars, horizon)
    scorer, metrics = train_xgb(data, FEATURE_NAMES, rounds=rounds, seed=seed)
    params = {**DEFAULT_PARAMS, "rounds": rounds, "horizon": horizon, "seed": seed}
    return registry.register(
        {
            "name": MODEL_NAME,
            "kind": "xgboost",
            "feature_version": FEATURE_VERSION,
            "feature_names": FEATURE_NAMES,
            "data_range": (int(data.start[0]), int(data.start[-1])),
            "params": params,
            "metrics": metrics,
            "config_hash": config_hash({**params, "days": days, "source": "synthetic"}),
            "extra": {"source": "synthetic", "days": days},
        },
        scorer.to_bytes(),
    )


def ensure_model(
    registry: ModelRegistry, version: str = "latest", *, seed: int, days: float, horizon: int, rounds: int
) -> XgbScorer:
    """Load the requested model, training one on synthetic history if none exists."""
    if not registry.versions(MODEL_NAME):
        if version != "latest":
            raise RegistryError(f"pinned model version {version!r} requested but the registry is empty")
        train_on_synthetic(registry, seed=seed, days=days, horizon=horizon, rounds=rounds)
    meta, raw = registry.load(MODEL_NAME, version, feature_version=FEATURE_VERSION)
    return XgbScorer.from_bytes(raw, meta.feature_names, meta.version)
