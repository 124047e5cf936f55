"""The shard's per-batch pipeline, free of Ray and Kafka: validate -> bars -> features ->
score (one batched call) -> strategy -> order intents."""

from __future__ import annotations

import pickle
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from raytrade.domain.bars import Bar, BarBuilder
from raytrade.domain.features import FEATURE_NAMES, FeatureState
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, decimal_from_float
from raytrade.domain.order_lifecycle import EventKind, OrderEvent
from raytrade.domain.orders import OrderIntent
from raytrade.domain.strategy import ThresholdStrategy
from raytrade.domain.ticks import Rejection, Tick, TickValidator

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
    accepted: int = 0
    bars_closed: int = 0


@dataclass(slots=True)
class _Pending:
    symbol: str
    window: list[tuple[float, ...]]
    features: tuple[float, ...]
    tick: Tick
    partition: int
    offset: int


class ShardEngine:
    """Per-symbol state for the symbols of one shard's partitions."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        strategy: ThresholdStrategy,
        model: ShardModel,
        equity: Decimal = Decimal(100_000),
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.strategy = strategy
        self.model = model
        self.validator = TickValidator(set(self.instruments))
        self.bars: dict[str, BarBuilder] = {s: BarBuilder() for s in self.instruments}
        self.features: dict[str, FeatureState] = {s: FeatureState() for s in self.instruments}
        # Position + signed quantity still working in open orders: what the strategy steers.
        self.positions: dict[str, Decimal] = {}
        self.equity = equity
        self.last_price: dict[str, float] = {}
        self.last_score: dict[str, float] = {}
        self.history: dict[str, deque[tuple[float, ...]]] = {s: deque(maxlen=model.history) for s in self.instruments}
        self.rejected_by_reason: Counter[str] = Counter()
        self.accepted = 0
        self.anomaly_blocked = 0

    def process(self, messages: Iterable[RawMessage], ts_consumed: int) -> BatchResult:
        """Run one batch; scoring happens once for every bar the batch closed."""
        out = BatchResult()
        pending: list[_Pending] = []
        for partition, offset, key, value in messages:
            v = self.validator.validate(value, key)
            if isinstance(v, Rejection):
                out.rejected.append(RejectedMessage(partition, offset, key, value, v))
                self.rejected_by_reason[v.reason.value] += 1
                continue
            out.accepted += 1
            self.last_price[v.symbol] = v.price
            bar = self.bars[v.symbol].add(v.price, v.size, v.ts)
            if bar is None:
                continue
            out.bars_closed += 1
            out.bars.append((v.symbol, bar))
            f = self.features[v.symbol].update(bar)
            if f is None:
                continue
            hist = self.history[v.symbol]
            hist.append(f)
            if len(hist) == hist.maxlen:
                pending.append(_Pending(v.symbol, list(hist), f, v, partition, offset))
        self.accepted += out.accepted
        if pending:
            windows = np.array([p.window for p in pending], dtype=np.float64)
            scores = self.model.score(windows)
            gate = self.model.gate
            blocked = gate(windows[:, -1, :]).tolist() if gate is not None else [False] * len(pending)
            projected = dict(self.positions)
            for p, score, block in zip(pending, scores.tolist(), blocked, strict=True):
                self.last_score[p.symbol] = score
                if block:  # an anomalous feature vector: no new order on this bar
                    self.anomaly_blocked += 1
                    continue
                inst = self.instruments[p.symbol]
                intent = self.strategy.decide(
                    inst,
                    score,
                    projected.get(p.symbol, ZERO),
                    decimal_from_float(p.tick.price, inst.price_increment),
                    partition=p.partition,
                    offset=p.offset,
                    ts_event=p.tick.ts,
                    ts_consumed=ts_consumed,
                    equity=self.equity,
                    vol=p.features[RV_INDEX],
                    rsi=(p.features[RSI_INDEX] + 0.5) * 100.0,
                )
                if intent is not None:
                    projected[p.symbol] = projected.get(p.symbol, ZERO) + intent.signed_qty
                    out.intents.append(intent)
        return out

    _STATE = (
        "validator",
        "bars",
        "features",
        "positions",
        "last_price",
        "last_score",
        "history",
        "rejected_by_reason",
        "accepted",
        "anomaly_blocked",
        "equity",
    )

    def snapshot(self) -> bytes:
        """All per-symbol state (validation, bars, indicators, positions, counters) as bytes."""
        return pickle.dumps({name: getattr(self, name) for name in self._STATE}, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> None:
        """Replace the state by a :meth:`snapshot` (of an engine with the same instruments)."""
        state = pickle.loads(blob)  # our own snapshot store, written by :meth:`snapshot`
        unknown = set(state["bars"]) - set(self.instruments)
        if unknown:
            raise ValueError(f"snapshot has symbols outside this shard's universe: {sorted(unknown)}")
        for name in self._STATE:
            setattr(self, name, state[name])

    def sync(self, positions: dict[str, Decimal], working: dict[str, Decimal], equity: Decimal | None) -> None:
        """Take Execution's view (position + working, per symbol of this shard) and the equity."""
        for s in set(positions) | set(working):
            if s in self.instruments:
                self.positions[s] = positions.get(s, ZERO) + working.get(s, ZERO)
        if equity is not None and equity > ZERO:
            self.equity = equity

    def apply_events(self, events: Iterable[OrderEvent]) -> None:
        """Replay the recorded effect of order events on the position + working view.

        A fill moves quantity from working to position (no change here); an accepted order
        adds its quantity; a cancel or expiry removes what was left.
        """
        for e in events:
            if e.symbol not in self.instruments:
                continue
            if e.kind is EventKind.ACCEPTED:
                delta = e.qty
            elif e.kind in (EventKind.CANCELLED, EventKind.EXPIRED):
                delta = -(e.qty - e.filled_qty)
            else:
                continue
            self.positions[e.symbol] = self.positions.get(e.symbol, ZERO) + e.side.sign * delta
