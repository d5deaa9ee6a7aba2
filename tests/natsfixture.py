"""A real ``nats-server`` with JetStream for the cluster's tests and benches.

:class:`NatsServer` starts Debian's ``nats-server`` on 127.0.0.1 with a free port and its
JetStream store in a temp dir, and can be stopped, killed and started again on the same
port and store (the cluster tests restart the bus under live nodes). It is a plain class
so ``bench.cluster`` uses it too; ``nats_server`` is the pytest fixture on top.

By default the bus lets anyone in (as ``nats-server -js`` does). ``password=...`` runs it
with the sample configuration ``deploy/nats/nats-server.conf`` instead (its listen address
and store directory replaced): only user ``fieldradio`` with that password gets in, and
only to the subjects the sample allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
START_TRIES = 3


class PortTakenError(RuntimeError):
    """nats-server could not listen: another process took the port it was given."""


SAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nats" / "nats-server.conf"
BUS_USER = "fieldradio"
"""The one user of the sample configuration."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different free ports (all probes held open together, so none repeats)."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
        return ports


class NatsServer:
    """One ``nats-server -js`` process; ``start`` it, ``url`` to reach it, ``stop`` it."""

    def __init__(
        self, directory: Path | None = None, *, jetstream: bool = True, password: str | None = None
    ) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="fieldradio-nats-"))
        self._own_directory = directory is None
        self._started = False
        self.jetstream = jetstream
        self.password = password
        """The ``fieldradio`` user's password (the sample configuration), or None: no auth."""
        self.port, self.monitor_port = free_ports(2)
        """nats-server's HTTP monitoring (``/varz``: message counts for the benches)."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it; at the first start, on new ports if another process took them meanwhile
        (a free port is only free until someone binds it; a restart keeps its ports)."""
        for _ in range(START_TRIES - 1):
            try:
                self._launch()
                break
            except PortTakenError:
                if self._started:
                    raise
                self.port, self.monitor_port = free_ports(2)
        else:
            self._launch()
        self._started = True

    def _launch(self) -> None:
        ports_dir = self.directory / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in ports_dir.iterdir():
            stale.unlink()
        log = (self.directory / "nats.log").open("ab")
        if self.password is None:
            where = [
                *(
                    ["--jetstream", "--store_dir", str(self.directory / "jetstream")]
                    if self.jetstream
                    else []
                ),
                "--addr",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        else:
            where = ["--config", str(self._sample_config())]
        self._process = subprocess.Popen(
            [
                NATS_SERVER,
                *where,
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
        # nats-server writes its ports file once it accepts clients: that is the event. It is
        # another process's file, and nothing tells this one when it appears, so it is polled
        # (20 ms, with a deadline that only stops a broken start from hanging); the file may
        # be seen before its contents are written: it counts once it parses.
        while (ports := _ports(ports_dir)) is None:
            if self._process.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in tail:
                    raise PortTakenError(f"nats-server found its port taken: {tail}")
                raise RuntimeError(f"nats-server exited: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start: {self.log_tail()}")
            time.sleep(0.02)
        assert ports["nats"] == [f"nats://127.0.0.1:{self.port}"], ports

    def _sample_config(self) -> Path:
        """The sample configuration, listening here with its store in this directory."""
        text = SAMPLE_CONFIG.read_text()
        text, listens = re.subn(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{self.port}", text)
        store = json.dumps(str(self.directory / "jetstream"))
        text, stores = re.subn(r"(?m)^(\s*)store_dir: .*$", rf"\1store_dir: {store}", text)
        assert listens == 1 and stores == 1, "deploy/nats/nats-server.conf changed shape"
        path = self.directory / "nats-server.conf"
        path.write_text(text)
        secret = path.with_name("fieldradio-bus-password.conf")
        secret.write_text(f"FIELDRADIO_BUS_PASSWORD: {json.dumps(self.password)}\n")
        secret.chmod(0o600)
        return path

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


def _ports(ports_dir: Path) -> dict[str, Any] | None:
    for path in ports_dir.glob("*.ports"):
        try:
            found: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return found
    return None


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
