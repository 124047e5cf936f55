"""The RL policy as the policy deployment runs it: observation, greedy action, its meaning. No Ray Serve here."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raytrade.domain.features import FEATURE_NAMES, FEATURE_VERSION
from raytrade.training.registry import ModelRegistry, RegistryError
from raytrade.training.rl.agent import MODULE_KIND, load_policy_module
from raytrade.training.rl.interpreters import ActionInterpreter, StateInterpreter

ACTIONS = ("short", "flat", "long")


class PolicyRunner:
    """A registered inference-only RLModule with the observation statistics it was trained with."""

    def __init__(self, registry: str, name: str, version: str) -> None:
        meta, raw = ModelRegistry(registry).load(name, version, feature_version=FEATURE_VERSION)
        if meta.kind != MODULE_KIND:
            raise RegistryError(f"model {name}/{meta.version} is a {meta.kind!r}, not an RL policy ({MODULE_KIND})")
        with tempfile.TemporaryDirectory(prefix="raytrade-policy-") as d:  # loaded into memory, then removed
            self.module = load_policy_module(raw, Path(d))
        self.state = StateInterpreter(np.asarray(meta.extra["obs_mean"]), np.asarray(meta.extra["obs_std"]))
        env = meta.params.get("env", {})
        self.actions = ActionInterpreter(bool(env.get("allow_short", True)))
        self.label = f"{name}/{meta.version}"

    def act(self, features: np.ndarray, position: int) -> dict[str, Any]:
        """The greedy action for one feature vector and the current position (-1, 0 or 1 units)."""
        if features.shape != (len(FEATURE_NAMES),):
            raise ValueError(f"expected {len(FEATURE_NAMES)} features, found shape {features.shape}")
        obs = self.state(features, position)
        with torch.no_grad():
            out = self.module.forward_inference({"obs": torch.from_numpy(obs[None, :].copy())})
        logits = out["action_dist_inputs"][0].numpy().astype(float)
        action = int(np.argmax(logits))
        return {
            "action": ACTIONS[action],
            "target_position": self.actions(action),
            "logits": [float(v) for v in logits],
            "model_version": self.label,
        }
