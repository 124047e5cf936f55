"""A throwaway PostgreSQL cluster for tests, from the distribution's binaries.

``PgServer().start()`` runs ``initdb`` in a fresh temp dir and starts the server on a free
loopback port (unix socket in the same dir; durability off, since the data is thrown away).
Run as root, the dir is handed to the ``postgres`` OS user and the binaries run as that user,
because ``initdb`` refuses root. The server is a child of this process (not daemonized by
``pg_ctl``) that the kernel stops when this process dies, a SIGKILL included. ``ExternalPg``
wraps a server someone else runs (``RAYTRADE_TEST_PG_URL``) with the same interface: ``.url``
and ``.fresh_db(name)``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from raytrade.adapters.embedded_broker import free_port
from raytrade.adapters.lifeline import Watchdog, die_with_parent

PG_USER = "raytrade"
DEFAULT_DB = "raytrade_test"
_counter = itertools.count(1)


class PgNotInstalledError(RuntimeError):
    """No ``initdb``/``pg_ctl`` under /usr/lib/postgresql/*/bin or on PATH."""


class PgError(RuntimeError):
    """The cluster could not be created, started or stopped."""


def find_bin_dir() -> Path:
    """The bin dir holding both ``initdb`` and ``pg_ctl``: the highest Debian version, else PATH."""

    def version(d: str) -> tuple[int, ...]:
        parts = Path(d).parent.name.split(".")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)

    debian = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d, "initdb").is_file()]
    for d in sorted(debian, key=version, reverse=True):
        if Path(d, "pg_ctl").is_file():
            return Path(d)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    raise PgNotInstalledError("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")


def with_db(url: str, db: str) -> str:
    """``url`` with its database name replaced by ``db``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + db))


def db_name(label: str) -> str:
    """A unique, valid database name (<= 63 bytes) that starts with a readable ``label``."""
    clean = re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_")[:40]
    return f"t{next(_counter)}_{uuid.uuid4().hex[:8]}_{clean}".rstrip("_")


def create_database(admin_url: str, label: str) -> str:
    """Create an empty database on the server of ``admin_url``; return its URL."""
    name = db_name(label)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_db(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of ``url`` (closing any connections a test left open)."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class ExternalPg:
    """A server that is already running; ``url`` must name an existing database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def fresh_db(self, label: str = "db") -> str:
        return create_database(self.url, label)

    def drop_db(self, url: str) -> None:
        drop_database(self.url, url)


class PgServer:
    """A private PostgreSQL cluster in a temp dir; ``start()`` then ``stop()`` (or ``with``)."""

    def __init__(self, bin_dir: Path | None = None, db: str = DEFAULT_DB) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.db = db
        self.dir: Path | None = None
        self.port = 0
        self.url = ""
        self._as_postgres = os.geteuid() == 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog = Watchdog()

    @property
    def pid(self) -> int | None:
        """The postmaster's PID while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # cwd: the postgres user may not be allowed into the caller's cwd.
        return subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, timeout=timeout, check=False)

    def _check(self, what: str, proc: subprocess.CompletedProcess[str]) -> None:
        if proc.returncode != 0:
            log = ""
            if self.dir is not None and (self.dir / "server.log").is_file():
                log = (self.dir / "server.log").read_text(errors="replace")[-4000:]
            raise PgError(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}{log}")

    def start(self) -> PgServer:
        self.dir = Path(tempfile.mkdtemp(prefix="rt-pg-"))  # short: the unix socket lives here
        self._watchdog.start()
        self._watchdog.remove(self.dir)  # the data, should this process die before stop()
        try:
            if self._as_postgres:
                try:
                    pw = pwd.getpwnam("postgres")
                except KeyError as e:
                    raise PgError("running as root needs the 'postgres' OS user (initdb refuses root)") from e
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._check(
                "initdb",
                self._run(
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    PG_USER,
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ),
            )
            self._start_server()
            self.url = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{self.db}"
            with psycopg.connect(with_db(self.url, "postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db)))
        except BaseException:
            self.stop()
            raise
        return self

    def _become_postgres(self) -> None:
        pw = pwd.getpwnam("postgres")
        os.setgid(pw.pw_gid)
        os.setgroups([pw.pw_gid])
        os.setuid(pw.pw_uid)

    def _start_server(self, attempts: int = 3, timeout_s: float = 60.0) -> None:
        # free_port() can race with another process taking the port; retry on a new one.
        assert self.dir is not None
        for attempt in range(attempts):
            self.port = free_port()
            cmd = [
                str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ]  # fmt: skip
            with open(self.dir / "server.log", "ab") as log:
                # SIGQUIT when this process dies: the postmaster's immediate shutdown, its backends with it.
                preexec = die_with_parent(signal.SIGQUIT, self._become_postgres if self._as_postgres else None)
                self._proc = subprocess.Popen(
                    cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    preexec_fn=preexec,  # noqa: PLW1509 (setuid + prctl between fork and exec)
                )  # fmt: skip
            deadline = time.monotonic() + timeout_s
            while self._proc.poll() is None and time.monotonic() < deadline:
                try:
                    with psycopg.connect(f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres", connect_timeout=2):
                        return
                except psycopg.OperationalError:
                    time.sleep(0.1)
            self._stop_server()
            if attempt == attempts - 1:
                log_text = (self.dir / "server.log").read_text(errors="replace")[-4000:]
                raise PgError(f"postgres did not accept connections on port {self.port}: {log_text}")

    def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def fresh_db(self, label: str = "db") -> str:
        """An empty database with a unique name; returns its URL."""
        return create_database(self.url, label)

    def drop_db(self, url: str) -> None:
        drop_database(self.url, url)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files. Safe to call twice."""
        if self.dir is None:
            return
        try:
            self._stop_server()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._watchdog.close()

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
