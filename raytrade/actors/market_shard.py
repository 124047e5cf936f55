"""MarketShard actor: owns Kafka partitions, runs the shard pipeline, sends intents to the gate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray
from ray.util import metrics

from raytrade.actors.shard_wiring import ShardKafka, dead_letter
from raytrade.adapters import kafka
from raytrade.adapters.snapshot_store import LogId, SnapshotStore
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import decimal_from_float
from raytrade.domain.shard_engine import Prepared, ShardEngine, ShardModel
from raytrade.strategy.loader import StrategySpec, load_strategies

log = logging.getLogger(__name__)

WATERMARK_EVERY_S = 0.5
SNAPSHOT_EVERY_S = 1.0
# A consumer that receives nothing this long while the log has more for it is rebuilt. Measured
# on Tansu 0.6.0 with librdkafka: after about a minute under load a consumer can stop getting
# records at some offset for good (re-assigning does not help; a new consumer reads on at once).
STALL_S = 3.0
# A shard caught up with its log and without records this long tells the gate it is idle, so the other
# shards' groups are not held for it (a partition without data must not stop trading).
# Only with a fresh view of the log end (a paused or unreachable broker is not an idle partition).
IDLE_S = 3.0


_COUNTERS = ("consumed", "batches", "intents", "filled", "dead_lettered", "intents_suppressed")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class MarketShard:
    """One shard: consume its partitions in batches, trade through the RiskGate.

    Exactly-once effects: for each batch the shard (1) dead-letters rejected messages and
    waits for the broker's acknowledgement, (2) sends the intents to the gate and waits
    for the reports (so the orders are in the ledger); then, every ``snapshot_every``
    records or second, (3) saves its state and the next offsets in one transaction and
    (4) commits the offsets to Kafka asynchronously (for lag and tooling; the snapshot is
    the source of truth). After a crash it restores the snapshot and re-reads from its
    offsets; intents of the ``snapshot_every + batch_size`` offsets after it are flagged
    ``replay`` so the gate returns what the ledger already holds instead of deciding
    twice. Order ids are derived from (strategy, symbol, partition, offset), so a replay
    maps to the same orders.

    Backpressure: one batch in flight; the shard does not poll while it waits, so a slow
    gate or Execution slows intake and the backlog stays in Kafka (lag is measured).
    """

    def __init__(
        self,
        shard_id: int,
        partitions: list[int],
        wiring: ShardKafka,
        instruments: list[Instrument],
        strategies: list[StrategySpec],
        model: ShardModel | None,
        risk_gate: Any,
        state_dir: str,
        batch_size: int = 1000,
        snapshot_every: int = 5000,
        initial_equity: Decimal = Decimal(100_000),
        disable_failing: bool = False,
        ordered: bool = True,
    ) -> None:
        self.shard_id = shard_id
        self.partitions = partitions
        self.wiring = wiring
        self.batch_size = batch_size
        self.snapshot_every = snapshot_every
        self._since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self.engine = ShardEngine(instruments, load_strategies(strategies), model, initial_equity, disable_failing)
        self.ordered = ordered  # event-time order of groups at the gate (config gate_order), else whole batches
        self.trading_state = "ACTIVE"  # the latest known (pushed by the gate, or in a reply)
        self.reply_state = "ACTIVE"  # as of the last reply: what suppresses intents (deterministic)
        self.trading_state_at_ns: int | None = None
        self.trading_state_version = -1  # the gate's transition count behind ``trading_state``
        self.risk_gate = risk_gate
        self.counters = dict.fromkeys(_COUNTERS, 0)
        self.store = SnapshotStore(Path(state_dir) / f"shard-{shard_id}.db")
        self.snapshot_key = f"{wiring.group_id}/{wiring.topic}/{','.join(map(str, partitions))}"
        snap = self.store.load(self.snapshot_key)
        self.next_offsets: dict[int, int] = {}
        self.topic_id: str | None = None
        if snap is not None:
            engine_state, counters, self.topic_id = pickle.loads(snap.state)
            self.engine.restore(engine_state)
            self.counters.update(counters)
            self.next_offsets = dict(snap.offsets)
        self.restored_from = dict(self.next_offsets) if snap is not None else None
        self.engine.start()
        self.consumer = wiring.consumer()
        self.consumer.assign(wiring.topic, partitions, self.next_offsets or None)
        self.consumer_rebuilds = 0
        self._last_records_at = time.monotonic()
        self._idle = False
        self._ends_at = 0.0  # when the log ends were last read successfully
        if not self.next_offsets:
            committed = self.consumer.committed(wiring.topic, partitions)
            self.next_offsets = {p: o or 0 for p, o in committed.items()}
        # Offsets below these may have produced orders before a crash (everything after the
        # snapshot, at most ``snapshot_every`` records and one more batch): ask the ledger first.
        self.replay_until = {p: o + snapshot_every + batch_size for p, o in self.next_offsets.items()}
        self.snapshot_offsets = dict(self.next_offsets)  # what the durable state covers (restored or committed)
        self.dlq = kafka.producer(wiring.backend, wiring.bootstrap)
        self.admin = wiring.admin()
        self.cluster_id = self.admin.cluster_id()
        self._check_topic()
        self._stop = asyncio.Event()
        self.lag: dict[int, int] = {}
        self.end_offsets: dict[int, int] = {}
        self._watermarks_at = 0.0
        self.transient_errors = 0
        self.replay_batches = 0
        # Where a shard's time goes (seconds, cumulative): the profile behind the benchmark.
        self.phase_s = dict.fromkeys(("poll", "process", "dead_letters", "submit", "snapshot"), 0.0)
        self.first_batch_ns: int | None = None
        self.last_batch_ns: int | None = None
        self.error: str | None = None
        tags = {"shard": str(shard_id)}
        self._lag_gauge = metrics.Gauge(
            "raytrade_consumer_lag", "Messages in the log not yet consumed", tag_keys=("shard", "partition")
        )
        self._consumed_counter = metrics.Counter("raytrade_ticks_consumed", "Messages consumed", tag_keys=("shard",))
        self._consumed_counter.set_default_tags(tags)

    def _poll(self) -> list[kafka.Record]:
        """Runs in a worker thread: poll a batch, and every half second check the log ends."""
        records = self.consumer.poll_batch(self.batch_size, 0.05)
        now = time.monotonic()
        if records:
            self._last_records_at = now
        if now - self._watermarks_at >= WATERMARK_EVERY_S:
            self._watermarks_at = now
            self._check_watermarks()
            behind = any(end > self.next_offsets.get(p, 0) for p, end in self.end_offsets.items())
            if behind and now - self._last_records_at >= STALL_S:
                self._rebuild_consumer()
        return records

    def _rebuild_consumer(self) -> None:
        """Replace a consumer that stopped receiving, at the positions already processed."""
        log.warning("shard %d: consumer stalled at %s; rebuilding it", self.shard_id, self.next_offsets)
        old = self.consumer
        self.consumer = self.wiring.consumer()
        self.consumer.assign(self.wiring.topic, self.partitions, dict(self.next_offsets))
        self.transient_errors += old.transient_errors
        old.close()
        self.consumer_rebuilds += 1
        self._last_records_at = time.monotonic()

    def _check_topic(self) -> None:
        """The topic must still be the one our offsets and state refer to."""
        topic = self.wiring.topic
        current = self.admin.topic_id(topic)
        if self.topic_id is None:
            self.topic_id = current
        elif current != self.topic_id:
            what = "no longer exists" if current is None else f"was recreated (id {self.topic_id} -> {current})"
            raise kafka.DataLossError(
                f"topic {topic} {what}: the broker lost the log our offsets {self.next_offsets} refer to "
                "(a broker with memory storage restarted?). Trading stops; nothing is invented."
            )

    def _check_watermarks(self) -> None:
        try:
            marks = self.consumer.watermarks(self.partitions, 2.0)
            self._check_topic()
        except kafka.DataLossError:
            raise
        except kafka.KafkaError as exc:  # broker unreachable: the clients reconnect by themselves
            self.transient_errors += 1
            log.warning("shard %d: watermarks unavailable: %s", self.shard_id, exc)
            return
        for p, (start, end) in marks.items():
            position = self.next_offsets.get(p, 0)
            if start > position:
                raise kafka.DataLossError(
                    f"{self.wiring.topic}[{p}] now starts at offset {start}: messages {position}..{start - 1} "
                    "were deleted before this shard consumed them"
                )
            self.end_offsets[p] = end
        self._ends_at = time.monotonic()
        self._update_lag()

    def _update_lag(self) -> None:
        """Lag = last known log end - position (Tansu's log end trails by up to one producer batch)."""
        for p, end in self.end_offsets.items():
            self.lag[p] = max(0, end - self.next_offsets.get(p, 0))
            self._lag_gauge.set(self.lag[p], tags={"shard": str(self.shard_id), "partition": str(p)})

    async def run(self) -> dict[str, Any]:
        """Consume until :meth:`stop`; return final stats. Errors stop the shard loudly."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                records = await loop.run_in_executor(None, self._poll)
                self.phase_s["poll"] += time.perf_counter() - t0
                if records:
                    self._idle = False
                    await self._handle(records)
                elif not self._idle and self._quiet():
                    self._idle = True
                    await self.risk_gate.set_idle.remote(self.shard_id, True)
            self.engine.stop()
            if self._since_snapshot:  # a clean stop: the next start re-reads nothing
                self._save_snapshot()
        except kafka.DataLossError as exc:
            self.error = f"DataLossError: {exc}"
            log.error("shard %d: %s; halting trading", self.shard_id, exc)
            await self.risk_gate.halt.remote(f"shard {self.shard_id} data loss: {exc}")
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("shard %d stopped on error", self.shard_id)
            raise
        finally:
            self.consumer.close()
            self.admin.close()
            with contextlib.suppress(Exception):  # stopped: the others' groups must not wait for this shard
                await self.risk_gate.set_idle.remote(self.shard_id, True)
        return self.stats()

    def _quiet(self) -> bool:
        """Caught up with every partition's known log end (once it is known: a shard that has just
        (re)started is not idle), and no records for :data:`IDLE_S`."""
        ends, now = self.end_offsets, time.monotonic()
        if any(p not in ends for p in self.partitions) or now - self._ends_at > 2 * WATERMARK_EVERY_S:
            return False
        behind = any(ends[p] > self.next_offsets.get(p, 0) for p in self.partitions)
        return not behind and now - self._last_records_at >= IDLE_S

    def _flush_dead_letters(self) -> None:
        """Wait until the broker has every dead letter; a broker outage only delays this."""
        while True:
            try:
                self.dlq.flush(5.0)
                return
            except kafka.FlushTimeoutError:
                self.transient_errors += 1
                if self._stop.is_set():
                    raise

    async def _handle(self, records: list[kafka.Record]) -> None:
        now = time.time_ns()
        if self.first_batch_ns is None:
            self.first_batch_ns = now
        t0 = time.perf_counter()
        # In a worker thread, so the loop keeps serving ``set_trading_state`` (a halt) and ``stats``
        # while a batch is scored; nothing else touches the engine until this returns.
        rows = [(r.partition, r.offset, r.key, r.value) for r in records]
        prepared = await asyncio.get_running_loop().run_in_executor(None, self.engine.prepare, rows, now)
        t1 = time.perf_counter()
        ph = self.phase_s
        ph["process"] += t1 - t0
        c = self.counters
        if prepared.rejected:
            for m in prepared.rejected:
                self.dlq.produce(self.wiring.dead_letter_topic, m.key, dead_letter(m, self.wiring.topic))
            await asyncio.get_running_loop().run_in_executor(None, self._flush_dead_letters)
            c["dead_lettered"] += len(prepared.rejected)
        t2 = time.perf_counter()
        ph["dead_letters"] += t2 - t1
        if self.ordered:
            await self._groups(prepared)
        else:
            await self._batch(prepared, records)
        t3 = time.perf_counter()
        ph["submit"] += t3 - t2
        # Counted only now, with the batch's orders in the ledger: ``stats`` is served while the
        # gate call is awaited, and "consumed" must never run ahead of the batch's effects.
        c["consumed"] += len(records)
        c["batches"] += 1
        self._consumed_counter.inc(len(records))
        for r in records:
            self.next_offsets[r.partition] = max(self.next_offsets.get(r.partition, 0), r.offset + 1)
        self._update_lag()
        self._since_snapshot += len(records)
        if self._since_snapshot >= self.snapshot_every or time.monotonic() - self._snapshot_at >= SNAPSHOT_EVERY_S:
            self._save_snapshot()
        t4 = time.perf_counter()
        ph["snapshot"] += t4 - t3
        self.last_batch_ns = time.time_ns()

    async def _groups(self, prepared: Prepared) -> None:
        """One group (the bars one message closed) at a time, in event-time order across the shards:
        the strategies decide with the view the previous group left, the gate takes the group when
        every other shard has passed its key, and the reply settles the view for the next one."""
        c = self.counters
        groups = prepared.groups
        for n, group in enumerate(groups):
            result = self.engine.decide(group)
            intents, commands = result.intents, result.commands
            if intents and self.reply_state == "HALTED":  # the gate said so in its last reply: do not send
                c["intents_suppressed"] += len(intents)
                self.engine.discard(intents)
                intents = []
            c["intents"] += len(intents)
            _, partition, offset = group.key
            replay = offset < self.replay_until.get(partition, 0)
            self.replay_batches += replay
            watermark = prepared.end if n == len(groups) - 1 else None
            reply = await self.risk_gate.submit.remote(
                intents, replay, result.bars, commands, self.shard_id, group.key, watermark
            )
            c["filled"] += sum(1 for f in reply.fills if f.symbol in self.engine.instruments)
            self.reply_state = reply.trading_state
            self.set_trading_state(reply.trading_state, "in the gate's reply", reply.state_version)
            if replay:  # the recorded effects of this group, as the first time
                self.engine.apply_events(reply.events, intents)
            else:
                self.engine.sync(reply.positions, reply.working, reply.equity)
            self.engine.deliver(reply.events, reply.fills)
        if not groups and prepared.end is not None:
            await self.risk_gate.advance.remote(self.shard_id, prepared.end)

    async def _batch(self, prepared: Prepared, records: list[kafka.Record]) -> None:
        """``gate_order: arrival``: the whole batch's decisions and bars in one gate call, as it comes."""
        c = self.counters
        result = self.engine.decide_all(prepared)
        intents, commands = result.intents, result.commands
        if intents and self.reply_state == "HALTED":
            c["intents_suppressed"] += len(intents)
            self.engine.discard(intents)
            intents = []
        if not (intents or commands or result.bars):
            return
        c["intents"] += len(intents)
        replay = any(r.offset < self.replay_until.get(r.partition, 0) for r in records)
        self.replay_batches += replay
        reply = await self.risk_gate.submit.remote(intents, replay, result.bars, commands)
        c["filled"] += sum(1 for f in reply.fills if f.symbol in self.engine.instruments)
        self.reply_state = reply.trading_state
        self.set_trading_state(reply.trading_state, "in the gate's reply", reply.state_version)
        if replay:
            self.engine.apply_events(reply.events, intents)
        else:
            self.engine.sync(reply.positions, reply.working, reply.equity)
        self.engine.deliver(reply.events, reply.fills)

    def _save_snapshot(self) -> None:
        """Durably save state + offsets (one transaction), then tell Kafka (asynchronously)."""
        state = pickle.dumps((self.engine.snapshot(), self.counters, self.topic_id))
        self.store.save(self.snapshot_key, self.next_offsets, state, LogId(self.cluster_id, self.topic_id))
        self.snapshot_offsets = dict(self.next_offsets)
        self._since_snapshot, self._snapshot_at = 0, time.monotonic()
        try:
            self.consumer.commit(dict(self.next_offsets), asynchronous=True)
        except kafka.KafkaError as exc:  # the snapshot holds the offsets; the next commit catches up
            self.transient_errors += 1
            log.warning("shard %d: offset commit failed: %s", self.shard_id, exc)

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current batch."""
        self._stop.set()

    def pid(self) -> int:
        """The actor's process id (for fault-injection tests and memory probes)."""
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def set_trading_state(self, state: str, reason: str, version: int) -> bool:
        """Take the gate's trading state (HALTED: send no more intents) if ``version`` is newer
        than the one held: a push and a reply can arrive in either order. True if taken."""
        if version <= self.trading_state_version or not state:
            return False
        self.trading_state_version = version
        if state != self.trading_state:
            self.trading_state = state
            self.trading_state_at_ns = time.time_ns()
            log.warning("shard %d: trading state %s: %s", self.shard_id, state, reason)
        return True

    def marks(self) -> dict[str, Decimal]:
        """Last accepted trade price per symbol, on the instrument's price grid."""
        insts = self.engine.instruments
        return {s: decimal_from_float(p, insts[s].price_increment) for s, p in self.engine.last_price.items()}

    def stats(self) -> dict[str, Any]:
        """Counters of this shard (they survive restarts with the snapshot)."""
        return {
            "shard": self.shard_id,
            "partitions": self.partitions,
            **self.counters,
            "accepted": self.engine.accepted,
            "anomaly_blocked": self.engine.anomaly_blocked,
            "rejected": dict(self.engine.rejected_by_reason),
            "next_offsets": dict(self.next_offsets),
            "snapshot_offsets": dict(self.snapshot_offsets),
            "end_offsets": dict(self.end_offsets),
            "lag": dict(self.lag),
            "restored_from": self.restored_from,
            "replay_batches": self.replay_batches,
            "consumer_rebuilds": self.consumer_rebuilds,
            "phase_s": {k: round(v, 4) for k, v in self.phase_s.items()},
            "first_batch_ns": self.first_batch_ns,
            "last_batch_ns": self.last_batch_ns,
            "transient_errors": self.transient_errors + self.consumer.transient_errors,
            "error": self.error,
            "trading_state": self.trading_state,
            "trading_state_at_ns": self.trading_state_at_ns,
            "trading_state_version": self.trading_state_version,
        }
