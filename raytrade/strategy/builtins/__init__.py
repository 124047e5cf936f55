"""Built-in strategies, on the same API as yours: ``raytrade.strategy.builtins:<Name>``."""

from raytrade.strategy.builtins.buy_and_hold import BuyAndHold
from raytrade.strategy.builtins.model_threshold import ModelThreshold
from raytrade.strategy.builtins.rl_policy import RLPolicy
from raytrade.strategy.builtins.sma_cross import SmaCross

__all__ = ["BuyAndHold", "ModelThreshold", "RLPolicy", "SmaCross"]
