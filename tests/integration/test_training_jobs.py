"""A tiny Tune sweep, a tiny RLlib PPO run, and ``raytrade train`` end to end (real Ray, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.backtest.data import load_market
from raytrade.backtest.runner import Backtest
from raytrade.cluster.config import RunConfig, load_config
from raytrade.domain.features import FEATURE_VERSION
from raytrade.strategy.loader import load_strategies
from raytrade.training.datasets import build_dataset
from raytrade.training.model_loading import shard_model
from raytrade.training.registry import ModelRegistry
from raytrade.training.rl.agent import greedy_action, load_policy_module, train_agent
from raytrade.training.train import load_bars
from raytrade.training.train_config import DataConfig
from raytrade.training.tune_config import TuneConfig
from raytrade.training.tune_sweep import run_sweep

REPO = Path(__file__).resolve().parents[2]

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_tiny_tune_sweep_stores_results_and_registers_the_best(ray_local: int, tmp_path: Path) -> None:
    cfg = TuneConfig.model_validate(
        {
            "data": {"synthetic_days": 0.5, "horizon_bars": 5},
            "evaluation": {"n_folds": 2},
            "model": "xgboost",
            "search_space": {"max_depth": {"choice": [2, 4]}, "rounds": {"choice": [10, 20]}},
            "num_samples": 3,
            "storage_path": str(tmp_path / "tune"),
            "registry": str(tmp_path / "models"),
        }
    )
    summary = run_sweep(cfg, log=lambda _: None)
    assert len(summary["trials"]) == 3 and not any("error" in t for t in summary["trials"])
    best = summary["best"]
    complete = [t for t in summary["trials"] if t["folds_done"] == 2]
    assert best["ic_mean"] == max(t["ic_mean"] for t in complete)
    assert (Path(summary["experiment_path"]) / "tuner.pkl").exists()  # Tune's own state under storage_path
    reg = ModelRegistry(tmp_path / "models")
    meta = reg.meta("xgboost_tuned", "latest")
    assert meta.metrics["cv_ic_mean"] == pytest.approx(best["ic_mean"])
    assert {k: meta.params[k] for k in best["config"]} == best["config"]
    assert meta.extra["tune"]["trials"] == 3 and not reg.is_approved("xgboost_tuned", meta.version)


def test_bad_search_space_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give exactly one of"):
        TuneConfig.model_validate({"search_space": {"eta": {"gaussian": [0, 1]}}})
    cfg = TuneConfig.model_validate({"search_space": {"warp_factor": {"choice": [1]}}, "model": "lightgbm"})
    with pytest.raises(ValueError, match=r"no hyperparameter.*warp_factor"):
        run_sweep(cfg.model_copy(update={"data": DataConfig(synthetic_days=0.2)}), log=lambda _: None)


def test_tiny_ppo_run_exports_an_inference_only_module(ray_local: int, tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "models")
    train = {"iterations": 2, "train_batch_size": 256, "minibatch_size": 64, "num_epochs": 1, "eval_days": 0.1}
    summary = train_agent({"days": 0.2, "episode_bars": 64}, train, reg)
    assert len(summary["episode_return_mean"]) == 2
    ev = summary["evaluation"]
    assert set(ev) == {"ppo", "baseline_buy_and_hold", "baseline_momentum"}
    assert all(np.isfinite(v["sharpe"]) and v["bars"] > 100 for v in ev.values())
    meta, raw = reg.load("ppo_policy", "latest", feature_version=FEATURE_VERSION)
    assert meta.kind == "rllib_ppo_module" and meta.metrics["eval_sharpe"] == ev["ppo"]["sharpe"]
    module = load_policy_module(raw, tmp_path / "module")
    assert module.inference_only
    obs = np.zeros(len(meta.feature_names), dtype=np.float32)
    assert greedy_action(module, obs) in (0, 1, 2)
    # The RLPolicy strategy trades with it through raytrade backtest's engine: each order is the module's action.
    reg.approve("ppo_policy", meta.version)
    ticks = tmp_path / "ticks.parquet"
    SyntheticMarket(seed=5).ticks_frame(3 * 3600).select("symbol", "ts", "price", "size").write_parquet(ticks)
    cfg = RunConfig.model_validate(
        {
            "kafka": {"partitions": 2},
            "instruments": [i.model_dump() for i in load_config(REPO / "configs" / "default.yaml").instruments],
            "strategies": [
                {
                    "id": "rl",
                    "path": "raytrade.strategy.builtins:RLPolicy",
                    "params": {"registry": str(tmp_path / "models")},
                }
            ],
            "model": None,
        }
    )
    bt = Backtest(cfg, None, lambda: load_strategies(cfg.strategy_specs()), str(tmp_path / "bt.db"))
    run = bt.run(load_market(ticks, [i.symbol for i in cfg.instruments]))
    orders = bt.core.ledger.recent_orders(10_000)
    assert run.bars > 500 and orders and all(str(o["order_id"]).startswith("rl:") for o in orders)
    policy = next(s for e in bt.engines for s in e.strategies)
    assert policy.runner.label == f"ppo_policy/{meta.version}"  # type: ignore[attr-defined]


def test_raytrade_train_cli_registers_a_model_the_shards_load(tmp_path: Path) -> None:
    cfg = {
        "data": {"source": "synthetic", "synthetic_days": 0.5, "horizon_bars": 5},
        "evaluation": {"n_folds": 2},
        "members": {"xgboost": {"rounds": 20}, "lstm": {"seq_len": 4, "hidden": 8, "epochs": 1}},
        "registry": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "runs"),
        "approve": True,
    }
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "raytrade.cluster.cli", "train", "--config", str(tmp_path / "train.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| ensemble |" in proc.stdout and "baseline: buy_and_hold" in proc.stdout
    report = json.loads(next((tmp_path / "runs").glob("ensemble-v0001/report.json")).read_text())
    assert report["registered"] == {"ensemble": "v0001", "anomaly_iforest": "v0001", "garch_vol": "v0001"}
    assert set(report["models"]) == {"xgboost", "lstm", "ensemble", "ensemble+anomaly_gate"}
    # The shards' loader: the ensemble over a 4-vector history plus the gate, scoring feature windows.
    model = shard_model(ModelRegistry(tmp_path / "models"), "ensemble", gate="anomaly_iforest")
    assert model.history == 4 and model.gate is not None and model.version == "ensemble/v0001+anomaly_iforest/v0001"
    data = build_dataset(load_bars(DataConfig(synthetic_days=0.2, synthetic_seed=99)), 5)
    p = model.score(data.windows(np.arange(50), 4))
    assert p.shape == (50,) and np.all((p > 0) & (p < 1))
    bad = [*cmd[:-1], str(tmp_path / "bad.yaml")]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**cfg, "learning_rat": 0.1}))
    proc = subprocess.run(bad, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "learning_rat: Extra inputs are not permitted" in proc.stderr


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real market data not found at {DATA}")
def test_evaluation_on_real_crypto_bars_is_honest_about_costs(tmp_path: Path) -> None:
    from raytrade.training.evaluation import EvalSettings, evaluate

    bars = load_bars(DataConfig(source=str(DATA / "crypto_1m_2023-01"), last_bars=6000, horizon_bars=15))
    data = build_dataset(bars, 15)
    members = {"xgboost": {"rounds": 30}, "lightgbm": {"rounds": 30}}
    report = evaluate(data, EvalSettings(n_folds=2, members=members))
    bh = report["baselines"]["buy_and_hold"]["backtest"]
    # Buy-and-hold pays the entry cost once per symbol: gross and net returns differ by about that.
    assert bh["turnover"] > 0 and bh["exposure"] == 1.0
    for m in ("xgboost", "lightgbm", "ensemble"):
        r = report["models"][m]
        assert -1 <= r["ic"] <= 1 and 0 <= r["hit_rate"] <= 1 and r["verdict"]
        assert r["backtest"]["sharpe"] <= r["backtest"]["sharpe_gross"]  # costs never help
    assert report["data"]["bars_per_year"] == 525_600.0  # a 24/7 1-minute market
