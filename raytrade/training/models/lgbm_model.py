"""LightGBM classifier of the forward-return sign."""

from __future__ import annotations

from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np

from raytrade.training.datasets import Dataset
from raytrade.training.models.base import check_rows, merge_params, pack, unpack

DEFAULTS: dict[str, Any] = {
    "rounds": 150,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "lambda_l2": 1.0,
}


class LgbmModel:
    """Gradient-boosted trees (``binary``), one thread, deterministic."""

    kind: ClassVar[str] = "lightgbm"

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = merge_params(self.kind, DEFAULTS, params)
        self.seed = seed
        self.booster: lgb.Booster | None = None
        self.n_features = 0

    @property
    def history(self) -> int:
        return 1

    def fit(self, data: Dataset, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.n_features = data.x.shape[1]
        p = {k: v for k, v in self.params.items() if k != "rounds"}
        p.update(
            objective="binary",
            bagging_freq=1,
            num_threads=1,
            deterministic=True,
            force_row_wise=True,
            seed=self.seed,
            verbose=-1,
        )
        train = lgb.Dataset(data.x[rows], label=data.y[rows], free_raw_data=True)
        self.booster = lgb.train(p, train, num_boost_round=int(self.params["rounds"]))

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise RuntimeError("lightgbm model is not fitted")
        out = self.booster.predict(check_rows(x, self.n_features), num_threads=1)
        return np.asarray(out, dtype=np.float64)

    def predict(self, data: Dataset, rows: np.ndarray) -> np.ndarray:
        return self.predict_rows(data.x[rows])

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        return self.predict_rows(windows[:, -1, :])

    def to_bytes(self) -> bytes:
        if self.booster is None:
            raise RuntimeError("lightgbm model is not fitted")
        return pack(
            {"params": self.params, "seed": self.seed, "n_features": self.n_features},
            self.booster.model_to_string().encode(),
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> LgbmModel:
        head, body = unpack(raw)
        model = cls(head["params"], head["seed"])
        model.n_features = head["n_features"]
        model.booster = lgb.Booster(model_str=body.decode())
        return model
