"""The embedded default as an operator meets it: every port it opens is loopback, a SIGKILL of `raytrade run`
or of a test process leaves no broker, Ray process or server behind, and no temp folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.acceptance.test_run import REPO, env_for
from tests.integration.serve_harness import SECRET

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def tree(pid: int) -> dict[int, str]:
    """The process and its descendants: pid -> name."""
    try:
        root = psutil.Process(pid)
        return {p.pid: p.name() for p in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        return {}


def listening(pids: dict[int, str]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket ``pids`` listen on."""
    return sorted(
        (c.laddr.ip, c.laddr.port, pids[c.pid])
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    )


def alive(pids: dict[int, str] | list[int]) -> list[int]:
    out = []
    for p in pids:
        try:
            if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def wait_gone(pids: dict[int, str] | list[int], timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def temp_folders(prefix: str) -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{prefix}*")}


@pytest.mark.slow
def test_an_embedded_run_listens_on_loopback_only_and_a_sigkill_leaves_nothing(tmp_path: Path) -> None:
    before = temp_folders("raytrade-")
    env = {**env_for(tmp_path), "RAYTRADE_JWT_SECRET": SECRET, "RAYTRADE__SERVE__PORT": str(_free_port())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "raytrade.cluster.cli", "run", "--serve", "--duration", "300"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        if line.startswith("gateway: "):
            url = line.split()[1]
        if url and "consumed=" in line and "consumed=0 " not in line:
            break
        assert time.monotonic() < deadline, "the run never started trading"
    assert url is not None and requests.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
    pids = tree(proc.pid)
    sockets = listening(pids)
    names = {name for _, _, name in sockets}
    assert {"tansu", "gcs_server", "raylet"} <= names and any("MarketShard" in n for n in names), sockets
    print("listening sockets of an embedded run (raytrade run --serve):", *sockets, sep="\n  ")
    exposed = [s for s in sockets if s[0] not in LOOPBACK]
    # The one exception, Ray's and not ours: Ray Serve 2.60 starts each replica's inter-deployment gRPC
    # server on "[::]:0" (hard-coded in ray/serve/_private/replica.py); the README's security section
    # gives the firewall rule. One per replica, nothing else.
    ray_serve_grpc = [s for s in exposed if s[2].startswith("ray::ServeReplica:")]
    assert exposed == ray_serve_grpc, f"listening beyond loopback: {exposed}"
    assert len(ray_serve_grpc) == len({s[2] for s in ray_serve_grpc}) <= 3
    ours = temp_folders("raytrade-") - before
    assert ours, "the run keeps its Ray files in a raytrade-* folder of its own"
    for folder in ours:
        assert (Path(tempfile.gettempdir()) / folder).stat().st_mode & 0o077 == 0  # private (0700)

    os.kill(proc.pid, signal.SIGKILL)  # the process only: what it started must go by itself
    proc.communicate()
    left = wait_gone(pids)
    assert not left, f"left behind: {[(p, pids[p]) for p in left]}"
    deadline = time.monotonic() + 15
    while ours & temp_folders("raytrade-") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ours & temp_folders("raytrade-"), "the run's temp folder outlived it"


@pytest.mark.slow
def test_a_killed_test_process_leaves_no_broker_database_or_ray_behind(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.orphan_probe", str(out)], cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not out.exists():
        assert probe.poll() is None, probe.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the probe never came up"
        time.sleep(0.5)
    started: dict[str, Any] = json.loads(out.read_text())
    processes = {int(p): n for p, n in started["processes"].items()}
    assert started["broker"] in processes and started["postgres"] in processes
    assert {"tansu", "postgres", "raylet", "gcs_server"} <= set(processes.values())
    assert started["ray_start_pids"], "the `ray start` cluster's daemons"

    probe.send_signal(signal.SIGKILL)
    probe.communicate()
    left = wait_gone(processes, 30)
    assert not left, f"left behind: {[(p, processes[p]) for p in left]}"
    deadline = time.monotonic() + 15
    while any(Path(f).exists() for f in started["folders"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [f for f in started["folders"] if Path(f).exists()]


def _free_port() -> int:
    from raytrade.adapters.embedded_broker import free_port

    return free_port()
