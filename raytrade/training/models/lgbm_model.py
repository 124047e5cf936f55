"""LightGBM classifier of the forward-return sign."""

from __future__ import annotations

from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np

from raytrade.training.models.base import RowModel


class LgbmModel(RowModel):
    """Gradient-boosted trees (``binary``), one thread, deterministic."""

    kind: ClassVar[str] = "lightgbm"
    defaults: ClassVar[dict[str, Any]] = {
        "rounds": 150,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "lambda_l2": 1.0,
    }

    def _train(self, x: np.ndarray, y: np.ndarray) -> lgb.Booster:
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
        train = lgb.Dataset(x, label=y, free_raw_data=True)
        return lgb.train(p, train, num_boost_round=int(self.params["rounds"]))

    def _score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=1))

    def _dump(self) -> bytes:
        return str(self.booster.model_to_string()).encode()

    def _load(self, body: bytes) -> lgb.Booster:
        return lgb.Booster(model_str=body.decode())
