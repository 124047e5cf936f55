"""What the Serve deployments compute, without Serve: scorer, bars -> features, request schemas, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.cluster.config import ConfigError
from raytrade.cluster.serving import load_serve_config
from raytrade.deployments.app import AppArgs
from raytrade.deployments.rate_limit import RouteLimits
from raytrade.deployments.schemas import OrderRequest, PredictRequest
from raytrade.deployments.scoring import ModelSpec, Scorer, feature_rows_from_bars
from raytrade.domain.features import WARMUP_BARS
from raytrade.domain.features_batch import compute_features, feature_matrix_columns
from raytrade.training.bootstrap import train_on_synthetic
from raytrade.training.model_loading import load_signal_model
from raytrade.training.registry import ModelRegistry, RegistryError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(tmp_path_factory.mktemp("reg"))
    train_on_synthetic(reg, seed=1, days=0.3, horizon=5, rounds=10)
    return reg


def test_scorer_equals_the_registered_model_and_gate(registry: ModelRegistry) -> None:
    scorer = Scorer(ModelSpec(registry.uri, "xgb_direction", "approved", "anomaly_iforest"))
    _, model = load_signal_model(registry, "xgb_direction", "v0001")
    x = np.random.default_rng(0).normal(0, 0.01, size=(4, 1, 11))
    out = scorer.score(x)
    assert [o["score"] for o in out] == list(model.predict_windows(x))
    assert all(
        o["model_version"] == "xgb_direction/v0001" and o["models"] == {"xgb_direction": o["score"]} for o in out
    )
    assert scorer.gate is not None
    assert [o["anomaly"] for o in out] == list(scorer.gate.flags(x[:, -1, :]))
    with pytest.raises(ValueError, match="expected windows of shape"):
        scorer.score(np.zeros((1, 2, 11)))


def test_model_spec_rejects_unknown_keys_and_bad_versions(registry: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="unknown user_config key"):
        ModelSpec.from_user_config({"registry": "r", "name": "n", "version": "v0001", "colour": 1})
    with pytest.raises(ValueError, match="lacks"):
        ModelSpec.from_user_config({"registry": "r"})
    with pytest.raises(RegistryError):
        Scorer(ModelSpec(registry.uri, "xgb_direction", "v0042"))
    with pytest.raises(RegistryError, match="not a signal model"):
        Scorer(ModelSpec(registry.uri, "anomaly_iforest", "v0001"))


def test_bars_are_scored_on_the_training_features(registry: ModelRegistry) -> None:
    bars = ticks_to_bars(SyntheticMarket(seed=3).ticks_frame(3 * 3600)).filter(pl.col("symbol") == "BTCUSDT")
    rows = feature_rows_from_bars(bars)
    want = compute_features(bars).select(feature_matrix_columns()).to_numpy()[WARMUP_BARS - 1 :]
    assert rows.shape == (len(bars) - WARMUP_BARS + 1, 11) and np.array_equal(rows, want)
    assert len(feature_rows_from_bars(bars.head(WARMUP_BARS - 1))) == 0
    scorer = Scorer(ModelSpec(registry.uri, "xgb_direction", "v0001"))
    assert scorer.score_last(rows) == scorer.score(rows[None, -1:, :])[0]
    with pytest.raises(ValueError, match="reads the last 1 feature vectors, found 0"):
        scorer.score_last(rows[:0])


def test_request_schemas_refuse_bad_input_by_field() -> None:
    ok = PredictRequest.model_validate({"features": [[0.0] * 11]})
    assert ok.features is not None and ok.bars is None
    for bad in (
        {},
        {"features": [[0.0] * 11], "bars": [{"open": 1, "high": 1, "low": 1, "close": 1, "volume": 0}]},
        {"features": [[float("inf")] + [0.0] * 10]},
        {"features": [[0.0] * 12]},
        {"bars": [{"open": 1, "high": 2, "low": 1.5, "close": 1, "volume": 0}]},
        {"bars": [{"open": -1, "high": 2, "low": 1, "close": 1, "volume": 0}]},
    ):
        with pytest.raises(ValidationError):
            PredictRequest.model_validate(bad)
    for bad_order in (
        {"symbol": "BTC USDT", "side": "buy", "qty": "1"},
        {"symbol": "BTCUSDT", "side": "hold", "qty": "1"},
        {"symbol": "BTCUSDT", "side": "buy", "qty": "0"},
        {"symbol": "BTCUSDT", "side": "buy", "qty": "NaN"},
        {"symbol": "BTCUSDT", "side": "buy", "qty": "1", "ref_price": "-5"},
    ):
        with pytest.raises(ValidationError):
            OrderRequest.model_validate(bad_order)


def test_serve_yaml_is_a_valid_serve_config_bound_to_loopback(tmp_path: Path) -> None:
    limits = {"orders": {"rate_per_s": 5, "burst": 5}}
    cfg = load_serve_config(REPO / "configs" / "serve.yaml", port=18555, registry="var/models", limits=limits)
    assert cfg["http_options"] == {"host": "127.0.0.1", "port": 18555}
    [app] = cfg["applications"]
    assert app["import_path"] == "raytrade.deployments.app:build"
    assert Path(app["args"]["registry"]).is_absolute() and app["args"]["limits"] == limits
    args = AppArgs.model_validate(app["args"])
    assert args.limits.orders.rate_per_s == 5 and args.limits.inference == RouteLimits().inference  # others default
    bad = tmp_path / "bad.yaml"
    bad.write_text("applications: [{name: other, import_path: x:y}]\n")
    with pytest.raises(ConfigError, match="no application named 'raytrade'"):
        load_serve_config(bad)
    with pytest.raises(ValidationError, match="colour"):
        AppArgs.model_validate({"colour": "red"})
    with pytest.raises(ValidationError, match=r"limits\.orders\.burst"):
        AppArgs.model_validate({"limits": {"orders": {"rate_per_s": 1, "burst": 0}}})


def test_shard_scoring_through_serve_needs_the_gateway_deployed() -> None:
    from raytrade.cluster.config import load_config

    with pytest.raises(ConfigError, match=r"model.scoring = serve needs serve.enabled"):
        load_config(REPO / "configs" / "default.yaml", env={"RAYTRADE__MODEL__SCORING": "serve"})
    cfg = load_config(
        REPO / "configs" / "default.yaml",
        env={"RAYTRADE__MODEL__SCORING": "serve", "RAYTRADE__SERVE__ENABLED": "true"},
    )
    assert (
        cfg.model is not None
        and cfg.model.scoring == "serve"
        and cfg.serve.port == 8000
        and cfg.serve.host == "127.0.0.1"
    )
