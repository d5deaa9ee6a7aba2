"""The relay works inside the seccomp sandbox of its systemd unit.

systemd cannot start the unit on a build machine, so ``deploy/systemd/sandbox.py`` loads
the filters systemd builds from the unit's ``SystemCallFilter=``,
``MemoryDenyWriteExecute=``, ``RestrictAddressFamilies=``, ``LockPersonality=`` and
``RestrictNamespaces=``, with ``--kill``: any refused system call kills the server with
SIGSYS. It runs as a non-root user in a user namespace, as ``DynamicUser=`` and
``PrivateUsers=`` have it (as root, SQLite would chown its log files, which the unit's
filter refuses and a dynamic user never does). The real server process then logs radios
in, relays a burst over UDP, stores a text and stops on SIGTERM with status 0.

The Makefile's bootstrap installs the pieces (systemd-analyze, the system python3 with
libseccomp's bindings, unshare). Skipped only where the kernel refuses user namespaces.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.text import seal_direct_text
from ptt_protocol import control, media
from ptt_server.config import ServerConfig
from tests.orgfixture import Org
from tests.program_help import ROOT
from tests.ptt_server.rawclient import logged_in

UNIT = ROOT / "deploy" / "systemd" / "fieldradio-server.service"
SANDBOX = ROOT / "deploy" / "systemd" / "sandbox.py"
SYSTEM_PYTHON = "/usr/bin/python3"
AS_A_USER = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
START_TIMEOUT = 60.0  # a cold interpreter and systemd-analyze runs on two shared cores


def _missing() -> str | None:
    """Why this kernel cannot run the sandbox (no user namespaces), or None.

    A missing package is a failure, not a skip: `make test` installs them."""
    for tool in ("systemd-analyze", "unshare"):
        assert shutil.which(tool), f"no {tool}: run `make test` (its bootstrap installs it)"
    seccomp = [SYSTEM_PYTHON, "-c", "import seccomp"]
    assert subprocess.run(seccomp, capture_output=True, check=False, timeout=60).returncode == 0, (
        "no python3-seccomp: run `make test` (its bootstrap installs it)"
    )
    if subprocess.run(
        [*AS_A_USER, "true"], capture_output=True, check=False, timeout=60
    ).returncode:
        return "the kernel refuses user namespaces (unshare --user)"
    return None


_MISSING = _missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


class SandboxedServer:
    """What ``rawclient`` needs to know of the server running in the sandbox."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, data_dir: Path) -> None:
        self.process = process
        self.control_port = port
        self.config = ServerConfig(data_dir=str(data_dir))


@pytest.fixture
async def sandboxed(org: Org) -> AsyncIterator[SandboxedServer]:
    command = [
        *AS_A_USER, SYSTEM_PYTHON, str(SANDBOX), "--kill", str(UNIT), "--",
        sys.executable, "-m", "ptt_server.cli", "--data-dir", str(org.data_dir),
        "--listen", "127.0.0.1:0", "--media-port", "0",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            banner = (await process.stdout.readline()).decode()
        if "certificate sha256" not in banner:
            await process.wait()
            err = (await process.stderr.read()).decode()
            raise AssertionError(f"no banner (status {process.returncode}): {banner!r} {err}")
        port = int(banner.split("wss://")[1].split()[0].rsplit(":", 1)[1])
        yield SandboxedServer(process, port, org.data_dir)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_relay_runs_in_the_units_sandbox(org: Org, sandboxed: SandboxedServer) -> None:
    cid = org.channel_id
    async with logged_in(sandboxed, org, "alice", "bob", "disp") as c:  # type: ignore[arg-type]
        alice, listeners = c["alice"], [c["bob"], c["disp"]]
        granted = await alice.take_floor(cid)
        sent = []
        for seq in range(10):
            frame = os.urandom(60)
            flags = media.END_OF_BURST if seq == 9 else 0
            await alice.send_media(cid, granted.burst_id, seq, frame, flags)
            sent.append(alice.inner(cid, granted.burst_id, seq, frame, flags))
        for listener in listeners:
            got = [await listener.wait_datagram() for _ in sent]
            assert sorted(d.inner for d in got) == sorted(sent)  # type: ignore[type-var]
        message_id = bytes(control.MESSAGE_ID_SIZE)
        sealed = seal_direct_text(
            org.accounts["bob"].credential,
            "in the sandbox",
            org.accounts["alice"].keys,
            org.accounts["alice"].credential,
            time.time(),
            message_id=message_id,
        )
        await alice.send(control.TextSend(message_id=message_id, to_user="bob", sealed=sealed))
        text = await c["bob"].wait_for(control.TextDeliver, lambda m: m.message_id == message_id)
        assert text.from_user == "alice"
    process = sandboxed.process
    assert process.stderr is not None
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(START_TIMEOUT):
        err = (await process.stderr.read()).decode()
        await process.wait()
    # -SIGSYS: the sandbox refused a system call the server needs.
    assert process.returncode == 0, f"status {process.returncode}: {err}"
    assert '"msg": "stopped"' in err
