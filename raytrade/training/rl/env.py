"""Gymnasium trading environment: synthetic market + the paper broker's fills, composed from the parts."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import gymnasium as gym
import numpy as np

from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
from raytrade.domain.bar_simulator import BarSimulator
from raytrade.domain.features import FEATURE_NAMES
from raytrade.domain.paper_broker import FeeSchedule, PaperBrokerConfig
from raytrade.training.datasets import Dataset, build_dataset
from raytrade.training.rl.interpreters import ActionInterpreter, Reward, StateInterpreter
from raytrade.training.signal_backtest import max_drawdown, sharpe

DEFAULT_ENV: dict[str, Any] = {
    "seed": 11,  # synthetic path to train on
    "days": 1.0,
    "episode_bars": 240,
    "notional": "10000",
    "fee_bps": "2",  # the paper broker's costs (as `raytrade run` trades): fee, half spread,
    "half_spread_bps": "0.5",  # square-root impact and the volume cap, on the next bar's open
    "impact_coef": 1.0,
    "max_participation": 0.1,
    "risk_penalty_bps": 0.0,
    "allow_short": True,
}


def env_settings(config: dict[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(config or {}) - set(DEFAULT_ENV))
    if unknown:
        raise ValueError(f"trading env: unknown setting(s) {unknown}; known: {sorted(DEFAULT_ENV)}")
    return {**DEFAULT_ENV, **(config or {})}


def market_data(seed: int, days: float) -> tuple[Dataset, SyntheticMarket]:
    market = SyntheticMarket(seed=seed)
    return build_dataset(ticks_to_bars(market.ticks_frame(int(days * 86_400))), 1), market


def state_for(train: Dataset) -> StateInterpreter:
    """The observation standardized with the statistics of the data the agent trains on."""
    return StateInterpreter(train.x.mean(axis=0), train.x.std(axis=0) + 1e-12)


def broker_config(s: dict[str, Any]) -> PaperBrokerConfig:
    """The paper broker the agent trades through (no latency: a decision at a close trades on the next bar)."""
    cap = s["max_participation"]
    fees = FeeSchedule(Decimal(str(s["fee_bps"])), Decimal(0))
    return PaperBrokerConfig(
        fees, Decimal(str(s["half_spread_bps"])), float(s["impact_coef"]), None if cap is None else float(cap), 0
    )


class TradingEnv(gym.Env[np.ndarray, int]):
    """One episode = ``episode_bars`` bars of one random symbol of the synthetic path."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.s = env_settings(dict(config or {}))
        self.data, market = market_data(int(self.s["seed"]), float(self.s["days"]))
        self.instruments = {i.symbol: i for i in market.instruments}
        self.state = state_for(self.data)
        self.action = ActionInterpreter(bool(self.s["allow_short"]))
        self.reward = Reward(float(self.s["notional"]), float(self.s["risk_penalty_bps"]))
        self.broker = broker_config(self.s)
        self.observation_space = self.state.space
        self.action_space = self.action.space  # type: ignore[assignment]
        self._rows = np.zeros(0, dtype=np.int64)
        self.sim: BarSimulator | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        sym = int(self.np_random.integers(len(self.data.symbols)))
        rows = np.flatnonzero(self.data.symbol == sym)
        n = min(int(self.s["episode_bars"]) + 1, len(rows))
        first = int(self.np_random.integers(0, len(rows) - n + 1))
        self._rows = rows[first : first + n]
        inst = self.instruments[self.data.symbols[sym]]
        self.sim = BarSimulator(inst, self.data.bars(self._rows), self.broker, Decimal(self.s["notional"]))
        return self.state(self.data.x[self._rows[0]], 0), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.sim is not None, "call reset() first"
        units = self.action(action)
        outcome = self.sim.step(units)
        obs = self.state(self.data.x[self._rows[self.sim.t]], units)
        return obs, self.reward(outcome, units), self.sim.done, False, {"pnl": outcome.pnl, "fee": outcome.fee}


def run_policy(
    policy: Callable[[np.ndarray, np.ndarray], int],
    state: StateInterpreter,
    data: Dataset,
    market: SyntheticMarket,
    s: dict[str, Any],
) -> dict[str, float]:
    """Walk each symbol's whole path once with ``policy(observation, raw_features) -> action``.

    ``state`` is the training-time interpreter (:func:`state_for`), so a held-out path is observed
    exactly as the agent learned to see it. Returns the equal-capital portfolio's annualized Sharpe
    (24/7 1-minute bars), max drawdown and total return, net of the paper broker's costs.
    """
    actions = ActionInterpreter(bool(s["allow_short"]))
    instruments = {i.symbol: i for i in market.instruments}
    notional = Decimal(s["notional"])
    per_symbol = []
    for i, sym in enumerate(data.symbols):
        rows = np.flatnonzero(data.symbol == i)
        sim = BarSimulator(instruments[sym], data.bars(rows), broker_config(s), notional)
        rets, units = [], 0
        while not sim.done:
            feats = data.x[rows[sim.t]]
            units = actions(policy(state(feats, units), feats))
            rets.append(sim.step(units).pnl / float(notional))
        per_symbol.append(np.asarray(rets))
    n = min(len(r) for r in per_symbol)
    port = np.mean([r[:n] for r in per_symbol], axis=0)
    return {
        "sharpe": round(sharpe(port, 525_600.0), 4),
        "max_drawdown": round(max_drawdown(port), 6),
        "total_return": round(float(np.prod(1.0 + port) - 1.0), 6),
        "bars": float(n),
    }


MOMENTUM_COL = FEATURE_NAMES.index("ret_15")


def baseline_policies() -> dict[str, Callable[[np.ndarray, np.ndarray], int]]:
    """Buy-and-hold (always long) and momentum (sign of the last 15-bar return), as actions."""
    return {
        "buy_and_hold": lambda obs, feats: 2,
        "momentum": lambda obs, feats: 2 if feats[MOMENTUM_COL] > 0 else 0,
    }
