"""Nothing outlives its parent: child processes that die with the process that started them.

Two mechanisms, both Linux:

- :func:`die_with_parent` is a ``preexec_fn``: the kernel sends the child SIGKILL when the thread that
  forked it exits (``prctl(PR_SET_PDEATHSIG)``), however the parent dies, SIGKILL included. Start the
  child from a long-lived thread (the main thread). Ray does the same for the processes ``ray.init``
  starts (its "kernel fate sharing").
- :class:`Watchdog` is a small process holding the read end of a pipe from its parent; when the pipe
  closes (the parent exited or was killed) it kills the processes that use the folders it was given and
  removes the folders. It covers what a signal cannot: folders, and processes that daemonize (``ray
  start``) or that a child started without passing the signal on (Ray's agents).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: run ``then`` (e.g. dropping privileges, which would clear the setting), then ask the
    kernel for ``sig`` when the parent dies; exit at once if the parent is already gone."""
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork: the child only calls it

    def preexec() -> None:
        if then is not None:
            then()
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(70)

    return preexec


class Watchdog:
    """``with Watchdog() as w: w.kill_marked(folder); w.remove(folder)`` — cleaned up however this process ends.

    On a normal exit, :meth:`close` (or leaving the ``with``) triggers the same cleanup at once.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Watchdog:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "raytrade.adapters.lifeline"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to our group, not to the watchdog
            close_fds=True,
        )
        return self

    def _tell(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("watchdog not started")
        self._proc.stdin.write(f"{line}\n".encode())
        self._proc.stdin.flush()

    def remove(self, path: str | Path) -> None:
        """Delete ``path`` (a folder) when this process ends."""
        self._tell(f"path {Path(path).resolve()}")

    def kill_marked(self, folder: str | Path) -> None:
        """SIGKILL every process that names ``folder`` (one only our children use, like Ray's temp folder) in
        its command line or holds a file in it open, when this process ends (this process itself excepted,
        should it still be alive)."""
        self._tell(f"mark {Path(folder).resolve()}")

    def close(self, timeout_s: float = 30.0) -> None:
        """Run the cleanup now and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def _names(pid: str, folder: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if folder.encode() in f.read():
                return True
        # Processes rewrite their titles (Ray's do) but keep their files open: logs, sockets, even deleted.
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder + "/"):
                    return True
    except OSError:
        return False
    return False


def marked(folder: str, spare: tuple[int, ...] = ()) -> list[int]:
    """PIDs of the processes (other than this one and ``spare``) that name ``folder`` or hold a file in it open."""
    skip = {str(os.getpid()), *(str(p) for p in spare)}
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and e not in skip and _names(e, folder)]


def _watch() -> None:
    """The watchdog process: read orders until EOF, then clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()  # on a normal close it is alive, and may hold files in a marked folder (Ray's driver)
    orders: dict[str, list[str]] = {"path": [], "mark": []}
    for line in sys.stdin:
        kind, _, value = line.strip().partition(" ")
        if kind in orders:
            orders[kind].append(value)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = [p for m in orders["mark"] for p in marked(m, spare=(parent,))]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not pids:
            break
        time.sleep(0.1)
    for p in orders["path"]:
        shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    _watch()
