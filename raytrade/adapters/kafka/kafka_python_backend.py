"""kafka-python backend: pure Python, the design's named client."""

from __future__ import annotations

import contextlib
from typing import Any

import kafka
import kafka.errors
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from raytrade.adapters.kafka.base import DataLossError, FlushTimeoutError, KafkaError, Record


class KafkaPythonProducer:
    """Producer; kafka-python's default partitioner is murmur2 (Java-compatible)."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {"bootstrap_servers": bootstrap, "linger_ms": 5, "acks": "all"}
        conf.update(overrides)
        self._p = kafka.KafkaProducer(**conf)
        self._futures: list[Any] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue one message."""
        self._futures.append(self._p.send(topic, key=key, value=value, partition=partition))
        if len(self._futures) > 10_000:
            self._drain(30.0)

    def _drain(self, timeout_s: float) -> None:
        self._p.flush(timeout_s)  # on timeout the futures stay tracked for the next flush
        futures, self._futures = self._futures, []
        failed = [f for f in futures if f.failed()]
        if failed:
            raise KafkaError(f"{len(failed)} deliveries failed, first: {failed[0].exception}")

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for acknowledgements; raise if any delivery failed."""
        try:
            self._drain(timeout_s)
        except kafka.errors.KafkaTimeoutError as exc:
            raise FlushTimeoutError(f"flush timed out after {timeout_s}s") from exc

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._p.close()


class KafkaPythonConsumer:
    """Consumer with manual assignment and synchronous commits."""

    def __init__(self, bootstrap: str, group_id: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "enable_auto_commit": False,
            # A position beyond the log end means the log lost data: raise, never silently rewind.
            "auto_offset_reset": "none",
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 500,
        }
        conf.update(overrides)
        self._c = kafka.KafkaConsumer(**conf)
        self._topic = ""
        self.transient_errors = 0

    def assign(self, topic: str, partitions: list[int], offsets: dict[int, int] | None = None) -> None:
        """Assign partitions at ``offsets``, else at their committed offsets, else the earliest."""
        self._topic = topic
        tps = [TopicPartition(topic, p) for p in partitions]
        self._c.assign(tps)
        start = dict(offsets or {})
        for tp in tps:
            o = start.get(tp.partition)
            if o is None:
                o = self._c.committed(tp)
            if o is None:
                self._c.seek_to_beginning(tp)
            else:
                self._c.seek(tp, o)

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Poll once and flatten the per-partition batches."""
        try:
            batches = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except kafka.errors.OffsetOutOfRangeError as exc:
            raise DataLossError(f"{self._topic}: {exc}") from exc
        out: list[Record] = []
        for tp, records in batches.items():
            for m in records:
                out.append(Record(tp.partition, m.offset, m.key, m.value or b"", m.timestamp))
        return out

    def commit(self, offsets: dict[int, int], asynchronous: bool = False) -> None:
        """Commit, waiting for the broker unless ``asynchronous``."""
        if not offsets:
            return
        meta = {TopicPartition(self._topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        try:
            if asynchronous:
                self._c.commit_async(meta)
            else:
                self._c.commit(meta)
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"commit failed: {exc}") from exc

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """Committed offsets from the broker."""
        return {p: self._c.committed(TopicPartition(topic, p)) for p in partitions}

    def watermarks(
        self, partitions: list[int], timeout_s: float, topic: str | None = None
    ) -> dict[int, tuple[int, int]]:
        """Low and high watermarks asked of the broker."""
        name = topic or self._topic
        tps = [TopicPartition(name, p) for p in partitions]
        try:
            starts = self._c.beginning_offsets(tps, timeout_ms=int(timeout_s * 1000))
            ends = self._c.end_offsets(tps, timeout_ms=int(timeout_s * 1000))
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"watermarks of {name}: {exc}") from exc
        return {tp.partition: (int(starts[tp]), int(ends[tp])) for tp in tps}

    def close(self) -> None:
        """Close without committing."""
        self._c.close(autocommit=False)


class KafkaPythonAdmin:
    """Admin client."""

    def __init__(self, bootstrap: str) -> None:
        self._a = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._bootstrap = bootstrap

    def _describe(self, topic: str) -> dict[str, Any] | None:
        try:
            topics = self._a.describe_topics([topic])
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"describe topic {topic}: {exc}") from exc
        for t in topics:
            if t.get("name", t.get("topic")) == topic and t.get("error_code", 0) == 0:
                return dict(t)
        return None

    def partitions(self, topic: str) -> int | None:
        """Partition count, or ``None`` if absent."""
        t = self._describe(topic)
        return None if t is None else len(t.get("partitions", []))

    def topic_id(self, topic: str) -> str | None:
        """The topic's id from DescribeTopics."""
        t = self._describe(topic)
        return None if t is None else str(t.get("topic_id"))

    def cluster_id(self) -> str | None:
        """From DescribeCluster."""
        try:
            cid = self._a.describe_cluster().get("cluster_id")
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"describe cluster: {exc}") from exc
        return str(cid) if cid else None

    def delete_topic(self, topic: str) -> None:
        """Delete the topic if it exists."""
        if self.partitions(topic) is None:
            return
        try:
            self._a.delete_topics([topic])
        except kafka.errors.UnknownTopicOrPartitionError:
            return
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"delete topic {topic}: {exc}") from exc

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create the topic, tolerating an identical existing one."""
        with contextlib.suppress(kafka.errors.TopicAlreadyExistsError):
            self._a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        existing = self.partitions(topic)
        if existing != partitions:
            raise KafkaError(f"topic {topic} has {existing} partitions, expected {partitions}")

    def close(self) -> None:
        """Close the admin client."""
        self._a.close()
