"""The public strategy API: subclass :class:`Strategy`, give it a ``Params`` model, name it in the config.

See :mod:`raytrade.strategy.base` for the hooks and the context, and
:mod:`raytrade.strategy.builtins` for ``ModelThreshold``, ``SmaCross`` and ``BuyAndHold``.
"""

from raytrade.strategy.base import NoParams, Strategy, StrategyContext, StrategyParams, WorkingOrder
from raytrade.strategy.loader import StrategyError, StrategySpec, load_strategies

__all__ = [
    "NoParams",
    "Strategy",
    "StrategyContext",
    "StrategyError",
    "StrategyParams",
    "StrategySpec",
    "WorkingOrder",
    "load_strategies",
]
