"""Shared fixtures: a real embedded Kafka-protocol broker, real local Ray clusters, a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytrade.adapters.embedded_broker import EmbeddedBroker
from tests.pg_server import ExternalPg, PgNotInstalledError, PgServer

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
    """A small local Ray for one test module, as ``raytrade run`` starts it (loopback only, its files in
    a folder of ours, nothing left behind if the test process dies); yields the port where the node
    exports Prometheus metrics."""
    from raytrade.adapters.embedded_broker import free_port
    from raytrade.cluster.local_ray import local_ray

    metrics_port = free_port()
    with local_ray(2, 120, metrics_export_port=metrics_port, prefix="rt-ray-"):
        yield metrics_port


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer | ExternalPg]:
    """A real PostgreSQL server for the session: the one at ``RAYTRADE_TEST_PG_URL`` if set (left
    running), else a throwaway cluster started here from the distribution's binaries. Has ``.url``
    and ``.fresh_db(label) -> url``. No binaries: skip locally, fail when ``CI`` or
    ``RAYTRADE_REQUIRE_PG`` is set (CI must never skip silently)."""
    external = os.environ.get("RAYTRADE_TEST_PG_URL")
    if external:
        yield ExternalPg(external)
        return
    try:
        server = PgServer()
    except PgNotInstalledError as e:
        missing = str(e)
    else:
        server.start()
        yield server
        server.stop()
        return
    if os.environ.get("CI") or os.environ.get("RAYTRADE_REQUIRE_PG"):
        pytest.fail(f"CI needs PostgreSQL: {missing} (.ci/run installs it)", pytrace=False)
    pytest.skip("PostgreSQL not installed: apt-get install postgresql")


@pytest.fixture
def pg_url(postgres: PgServer | ExternalPg, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh, empty database for this test (dropped afterwards)."""
    url = postgres.fresh_db(request.node.name)
    yield url
    postgres.drop_db(url)
