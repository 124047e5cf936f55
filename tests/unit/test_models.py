"""Each model: fit, predict, save/load round trip, reproducibility; the anomaly gate; GARCH."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.volatility import GarchParams, GarchVol
from raytrade.training.datasets import Dataset, build_dataset
from raytrade.training.metrics import information_coefficient
from raytrade.training.model_loading import SIGNAL_KINDS
from raytrade.training.models.anomaly import AnomalyDetector
from raytrade.training.models.ensemble import EnsembleModel
from raytrade.training.models.garch import GarchModel
from raytrade.training.splits import walk_forward

TINY: dict[str, dict[str, Any]] = {
    "xgboost": {"rounds": 30},
    "lightgbm": {"rounds": 30},
    "lstm": {"seq_len": 8, "hidden": 8, "epochs": 2},
    "ensemble": {"members": {"xgboost": {"rounds": 30}, "lstm": {"seq_len": 8, "hidden": 8, "epochs": 2}}},
}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return build_dataset(ticks_to_bars(SyntheticMarket(seed=9).ticks_frame(86_400)), 5)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_fit_predict_save_load_and_reproducible(kind: str, data: Dataset) -> None:
    fold = walk_forward(data.start, 1, 5, min_train_fraction=0.7)[0]
    cls = SIGNAL_KINDS[kind]
    a, b = cls(TINY[kind], seed=4), cls(TINY[kind], seed=4)
    a.fit(data, fold.train)
    b.fit(data, fold.train)
    p = a.predict(data, fold.test)
    assert p.shape == (len(fold.test),) and np.all((p > 0) & (p < 1)) and p.std() > 0
    np.testing.assert_array_equal(p, b.predict(data, fold.test))  # same data + config -> same model
    # The synthetic market has a learnable mispricing: every model finds positive out-of-sample IC.
    assert information_coefficient(p, data.forward_return[fold.test]) > 0.02
    loaded = cls.from_bytes(a.to_bytes())
    np.testing.assert_array_equal(loaded.predict(data, fold.test), p)
    # The streaming entry point the shards use gives the same numbers from feature windows.
    windows = data.windows(fold.test[:64], a.history)
    np.testing.assert_allclose(loaded.predict_windows(windows), p[:64], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        cls({"no_such_knob": 1}) if kind != "ensemble" else cls({"members": {"xgboost": {"no_such_knob": 1}}})


def test_ensemble_weights_come_from_validation_ic(data: Dataset) -> None:
    m = EnsembleModel(TINY["ensemble"], seed=1)
    m.fit(data, np.arange(len(data)))
    assert sum(m.weights.values()) == pytest.approx(1.0)
    positive = {k: max(v, 0.0) for k, v in m.valid_ic.items()}
    for k, w in m.weights.items():
        assert w == pytest.approx(positive[k] / sum(positive.values()))
    with pytest.raises(ValueError, match="non-empty subset"):
        EnsembleModel({"members": {"arima": {}}})


def test_anomaly_gate_matches_isolation_forest_and_flags_outliers(data: Dataset) -> None:
    det = AnomalyDetector({"contamination": 0.01}, seed=2)
    det.fit(data.x[:4000])
    x = data.x[4000:]
    np.testing.assert_allclose(det._packed.decision(x), det.forest.decision_function(x), atol=1e-12)  # type: ignore[union-attr]
    assert np.array_equal(det.flags(x), det.forest.predict(x) == -1)  # type: ignore[union-attr]
    assert det.flags(data.x[:4000]).mean() == pytest.approx(0.01, abs=0.003)
    crash = data.x[4000:4010] * 25.0  # a feature vector far outside the training data
    nan = data.x[4000:4001].copy()
    nan[0, 3] = np.nan
    assert det.flags(crash).all() and det.flags(nan).all()
    again = AnomalyDetector.from_bytes(det.to_bytes())
    np.testing.assert_array_equal(again.flags(x), det.flags(x))


def test_garch_recovers_known_parameters_and_forecasts_from_the_past_only() -> None:
    true = GarchParams(omega=2e-7, alpha=0.08, beta=0.9, initial_variance=1e-5)
    rng = np.random.default_rng(5)
    state, r = GarchVol(true), np.empty(20_000)
    for t in range(len(r)):
        r[t] = state.sigma * rng.standard_normal()
        state.update(r[t])
    model = GarchModel()
    model.fit({"X": r})
    got = model.params["X"]
    assert got.alpha == pytest.approx(0.08, abs=0.02) and got.beta == pytest.approx(0.9, abs=0.03)
    assert got.omega == pytest.approx(2e-7, rel=0.5)
    sigma = model.forecast("X", r)
    changed = r.copy()
    changed[500:] *= 10
    np.testing.assert_array_equal(model.forecast("X", changed)[:501], sigma[:501])  # forecast t uses r < t
    assert GarchModel.from_bytes(model.to_bytes()).params == model.params
    with pytest.raises(ValueError, match="alpha \\+ beta <= 1"):
        GarchParams(1e-7, 0.5, 0.6, 1e-5)
