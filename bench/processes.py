"""The processes a relay bench runs, seen from outside: ``ptt-server`` in its own process (its
CPU, memory, run-queue wait and metrics from /proc and its Prometheus endpoint) and the
:mod:`bench.loadgen` worker processes that load it (one JSON command a line on stdin, one answer
a line on stdout).

Split from :mod:`bench.relay` so that every bench that runs a real relay (cluster, waves, voice,
calls) uses the one copy, and :mod:`bench.relay` holds only its own measurement and CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

from bench.loadgen import Account, write_accounts

REPOSITORY: Final = Path(__file__).resolve().parents[1]
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The bench could not run (server or worker failed); the message says where to look."""


# --- the relay process -------------------------------------------------------------------------

_READY = re.compile(
    rb"control wss://[^:]+:(\d+)\s+media udp/(\d+)\s+certificate sha256 ([0-9a-f]+)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RelayProcess:
    """``ptt-server`` running on a data dir; its CPU, memory and metrics as seen from outside."""

    def __init__(self, process: asyncio.subprocess.Process, metrics_port: int, match: Any) -> None:
        self.process = process
        self.pid = process.pid
        self.metrics_port = metrics_port
        self.control_port = int(match.group(1))
        self.media_port = int(match.group(2))
        self.fingerprint = match.group(3).decode()

    def cpu_times(self) -> tuple[float, float]:
        """(utime, stime) of the whole process (every thread): /proc/PID/stat fields 14-15."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS

    def cpu_seconds(self) -> float:
        return sum(self.cpu_times())

    def run_delay_s(self) -> float:
        """Seconds the main thread (the relay's loop) has waited on a run queue for a CPU:
        /proc/PID/schedstat field 2. On a shared machine that wait is added latency the
        relay's code cannot remove."""
        return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[1]) / 1e9

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BenchError(f"no VmRSS for pid {self.pid}")

    def _scrape(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def metrics(self) -> dict[str, float]:
        """The Prometheus endpoint's samples by name (with labels), e.g. ``fieldradio_sessions``."""
        return await asyncio.to_thread(self._scrape)

    async def wait_sessions(self, count: int, timeout: float = 60.0) -> None:
        """Until the server's session gauge reads ``count`` (logins/logouts all handled)."""
        deadline = time.monotonic() + timeout
        while (now := (await self.metrics()).get("fieldradio_sessions", -1)) != count:
            if time.monotonic() > deadline:
                raise BenchError(f"server has {now:.0f} sessions, expected {count}")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def relay_process(
    data_dir: Path,
    log_name: str,
    extra_args: Sequence[str] = (),
    program: Sequence[str] = ("-m", "ptt_server.cli"),
) -> AsyncIterator[RelayProcess]:
    """Run ``python -m ptt_server.cli`` (or ``python *program``) on ``data_dir`` (and
    ``extra_args``) until the block ends (SIGTERM)."""
    metrics_port = _free_port()
    log = (data_dir / log_name).open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *program,
        "--data-dir",
        str(data_dir),
        "--listen",
        "127.0.0.1:0",
        "--media-port",
        "0",
        "--metrics-port",
        str(metrics_port),
        *extra_args,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        cwd=REPOSITORY,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while not (match := _READY.search(line := await process.stdout.readline())):
                if not line:
                    raise BenchError(f"ptt-server exited early: see {data_dir / log_name}")
        yield RelayProcess(process, metrics_port, match)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


# --- the load-generator processes ----------------------------------------------------------


class Worker:
    """One ``bench.loadgen`` process; :meth:`call` sends a command and returns its answer."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @classmethod
    async def spawn(
        cls, name: str, accounts: list[Account], relay: RelayProcess, work_dir: Path
    ) -> Worker:
        accounts_file = work_dir / f"{name}.accounts"
        write_accounts(accounts_file, accounts)
        log = work_dir / f"{name}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.loadgen",
                "--accounts",
                str(accounts_file),
                "--control-port",
                str(relay.control_port),
                "--fingerprint",
                relay.fingerprint,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=REPOSITORY,
                limit=1 << 28,  # one stats line carries every latency sample
            )
        worker = cls(name, process, log)
        await worker._answer()  # the "ready" line
        return worker

    async def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise BenchError(f"load generator {self.name} exited: see {self.log}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise BenchError(f"load generator {self.name}: {answer.get('error')}")
        return answer

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._answer()

    async def quit(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                await self.process.stdin.drain()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def workers(
    batches: Sequence[tuple[str, list[Account]]], relay: RelayProcess, work_dir: Path
) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for name, accounts in batches:
            started.append(await Worker.spawn(name, accounts, relay, work_dir))
        yield started
    finally:
        await asyncio.gather(*(w.quit() for w in started))


async def on_all(group: Sequence[Worker], cmd: str, **args: Any) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(w.call(cmd, **args) for w in group)))


async def connect_all(group: Sequence[Worker], concurrency: int) -> float:
    """Log every worker's accounts in at once; the wall time. Raises if any login failed."""
    started = time.monotonic()
    answers = await on_all(group, "connect", concurrency=concurrency)
    seconds = time.monotonic() - started
    failed = [(w.name, a) for w, a in zip(group, answers, strict=True) if a["failed"]]
    if failed:
        raise BenchError(f"logins failed: {failed}")
    return seconds
