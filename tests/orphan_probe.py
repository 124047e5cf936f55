"""A stand-in for a test process: ``python -m tests.orphan_probe OUT_JSON`` starts what the test fixtures start
(the embedded broker, a PostgreSQL server, a local Ray with an actor, a ``ray start`` cluster), writes their
PIDs and markers to ``OUT_JSON`` and waits to be killed. ``tests/acceptance/test_embedded_ops.py`` SIGKILLs it
and lists what is left."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import ray

from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.lifeline import marked
from raytrade.cluster.local_ray import local_ray
from tests.integration.ray_start_cluster import RayStartCluster
from tests.pg_server import PgServer


@ray.remote(num_cpus=0)
class Idle:
    def pid(self) -> int:
        return os.getpid()


def main(out: Path) -> None:
    work = out.parent
    broker = EmbeddedBroker(log_path=work / "tansu.log").start()
    pg = PgServer().start()
    cluster = RayStartCluster(work, {"RAY_AUTH_MODE": "disabled"}).start()
    with local_ray(1, 80, prefix="rt-probe-") as temp:
        actor = Idle.remote()  # type: ignore[attr-defined]
        ray.get(actor.pid.remote())
        me = psutil.Process()
        tree = {p.pid: p.name() for p in me.children(recursive=True)}
        cluster_pids = marked(str(cluster.temp_dir.resolve()))
        tree.update({p: psutil.Process(p).name() for p in cluster_pids if psutil.pid_exists(p)})
        out.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "broker": broker.pid,
                    "postgres": pg.pid,
                    "processes": tree,
                    "ray_start_pids": cluster_pids,
                    "folders": [str(temp.parent), str(cluster.temp_dir), str(pg.dir)],
                }
            )
        )
        while True:  # until SIGKILLed
            time.sleep(1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
