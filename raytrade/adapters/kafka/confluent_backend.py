"""confluent-kafka (librdkafka) backend: the default, ~10x kafka-python here."""

from __future__ import annotations

from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from raytrade.adapters.kafka.base import DataLossError, FlushTimeoutError, KafkaError, Record

_KE = confluent_kafka.KafkaError
# Broker unreachable or slow: librdkafka reconnects by itself, so these are reported, not fatal.
_TRANSIENT = {_KE._TRANSPORT, _KE._ALL_BROKERS_DOWN, _KE._TIMED_OUT, _KE._RESOLVE, _KE.REQUEST_TIMED_OUT}
_LOST = {_KE._AUTO_OFFSET_RESET, _KE.OFFSET_OUT_OF_RANGE}


class ConfluentProducer:
    """Producer with murmur2 partitioning (Java-compatible, same as kafka-python)."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "acks": "all",
        }
        conf.update(overrides)
        self._p = confluent_kafka.Producer(conf)
        self._errors: list[str] = []

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue one message; serve delivery callbacks when the local queue is full."""
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._p.produce(topic, **kwargs)
                break
            except BufferError:
                self._p.poll(0.05)
        self._p.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for acknowledgements; raise if any delivery failed or timed out."""
        left = self._p.flush(timeout_s)
        if left:
            raise FlushTimeoutError(f"{left} messages not delivered within {timeout_s}s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaError(f"{len(errors)} deliveries failed, first: {errors[0]}")

    def close(self) -> None:
        """Flush what is queued."""
        self.flush()


class ConfluentConsumer:
    """Consumer with manual assignment and synchronous commits."""

    def __init__(self, bootstrap: str, group_id: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
            # A position beyond the log end means the log lost data: raise, never silently rewind.
            "auto.offset.reset": "error",
            # Bound the client's prefetch so a slow shard does not buffer the topic in memory.
            "queued.max.messages.kbytes": 8192,
        }
        conf.update(overrides)
        self._c = confluent_kafka.Consumer(conf)
        self._topic = ""
        self.transient_errors = 0

    def assign(self, topic: str, partitions: list[int], offsets: dict[int, int] | None = None) -> None:
        """Assign partitions at ``offsets``, else at their committed offsets, else the earliest."""
        self._topic = topic
        start = dict(offsets or {})
        missing = [p for p in partitions if p not in start]
        if missing:
            for p, o in self.committed(topic, missing).items():
                start[p] = o if o is not None else confluent_kafka.OFFSET_BEGINNING
        self._c.assign([confluent_kafka.TopicPartition(topic, p, start[p]) for p in partitions])

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Consume up to ``max_records`` without waiting for a full batch; partition-EOF events
        and transient broker errors are skipped, data loss and other errors raise."""
        out: list[Record] = []
        # Return as soon as anything is there: wait for one message, then take what is queued.
        msgs = self._c.consume(max_records, 0)
        if not msgs:
            first = self._c.poll(timeout_s)
            if first is None:
                return out
            msgs = [first, *self._c.consume(max_records - 1, 0)] if max_records > 1 else [first]
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == _KE._PARTITION_EOF:
                    continue
                if err.code() in _LOST:
                    raise DataLossError(f"{self._topic}[{m.partition()}]: {err.str()}")
                if err.code() in _TRANSIENT or (err.retriable() and not err.fatal()):
                    self.transient_errors += 1
                    continue
                raise KafkaError(str(err))
            ts = m.timestamp()
            partition, offset = m.partition(), m.offset()
            if partition is None or offset is None:
                raise KafkaError(f"consumed a message without partition/offset: {partition}, {offset}")
            # A null value (tombstone) becomes b"": validation rejects it as bad_json, the shard lives on.
            out.append(Record(partition, offset, m.key(), m.value() or b"", ts[1] if ts[0] else 0))
        return out

    def commit(self, offsets: dict[int, int], asynchronous: bool = False) -> None:
        """Commit, waiting for the broker unless ``asynchronous``."""
        if not offsets:
            return
        tps = [confluent_kafka.TopicPartition(self._topic, p, o) for p, o in offsets.items()]
        try:
            if asynchronous:
                self._c.commit(offsets=tps, asynchronous=True)
            else:
                self._c.commit(offsets=tps, asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"commit failed: {exc}") from exc

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """Committed offsets from the broker."""
        tps = self._c.committed([confluent_kafka.TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in tps}

    def watermarks(
        self, partitions: list[int], timeout_s: float, topic: str | None = None
    ) -> dict[int, tuple[int, int]]:
        """Low and high watermarks asked of the broker."""
        name = topic or self._topic
        out: dict[int, tuple[int, int]] = {}
        for p in partitions:
            try:
                wm = self._c.get_watermark_offsets(
                    confluent_kafka.TopicPartition(name, p), timeout=timeout_s, cached=False
                )
            except confluent_kafka.KafkaException as exc:
                raise KafkaError(f"watermarks of {name}[{p}]: {exc}") from exc
            if wm is None:
                raise KafkaError(f"watermarks of {name}[{p}]: no answer within {timeout_s}s")
            out[p] = (int(wm[0]), int(wm[1]))
        return out

    def close(self) -> None:
        """Close the consumer."""
        self._c.close()


class ConfluentAdmin:
    """Admin client."""

    def __init__(self, bootstrap: str) -> None:
        self._a = AdminClient({"bootstrap.servers": bootstrap})

    def partitions(self, topic: str) -> int | None:
        """Partition count, or ``None`` if absent."""
        try:
            md = self._a.list_topics(timeout=10)  # naming the topic would auto-create it on Tansu
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"list topics: {exc}") from exc
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return len(t.partitions)

    def topic_id(self, topic: str) -> str | None:
        """The topic's id from DescribeTopics."""
        if self.partitions(topic) is None:
            return None
        fut = self._a.describe_topics(confluent_kafka.TopicCollection([topic]))[topic]
        try:
            return str(fut.result(timeout=10).topic_id)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"describe topic {topic}: {exc}") from exc

    def cluster_id(self) -> str | None:
        """From the metadata response."""
        try:
            cid = self._a.list_topics(timeout=10).cluster_id
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cluster metadata: {exc}") from exc
        return str(cid) if cid else None

    def delete_topic(self, topic: str) -> None:
        """Delete the topic if it exists."""
        if self.partitions(topic) is None:
            return
        try:
            self._a.delete_topics([topic])[topic].result(timeout=10)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaError(f"delete topic {topic}: {exc}") from exc

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create the topic, tolerating an identical existing one."""
        existing = self.partitions(topic)
        if existing is None:
            fut = self._a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
            try:
                fut.result(timeout=10)
            except confluent_kafka.KafkaException as exc:
                if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaError(f"create topic {topic}: {exc}") from exc
            existing = self.partitions(topic)
        if existing != partitions:
            raise KafkaError(f"topic {topic} has {existing} partitions, expected {partitions}")

    def close(self) -> None:
        """Nothing to release."""
