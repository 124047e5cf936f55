"""XGBoost classifier of the forward-return sign."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import xgboost as xgb

from raytrade.training.models.base import RowModel


class XgbModel(RowModel):
    """Gradient-boosted trees (``binary:logistic``), one thread."""

    kind: ClassVar[str] = "xgboost"
    defaults: ClassVar[dict[str, Any]] = {
        "rounds": 150,
        "max_depth": 4,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 20.0,
        "reg_lambda": 1.0,
    }

    def _train(self, x: np.ndarray, y: np.ndarray) -> xgb.Booster:
        p = {k: v for k, v in self.params.items() if k != "rounds"}
        p.update(objective="binary:logistic", eval_metric="logloss", nthread=1, seed=self.seed)
        return xgb.train(p, xgb.DMatrix(x, label=y), num_boost_round=int(self.params["rounds"]))

    def _score(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x))

    def _dump(self) -> bytes:
        return bytes(self.booster.save_raw(raw_format="ubj"))

    def _load(self, body: bytes) -> xgb.Booster:
        booster = xgb.Booster(params={"nthread": 1})
        booster.load_model(bytearray(body))
        return booster
