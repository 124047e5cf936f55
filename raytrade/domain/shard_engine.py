"""The shard's per-batch pipeline, free of Ray and Kafka: validate -> bars -> features ->
score (one batched call) -> strategies -> order intents and commands.

The same engine runs inside a :class:`~raytrade.actors.market_shard.MarketShard` (ticks from
Kafka) and inside ``raytrade backtest`` (ticks, or bars straight from files).
"""

from __future__ import annotations

import pickle
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from raytrade.domain.bars import Bar, BarBuilder
from raytrade.domain.features import FEATURE_NAMES, FeatureState
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.order_lifecycle import EventKind, OrderEvent
from raytrade.domain.orders import Fill, OrderIntent
from raytrade.domain.shard_batch import (
    RSI_INDEX,
    RV_INDEX,
    AnomalyGate,
    BarRow,
    BatchResult,
    ClosedBar,
    Group,
    Prepared,
    RawMessage,
    RejectedMessage,
    Scorer,
    ShardModel,
)
from raytrade.domain.ticks import Rejection, TickValidator
from raytrade.strategy.base import Strategy, StrategyFailedError
from raytrade.strategy.context import EngineContext, EventRef, Outbox

__all__ = [
    "RSI_INDEX",
    "RV_INDEX",
    "AnomalyGate",
    "BarRow",
    "BatchResult",
    "ClosedBar",
    "Group",
    "Prepared",
    "RawMessage",
    "RejectedMessage",
    "Scorer",
    "ShardEngine",
    "ShardModel",
]


class ShardEngine:
    """Per-symbol state for the symbols of one shard's partitions, and the strategies that trade them.

    ``positions`` is the shard's view per symbol: the account's position plus the signed
    quantity still working in open orders, moved at once by every order a strategy sends and
    settled by Execution's replies (:meth:`sync`, or :meth:`apply_events` for a replay).
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        strategies: Sequence[Strategy],
        model: ShardModel | None,
        equity: Decimal = Decimal(100_000),
        disable_failing: bool = False,
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        ids = [s.id for s in strategies]
        if len(set(ids)) != len(ids):
            raise ValueError(f"strategy ids must be unique, found {ids}")
        needy = [s.id for s in strategies if s.requires_model]
        if needy and model is None:
            raise ValueError(f"strategies {needy} need a model score, and no model is configured")
        self.strategies = list(strategies)
        self.model = model
        # Features cost a fifth of a bar's time: computed only for a model or a strategy that reads them.
        self.with_features = model is not None or any(s.uses_features for s in strategies)
        self.validator = TickValidator(set(self.instruments))
        self.bars: dict[str, BarBuilder] = {s: BarBuilder() for s in self.instruments}
        self.features: dict[str, FeatureState] = {s: FeatureState() for s in self.instruments}
        self.positions: dict[str, Decimal] = {}
        self.equity = equity
        # Called before a strategy reads its equity (the backtest brings the account up to date there).
        self.before_equity: Callable[[], None] | None = None
        self.last_price: dict[str, float] = {}
        self.last_score: dict[str, float] = {}
        depth = model.history if model is not None else 1
        self.history: dict[str, deque[tuple[float, ...]]] = {s: deque(maxlen=depth) for s in self.instruments}
        self.rejected_by_reason: Counter[str] = Counter()
        self.accepted = 0
        self.anomaly_blocked = 0
        self.outbox = Outbox(self.positions)
        self.contexts = {
            s.id: EngineContext(s.id, self.instruments, self.outbox, self._equity_now) for s in self.strategies
        }
        for s in self.strategies:
            s.bind(self.contexts[s.id])
        self._by_id = {s.id: s for s in self.strategies}
        self.started = False
        # A raising strategy stops the engine (StrategyFailedError), or with ``disable_failing`` is switched
        # off: what it sent in the failing call is dropped, and the reason kept here.
        self.disable_failing = disable_failing
        self.disabled: dict[str, str] = {}
        self.max_ts: dict[int, int] = {}  # per partition: the latest event time seen (watermarks)
        # Prices as of the last group decided: what order-event hooks see (not the end of a prepared batch).
        self._prices_now: Mapping[str, float] = {}

    def _equity_now(self) -> Decimal:
        if self.before_equity is not None:
            self.before_equity()
        return self.equity

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Call every strategy's ``on_start`` (once; after a restore, so they see their state)."""
        if not self.started:
            self.started = True
            for s in list(self.strategies):
                self._call(s, "on_start")

    def stop(self) -> None:
        """Call every strategy's ``on_stop``."""
        for s in list(self.strategies):
            self._call(s, "on_stop")

    def _call(self, s: Strategy, hook: str, *args: Any) -> None:
        """Run one hook; a failure stops the engine or disables the strategy (see ``disable_failing``)."""
        box = self.outbox
        n_intents, n_commands = len(box.intents), len(box.commands)
        try:
            getattr(s, hook)(*args)
        except Exception as exc:
            self._failed(s, hook, exc, n_intents, n_commands)

    def _failed(self, s: Strategy, hook: str, exc: Exception, n_intents: int, n_commands: int) -> None:
        box = self.outbox
        failure = StrategyFailedError(s.id, hook, box.event.ts_event, exc)
        if not self.disable_failing:
            raise failure from exc
        self.discard(box.intents[n_intents:])
        del box.intents[n_intents:], box.commands[n_commands:]
        self.disabled[s.id] = str(failure)
        self.strategies.remove(s)
        self._by_id.pop(s.id, None)

    # -- market data ----------------------------------------------------------------------

    def process(self, messages: Iterable[RawMessage], ts_consumed: int) -> BatchResult:
        """Prepare a batch of raw tick messages and decide every group in it, without settling in between."""
        return self.decide_all(self.prepare(messages, ts_consumed))

    def process_bars(self, rows: Iterable[BarRow], ts_consumed: int | None = None) -> BatchResult:
        """:meth:`prepare_bars` and decide every group, without settling in between."""
        return self.decide_all(self.prepare_bars(rows, ts_consumed))

    def decide_all(self, prepared: Prepared) -> BatchResult:
        """Decide every group of a batch with the view as it is now (no settling between groups)."""
        out = BatchResult(rejected=prepared.rejected, accepted=prepared.accepted)
        for g in prepared.groups:
            r = self.decide(g)
            out.intents += r.intents
            out.commands += r.commands
            out.bars += r.bars
            out.bars_closed += r.bars_closed
        return out

    def prepare(self, messages: Iterable[RawMessage], ts_consumed: int) -> Prepared:
        """Validate, build bars and features, and score every bar the batch closed (one model call)."""
        out = Prepared()
        closed: list[ClosedBar] = []
        ends: dict[int, tuple[int, int]] = {}
        for partition, offset, key, value in messages:
            seen = ends[partition][0] if partition in ends else self.max_ts.get(partition, -1)
            ends[partition] = (seen, offset)
            v = self.validator.validate(value, key)
            if isinstance(v, Rejection):
                out.rejected.append(RejectedMessage(partition, offset, key, value, v))
                self.rejected_by_reason[v.reason.value] += 1
                continue
            out.accepted += 1
            ends[partition] = (max(seen, v.ts), offset)
            self.last_price[v.symbol] = v.price
            bar = self.bars[v.symbol].add(v.price, v.size, v.ts)
            if bar is None:
                continue
            ref = EventRef(f"{partition}:{offset}", v.ts, ts_consumed, dict(self.last_price))
            closed.append(self._close(v.symbol, bar, ref, partition, offset))
        self.accepted += out.accepted
        for p, (ts, _) in ends.items():
            self.max_ts[p] = max(self.max_ts.get(p, -1), ts)
        if ends:
            out.end = min((ts, p, o) for p, (ts, o) in ends.items())
        self._score(closed)
        out.groups = [Group((c.ref.ts_event, c.partition, c.offset), [c]) for c in closed]
        return out

    def prepare_bars(self, rows: Iterable[BarRow], ts_consumed: int | None = None) -> Prepared:
        """Whole bars (from files, checked by the caller): each decides at its close; the bars of one
        partition that close at the same time form one group."""
        out = Prepared()
        closed: list[ClosedBar] = []
        last_price = self.last_price
        group: list[ClosedBar] = []  # the bars of one partition closing at one time share the prices as of the last
        for partition, offset, symbol, bar in rows:
            if symbol not in self.instruments:
                raise ValueError(f"bar for unknown symbol {symbol!r} (known: {sorted(self.instruments)})")
            ts = bar.end
            if group and (group[0].ref.ts_event != ts or group[0].partition != partition):
                self._seal(group, out)
                group = []
            last_price[symbol] = bar.close
            c = self._close(symbol, bar, EventRef(f"{partition}:{offset}", ts, ts_consumed or ts), partition, offset)
            group.append(c)
            closed.append(c)
            out.end = (ts, partition, offset)
        if group:
            self._seal(group, out)
        out.accepted = len(closed)
        self.accepted += out.accepted
        self._score(closed)
        return out

    def _seal(self, group: list[ClosedBar], out: Prepared) -> None:
        """One group of bars: the strategies see every price of that time."""
        prices = dict(self.last_price)
        for c in group:
            c.ref.prices = prices
        first = group[0]
        out.groups.append(Group((first.ref.ts_event, first.partition, first.offset), group))

    def _close(self, symbol: str, bar: Bar, ref: EventRef, partition: int, offset: int) -> ClosedBar:
        f = self.features[symbol].update(bar) if self.with_features else None
        window = None
        if f is not None and self.model is not None:
            hist = self.history[symbol]
            hist.append(f)
            if len(hist) == hist.maxlen:
                window = list(hist)
        return ClosedBar(symbol, bar, f, window, ref, partition, offset)

    def _score(self, closed: list[ClosedBar]) -> None:
        """One model call for every full window; the anomaly gate withholds the score of flagged bars."""
        scored = [c for c in closed if c.window is not None]
        if not scored or self.model is None:
            return
        windows = np.array([c.window for c in scored], dtype=np.float64)
        values = self.model.score(windows).tolist()
        gate = self.model.gate
        blocked = gate(windows[:, -1, :]).tolist() if gate is not None else [False] * len(scored)
        for c, value, block in zip(scored, values, blocked, strict=True):
            self.last_score[c.symbol] = value
            if block:  # an anomalous feature vector: the strategies get no score on this bar
                self.anomaly_blocked += 1
            else:
                c.score = value

    def decide(self, group: Group) -> BatchResult:
        """Run the strategies on one group's bars (with the view as it is now); its intents and commands."""
        out = BatchResult(bars=[(c.symbol, c.bar) for c in group.closed], bars_closed=len(group.closed))
        self._prices_now = group.closed[-1].ref.prices if group.closed else self._prices_now
        if self.strategies:
            box = self.outbox
            for c in group.closed:
                box.at(c.ref)
                features = dict(zip(FEATURE_NAMES, c.features, strict=True)) if c.features is not None else None
                for s in list(self.strategies):  # a copy: a failing strategy may be removed
                    n_intents, n_commands = len(box.intents), len(box.commands)
                    try:
                        s.on_bar(c.symbol, c.bar, features, c.score)
                    except Exception as exc:
                        self._failed(s, "on_bar", exc, n_intents, n_commands)
        out.intents, out.commands = self.outbox.drain()
        return out

    # -- feedback from Execution ----------------------------------------------------------

    def deliver(self, events: Iterable[OrderEvent], fills: Iterable[Fill]) -> None:
        """Hand each strategy the events (and fills) of its own orders, in order.

        Orders a strategy sends from these hooks wait in the outbox for the next batch.
        """
        by_fill = {f.fill_id: f for f in fills}
        for e in events:
            strategy = self._by_id.get(e.order_id.split(":", 1)[0])
            if strategy is None or e.symbol not in self.instruments:
                continue
            self.contexts[strategy.id].observe(e)
            self.outbox.at(EventRef(f"re:{e.order_id}/{e.seq}", e.ts, e.ts, self._prices_now))
            self._call(strategy, "on_order_event", e)
            fill = by_fill.get(e.fill_id) if e.fill_id else None
            if fill is not None and strategy.id in self._by_id:
                self._call(strategy, "on_fill", fill)

    def discard(self, intents: Iterable[OrderIntent]) -> None:
        """Forget intents that were never sent (a halted shard suppresses them): undo their position effect."""
        for i in intents:
            self.positions[i.symbol] = self.positions.get(i.symbol, ZERO) - i.signed_qty
            for ctx in self.contexts.values():
                ctx.orders.pop(i.order_id, None)

    def sync(self, positions: dict[str, Decimal], working: dict[str, Decimal], equity: Decimal | None) -> None:
        """Take Execution's view (position + working, per symbol of this shard) and the equity."""
        for s in set(positions) | set(working):
            if s in self.instruments:
                self.positions[s] = positions.get(s, ZERO) + working.get(s, ZERO)
        if equity is not None and equity > ZERO:
            self.equity = equity

    def apply_events(self, events: Iterable[OrderEvent], sent: Iterable[OrderIntent] = ()) -> None:
        """Replay the recorded effect of order events on the position + working view.

        ``sent``: the batch's intents, whose effect the view already holds; it is undone first,
        since the recorded ACCEPTED events bring it back (a denied one does not). A fill moves
        quantity from working to position (no change here); an accepted order adds its
        quantity; a cancel or expiry removes what was left.
        """
        for i in sent:
            self.positions[i.symbol] = self.positions.get(i.symbol, ZERO) - i.signed_qty
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

    # -- snapshots ------------------------------------------------------------------------

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
        "max_ts",
    )

    def snapshot(self) -> bytes:
        """All per-symbol state, and each strategy's ``on_save`` bytes and open orders, as bytes."""
        state: dict[str, Any] = {name: getattr(self, name) for name in self._STATE}
        state["strategies"] = {s.id: s.on_save() for s in self.strategies}
        state["orders"] = {sid: dict(ctx.orders) for sid, ctx in self.contexts.items()}
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> None:
        """Replace the state by a :meth:`snapshot` (of an engine with the same instruments)."""
        state = pickle.loads(blob)  # our own snapshot store, written by :meth:`snapshot`
        unknown = set(state["bars"]) - set(self.instruments)
        if unknown:
            raise ValueError(f"snapshot has symbols outside this shard's universe: {sorted(unknown)}")
        shared = ("positions",)  # the strategies' outbox holds this dict: refill, not rebind
        for name in self._STATE:
            if name not in state:  # a snapshot from before this field existed: keep the fresh value
                continue
            if name in shared:
                getattr(self, name).clear()
                getattr(self, name).update(state[name])
            else:
                setattr(self, name, state[name])
        for s in self.strategies:
            blob_s = state.get("strategies", {}).get(s.id)
            if blob_s:
                s.on_load(blob_s)
            self.contexts[s.id].orders = dict(state.get("orders", {}).get(s.id, {}))
