"""Shared fixtures: a real embedded Kafka-protocol broker and real local Ray clusters."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytrade.adapters.embedded_broker import EmbeddedBroker

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RAYTRADE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the test session, on a free loopback port."""
    b = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log").start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ray_local() -> Iterator[int]:
    """A small local Ray for one test module, with its files in a temp dir we own; yields the
    port where the node exports Prometheus metrics."""
    import ray

    from raytrade.adapters.embedded_broker import free_port

    tmp = tempfile.mkdtemp(prefix="rt-ray-")
    metrics_port = free_port()
    ray.init(
        num_cpus=2,
        object_store_memory=120 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=tmp,
        _metrics_export_port=metrics_port,
    )
    yield metrics_port
    ray.shutdown()
