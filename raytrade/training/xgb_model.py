"""XGBoost classifier of the forward-return sign, and its in-process scorer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from raytrade.training.datasets import Dataset

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20,
    "nthread": 1,
}


@dataclass
class XgbScorer:
    """Score feature rows: probability that the forward return is positive."""

    booster: xgb.Booster
    feature_names: tuple[str, ...]
    version: str = ""
    _n: int = field(init=False)

    def __post_init__(self) -> None:
        self.booster.set_param({"nthread": 1})
        self._n = len(self.feature_names)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities for a 2-D array of feature rows."""
        if rows.ndim != 2 or rows.shape[1] != self._n:
            raise ValueError(f"expected rows of {self._n} features, found shape {rows.shape}")
        return np.asarray(self.booster.inplace_predict(rows), dtype=np.float64)

    def to_bytes(self) -> bytes:
        """Serialize the booster (UBJSON)."""
        return bytes(self.booster.save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, raw: bytes, feature_names: tuple[str, ...], version: str = "") -> XgbScorer:
        """Load a booster saved by :meth:`to_bytes`."""
        booster = xgb.Booster(params={"nthread": 1})
        booster.load_model(bytearray(raw))
        return cls(booster, feature_names, version)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def train_xgb(
    data: Dataset,
    feature_names: tuple[str, ...],
    *,
    rounds: int = 150,
    seed: int = 0,
    valid_fraction: float = 0.2,
    purge: int = 60,
    params: dict[str, Any] | None = None,
) -> tuple[XgbScorer, dict[str, float]]:
    """Train on the earliest rows, validate on the latest after a purge gap.

    Returns the scorer and out-of-sample metrics: AUC, hit rate, and the information
    coefficient (correlation of score with forward return).
    """
    n = len(data.y)
    split = int(n * (1 - valid_fraction))
    if split - purge < 100 or n - split < 100:
        raise ValueError(f"need more rows to train and validate, found {n}")
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    dtrain = xgb.DMatrix(data.x[: split - purge], label=data.y[: split - purge])
    booster = xgb.train(p, dtrain, num_boost_round=rounds)
    scorer = XgbScorer(booster, feature_names)
    pv = scorer.predict(data.x[split:])
    yv, fv = data.y[split:], data.forward_return[split:]
    metrics = {
        "valid_auc": _auc(yv, pv),
        "valid_hit_rate": float(((pv > 0.5) == (yv > 0.5)).mean()),
        "valid_ic": float(np.corrcoef(pv, fv)[0, 1]),
        "train_rows": float(split - purge),
        "valid_rows": float(n - split),
    }
    return scorer, metrics
