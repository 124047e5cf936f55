"""``RLPolicy``: trade with the registered PPO module (``raytrade rl``), greedily, one unit per symbol."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import Field

from raytrade.domain.bars import Bar
from raytrade.domain.features import FEATURE_NAMES
from raytrade.domain.money import decimal_from_float, floor_to
from raytrade.strategy.base import Strategy, StrategyParams


class RLPolicyParams(StrategyParams):
    """Which registered policy, and the size of one unit."""

    registry: str = Field("var/models", description="Model registry: a directory or a file:// URI")
    name: str = Field("ppo_policy", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    version: str = Field("approved", pattern=r"^(approved|latest|v\d{4,})$")
    order_notional: Decimal = Field(Decimal(10_000), gt=0, description="Quote-currency size of one unit")


class RLPolicy(Strategy):
    """On each bar with features, the policy's greedy action (short / flat / long, what it was trained to
    mean) is this strategy's target in units of ``order_notional`` at the bar's close; it sees the
    standardized features and its own position in units, as in training. The module is loaded (CPU,
    inference only) when the strategy starts; a missing or wrong artifact stops the start."""

    Params = RLPolicyParams

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(strategy_id, params)
        self.units: dict[str, int] = {}
        self.runner: Any = None

    def on_start(self) -> None:
        """Load the policy from the registry."""
        from raytrade.deployments.policy_runner import PolicyRunner  # torch and RLlib: only when used

        p = self.params
        assert isinstance(p, RLPolicyParams)
        self.runner = PolicyRunner(p.registry, p.name, p.version)

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        """Act on the bar's features."""
        if features is None or self.runner is None:
            return
        p = self.params
        assert isinstance(p, RLPolicyParams)
        held = self.units.get(symbol, 0)
        vector = np.array([features[n] for n in FEATURE_NAMES], dtype=np.float64)
        target = int(self.runner.act(vector, held)["target_position"])
        if target == held:
            return
        ctx = self.ctx
        inst = ctx.instruments[symbol]
        last = ctx.price(symbol)
        if last is None:
            return
        unit = floor_to(p.order_notional / decimal_from_float(last, inst.price_increment), inst.size_increment)
        self.units[symbol] = target
        ctx.target_position(symbol, unit * target)

    def on_save(self) -> bytes:
        """The units held per symbol."""
        return json.dumps(self.units).encode()

    def on_load(self, state: bytes) -> None:
        """Take back :meth:`on_save`."""
        self.units = {s: int(u) for s, u in json.loads(state).items()}
