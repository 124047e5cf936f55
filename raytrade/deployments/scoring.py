"""What the ensemble deployment computes: per-model scores, the ensemble score and the anomaly flag.

No Ray here: the deployment, the benchmark's in-process floor and the tests share this code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from raytrade.domain.features import FEATURE_NAMES
from raytrade.domain.features_batch import compute_features, feature_matrix_columns
from raytrade.training.model_loading import load_anomaly_gate, load_signal_model
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.base import SignalModel
from raytrade.training.models.ensemble import EnsembleModel
from raytrade.training.registry import ModelRegistry


@dataclass(frozen=True)
class ModelSpec:
    """Which registered model (and anomaly gate) to serve: the deployment's ``user_config``."""

    registry: str
    name: str
    version: str
    anomaly_gate: str | None = None
    anomaly_gate_version: str = "approved"

    @classmethod
    def from_user_config(cls, cfg: dict[str, Any]) -> ModelSpec:
        known = {"registry", "name", "version", "anomaly_gate", "anomaly_gate_version"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown user_config key(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"registry", "name", "version"} - set(cfg))
        if missing:
            raise ValueError(f"user_config lacks {missing}")
        return cls(**cfg)


class Scorer:
    """A loaded signal model and optional anomaly gate, scoring batches of feature windows."""

    def __init__(self, spec: ModelSpec) -> None:
        registry = ModelRegistry(spec.registry)
        meta, model = load_signal_model(registry, spec.name, spec.version)
        self.spec = spec
        self.model: SignalModel = model
        self.version = meta.version
        self.label = f"{spec.name}/{meta.version}"
        self.gate: AnomalyDetector | None = None
        self.gate_label: str | None = None
        if spec.anomaly_gate:
            gmeta, self.gate = load_anomaly_gate(registry, spec.anomaly_gate, spec.anomaly_gate_version)
            self.gate_label = f"{spec.anomaly_gate}/{gmeta.version}"

    @property
    def history(self) -> int:
        """Feature vectors one prediction reads."""
        return self.model.history

    def score_last(self, rows: np.ndarray) -> dict[str, Any]:
        """Score the last ``history`` of ``rows`` (feature vectors, oldest first); a clear error if too few."""
        if len(rows) < self.history:
            raise ValueError(f"{self.label} reads the last {self.history} feature vectors, found {len(rows)}")
        return self.score(rows[None, -self.history :, :])[0]

    def score(self, windows: np.ndarray) -> list[dict[str, Any]]:
        """One result per window of shape ``(history, n_features)``: member scores, ensemble score, anomaly flag."""
        h = self.history
        if windows.ndim != 3 or windows.shape[1] != h or windows.shape[2] != len(FEATURE_NAMES):
            raise ValueError(f"expected windows of shape (n, {h}, {len(FEATURE_NAMES)}), found {windows.shape}")
        if isinstance(self.model, EnsembleModel):
            members = {k: m.predict_windows(windows[:, h - m.history :, :]) for k, m in self.model.members.items()}
            combined = self.model.combine(members)
        else:
            combined = self.model.predict_windows(windows)
            members = {self.spec.name: combined}
        flags = self.gate.flags(windows[:, -1, :]) if self.gate is not None else np.zeros(len(windows), dtype=bool)
        return [
            {
                "models": {k: float(v[i]) for k, v in members.items()},
                "score": float(combined[i]),
                "anomaly": bool(flags[i]),
                "model_version": self.label,
            }
            for i in range(len(windows))
        ]


def feature_rows_from_bars(bars: pl.DataFrame) -> np.ndarray:
    """The feature vectors (oldest first) of one symbol's bars past the indicators' warm-up.

    Features are the training definitions (:func:`compute_features`); rows that are not
    finite (the warm-up) are dropped, so the result may hold fewer rows than a model reads.
    """
    x = compute_features(bars).select(feature_matrix_columns()).to_numpy()
    return np.ascontiguousarray(x[np.isfinite(x).all(axis=1)], dtype=np.float64)
