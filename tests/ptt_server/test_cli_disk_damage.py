"""A real ``ptt-server`` after a real crash (SIGKILL after acknowledged texts), with the data
directory damaged in the ways issue 9's first tests did not try.

What "acknowledged" means here: a text is acknowledged once the server answered
``RECEIPT_STORED``, which it sends only after SQLite's commit returned, so after SQLite wrote
the commit's frames to the -wal file and counted them in the -shm index. Frames written after
the last such commit (a torn last write) were never acknowledged and may go; nothing counted
as committed may. Every refusal is one line on stderr, exit 1, and leaves every file, link and
mode exactly as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crypto.identity import OrgRoot
from ptt_server.config import DATABASE_NAME, org_root_path
from ptt_server.sqlite_wal import FRAME_HEADER_SIZE, HEADER_SIZE, check_wal, parse_header
from ptt_server.store import Store
from tests.orgfixture import Org
from tests.ptt_server.test_cli_startup import (
    START_TIMEOUT,
    TEXTS,
    _command,
    copy_database,
    refused_start,
    start,
    stop,
    texts_for_bob,
)


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (content, mode) of everything under ``directory``, links as links."""
    found = {".": ("dir", stat.S_IMODE(directory.lstat().st_mode))}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content = f"link to {os.readlink(path)}"
        elif stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = "dir"
        found[str(path.relative_to(directory))] = (content, stat.S_IMODE(st.st_mode))
    return found


def wal_of(db: Path) -> Path:
    return Path(f"{db}-wal")


def shm_of(db: Path) -> Path:
    return Path(f"{db}-shm")


def frame_offset(wal: bytes, index: int) -> int:
    """Where frame ``index`` (0-based) starts in the log."""
    return HEADER_SIZE + index * (FRAME_HEADER_SIZE + parse_header(wal).page_size)


def last_commit(wal: bytes) -> int:
    """The 0-based index of the frame that ends the last transaction recovery keeps."""
    verdict = check_wal(wal)
    assert verdict.safe and verdict.kept > 10, verdict
    return verdict.kept - 1


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def accept_the_loss(db: Path) -> None:
    """What the refusal tells an operator to run to accept the loss (on purpose)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# --- the log loses frames the index counted -------------------------------------------------------


def _delete(db: Path) -> None:
    wal_of(db).unlink()


def _empty(db: Path) -> None:
    os.truncate(wal_of(db), 0)


def _cut_at_a_frame(db: Path) -> None:
    wal = wal_of(db).read_bytes()
    os.truncate(wal_of(db), frame_offset(wal, last_commit(wal) // 2))


def _cut_in_a_frame(db: Path) -> None:
    wal = wal_of(db).read_bytes()
    os.truncate(wal_of(db), frame_offset(wal, last_commit(wal) // 2) + 1000)


def _cut_in_the_last_commit(db: Path) -> None:
    wal = wal_of(db).read_bytes()
    os.truncate(wal_of(db), frame_offset(wal, last_commit(wal)) + FRAME_HEADER_SIZE + 100)


LOSSES: dict[str, Callable[[Path], None]] = {
    "deleted": _delete,
    "emptied": _empty,
    "cut at a frame boundary": _cut_at_a_frame,
    "cut inside a frame": _cut_in_a_frame,
    "cut inside the last commit frame": _cut_in_the_last_commit,
}


@pytest.mark.parametrize("loss", LOSSES)
async def test_a_log_that_lost_committed_frames_is_refused_and_changes_nothing(
    crashed: Org, loss: str
) -> None:
    """Each of these opened and silently lost acknowledged texts (deleted or emptied: 117 of
    283; cut in the middle: 58): the log alone looks like a shorter, sound one."""
    db = crashed.db_path
    LOSSES[loss](db)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(wal_of(db)) in line and "lost committed transactions" in line, line
    assert "backup" in line and "wal_checkpoint(TRUNCATE)" in line, line
    assert snapshot(crashed.data_dir) == before
    # The way out the line names works: the loss is then the operator's choice.
    accept_the_loss(db)
    await stop(await start(crashed.data_dir))


async def test_a_torn_write_after_the_last_commit_is_not_a_loss(crashed: Org) -> None:
    """A frame cut short after the last commit was never acknowledged: the server starts
    with every acknowledged text."""
    db = crashed.db_path
    wal = wal_of(db).read_bytes()
    os.truncate(wal_of(db), frame_offset(wal, last_commit(wal) + 1) + FRAME_HEADER_SIZE + 100)
    server = await start(crashed.data_dir)
    await stop(server)
    assert server.process.returncode == 0
    assert await texts_for_bob(db) == TEXTS


async def test_a_commit_the_crash_cut_short_is_not_damage(crashed: Org) -> None:
    """SQLite writes a frame's header, then its page, and counts a commit in the -shm index
    only after both: a SIGKILL between the two leaves a commit frame whose checksum fails,
    which the index never counted. The relay refused to start on it (seen in CI: a write
    in flight at the kill); it is a transaction nobody was told was stored."""
    db = crashed.db_path
    wal = wal_of(db).read_bytes()
    size = frame_offset(wal, 1) - frame_offset(wal, 0)
    end = frame_offset(wal, last_commit(wal) + 1)
    last = bytearray(wal[end - size : end])  # a commit frame of this log: header and page
    last[FRAME_HEADER_SIZE:] = bytes(size - FRAME_HEADER_SIZE)  # the page never written
    with wal_of(db).open("r+b") as log:
        log.truncate(end)
        log.seek(end)
        log.write(bytes(last))
    server = await start(crashed.data_dir)
    await stop(server)
    assert server.process.returncode == 0
    assert await texts_for_bob(db) == TEXTS


# --- damage in the log's bytes (held before; kept so it stays so) -----------------------------


def _flip_at(where: Callable[[bytes], int]) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        flip(wal_of(db), where(wal_of(db).read_bytes()))

    return damage


FLIPS: dict[str, Callable[[Path], None]] = {
    "log header salt": _flip_at(lambda wal: 17),
    "log header checksum": _flip_at(lambda wal: 25),
    "page number of a middle frame": _flip_at(lambda wal: frame_offset(wal, last_commit(wal) // 2) + 3),
    "salt of a middle frame": _flip_at(lambda wal: frame_offset(wal, last_commit(wal) // 2) + 9),
    "checksum of a middle frame": _flip_at(lambda wal: frame_offset(wal, last_commit(wal) // 2) + 17),
    "page of the last commit frame": _flip_at(
        lambda wal: frame_offset(wal, last_commit(wal)) + FRAME_HEADER_SIZE + 100
    ),
    "checksum of the last commit frame": _flip_at(
        lambda wal: frame_offset(wal, last_commit(wal)) + 21
    ),
}  # fmt: skip


@pytest.mark.parametrize("where", FLIPS)
async def test_a_flipped_byte_anywhere_in_the_committed_log_is_refused(
    crashed: Org, where: str
) -> None:
    FLIPS[where](crashed.db_path)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert "is damaged" in line and "backup" in line, line
    assert snapshot(crashed.data_dir) == before


# --- the index --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["random bytes", "zeros", "a flipped byte", "deleted"])
async def test_a_damaged_index_is_rebuilt_from_the_log_and_loses_nothing(
    crashed: Org, damage: str
) -> None:
    """SQLite's first connection rebuilds the -shm index from the log; a damaged header
    claims nothing, so the witness check does not refuse it either."""
    shm = shm_of(crashed.db_path)
    size = shm.stat().st_size
    if damage == "random bytes":
        shm.write_bytes(os.urandom(size))
    elif damage == "zeros":
        shm.write_bytes(bytes(size))
    elif damage == "a flipped byte":
        flip(shm, 200)  # in the first hash table
    else:
        shm.unlink()
    server = await start(crashed.data_dir)
    await stop(server)
    assert server.process.returncode == 0
    assert await texts_for_bob(crashed.db_path) == TEXTS


# --- the main file ------------------------------------------------------------------------------


async def test_a_main_file_cut_in_half_is_refused_in_one_line(crashed: Org) -> None:
    """quick_check's report spans lines; the refusal is still one line (it was six)."""
    db = crashed.db_path
    os.truncate(db, db.stat().st_size // 2 + 7)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(db) in line and "damaged" in line and "backup" in line, line
    assert snapshot(crashed.data_dir) == before


async def test_another_relays_database_beside_this_log_is_refused_in_one_line(
    crashed: Org, org_factory_dir: Path
) -> None:
    db = crashed.db_path
    shutil.copyfile(org_factory_dir / db.name, db)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(db) in line and "backup" in line, line
    assert snapshot(crashed.data_dir) == before


@pytest.fixture
async def org_factory_dir(tmp_path: Path) -> Path:
    """A directory holding another relay's database (new, closed cleanly: no log)."""
    other = tmp_path.parent / f"{tmp_path.name}-other"
    other.mkdir(mode=0o700)
    async with await Store.open(other / DATABASE_NAME):
        pass
    return other


@pytest.mark.parametrize("target", ["a database elsewhere", "nothing"])
async def test_a_database_path_that_is_a_symbolic_link_is_refused(
    crashed: Org, tmp_path: Path, target: str
) -> None:
    """SQLite follows the link and keeps the log beside the target, where the checks did
    not look: a damaged log there lost 58 acknowledged texts."""
    db = crashed.db_path
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir(mode=0o700)
    for suffix in ("", "-wal", "-shm"):
        shutil.move(f"{db}{suffix}", elsewhere / f"{db.name}{suffix}")
    if target == "nothing":
        shutil.rmtree(elsewhere)
    else:
        wal = (elsewhere / f"{db.name}-wal").read_bytes()
        flip(elsewhere / f"{db.name}-wal", frame_offset(wal, last_commit(wal) // 2) + 300)
    db.symlink_to(elsewhere / db.name)
    before = snapshot(crashed.data_dir)
    outside = snapshot(elsewhere) if elsewhere.exists() else None
    line = await refused_start(crashed.data_dir)
    assert str(db) in line and "symbolic link" in line, line
    assert snapshot(crashed.data_dir) == before
    assert (snapshot(elsewhere) if elsewhere.exists() else None) == outside


# --- the config file ----------------------------------------------------------------------------


async def refused_config(data_dir: Path, text: bytes) -> str:
    """Run ``ptt-server`` with ``text`` as its config file, expecting exit 2 and one line."""
    config = data_dir.parent / f"{data_dir.name}-server.toml"  # the file _command passes
    config.write_bytes(text)
    process = await asyncio.create_subprocess_exec(
        *_command(data_dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            banner = await process.stdout.readline()  # EOF once the process exits
            if banner:  # it started: stop it the usual way, so what it did is on disk
                process.send_signal(signal.SIGTERM)
            err = await process.stderr.read()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    texts = await texts_for_bob(copy_database(data_dir / DATABASE_NAME, copy_dir(data_dir)))
    assert not banner, f"started instead of refusing; {texts} of {TEXTS} texts left"
    assert process.returncode == 2, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptt-server: "), lines
    return lines[0]


def copy_dir(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}-copy"


CONFIGS: dict[str, tuple[bytes, str]] = {
    # what the file holds -> what the line must name
    "no retention": (b"[server]\nmessage_retention_s = 0.0\n", "message_retention_s"),
    "negative retention": (b"[server]\nmessage_retention_s = -1.0\n", "message_retention_s"),
    "no recordings kept": (b"[server]\nrecording_retention_s = 0.0\n", "recording_retention_s"),
    "nan": (b"[server]\nheartbeat_interval = nan\n", "heartbeat_interval"),
    "negative rate": (b"[server]\nrate_messages_per_s = -5.0\n", "rate_messages_per_s"),
    "TOML garbage": (b"[server\nlisten_port = \n", "not valid TOML"),
    "not UTF-8": (b"\xff\xfe[server]\n", "not valid TOML"),
    "wrong type": (b'[server]\nlisten_port = "7300"\n', "listen_port"),
    "unknown key": (b"[server]\nmessage_retention = 60.0\n", "message_retention"),
    "unknown table": (b"[srever]\nlisten_port = 7300\n", "srever"),
}


@pytest.mark.parametrize("case", CONFIGS)
async def test_a_bad_config_file_is_refused_and_loses_no_stored_text(
    crashed: Org, case: str
) -> None:
    """A retention of 0 or less started and deleted every stored text at once (the server
    prunes at start); a nan or a negative rate started too."""
    text, named = CONFIGS[case]
    before = snapshot(crashed.data_dir)
    line = await refused_config(crashed.data_dir, text)
    assert named in line, line
    assert snapshot(crashed.data_dir) == before
    assert await texts_for_bob(copy_dir(crashed.data_dir) / DATABASE_NAME) == TEXTS


# --- the org root -------------------------------------------------------------------------------


def _flip_root(root: Path) -> None:
    flip(root, 5)  # still 32 bytes: any 32 bytes decode as a key


def _another_root(root: Path) -> None:
    root.write_bytes(OrgRoot.generate().public_key_bytes())


def _empty_root(root: Path) -> None:
    os.truncate(root, 0)


def _directory_root(root: Path) -> None:
    root.unlink()
    root.mkdir()


ROOTS: dict[str, Callable[[Path], None]] = {
    "a flipped byte": _flip_root,
    "another organisation's": _another_root,
    "empty": _empty_root,
    "a directory": _directory_root,
}


@pytest.mark.parametrize("damage", ROOTS)
async def test_a_damaged_org_root_is_refused_saying_how_to_reinstall_it(
    crashed: Org, tmp_path: Path, damage: str
) -> None:
    """A flipped byte started a relay that refused every login as "another organisation's
    root: enroll it here"; an empty or unreadable one said only "cannot read"."""
    root = org_root_path(crashed.data_dir)
    good = tmp_path.parent / f"{tmp_path.name}-root.pub"
    good.write_bytes(root.read_bytes())  # the org authority's copy
    ROOTS[damage](root)
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert str(root) in line and "--org-root" in line and "ptt-admin" in line, line
    assert snapshot(crashed.data_dir) == before
    # What the line says to do works.
    if root.is_dir():
        root.rmdir()
    else:
        root.unlink()
    server = await start(crashed.data_dir, "--org-root", str(good))
    await stop(server)
    assert await texts_for_bob(crashed.db_path) == TEXTS


# --- files the server may not write ---------------------------------------------------------------


@pytest.fixture
def immutable(crashed: Org) -> Iterator[Callable[[Path], None]]:
    """Make files immutable (``chattr +i``: even root cannot write them); undone after."""
    made: list[Path] = []

    def make(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        made.append(path)

    try:
        yield make
    finally:
        for path in made:
            subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("which", ["the database", "its log"])
async def test_a_database_the_server_cannot_write_is_refused_at_start(
    crashed: Org, immutable: Callable[[Path], None], which: str
) -> None:
    """SQLite opens a file it cannot write read-only without a word: the relay started and
    then answered every text with a storage error."""
    db = crashed.db_path
    immutable(db if which == "the database" else wal_of(db))
    before = snapshot(crashed.data_dir)
    line = await refused_start(crashed.data_dir)
    assert "cannot be written" in line, line
    assert snapshot(crashed.data_dir) == before
