"""A real ``ptt-server`` process refusing to start on a damaged or shared data directory.

Crashes are real too: a server process stores texts for a radio, acknowledges each, and is
killed with SIGKILL. Every refused start must print one line saying what to do, exit 1 and
leave every file of the data directory, and its mode, exactly as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto.text import seal_direct_text
from ptt_protocol import control
from ptt_server.config import DATABASE_NAME, ServerConfig
from ptt_server.sqlite_wal import FRAME_HEADER_SIZE, HEADER_SIZE, check_wal, parse_header
from ptt_server.store import Store
from tests.orgfixture import Org
from tests.ptt_server.rawclient import connect

TEXTS = 283  # the count from the incident in issue 9
START_TIMEOUT = 30.0  # a cold interpreter on two shared cores


class ServerProcess:
    """What ``rawclient`` needs to know of a server running in another process."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, data_dir: Path) -> None:
        self.process = process
        self.control_port = port
        self.config = ServerConfig(data_dir=str(data_dir))


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mode) of everything under ``directory``, itself included."""
    found = {".": ("dir", stat.S_IMODE(directory.stat().st_mode))}
    for path in sorted(directory.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(directory))] = (digest, mode)
    return found


def _command(data_dir: Path) -> list[str]:
    config = data_dir.parent / f"{data_dir.name}-server.toml"
    if not config.exists():  # outside the data directory: snapshots see only the server's files
        config.write_text("[server]\nrate_messages_per_s = 100000.0\n")
    return [
        sys.executable, "-m", "ptt_server.cli", "--config", str(config),
        "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", "--media-port", "0",
    ]  # fmt: skip


async def start(data_dir: Path, *flags: str) -> ServerProcess:
    """Start ``ptt-server`` (with ``flags`` after the usual ones) and wait for its banner."""
    process = await asyncio.create_subprocess_exec(
        *_command(data_dir), *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            banner = (await process.stdout.readline()).decode()
            while banner.startswith("ptt-server: org root installed"):  # --org-root said so
                banner = (await process.stdout.readline()).decode()
        if "certificate sha256" not in banner:
            err = (await process.stderr.read()).decode()
            raise AssertionError(f"no banner: {banner!r} {err!r}")
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    port = int(banner.split("wss://")[1].split()[0].rsplit(":", 1)[1])
    return ServerProcess(process, port, data_dir)


async def stop(server: ServerProcess, sig: int = signal.SIGTERM) -> str:
    """Stop the process with ``sig``; return what it wrote on stderr."""
    assert server.process.stderr is not None
    if server.process.returncode is None:
        server.process.send_signal(sig)
    async with asyncio.timeout(START_TIMEOUT):
        err = await server.process.stderr.read()
        await server.process.wait()
    return err.decode()


async def refused_start(data_dir: Path, *flags: str) -> str:
    """Run ``ptt-server`` (with ``flags`` after the usual ones) expecting a refusal; return
    its one line on stderr."""
    process = await asyncio.create_subprocess_exec(
        *_command(data_dir), *flags, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            banner = await process.stdout.readline()  # EOF once the process exits
            assert not banner, f"the server started instead of refusing: {banner!r}"
            err = await process.stderr.read()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptt-server: "), lines
    return lines[0]


def receipt_for(message_id: bytes) -> Callable[[control.TextReceipt], bool]:
    return lambda receipt: receipt.message_id == message_id


def alice_to_bob(org: Org, n: int, padding: int = 0) -> tuple[bytes, bytes]:
    """Text ``n`` (with ``padding`` more characters) from alice to bob, sealed: its message
    id and its sealed bytes."""
    message_id = n.to_bytes(control.MESSAGE_ID_SIZE, "big")
    sealed = seal_direct_text(
        org.accounts["bob"].credential,
        f"text {n}" + " " * bool(padding) + "x" * padding,
        org.accounts["alice"].keys,
        org.accounts["alice"].credential,
        time.time(),
        message_id=message_id,
    )
    return message_id, sealed


async def send_texts(server: ServerProcess, org: Org, count: int) -> None:
    """alice sends ``count`` texts to bob (offline); each is acknowledged as stored."""
    alice = await connect(server, org.accounts["alice"], udp=False)  # type: ignore[arg-type]
    try:
        for n in range(count):
            message_id, sealed = alice_to_bob(org, n)
            await alice.send(control.TextSend(message_id=message_id, to_user="bob", sealed=sealed))
            receipt = await alice.wait_for(control.TextReceipt, receipt_for(message_id))
            assert receipt.kind == control.RECEIPT_STORED
    finally:
        await alice.close()


def copy_database(db: Path, directory: Path) -> Path:
    """Copy the database's files (as a crash left them) into a new ``directory``."""
    directory.mkdir(mode=0o700)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            (directory / f"{db.name}{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    return directory / db.name


def flip_in_the_middle_of_the_log(db: Path) -> Path:
    """Flip one bit of a page in the middle of the committed frames of the -wal file."""
    wal_path = Path(f"{db}-wal")
    wal = bytearray(wal_path.read_bytes())
    verdict = check_wal(bytes(wal))
    assert verdict.safe and verdict.kept > 10
    page_size = parse_header(bytes(wal)).page_size
    frame = verdict.kept // 2
    wal[HEADER_SIZE + frame * (FRAME_HEADER_SIZE + page_size) + FRAME_HEADER_SIZE + 300] ^= 0x01
    wal_path.write_bytes(wal)
    return wal_path


def log_size(db: Path) -> int:
    return Path(f"{db}-wal").stat().st_size


def empty(path: Path) -> None:
    path.write_bytes(b"")


async def texts_for_bob(db: Path) -> int:
    async with await Store.open(db) as store:
        return len(await store.pending_for("bob", limit=10 * TEXTS))


# --- the database -----------------------------------------------------------------------------


async def test_a_flipped_byte_in_the_log_after_a_crash_is_refused_and_changes_nothing(
    crashed: Org, tmp_path: Path
) -> None:
    # Undamaged, the crash lost nothing: every acknowledged text is there (on a copy).
    assert await texts_for_bob(copy_database(crashed.db_path, tmp_path / "copy")) == TEXTS
    wal_path = flip_in_the_middle_of_the_log(crashed.db_path)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(wal_path) in line and "damaged" in line and "backup" in line
    assert snapshot(crashed.data_dir) == before


async def test_an_empty_database_beside_its_log_is_refused_and_changes_nothing(
    crashed: Org,
) -> None:
    assert log_size(crashed.db_path) > 0
    empty(crashed.db_path)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(crashed.db_path) in line and "is empty" in line and "backup" in line
    assert snapshot(crashed.data_dir) == before


async def test_a_missing_database_beside_its_log_is_refused_and_changes_nothing(
    crashed: Org,
) -> None:
    crashed.db_path.unlink()
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert "is missing" in line and "backup" in line
    assert snapshot(crashed.data_dir) == before


async def test_an_undamaged_crash_restarts_with_every_acknowledged_text(crashed: Org) -> None:
    server = await start(crashed.data_dir)
    await stop(server)
    assert server.process.returncode == 0
    assert await texts_for_bob(crashed.db_path) == TEXTS


# --- the TLS pair -----------------------------------------------------------------------------


@pytest.mark.parametrize("lost", ["cert.pem", "key.pem"])
async def test_half_a_tls_pair_is_refused_and_nothing_is_made_over_the_rest(
    org: Org, lost: str
) -> None:
    server = await start(org.data_dir)  # makes the self-signed pair
    await stop(server)
    tls_dir = org.data_dir / "tls"
    (tls_dir / lost).unlink()
    before = snapshot(org.data_dir)
    line = await refused_start(org.data_dir)
    assert lost in line and "backup" in line and "new bundle" in line
    assert snapshot(org.data_dir) == before


# --- one server per data directory --------------------------------------------------------------


async def test_a_second_server_on_the_same_data_directory_is_refused_naming_the_first(
    org: Org,
) -> None:
    first = await start(org.data_dir)
    try:
        line = await refused_start(org.data_dir)
        assert str(org.data_dir) in line and f"pid {first.process.pid}" in line
        assert first.process.returncode is None  # the first one is unharmed
    finally:
        await stop(first)
    assert first.process.returncode == 0
    again = await start(org.data_dir)  # the lock went with the first process
    await stop(again)


# --- ports ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["control", "media", "metrics"])
async def test_a_port_already_in_use_is_one_line_naming_the_port_and_its_flag(
    org: Org, which: str
) -> None:
    """Issue 11: a port in use gave a 30-line traceback that named the wrong port."""
    await stop(await start(org.data_dir))  # a first start makes the TLS pair (and says so)
    kind = socket.SOCK_DGRAM if which == "media" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        flag, value = {
            "control": ("--listen", f"127.0.0.1:{port}"),
            "media": ("--media-port", str(port)),
            "metrics": ("--metrics-port", str(port)),
        }[which]
        line = await refused_start(org.data_dir, flag, value)
    assert f"the {which} port" in line and f"127.0.0.1:{port}" in line, line
    assert "already in use" in line and flag in line, line
    again = await start(org.data_dir)  # nothing was left behind: the directory is free
    await stop(again)


# --- modes ----------------------------------------------------------------------------------------


async def test_the_server_keeps_its_files_private(org: Org) -> None:
    os.chmod(org.data_dir, 0o755)
    os.chmod(org.db_path, 0o644)
    server = await start(org.data_dir)
    try:
        # While running, SQLite's -wal and -shm exist: created with the main file's mode.
        modes = {
            name: stat.S_IMODE((org.data_dir / name).stat().st_mode)
            for name in (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", "tls")
        }
        key_mode = stat.S_IMODE((org.data_dir / "tls" / "key.pem").stat().st_mode)
        dir_mode = stat.S_IMODE(org.data_dir.stat().st_mode)
    finally:
        err = await stop(server)
    assert dir_mode == 0o700
    assert modes == {
        DATABASE_NAME: 0o600,
        f"{DATABASE_NAME}-wal": 0o600,
        f"{DATABASE_NAME}-shm": 0o600,
        "tls": 0o700,
    }
    assert key_mode == 0o600
    assert err.count('"narrowed file permissions"') == 2, err
