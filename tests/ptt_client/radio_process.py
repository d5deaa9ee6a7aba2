"""A real ``ptt-radio`` process for tests (``sys.executable -m ptt_client.radio``), and the
``start_radio`` fixture that runs one per user against the test's server, on ``patrol``."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ptt_server.server import RelayServer
from tests.orgfixture import Org

__all__ = ["GUARD_S", "RadioProcess", "Starter", "radio_dir", "start_radio"]

Starter = Callable[..., Awaitable["RadioProcess"]]
"""``start_radio(user, *flags)``: that user's ptt-radio process on patrol."""

GUARD_S = 30.0
"""Only keeps a broken test from hanging; no verdict depends on time."""


class RadioProcess:
    """A ``ptt-radio`` process and the lines it printed so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def until(self, done: Callable[[str], bool]) -> str:
        """Read lines until one satisfies ``done``; that line."""
        assert self.process.stdout is not None
        async with asyncio.timeout(GUARD_S):
            while True:
                raw = await self.process.stdout.readline()
                assert raw, f"the radio ended; it printed {self.lines}"
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if done(line):
                    return line

    async def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and what it wrote on stderr."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None and self.process.stderr is not None
        async with asyncio.timeout(GUARD_S):
            rest = await self.process.stdout.read()
            err = await self.process.stderr.read()
            code = await self.process.wait()
        self.lines += rest.decode().splitlines()
        return code, err.decode()


@pytest.fixture
def radio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Not under the relay's data directory: the relay refuses to start beside private keys.
    return tmp_path_factory.mktemp("radios")


@pytest.fixture
async def start_radio(org: Org, server: RelayServer, radio_dir: Path) -> AsyncIterator[Starter]:
    started: list[RadioProcess] = []

    async def start(user: str, *argv: str) -> RadioProcess:
        bundle = radio_dir / f"{user}.bundle"
        bundle.write_bytes(org.bundle(user, server).to_bytes())
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ptt_client.radio",
            "--credential", str(bundle), "--channel", "patrol",
            "--output", str(radio_dir / f"{user}-heard"), *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )  # fmt: skip
        started.append(RadioProcess(process))
        return started[-1]

    yield start
    for radio in started:
        if radio.process.returncode is None:
            radio.process.kill()
            await radio.process.wait()
