"""A local Ray for the embedded default: every port on loopback, files in a private folder, nothing left behind.

- **Loopback.** Ray's C++ servers (GCS, raylet, object manager, every worker's gRPC) listen on
  127.0.0.1 only when the node's IP is exactly ``127.0.0.1``, and so do the dashboard agent, the
  metrics exporter and the runtime-env agent. On Linux, ``ray.init`` replaces a loopback
  ``_node_ip_address`` with the machine's address unless Ray's "cluster mode" is off
  (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when Ray is imported; we also set the constant
  it was read into, for this process). ``tests/acceptance/test_embedded_ops.py`` lists the
  listening sockets of a run and fails if any is not loopback.
- **Files.** Ray makes its temp folders mode 0777; they live inside a 0700 folder of ours, removed
  when the run ends, by the :class:`~raytrade.adapters.lifeline.Watchdog` if the run is killed.
- **Processes.** ``ray.init`` starts GCS, the raylet and the dashboard with ``PR_SET_PDEATHSIG``
  (they die with this process) and the raylet's workers exit when it does; its dashboard and
  runtime-env agents do not (measured: alive minutes later, waiting on the dead GCS), so the
  watchdog kills every process that holds a file in our folder open (their logs).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants

from raytrade.adapters.lifeline import Watchdog

LOOPBACK = "127.0.0.1"
# GCS keeps the events of this many tasks (actor calls) for the state API and the dashboard, then
# overwrites the oldest. Ray's default of 100,000 made GCS grow ~340 MB an hour at the embedded
# default's ~50 actor calls a second (scripts/soak_embedded.py).
TASK_EVENTS_KEPT = 10_000
CLUSTER_MODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def local_ray(
    num_cpus: int,
    object_store_mb: int,
    *,
    include_dashboard: bool = False,
    metrics_export_port: int | None = None,
    prefix: str = "raytrade-",
) -> Iterator[Path]:
    """Start a local single-node Ray bound to loopback; yield its temp folder; shut it down and remove it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))  # 0700
    watchdog = Watchdog().start()
    watchdog.kill_marked(root)  # Ray's agents, should they outlive the raylet (they keep logs open in it)
    watchdog.remove(root)
    os.environ[CLUSTER_MODE_ENV] = "0"  # for the processes Ray starts (they import Ray afresh)
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
    extra: dict[str, Any] = {}
    if metrics_export_port:
        extra["_metrics_export_port"] = metrics_export_port
    temp = root / "r"  # short: Ray's unix socket paths must fit 107 bytes
    try:
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=object_store_mb * 1024 * 1024,
            include_dashboard=include_dashboard,
            dashboard_host=LOOPBACK,
            log_to_driver=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=str(temp),
            _system_config={"task_events_max_num_task_in_gcs": TASK_EVENTS_KEPT},
            **extra,
        )
        yield temp
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
        watchdog.close()
