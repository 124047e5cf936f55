"""State interpreter (what the agent sees), action interpreter (what its action means), and reward."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from raytrade.domain.bar_simulator import StepOutcome

CLIP = 5.0


@dataclass(frozen=True)
class StateInterpreter:
    """Observation: the bar's feature vector, standardized with training statistics, plus the position."""

    mean: np.ndarray
    std: np.ndarray

    @property
    def space(self) -> gym.spaces.Box:
        n = len(self.mean) + 1
        return gym.spaces.Box(-CLIP, CLIP, shape=(n,), dtype=np.float32)

    def __call__(self, features: np.ndarray, units: int) -> np.ndarray:
        z = np.clip((features - self.mean) / self.std, -CLIP, CLIP)
        return np.append(z, float(units)).astype(np.float32)


@dataclass(frozen=True)
class ActionInterpreter:
    """Discrete action 0/1/2 -> target position short/flat/long (one unit of notional)."""

    allow_short: bool = True

    @property
    def space(self) -> gym.spaces.Discrete[np.int64]:
        return gym.spaces.Discrete(3)

    def __call__(self, action: int) -> int:
        target = int(action) - 1
        if target not in (-1, 0, 1):
            raise ValueError(f"action must be 0, 1 or 2, found {action}")
        return max(target, 0) if not self.allow_short else target


@dataclass(frozen=True)
class Reward:
    """Net P&L of the bar in basis points of the notional, minus ``risk_penalty`` * |position| bps."""

    notional: float
    risk_penalty_bps: float = 0.0

    def __call__(self, outcome: StepOutcome, units: int) -> float:
        return outcome.pnl / self.notional * 1e4 - self.risk_penalty_bps * abs(units)
