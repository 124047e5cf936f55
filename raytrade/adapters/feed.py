"""Publish ticks to Kafka, keyed by symbol, at a bounded rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from raytrade.adapters.kafka import Producer
from raytrade.domain.ticks import Tick, encode_tick


@dataclass
class PublishCount:
    """Ticks handed to the producer so far (read by another thread for progress)."""

    sent: int = 0


def publish(
    ticks: Iterable[Tick],
    producer: Producer,
    topic: str,
    *,
    rate: float | None = None,
    stop: threading.Event | None = None,
    limit: int | None = None,
    count: PublishCount | None = None,
) -> int:
    """Produce ticks (key = symbol) at most ``rate`` per second; return how many were acknowledged.

    Stops early when ``stop`` is set or ``limit`` ticks were sent. Flushes before returning.
    """
    count = count if count is not None else PublishCount()
    sent = 0
    start = time.monotonic()
    for tick in ticks:
        if (stop is not None and stop.is_set()) or (limit is not None and sent >= limit):
            break
        producer.produce(topic, tick.symbol.encode(), encode_tick(tick))
        sent += 1
        count.sent = sent
        if rate is not None and sent % 50 == 0:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    return sent
