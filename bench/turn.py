"""A real coturn TURN server for tests and benches: 127.0.0.1, a free port, its files in a temp dir, TURN
REST authentication (the secret is the test's), stopped at the end.

coturn pitfalls this handles (measured in the issue-13 spike):

- ``-n``: no config file, otherwise ``/etc/turnserver.conf`` or ``./turnserver.conf`` is read;
- ``-p 0`` opens no listener and says nothing: a port free for UDP and TCP is picked, and the
  start retried on another one if coturn could not bind it;
- readiness is a STUN Binding request that gets its answer (coturn prints its "listener
  opened" line only at higher verbosity), never a sleep;
- ``--pidfile`` and ``--db`` in the temp dir: the defaults are under ``/var`` and a fallback
  in ``/var/tmp`` would be shared by parallel runs;
- ``--allow-loopback-peers``: the radios are on 127.0.0.1 (refused with 403 otherwise);
- options with an optional argument need the ``=`` form (``--max-allocate-lifetime=600``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from ptt_protocol.turn_credentials import rest_credentials

__all__ = ["TURNSERVER", "Coturn", "free_udp_tcp_port"]

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
_BINDING_REQUEST = b"\x00\x01\x00\x00\x21\x12\xa4\x42"  # type, length 0, magic cookie


def free_udp_tcp_port() -> int:
    """A 127.0.0.1 port free for both UDP and TCP right now (coturn binds both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


class Coturn:
    """``with Coturn() as turn:`` runs ``turnserver`` until the block ends."""

    realm = "fieldradio.test"

    def __init__(self, directory: Path | None = None, user_quota: int = 8) -> None:
        # coturn counts a deleted allocation against its user's quota for a while after the
        # deletion: a benchmark making many calls in a row needs a higher quota.
        self.user_quota = user_quota
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="coturn-")) if directory is None else directory
        self.secret = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The TURN URL radios use (UDP)."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def credentials(self, user: str, ttl: float = 600.0) -> tuple[str, str]:
        """TURN REST ``(username, password)`` for ``user``, valid from now for ``ttl`` s."""
        return rest_credentials(self.secret.encode(), user, time.time(), ttl)

    def argv(self) -> list[str]:
        return [
            TURNSERVER,
            "-n",
            "--listening-ip", "127.0.0.1",
            "--listening-port", str(self.port),
            "--relay-ip", "127.0.0.1",
            "--min-port", "49152", "--max-port", "65535",
            "--use-auth-secret", "--static-auth-secret", self.secret,
            "--realm", self.realm,
            "--fingerprint",
            "--no-tls", "--no-dtls", "--no-tcp",
            "--no-cli",  # else a telnet console on 127.0.0.1:5766
            "--no-rfc5780", "--no-stun-backward-compatibility", "--no-software-attribute",
            "--allow-loopback-peers", "--no-multicast-peers",
            "-v", "--log-file", "stdout", "--simple-log",
            "--pidfile", str(self.dir / "turnserver.pid"),
            "--db", str(self.dir / "turndb"),
            "--max-allocate-lifetime=600",
            "--user-quota", str(self.user_quota), "--total-quota", str(max(100, 2 * self.user_quota)),
        ]  # fmt: skip

    def start(self, timeout: float = 5.0) -> Self:
        """Start coturn and return once it answers STUN; ``RuntimeError`` with its log if not."""
        for _ in range(3):
            self.port = free_udp_tcp_port()
            self.lines = []
            self.proc = subprocess.Popen(
                self.argv(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.dir,
                start_new_session=True,
            )
            self._reader = threading.Thread(target=self._read_log, daemon=True)
            self._reader.start()
            if self._answers_stun(timeout):
                return self
            self._terminate()
        raise RuntimeError("coturn did not answer STUN:\n" + "\n".join(self.lines[-20:]))

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def _answers_stun(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.05)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False  # exited: the port was taken, or a bad option
                transaction = secrets.token_bytes(12)
                probe.sendto(_BINDING_REQUEST + transaction, ("127.0.0.1", self.port))
                try:
                    data = probe.recv(2048)
                except (TimeoutError, ConnectionRefusedError):
                    continue  # not listening yet: ask again
                if data[:2] == b"\x01\x01" and data[8:20] == transaction:
                    return True
        return False

    def pause(self) -> None:
        """SIGSTOP: the server goes silent (as one that vanished from the network)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def _terminate(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a paused coturn cannot act on SIGTERM
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout is not None:
            if self._reader is not None:
                self._reader.join(5)
            proc.stdout.close()

    def stop(self) -> None:
        """Stop coturn and remove its directory."""
        self._terminate()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
