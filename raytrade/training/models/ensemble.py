"""Validation-weighted ensemble: members' probabilities averaged with weights from their validation IC."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any, ClassVar

import numpy as np

from raytrade.training.datasets import Dataset
from raytrade.training.metrics import information_coefficient
from raytrade.training.models.base import SignalModel, merge_params
from raytrade.training.models.lgbm_model import LgbmModel
from raytrade.training.models.lstm_model import LstmModel
from raytrade.training.models.xgb_model import XgbModel
from raytrade.training.splits import holdout

MEMBER_KINDS: dict[str, type[XgbModel] | type[LgbmModel] | type[LstmModel]] = {
    XgbModel.kind: XgbModel,
    LgbmModel.kind: LgbmModel,
    LstmModel.kind: LstmModel,
}
DEFAULTS: dict[str, Any] = {
    "members": {"lstm": {}, "xgboost": {}, "lightgbm": {}},  # kind -> that member's hyperparameters
    "valid_fraction": 0.2,  # of the training bar times, after a purge of the label horizon
}


class EnsembleModel:
    """A model in its own right: fit, predict, save and load like its members.

    ``fit`` holds out the last ``valid_fraction`` of the training period (purged by the label
    horizon), fits every member on the rest, and weights member ``i`` by ``max(IC_i, 0)`` on the
    holdout (equal weights if no member has a positive IC: then the report should say "no edge").
    """

    kind: ClassVar[str] = "ensemble"

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = merge_params(self.kind, DEFAULTS, params)
        unknown = sorted(set(self.params["members"]) - set(MEMBER_KINDS))
        if unknown or not self.params["members"]:
            raise ValueError(f"ensemble members must be a non-empty subset of {sorted(MEMBER_KINDS)}, found {unknown}")
        self.seed = seed
        self.members: dict[str, SignalModel] = {
            k: MEMBER_KINDS[k](p, seed) for k, p in sorted(self.params["members"].items())
        }
        self.weights: dict[str, float] = {k: 1.0 / len(self.members) for k in self.members}
        self.valid_ic: dict[str, float] = {}

    @property
    def history(self) -> int:
        return max(m.history for m in self.members.values())

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        if valid is None:
            rows, valid = holdout(rows, data.start, float(self.params["valid_fraction"]), data.horizon)
        for name, m in self.members.items():
            m.fit(data, rows, valid)
            self.valid_ic[name] = information_coefficient(m.predict(data, valid), data.forward_return[valid])
        positive = {k: max(v, 0.0) for k, v in self.valid_ic.items()}
        total = sum(positive.values())
        n = len(self.members)
        self.weights = {k: (positive[k] / total if total > 0 else 1.0 / n) for k in self.members}

    def predict_members(self, data: Dataset, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each member's probabilities for ``rows``."""
        return {k: m.predict(data, rows) for k, m in self.members.items()}

    def combine(self, member_scores: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted average of members' probabilities."""
        return np.asarray(np.sum([self.weights[k] * member_scores[k] for k in self.members], axis=0))

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray:
        return self.combine(self.predict_members(data, rows))

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        h = windows.shape[1]
        return self.combine({k: m.predict_windows(windows[:, h - m.history :, :]) for k, m in self.members.items()})

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            head = {"params": self.params, "seed": self.seed, "weights": self.weights, "valid_ic": self.valid_ic}
            z.writestr("ensemble.json", json.dumps(head, sort_keys=True))
            for k, m in self.members.items():
                z.writestr(f"{k}.bin", m.to_bytes())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EnsembleModel:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            head = json.loads(z.read("ensemble.json"))
            model = cls(head["params"], head["seed"])
            model.members = {k: MEMBER_KINDS[k].from_bytes(z.read(f"{k}.bin")) for k in model.members}
        model.weights, model.valid_ic = head["weights"], head["valid_ic"]
        return model
