"""A shard's Kafka wiring (its consumer, admin client and topics) and the dead-letter record it writes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from raytrade.adapters import kafka
from raytrade.adapters.kafka.rolling import ConsumerFactory, RollingAdmin, RollingConsumer
from raytrade.domain.shard_engine import RejectedMessage


@dataclass(frozen=True)
class ShardKafka:
    """The shard's Kafka wiring."""

    bootstrap: str
    backend: kafka.Backend
    topic: str
    dead_letter_topic: str
    group_id: str
    rolling: bool = False  # the topic is a rolled log (embedded broker, see adapters/kafka/rolling.py)

    def consumer(self) -> kafka.Consumer:
        """A consumer of the ticks log (continuous offsets across generations when rolled)."""
        if self.rolling:
            return RollingConsumer(ConsumerFactory(self.backend, self.bootstrap), self.group_id)
        return kafka.consumer(self.backend, self.bootstrap, self.group_id)

    def admin(self) -> kafka.Admin:
        """An admin client that knows the ticks log's identity."""
        plain = kafka.admin(self.backend, self.bootstrap)
        return RollingAdmin(plain, self.topic) if self.rolling else plain


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
