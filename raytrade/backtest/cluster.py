"""The Ray cluster a sweep or a walk-forward fans out on: an existing one (``--address``) or a local one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

# A run is one single-threaded Python process: BLAS, OpenMP, torch, XGBoost and LightGBM stay on
# one thread each, so ``num_cpus`` runs fit ``num_cpus`` cores without oversubscription.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]


@contextmanager
def research_cluster(address: str | None, local_cpus: int) -> Iterator[float]:
    """Connect to ``address`` (e.g. ``ray://head:10001`` or ``auto``) or start a local Ray with ``local_cpus``
    CPUs on loopback; yield the cluster's CPU count; disconnect (and stop a local one) at the end."""
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": ONE_THREAD})
        try:
            yield _cpus()
        finally:
            ray.shutdown()
        return
    from raytrade.cluster.local_ray import local_ray

    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update(ONE_THREAD)  # the local workers inherit this environment
    try:
        with local_ray(local_cpus, 100, prefix="raytrade-research-"):
            yield _cpus()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
