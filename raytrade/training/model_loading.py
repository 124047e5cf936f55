"""Load registered models by kind: signal models for scoring, the anomaly gate, GARCH."""

from __future__ import annotations

from raytrade.domain.features import FEATURE_VERSION
from raytrade.domain.shard_engine import ShardModel
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.base import SignalModel
from raytrade.training.models.ensemble import EnsembleModel
from raytrade.training.models.lgbm_model import LgbmModel
from raytrade.training.models.lstm_model import LstmModel
from raytrade.training.models.xgb_model import XgbModel
from raytrade.training.registry import ModelMeta, ModelRegistry, RegistryError

SIGNAL_KINDS: dict[str, type[XgbModel] | type[LgbmModel] | type[LstmModel] | type[EnsembleModel]] = {
    c.kind: c for c in (XgbModel, LgbmModel, LstmModel, EnsembleModel)
}


def load_signal_model(registry: ModelRegistry, name: str, version: str = "approved") -> tuple[ModelMeta, SignalModel]:
    """A registered signal model; its feature version must be the one this code computes."""
    meta, raw = registry.load(name, version, feature_version=FEATURE_VERSION)
    cls = SIGNAL_KINDS.get(meta.kind)
    if cls is None:
        raise RegistryError(
            f"model {name}/{meta.version} is a {meta.kind!r}, not a signal model {sorted(SIGNAL_KINDS)}"
        )
    return meta, cls.from_bytes(raw)


def load_anomaly_gate(
    registry: ModelRegistry, name: str, version: str = "approved"
) -> tuple[ModelMeta, AnomalyDetector]:
    meta, raw = registry.load(name, version, feature_version=FEATURE_VERSION)
    if meta.kind != AnomalyDetector.kind:
        raise RegistryError(f"model {name}/{meta.version} is a {meta.kind!r}, not an anomaly detector")
    return meta, AnomalyDetector.from_bytes(raw)


def shard_model(
    registry: ModelRegistry,
    name: str,
    version: str = "approved",
    gate: str | None = None,
    gate_version: str = "approved",
) -> ShardModel:
    """What the shards score with: the signal model and, when named, the anomaly gate."""
    meta, model = load_signal_model(registry, name, version)
    label = f"{name}/{meta.version}"
    flags = None
    if gate:
        gmeta, detector = load_anomaly_gate(registry, gate, gate_version)
        flags = detector.flags
        label += f"+{gate}/{gmeta.version}"
    return ShardModel(score=model.predict_windows, history=model.history, gate=flags, version=label)
