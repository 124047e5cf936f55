"""A ``ray start --head`` cluster of our own (temp dir, ports), stopped by the PIDs it started;
and the helper that stops any Ray processes marked by a temp dir we own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from raytrade.adapters.embedded_broker import free_port
from raytrade.adapters.lifeline import Watchdog

BIN = Path(sys.executable).parent


class RayStartCluster:
    """``ray start --head`` with the dashboard on loopback, everything under ``root``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rts-"))  # short: Ray's unix socket paths must fit 107 bytes
        # `ray start` daemonizes: its processes are found by their files in temp_dir and killed by a watchdog
        # if this process dies.
        self.env = {**os.environ, **env, "RAY_TMPDIR": str(self.temp_dir)}
        self.watchdog = Watchdog()
        self.gcs_port = free_port()
        self.dashboard_port = free_port()

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> RayStartCluster:
        self.watchdog.start()
        self.watchdog.kill_marked(self.temp_dir)
        self.watchdog.remove(self.temp_dir)
        cmd = [
            str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--object-store-memory", str(200 * 1024 * 1024),
            "--port", str(self.gcs_port), "--node-ip-address", "127.0.0.1",
            "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port),
            "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--temp-dir", str(self.temp_dir), "--disable-usage-stats",
        ]  # fmt: skip
        done = subprocess.run(
            cmd, check=False, env=self.env, cwd=self.root, capture_output=True, text=True, timeout=180
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return self

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run a console script of this venv (``serve``, ``ray``) against the cluster."""
        return subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            check=False,
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        """Stop the processes this cluster started (found by its temp dir), as ``ray stop`` does."""
        stop_marked(str(self.temp_dir))
        self.watchdog.close()  # whatever is left, and the temp dir


def stop_marked(mark: str) -> None:
    """Stop every process whose command line names ``mark`` (a temp dir we created), and its
    children: the raylets and their workers, then the rest, then GCS (as ``ray stop`` does)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(mark in part for part in p.info["cmdline"] or []):
                found[p.pid] = p
                for c in p.children(recursive=True):
                    found[c.pid] = c
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    procs = list(found.values())

    def name(p: psutil.Process) -> str:
        try:
            return " ".join(p.cmdline())
        except psutil.Error:
            return ""

    raylet = [p for p in procs if "raylet" in name(p).split(" ")[0]]
    gcs = [p for p in procs if "gcs_server" in name(p).split(" ")[0]]
    workers = [c for r in raylet for c in _children(r)]
    rest = [p for p in procs if p not in raylet and p not in gcs and p not in workers]
    for group in (raylet + workers, rest, gcs):
        for p in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(group, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def _children(p: psutil.Process) -> list[psutil.Process]:
    try:
        return list(p.children(recursive=True))
    except psutil.NoSuchProcess:
        return []
