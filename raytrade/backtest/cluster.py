"""The Ray cluster a sweep or a walk-forward fans out on: an existing one (``--address``) or a local one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import ray

# A run is one single-threaded Python process: BLAS, OpenMP, torch, XGBoost and LightGBM stay on
# one thread each, so ``num_cpus`` runs fit ``num_cpus`` cores without oversubscription.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

T = TypeVar("T")


def _cpus() -> float:
    return float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]


@contextmanager
def research_cluster(
    address: str | None, num_cpus: float, max_concurrent: int | None, local_cpus: int | None
) -> Iterator[tuple[float, int]]:
    """Connect to ``address`` (e.g. ``ray://head:10001`` or ``auto``) or start a local Ray on loopback
    (``local_cpus``, default room for ``max_concurrent`` tasks or 2); yield the cluster's CPU count and how
    many tasks of ``num_cpus`` run at once (``max_concurrent``, else as many as the CPUs fit); disconnect
    (and stop a local one) at the end."""
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": ONE_THREAD})
        try:
            yield _sized(num_cpus, max_concurrent)
        finally:
            ray.shutdown()
        return
    from raytrade.cluster.local_ray import local_ray

    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update(ONE_THREAD)  # the local workers inherit this environment
    try:
        local = local_cpus or max(1, int(num_cpus * (max_concurrent or 2)))
        with local_ray(local, 100, prefix="raytrade-research-"):
            yield _sized(num_cpus, max_concurrent)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _sized(num_cpus: float, max_concurrent: int | None) -> tuple[float, int]:
    cpus = _cpus()
    return cpus, max_concurrent or max(1, int(cpus // num_cpus))


def in_flight(
    items: Iterable[T], submit: Callable[[T], ray.ObjectRef[Any]], limit: int
) -> Iterator[tuple[T, ray.ObjectRef[Any]]]:
    """Submit ``items`` in order, at most ``limit`` in flight; yield each with its finished task's ref."""
    queue = list(items)
    pending: dict[ray.ObjectRef[Any], T] = {}
    while queue or pending:
        while queue and len(pending) < limit:
            item = queue.pop(0)
            pending[submit(item)] = item
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ref
