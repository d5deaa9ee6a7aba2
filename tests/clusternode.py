"""A cluster node in its own process (``python -m ptt_server.cli``), to be ``kill -9``ed.

The in-process nodes of :mod:`tests.clusterfixture` share the test's event loop; a node
that must die as a machine does (no goodbye, no lease given back, sockets cut) runs here.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

START_TIMEOUT_S = 30.0
_REPOSITORY = str(Path(__file__).resolve().parents[1])
_STARTED = re.compile(rb"control wss://[^:]+:(\d+)\s+media udp/(\d+)")


class NodeProcess:
    """``ptt-server`` with a TOML config; ``await start()``, then ``kill()`` or ``stop()``."""

    def __init__(self, config_file: Path) -> None:
        self.config_file = config_file
        self.control_port = 0
        self.media_port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._log: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=_REPOSITORY)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ptt_server.cli",
            "--config",
            str(self.config_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        assert self._process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                line = await self._process.stdout.readline()
                if not line:
                    raise RuntimeError(f"node exited: {b''.join(self._log).decode()[-2000:]}")
                self._log.append(line)
                found = _STARTED.search(line)
                if found:
                    self.control_port, self.media_port = int(found[1]), int(found[2])
                    break
        self._reader = asyncio.create_task(self._drain())  # its pipe must not fill up

    async def _drain(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        while line := await process.stdout.readline():
            self._log.append(line)

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.control_port}"

    def output(self) -> str:
        return b"".join(self._log).decode(errors="replace")

    async def kill(self) -> None:
        """``kill -9``: no goodbye to radios, no lease given back."""
        await self._end(signal.SIGKILL)

    async def stop(self) -> None:
        await self._end(signal.SIGTERM)

    async def _end(self, sig: signal.Signals) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(sig)
        async with asyncio.timeout(30):
            await process.wait()
