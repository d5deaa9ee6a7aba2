"""A real ``ptt-server`` whose database file is replaced or deleted while it runs.

SQLite keeps writing to the files it opened: after ``mv backup.db fieldradio.db`` or an
``rm`` every later commit went to a file no path leads to and was gone at the next start,
although each text had been acknowledged as stored. The server must stop acknowledging,
keep what it held, and say in one line what to do.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ptt_protocol import control
from ptt_server.config import DATABASE_NAME
from tests.orgfixture import Org
from tests.ptt_server.rawclient import RawClient, connect
from tests.ptt_server.test_cli_startup import (
    ServerProcess,
    alice_to_bob,
    copy_database,
    start,
    stop,
    texts_for_bob,
)

BEFORE = 20  # texts acknowledged before the files change


async def send_one(alice: RawClient, org: Org, n: int) -> control.Message:
    """alice sends text ``n`` to bob; the server's answer (a receipt or an error)."""
    message_id, sealed = alice_to_bob(org, n)
    errors = len(alice.received(control.Error))
    await alice.send(control.TextSend(message_id=message_id, to_user="bob", sealed=sealed))
    await alice.ping()  # the server handled the text before it answered the ping
    answers: list[control.Message] = [
        *(r for r in alice.received(control.TextReceipt) if r.message_id == message_id),
        *alice.received(control.Error)[errors:],
    ]
    assert len(answers) == 1, answers
    return answers[0]


def _replace(db: Path, restore: Path) -> None:
    os.replace(restore, db)  # what `mv backup.db fieldradio.db` does


def _delete(db: Path, restore: Path) -> None:
    db.unlink()


def _delete_log(db: Path, restore: Path) -> None:
    Path(f"{db}-wal").unlink()


CHANGES = {"replaced": _replace, "deleted": _delete, "its log deleted": _delete_log}


async def stored_then_one_more(
    server: ServerProcess, org: Org, change: Callable[[], object]
) -> control.Message:
    """BEFORE texts acknowledged as stored, then ``change`` to the files, then one more
    text: the server's answer to it. One connection throughout: a login writes presence,
    and is refused too after the change."""
    alice = await connect(server, org.accounts["alice"], udp=False)  # type: ignore[arg-type]
    try:
        for n in range(BEFORE):
            stored = await send_one(alice, org, n)
            assert isinstance(stored, control.TextReceipt), stored
            assert stored.kind == control.RECEIPT_STORED
        change()
        return await send_one(alice, org, BEFORE)
    finally:
        await alice.close()


@pytest.mark.parametrize("change", CHANGES)
async def test_a_database_changed_under_a_running_server_is_no_longer_acknowledged(
    org: Org, tmp_path: Path, change: str
) -> None:
    db = org.db_path
    restore = org.data_dir / "restore.db"
    shutil.copyfile(db, restore)  # an older copy, as a backup would be
    server = await start(org.data_dir)
    try:
        answer = await stored_then_one_more(server, org, lambda: CHANGES[change](db, restore))
    finally:
        err = await stop(server)
    assert isinstance(answer, control.Error) and answer.code == control.ERROR_INTERNAL, answer
    saved = org.data_dir / f"{DATABASE_NAME}.saved-{server.process.pid}"
    assert saved.exists(), err
    assert err.count(str(saved)) >= 1 and "keep the database you want" in err, err
    # Everything acknowledged is in the saved copy.
    copy = copy_database(saved, tmp_path.parent / f"{tmp_path.name}-saved")
    assert await texts_for_bob(copy) == BEFORE


def copy_out_of_proc(pid: int, db: Path, into: Path) -> None:
    """What the line says: cp each deleted database file the server has open."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # a socket the server closed while we walked its descriptors
        for suffix in ("", "-wal"):
            if target == f"{db}{suffix} (deleted)":
                shutil.copyfile(fd, into / f"{db.name}{suffix}")


async def test_a_data_directory_deleted_under_a_running_server_can_still_be_copied_out(
    org: Org, tmp_path: Path
) -> None:
    """With nowhere to save a copy, the line says how to take the files the server still
    has open out of /proc, and doing so recovers every acknowledged text."""
    server = await start(org.data_dir)
    rescued = tmp_path.parent / f"{tmp_path.name}-rescued"
    rescued.mkdir(mode=0o700)
    try:
        answer = await stored_then_one_more(server, org, lambda: shutil.rmtree(org.data_dir))
        assert isinstance(answer, control.Error), answer
        copy_out_of_proc(server.process.pid, org.db_path, rescued)
    finally:
        err = await stop(server)
    assert f"/proc/{server.process.pid}/fd" in err, err
    assert await texts_for_bob(rescued / DATABASE_NAME) == BEFORE
