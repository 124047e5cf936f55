"""MarketShard actor: owns Kafka partitions, runs the shard pipeline, sends intents to the gate."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ray

from raytrade.adapters import kafka
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import decimal_from_float
from raytrade.domain.shard_engine import RejectedMessage, Scorer, ShardEngine
from raytrade.domain.strategy import ThresholdStrategy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardKafka:
    """The shard's Kafka wiring."""

    bootstrap: str
    backend: kafka.Backend
    topic: str
    dead_letter_topic: str
    group_id: str


def dead_letter(msg: RejectedMessage, topic: str) -> bytes:
    """The dead-letter record: reason, detail, origin, and the original bytes (base64)."""
    return json.dumps(
        {
            "reason": msg.rejection.reason.value,
            "detail": msg.rejection.detail,
            "topic": topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "key": base64.b64encode(msg.key).decode() if msg.key is not None else None,
            "value": base64.b64encode(msg.value).decode(),
        }
    ).encode()


@ray.remote(num_cpus=0)
class MarketShard:
    """One shard: consume its partitions in batches, trade through the RiskGate.

    Offsets are committed only after the batch's orders came back from the gate (so
    after Execution wrote them to the ledger) and its dead letters were acknowledged.
    """

    def __init__(
        self,
        shard_id: int,
        partitions: list[int],
        wiring: ShardKafka,
        instruments: list[Instrument],
        strategy: ThresholdStrategy,
        scorer: Scorer,
        risk_gate: Any,
        batch_size: int = 1000,
    ) -> None:
        self.shard_id = shard_id
        self.partitions = partitions
        self.wiring = wiring
        self.batch_size = batch_size
        self.engine = ShardEngine(instruments, strategy, scorer)
        self.risk_gate = risk_gate
        self.consumer = kafka.consumer(wiring.backend, wiring.bootstrap, wiring.group_id)
        self.consumer.assign(wiring.topic, partitions)
        self.dlq = kafka.producer(wiring.backend, wiring.bootstrap)
        self._stop = asyncio.Event()
        self.consumed = 0
        self.batches = 0
        self.intents = 0
        self.filled = 0
        self.error: str | None = None

    async def run(self) -> dict[str, Any]:
        """Consume until :meth:`stop`; return final stats. Errors stop the shard loudly."""
        loop = asyncio.get_running_loop()
        try:
            while not self._stop.is_set():
                records = await loop.run_in_executor(None, self.consumer.poll_batch, self.batch_size, 0.05)
                if not records:
                    continue
                await self._handle(records)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("shard %d stopped on error", self.shard_id)
            raise
        finally:
            self.consumer.close()
        return self.stats()

    async def _handle(self, records: list[kafka.Record]) -> None:
        now = time.time_ns()
        result = self.engine.process(((r.partition, r.offset, r.key, r.value) for r in records), now)
        self.consumed += len(records)
        self.batches += 1
        if result.rejected:
            for m in result.rejected:
                self.dlq.produce(self.wiring.dead_letter_topic, m.key, dead_letter(m, self.wiring.topic))
            self.dlq.flush(30.0)
        if result.intents:
            self.intents += len(result.intents)
            reports = await self.risk_gate.submit.remote(result.intents)
            fills = [r.fill for r in reports if r.fill is not None]
            self.filled += len(fills)
            self.engine.apply_fills(fills)
        offsets: dict[int, int] = {}
        for r in records:
            offsets[r.partition] = max(offsets.get(r.partition, 0), r.offset + 1)
        self.consumer.commit(offsets)

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current batch."""
        self._stop.set()

    def marks(self) -> dict[str, Decimal]:
        """Last accepted trade price per symbol, on the instrument's price grid."""
        insts = self.engine.instruments
        return {s: decimal_from_float(p, insts[s].price_increment) for s, p in self.engine.last_price.items()}

    def stats(self) -> dict[str, Any]:
        """Counters of this shard."""
        return {
            "shard": self.shard_id,
            "partitions": self.partitions,
            "consumed": self.consumed,
            "accepted": self.engine.accepted,
            "rejected": dict(self.engine.rejected_by_reason),
            "batches": self.batches,
            "intents": self.intents,
            "filled": self.filled,
            "error": self.error,
        }
