"""What flows through a :class:`~raytrade.domain.shard_engine.ShardEngine`: the model it scores with, the
messages and bars it takes, and the groups, batches and results it hands on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from raytrade.domain.bars import Bar
from raytrade.domain.features import FEATURE_NAMES
from raytrade.domain.orders import OrderCommand, OrderIntent
from raytrade.domain.sequencer import Key
from raytrade.domain.ticks import Rejection
from raytrade.strategy.context import EventRef

# Feature windows (n, history, n_features), oldest first -> probability of an up move per row.
Scorer = Callable[[np.ndarray], np.ndarray]
# Feature rows (n, n_features) -> True where the row is anomalous and must not trade.
AnomalyGate = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ShardModel:
    """What a shard scores with: a model over the last ``history`` feature vectors, and an optional gate."""

    score: Scorer
    history: int = 1
    gate: AnomalyGate | None = None
    version: str = ""

    def __post_init__(self) -> None:
        if self.history < 1:
            raise ValueError(f"history must be >= 1 feature vector, found {self.history}")


RSI_INDEX = FEATURE_NAMES.index("rsi_14")  # rsi / 100 - 0.5
RV_INDEX = FEATURE_NAMES.index("rv_30")  # per-bar realized volatility of log returns

# (partition, offset, key, value) of one consumed message.
RawMessage = tuple[int, int, bytes | None, bytes]
# (partition, offset, symbol, bar) of one bar read from a file.
BarRow = tuple[int, int, str, Bar]


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """A message that failed validation, with where it came from."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    rejection: Rejection


@dataclass(slots=True)
class BatchResult:
    """What one batch produced."""

    intents: list[OrderIntent] = field(default_factory=list)
    rejected: list[RejectedMessage] = field(default_factory=list)
    bars: list[tuple[str, Bar]] = field(default_factory=list)
    commands: list[OrderCommand] = field(default_factory=list)
    accepted: int = 0
    bars_closed: int = 0


@dataclass(slots=True)
class ClosedBar:
    symbol: str
    bar: Bar
    features: tuple[float, ...] | None
    window: list[tuple[float, ...]] | None
    ref: EventRef
    partition: int
    offset: int
    score: float | None = None


@dataclass(slots=True)
class Group:
    """One decision point: the bars one event closed (tick data: one message; bar data: every bar of the
    partition at one time), keyed ``(ts_event, partition, offset)`` for event-time order across shards."""

    key: Key
    closed: list[ClosedBar]


@dataclass(slots=True)
class Prepared:
    """A batch after validation, bars, features and (batched) scoring; the decisions are still to make.

    ``end`` is the batch's watermark: every later group of these partitions has a larger key.
    """

    groups: list[Group] = field(default_factory=list)
    rejected: list[RejectedMessage] = field(default_factory=list)
    accepted: int = 0
    end: Key | None = None
