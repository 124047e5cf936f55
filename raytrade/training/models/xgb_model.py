"""XGBoost classifier of the forward-return sign."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import xgboost as xgb

from raytrade.training.datasets import Dataset
from raytrade.training.models.base import check_rows, merge_params, pack, unpack

DEFAULTS: dict[str, Any] = {
    "rounds": 150,
    "max_depth": 4,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20.0,
    "reg_lambda": 1.0,
}


class XgbModel:
    """Gradient-boosted trees (``binary:logistic``), one thread."""

    kind: ClassVar[str] = "xgboost"

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = merge_params(self.kind, DEFAULTS, params)
        self.seed = seed
        self.booster: xgb.Booster | None = None
        self.n_features = 0

    @property
    def history(self) -> int:
        return 1

    def _train_params(self) -> dict[str, Any]:
        p = {k: v for k, v in self.params.items() if k != "rounds"}
        return {**p, "objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1, "seed": self.seed}

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.n_features = data.x.shape[1]
        dtrain = xgb.DMatrix(data.x[rows], label=data.y[rows])
        self.booster = xgb.train(self._train_params(), dtrain, num_boost_round=int(self.params["rounds"]))

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("xgboost model is not fitted")
        return np.asarray(self.booster.inplace_predict(check_rows(x, self.n_features)), dtype=np.float64)

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray:
        return self.predict_rows(data.x[rows])

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        return self.predict_rows(windows[:, -1, :])

    def to_bytes(self) -> bytes:
        if self.booster is None:
            raise RuntimeError("xgboost model is not fitted")
        return pack(
            {"params": self.params, "seed": self.seed, "n_features": self.n_features},
            bytes(self.booster.save_raw(raw_format="ubj")),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> XgbModel:
        head, body = unpack(raw)
        model = cls(head["params"], head["seed"])
        model.n_features = head["n_features"]
        model.booster = xgb.Booster(params={"nthread": 1})
        model.booster.load_model(bytearray(body))
        return model
