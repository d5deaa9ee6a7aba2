"""A real ``nats-server`` with JetStream for the cluster's tests and benches.

:class:`NatsServer` starts Debian's ``nats-server`` on 127.0.0.1 with a free port and its
JetStream store in a temp dir, and can be stopped, killed and started again on the same
port and store (the cluster tests restart the bus under live nodes). It is a plain class
so ``bench.cluster`` uses it too; ``nats_server`` is the pytest fixture on top.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """One ``nats-server -js`` process; ``start`` it, ``url`` to reach it, ``stop`` it."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="fieldradio-nats-"))
        self._own_directory = directory is None
        self.port = free_port()
        self.monitor_port = free_port()
        """nats-server's HTTP monitoring (``/varz``: message counts for the benches)."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        ports_dir = self.directory / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in ports_dir.iterdir():
            stale.unlink()
        log = (self.directory / "nats.log").open("ab")
        self._process = subprocess.Popen(
            [
                NATS_SERVER,
                "--jetstream",
                "--store_dir",
                str(self.directory / "jetstream"),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--http_port",
                str(self.monitor_port),
                "--ports_file_dir",
                str(ports_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        # nats-server writes its ports file once it accepts clients: wait for that event.
        while not any(ports_dir.glob("*.ports")):
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self.log_tail()}")
            time.sleep(0.02)
        ports = json.loads(next(ports_dir.glob("*.ports")).read_text())
        assert ports["nats"] == [f"nats://127.0.0.1:{self.port}"], ports

    def varz(self) -> dict[str, Any]:
        """The server's /varz counters (in_msgs, out_msgs, ...)."""
        url = f"http://127.0.0.1:{self.monitor_port}/varz"
        with urllib.request.urlopen(url, timeout=5) as reply:
            found: dict[str, Any] = json.load(reply)
            return found

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM), waiting for the process to end."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """``kill -9``: the bus dies as a machine would."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.kill()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return (self.directory / "nats.log").read_text()[-2000:]
        except OSError:
            return ""

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        process.wait(timeout=30)


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
