"""A topic that rolls into generations, for brokers that never drop data (the embedded Tansu).

Tansu's memory storage keeps every record batch and scans all batches of a partition on each
fetch, so a long run gets slower and bigger without bound (measured: consumption stalls after
about a million ticks). It has no retention and no DeleteRecords, but DeleteTopics works. So the
embedded run writes ``ticks`` as a chain of topics ``ticks.g00000``, ``ticks.g00001``, ..., and
deletes a generation once every shard's durable snapshot is past it.

- **The producer** (:class:`RollingProducer`, raytrade's own feed) partitions by key as Kafka
  clients do (murmur2), counts the records of each partition, and after ``roll_records`` closes
  the generation: it flushes, creates the next topic, and appends ``{"generation": g, "ends":
  {partition: records}}`` to the index topic ``ticks.generations`` (acknowledged) before writing
  on. A closed generation's ends are exact, so the chain has no gaps.
- **Consumers** (:class:`RollingConsumer`) see one log per partition with *continuous* offsets:
  a record's offset is its offset in its generation plus the records of that partition in all
  earlier generations. Order ids, snapshots, replay windows and lag work unchanged. A consumer
  moves on when every partition it owns has read its generation to the recorded end.
- **Identity** (:class:`RollingAdmin`): the index topic's id stands for the log's; a broker that
  lost its memory has no index, so the shards' data-loss check still fires.

Only raytrade's feed writes a rolled log; ``kafka.roll_records`` applies to the embedded broker.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from kafka.partitioner.default import murmur2

from raytrade.adapters.kafka.base import Admin, Consumer, DataLossError, KafkaError, Producer, Record

INDEX_SUFFIX = ".generations"
REFRESH_S = 0.25


def generation_topic(base: str, generation: int) -> str:
    """The topic of one generation."""
    return f"{base}.g{generation:05d}"


def index_topic(base: str) -> str:
    """The topic listing closed generations and their ends."""
    return f"{base}{INDEX_SUFFIX}"


def partition_for(key: bytes | None, partitions: int, fallback: int) -> int:
    """Kafka's default partitioner (murmur2 of the key, as librdkafka's ``murmur2_random`` and Java)."""
    if key is None:
        return fallback % partitions
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class Generations:
    """The closed generations read from the index: ``ends[g][p]`` records of partition ``p`` in generation ``g``."""

    ends: list[dict[int, int]] = field(default_factory=list)

    @property
    def open(self) -> int:
        """The generation being written (every earlier one is closed)."""
        return len(self.ends)

    def base(self, generation: int, partition: int) -> int:
        """The continuous offset of ``generation``'s first record of ``partition``."""
        return sum(e.get(partition, 0) for e in self.ends[:generation])

    def locate(self, partition: int, offset: int) -> tuple[int, int]:
        """``(generation, offset in it)`` of a continuous offset: the first generation not read to its end."""
        base = 0
        for g, e in enumerate(self.ends):
            end = e.get(partition, 0)
            if offset < base + end:
                return g, offset - base
            base += end
        return self.open, offset - base


class IndexReader:
    """Follows the index topic with a consumer of its own (never commits)."""

    def __init__(self, consumer: Consumer, base: str) -> None:
        self.consumer = consumer
        self.topic = index_topic(base)
        self.consumer.assign(self.topic, [0], {0: 0})
        self.generations = Generations()
        self._read_at = 0.0

    def refresh(self, force: bool = False) -> Generations:
        """Take what was appended since the last call, without waiting (at most every :data:`REFRESH_S`);
        ``force``: read up to the index's end as the broker reports it now (each entry is a batch of its own,
        so even Tansu's log end is exact here)."""
        now = time.monotonic()
        if not force and now - self._read_at < REFRESH_S:
            return self.generations
        self._read_at = now
        end = self.consumer.watermarks([0], 10.0)[0][1] if force else 0
        deadline = now + 30
        while True:
            records = self.consumer.poll_batch(1000, 0.05 if len(self.generations.ends) < end else 0)
            for r in records:
                entry = json.loads(r.value)
                if entry["generation"] != len(self.generations.ends):
                    raise KafkaError(f"generation index out of order: {entry} after {len(self.generations.ends)}")
                self.generations.ends.append({int(p): int(n) for p, n in entry["ends"].items()})
            if len(self.generations.ends) >= end and not records:
                return self.generations
            if time.monotonic() > deadline:
                raise KafkaError(f"{self.topic}: read {len(self.generations.ends)} of {end} entries in 30 s")

    def close(self) -> None:
        self.consumer.close()


class RollingProducer:
    """Writes the rolled log of ``base`` (see the module docstring); ``admin`` creates the next generation."""

    def __init__(self, producer: Producer, admin: Admin, base: str, partitions: int, roll_records: int) -> None:
        if roll_records < 1:
            raise ValueError(f"roll_records must be >= 1, found {roll_records}")
        self.producer = producer
        self.admin = admin
        self.base = base
        self.partitions = partitions
        self.roll_records = roll_records
        self.generation = 0
        self.counts = dict.fromkeys(range(partitions), 0)
        self._written = 0
        self._keyless = 0

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Write to the open generation of ``topic`` (which must be the rolled log's base)."""
        if topic != self.base:
            raise KafkaError(f"this producer writes the rolled log {self.base!r}, not {topic!r}")
        if partition is None:
            partition = partition_for(key, self.partitions, self._keyless)
            self._keyless += key is None
        self.producer.produce(generation_topic(self.base, self.generation), key, value, partition)
        self.counts[partition] += 1
        self._written += 1
        if self._written >= self.roll_records:
            self.roll()

    def roll(self) -> None:
        """Close the open generation (its records acknowledged, its ends indexed) and open the next."""
        self.producer.flush()
        self.admin.create_topic(generation_topic(self.base, self.generation + 1), self.partitions)
        entry = {"generation": self.generation, "ends": {str(p): n for p, n in self.counts.items()}}
        self.producer.produce(index_topic(self.base), None, json.dumps(entry).encode(), 0)
        self.producer.flush()
        self.generation += 1
        self.counts = dict.fromkeys(range(self.partitions), 0)
        self._written = 0

    def flush(self, timeout_s: float = 30.0) -> None:
        self.producer.flush(timeout_s)

    def close(self) -> None:
        self.producer.close()


class RollingConsumer:
    """Reads the rolled log of a base topic with continuous offsets (see the module docstring).

    ``make`` builds a plain consumer of the backend (one for the data, one for the index).
    """

    def __init__(self, make: ConsumerFactory, group_id: str) -> None:
        self.make = make
        self.group_id = group_id
        self.inner = make(group_id)
        self.index: IndexReader | None = None
        self.base = ""
        self.partitions: list[int] = []
        self.generation = 0
        self.position: dict[int, int] = {}  # next offset within the current generation
        self._retired_errors = 0

    @property
    def transient_errors(self) -> int:
        return self._retired_errors + self.inner.transient_errors

    @transient_errors.setter
    def transient_errors(self, value: int) -> None:
        self._retired_errors = value - self.inner.transient_errors

    def _generations(self, force: bool = False) -> Generations:
        if self.index is None:
            raise KafkaError("assign the rolled log before reading it")
        return self.index.refresh(force)

    def assign(self, topic: str, partitions: list[int], offsets: dict[int, int] | None = None) -> None:
        """Own ``partitions`` of the rolled log ``topic`` from continuous ``offsets`` (else the committed ones,
        else the start)."""
        self.base, self.partitions = topic, list(partitions)
        if self.index is None:
            self.index = IndexReader(self.make(f"{self.group_id}-index-{uuid.uuid4().hex[:8]}"), topic)
        gens = self._generations(force=True)
        start = dict(offsets) if offsets else {}
        missing = [p for p in partitions if p not in start]
        if missing:
            start.update({p: o or 0 for p, o in self.committed(topic, missing).items()})
        located = {p: gens.locate(p, start[p]) for p in partitions}
        self.generation = min(g for g, _ in located.values())
        self.position = {}
        for p, (g, offset) in located.items():
            if g == self.generation:
                self.position[p] = offset
            elif g == self.generation + 1 and offset == 0:  # read to the end of this generation already
                self.position[p] = gens.ends[self.generation].get(p, 0)
            else:
                raise DataLossError(f"{topic}[{p}] offset {start[p]} is generations ahead of its other partitions")
        self.inner.assign(generation_topic(topic, self.generation), partitions, dict(self.position))

    def _move_on(self, gens: Generations) -> bool:
        """Go to the next generation if the current one is closed and read to its end by every partition."""
        if self.generation >= gens.open:
            return False
        ends = gens.ends[self.generation]
        if any(self.position[p] < ends.get(p, 0) for p in self.partitions):
            return False
        self._retired_errors += self.inner.transient_errors
        self.inner.close()
        self.inner = self.make(self.group_id)
        self.generation += 1
        self.position = dict.fromkeys(self.partitions, 0)
        self.inner.assign(generation_topic(self.base, self.generation), self.partitions, dict(self.position))
        return True

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Records of the current generation with continuous offsets; at its end, the next generation's."""
        records = self.inner.poll_batch(max_records, timeout_s)
        gens = self._generations()
        if not records:
            if self._move_on(gens):
                records = self.inner.poll_batch(max_records, timeout_s)
            if not records:
                return []
        bases = {p: gens.base(self.generation, p) for p in self.partitions}
        out = []
        for r in records:
            self.position[r.partition] = max(self.position.get(r.partition, 0), r.offset + 1)
            out.append(Record(r.partition, bases[r.partition] + r.offset, r.key, r.value, r.timestamp_ms))
        return out

    def commit(self, offsets: dict[int, int], asynchronous: bool = False) -> None:
        """Commit continuous offsets that fall in the current generation (offsets are for tools: the
        snapshot is where a shard resumes)."""
        gens = self._generations()
        mine = {}
        for p, o in offsets.items():
            g, offset = gens.locate(p, o)
            if g == self.generation or (g == self.generation + 1 and offset == 0):
                mine[p] = o - gens.base(self.generation, p)
        self.inner.commit(mine, asynchronous)

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The continuous offset committed in the latest generation that has a commit (a shard asks only when
        it has no snapshot: then no generation it may need was deleted)."""
        gens = self._generations(force=True)
        for g in range(gens.open, -1, -1):
            got = self.inner.committed(generation_topic(topic, g), partitions)
            if any(o is not None for o in got.values()):
                return {p: None if o is None else gens.base(g, p) + o for p, o in got.items()}
        return dict.fromkeys(partitions)

    def watermarks(
        self, partitions: list[int], timeout_s: float, topic: str | None = None
    ) -> dict[int, tuple[int, int]]:
        """``(start of the current generation, end of the open one)`` in continuous offsets."""
        gens = self._generations()
        now = self.inner.watermarks(partitions, timeout_s, generation_topic(self.base, self.generation))
        last = now
        if gens.open != self.generation:
            last = self.inner.watermarks(partitions, timeout_s, generation_topic(self.base, gens.open))
        return {
            p: (gens.base(self.generation, p) + now[p][0], gens.base(gens.open, p) + last[p][1]) for p in partitions
        }

    def close(self) -> None:
        self.inner.close()
        if self.index is not None:
            self.index.close()


class RollingAdmin:
    """Admin of a rolled log: creating ``base`` creates its index and first generation; its id is the index's."""

    def __init__(self, admin: Admin, base: str) -> None:
        self.admin = admin
        self.base = base

    def _is_log(self, topic: str) -> bool:
        return topic == self.base

    def create_topic(self, topic: str, partitions: int) -> None:
        if not self._is_log(topic):
            self.admin.create_topic(topic, partitions)
            return
        self.admin.create_topic(index_topic(topic), 1)
        self.admin.create_topic(generation_topic(topic, 0), partitions)

    def partitions(self, topic: str) -> int | None:
        return self.admin.partitions(generation_topic(topic, 0) if self._is_log(topic) else topic)

    def topic_id(self, topic: str) -> str | None:
        return self.admin.topic_id(index_topic(topic) if self._is_log(topic) else topic)

    def cluster_id(self) -> str | None:
        return self.admin.cluster_id()

    def delete_topic(self, topic: str) -> None:
        if self._is_log(topic):
            raise KafkaError(f"{topic} is a rolled log: delete its generations with delete_before()")
        self.admin.delete_topic(topic)

    def delete_before(self, generation: int, first: int = 0) -> list[str]:
        """Delete generations ``first`` .. ``generation - 1``; return the topics deleted."""
        gone = [generation_topic(self.base, g) for g in range(first, generation)]
        for t in gone:
            self.admin.delete_topic(t)
        return gone

    def close(self) -> None:
        self.admin.close()


class ConsumerFactory:
    """Plain consumers of one backend and broker, by group id."""

    def __init__(self, backend: str, bootstrap: str) -> None:
        self.backend = backend
        self.bootstrap = bootstrap

    def __call__(self, group_id: str) -> Consumer:
        from raytrade.adapters import kafka

        return kafka.consumer(self.backend, self.bootstrap, group_id)  # type: ignore[arg-type]


class Pruner:
    """Deletes the generations every owner's durable position has left behind (run by the driver)."""

    def __init__(self, admin: RollingAdmin, index: IndexReader) -> None:
        self.admin = admin
        self.index = index
        self.deleted_before = 0

    def prune(self, durable: dict[int, int]) -> list[str]:
        """``durable``: each partition's continuous offset that the snapshots cover. Deletes every generation
        that all partitions have read to its end; returns the topics deleted."""
        gens = self.index.refresh(force=True)
        if not durable:
            return []
        keep = min(gens.locate(p, o)[0] for p, o in durable.items())
        keep = min(keep, gens.open)
        if keep <= self.deleted_before:
            return []
        gone = self.admin.delete_before(keep, self.deleted_before)
        self.deleted_before = keep
        return gone
