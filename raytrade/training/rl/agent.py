"""Train PPO (RLlib, new API stack) on the trading env, evaluate against the baselines, export and register."""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from raytrade.domain.features import FEATURE_NAMES, FEATURE_VERSION
from raytrade.training.registry import ModelMeta, ModelRegistry, config_hash
from raytrade.training.rl.env import (
    TradingEnv,
    baseline_policies,
    env_settings,
    market_data,
    run_policy,
    state_for,
)

DEFAULT_TRAIN: dict[str, Any] = {
    "iterations": 20,
    "train_batch_size": 2000,
    "minibatch_size": 256,
    "num_epochs": 4,
    "lr": 3e-4,
    "gamma": 0.99,
    "seed": 0,
    "eval_seed": 12,  # a different synthetic path from the training one
    "eval_days": 1.0,
}
MODULE_KIND = "rllib_ppo_module"


def pack_dir(path: Path) -> bytes:
    """A directory as tar.gz bytes (the registry stores one artifact per version)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def unpack_dir(raw: bytes, dest: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def load_policy_module(raw: bytes, dest: Path) -> Any:
    """The inference-only RLModule of a registered artifact, extracted under ``dest``."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    return RLModule.from_checkpoint(str(unpack_dir(raw, dest)))


def greedy_action(module: Any, obs: np.ndarray) -> int:
    """Argmax of the module's action logits (``forward_inference`` returns logits, not actions)."""
    with torch.no_grad():
        out = module.forward_inference({"obs": torch.from_numpy(obs[None, :].copy())})
    return int(torch.argmax(out["action_dist_inputs"][0]))


def train_agent(
    env_config: dict[str, Any] | None, train: dict[str, Any] | None, registry: ModelRegistry, *, approve: bool = False
) -> dict[str, Any]:
    """Train for ``iterations``, evaluate greedily on a held-out path, register the inference-only module."""
    from ray.rllib.algorithms.ppo import PPOConfig

    t0 = time.monotonic()
    env_s = env_settings(env_config)
    unknown = sorted(set(train or {}) - set(DEFAULT_TRAIN))
    if unknown:
        raise ValueError(f"rl training: unknown setting(s) {unknown}; known: {sorted(DEFAULT_TRAIN)}")
    tr = {**DEFAULT_TRAIN, **(train or {})}
    if not ray.is_initialized():
        raise RuntimeError("start Ray first (ray.init) so the caller owns its resources")
    cfg = (
        PPOConfig()  # type: ignore[no-untyped-call]
        .environment(TradingEnv, env_config=env_s)
        .env_runners(num_env_runners=0)
        .training(
            train_batch_size_per_learner=int(tr["train_batch_size"]),
            minibatch_size=int(tr["minibatch_size"]),
            num_epochs=int(tr["num_epochs"]),
            lr=float(tr["lr"]),
            gamma=float(tr["gamma"]),
        )
        .debugging(seed=int(tr["seed"]))
    )
    algo = cfg.build_algo()
    curve = []
    try:
        for _ in range(int(tr["iterations"])):
            result = algo.train()  # type: ignore[no-untyped-call]
            curve.append(float(result["env_runners"].get("episode_return_mean", float("nan"))))
        module = algo.env_runner.module
        with tempfile.TemporaryDirectory() as tmp:
            module.save_to_path(tmp)
            artifact = pack_dir(Path(tmp))
    finally:
        algo.stop()  # type: ignore[no-untyped-call]
    train_data, _ = market_data(int(env_s["seed"]), float(env_s["days"]))
    state = state_for(train_data)
    data, market = market_data(int(tr["eval_seed"]), float(tr["eval_days"]))
    with tempfile.TemporaryDirectory() as tmp:
        policy_module = load_policy_module(artifact, Path(tmp))  # evaluate what was exported
        ppo = run_policy(lambda obs, feats: greedy_action(policy_module, obs), state, data, market, env_s)
    evaluation = {"ppo": ppo}
    for name, policy in baseline_policies().items():
        evaluation[f"baseline_{name}"] = run_policy(policy, state, data, market, env_s)
    meta: ModelMeta = registry.register(
        {
            "name": "ppo_policy",
            "kind": MODULE_KIND,
            "feature_version": FEATURE_VERSION,
            "feature_names": (*FEATURE_NAMES, "position_units"),
            "data_range": (int(train_data.start[0]), int(train_data.start[-1])),
            "params": {**tr, "env": env_s},
            "metrics": {
                "eval_sharpe": evaluation["ppo"]["sharpe"],
                "eval_total_return": evaluation["ppo"]["total_return"],
                "eval_max_drawdown": evaluation["ppo"]["max_drawdown"],
                **{f"{k}_sharpe": v["sharpe"] for k, v in evaluation.items() if k != "ppo"},
            },
            "config_hash": config_hash({**tr, **env_s}),
            "extra": {
                "obs_mean": state.mean.tolist(),
                "obs_std": state.std.tolist(),
                "actions": ["short", "flat", "long"],
                "source": "synthetic",
            },
        },
        artifact,
        approve=approve,
    )
    return {
        "registered": meta.version,
        "iterations": int(tr["iterations"]),
        "episode_return_mean": curve,
        "evaluation": evaluation,
        "wall_s": round(time.monotonic() - t0, 2),
    }
