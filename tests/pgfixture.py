"""A real PostgreSQL server for tests and benches: a throw-away cluster in a temp directory.

:class:`PostgresServer` is a plain class, usable outside pytest (``bench.cluster``)::

    with PostgresServer() as pg:            # initdb + start; stopped and deleted on exit
        url = pg.url(pg.create_database())  # postgresql://postgres@127.0.0.1:PORT/NAME
        pg.restart()                        # or stop() ... start(): same port, same data

The cluster listens on 127.0.0.1 on a free port and on a unix socket inside its own
directory, trusts every local connection (``--auth=trust``), and runs with ``fsync=off``:
a test needs no durability against power loss (a killed server loses nothing: the WAL is
still written to the OS at each commit). It never touches the system cluster that Debian's
``postgresql`` package starts on port 5432.

PostgreSQL refuses to run as root, so as root the programs run as the ``postgres`` user
(``setpriv``) and the directory is handed to it.

The pytest fixtures on top: ``pg_server`` (one server for the whole session, stopped at its
end, also after failures) and ``pg_url`` (a fresh, empty database per test, dropped after).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import pytest

__all__ = ["PostgresServer", "PostgresServerError", "find_bindir", "pg_server", "pg_url"]

_START_TIMEOUT_S = 60
_PORT_TRIES = 5
_names = itertools.count(1)


class PostgresServerError(Exception):
    """The test cluster could not be created, started or stopped; the message says why."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$FIELDRADIO_PG_BINDIR``, else the
    newest ``/usr/lib/postgresql/*/bin`` (Debian), else wherever ``initdb`` is on PATH."""
    explicit = os.environ.get("FIELDRADIO_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates += reversed(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresServerError(
        "no PostgreSQL server programs (initdb, pg_ctl) found: install the postgresql package "
        "(tools/bootstrap.sh does) or set FIELDRADIO_PG_BINDIR to their directory"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """A PostgreSQL cluster of its own in a temp directory, on 127.0.0.1 and a free port.

    Creating the object runs ``initdb`` and starts the server. ``stop``/``start``/``restart``
    keep the data and the port (URLs handed out stay valid); ``close`` stops it and deletes
    the directory. Every database is owned by the superuser ``postgres``, no password.
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, base_dir: str | os.PathLike[str] | None = None) -> None:
        self._bindir = find_bindir()
        self._as_root = os.geteuid() == 0
        if self._as_root and base_dir is None:
            base_dir = "/tmp"  # the postgres user must reach it; $TMPDIR may be root's own
        self.directory = Path(tempfile.mkdtemp(prefix="fieldradio-pg-", dir=base_dir))
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "sock"
        self.log_file = self.directory / "postgres.log"
        self.port = 0
        self._running = False
        atexit.register(self.close)  # a bench that forgets close() leaves no server behind
        try:
            self.socket_dir.mkdir()
            if self._as_root:
                pw = pwd.getpwnam(self.user)
                for path in (self.directory, self.socket_dir):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
                for parent in self.directory.parents:
                    if not os.stat(parent).st_mode & 0o001:
                        raise PostgresServerError(
                            f"{parent} is closed to other users, so the postgres user cannot "
                            f"reach {self.directory}: pass another base_dir"
                        )
            self._initdb()
            self._start_on_a_free_port()
        except BaseException:
            self.close()
            raise

    # --- public ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and the next ``stop``."""
        return self._running

    def url(self, dbname: str = "postgres") -> str:
        """The URL of database ``dbname`` on this server (``Store.open`` takes it)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (``test_<pid>_<n>`` unless named); returns its name."""
        name = name or f"test_{os.getpid()}_{next(_names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing the sessions still connected to it."""
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def start(self) -> None:
        """Start the stopped server on its port; returns once it accepts connections."""
        if self._running:
            return
        self._pg_ctl("start", "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.log_file))
        self._running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (sessions are ended, a clean shutdown), ``immediate``
        (like a crash: recovery runs at the next start) or ``smart``."""
        if not self._running:
            return
        self._pg_ctl("stop", "-w", "-t", str(_START_TIMEOUT_S), "-m", mode)
        self._running = False

    def restart(self, mode: str = "fast") -> None:
        """``stop(mode)`` then ``start()``: same port, same data."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server (immediately: nothing is kept) and delete its directory; idempotent."""
        atexit.unregister(self.close)
        try:
            if self._running:
                try:
                    self.stop("immediate")
                except PostgresServerError:
                    self._kill_postmaster()
                    raise
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    def _command(self, program: str, *args: str) -> list[str]:
        argv = [str(self._bindir / program), *args]
        if self._as_root:
            argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", *argv]
        return argv

    def _run(self, argv: Sequence[str], what: str) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = self.log_file.read_text(errors="replace")[-2000:]
            raise PostgresServerError(
                f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                + (f"\nserver log:\n{log}" if log else "")
            )

    def _initdb(self) -> None:
        # Fast: no locale, no fsync of the new files, nothing printed to follow.
        argv = self._command(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self._run(argv, "initdb")

    def _configure(self) -> None:
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        # postgresql.auto.conf is read last and belongs to ALTER SYSTEM; a test that sets
        # something there resets it. Appending to postgresql.conf keeps these under it.
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as f:
            f.write("\n# tests/pgfixture.py\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def _start_on_a_free_port(self) -> None:
        # A free port can be taken between the probe and the bind: try a few.
        for attempt in range(_PORT_TRIES):
            self.port = _free_port()
            self._configure()
            try:
                self.start()
                return
            except PostgresServerError:
                if attempt == _PORT_TRIES - 1:
                    raise

    def _kill_postmaster(self) -> None:
        """SIGQUIT (immediate shutdown) to the postmaster named in its own pid file: the
        way out when pg_ctl itself failed, so no server outlives its directory."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
        self._running = False

    def _pg_ctl(self, *args: str) -> None:
        self._run(self._command("pg_ctl", "-D", str(self.data_dir), *args), f"pg_ctl {args[0]}")


# --- pytest fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (created on first use)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server, dropped after the test.

    A test may stop or restart the server; it is started again here if it was left stopped.
    """
    pg_server.start()
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.start()
        pg_server.drop_database(name)
