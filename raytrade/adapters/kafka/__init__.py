"""Kafka adapter: one interface, two client backends (``confluent`` default, ``kafka-python``)."""

from __future__ import annotations

from typing import Any, Literal

from raytrade.adapters.kafka.base import Admin, Consumer, DataLossError, FlushTimeoutError, KafkaError, Producer, Record

Backend = Literal["confluent", "kafka-python"]
BACKENDS: tuple[Backend, ...] = ("confluent", "kafka-python")

__all__ = [
    "BACKENDS",
    "Admin",
    "Backend",
    "Consumer",
    "DataLossError",
    "FlushTimeoutError",
    "KafkaError",
    "Producer",
    "Record",
    "admin",
    "consumer",
    "producer",
]


def producer(backend: Backend, bootstrap: str, *, linger_ms: int | None = None, **overrides: Any) -> Producer:
    """A producer of the chosen backend (``overrides`` use the backend's own setting names)."""
    if backend == "confluent":
        from raytrade.adapters.kafka.confluent_backend import ConfluentProducer

        if linger_ms is not None:
            overrides["linger.ms"] = linger_ms
        return ConfluentProducer(bootstrap, **overrides)
    if backend == "kafka-python":
        from raytrade.adapters.kafka.kafka_python_backend import KafkaPythonProducer

        if linger_ms is not None:
            overrides["linger_ms"] = linger_ms
        return KafkaPythonProducer(bootstrap, **overrides)
    raise ValueError(f"unknown kafka backend {backend!r}, expected one of {BACKENDS}")


def consumer(backend: Backend, bootstrap: str, group_id: str, **overrides: Any) -> Consumer:
    """A consumer of the chosen backend."""
    if backend == "confluent":
        from raytrade.adapters.kafka.confluent_backend import ConfluentConsumer

        return ConfluentConsumer(bootstrap, group_id, **overrides)
    if backend == "kafka-python":
        from raytrade.adapters.kafka.kafka_python_backend import KafkaPythonConsumer

        return KafkaPythonConsumer(bootstrap, group_id, **overrides)
    raise ValueError(f"unknown kafka backend {backend!r}, expected one of {BACKENDS}")


def admin(backend: Backend, bootstrap: str) -> Admin:
    """An admin client of the chosen backend."""
    if backend == "confluent":
        from raytrade.adapters.kafka.confluent_backend import ConfluentAdmin

        return ConfluentAdmin(bootstrap)
    if backend == "kafka-python":
        from raytrade.adapters.kafka.kafka_python_backend import KafkaPythonAdmin

        return KafkaPythonAdmin(bootstrap)
    raise ValueError(f"unknown kafka backend {backend!r}, expected one of {BACKENDS}")
