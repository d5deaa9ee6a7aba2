"""A real ``ptt-server`` whose data directory's file system fills up while radios send texts.

The file system is a small tmpfs mounted for the test (we run as root; it is unmounted in
the teardown, also on failure). A text is acknowledged (``RECEIPT_STORED``) only once it is
committed; a text the full disk refused must be answered with an error instead, the server
must keep serving, and after a SIGKILL every acknowledged text must still be there.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptt_protocol import control
from ptt_server.config import DATABASE_NAME
from ptt_server.store import Store
from tests.orgfixture import Org
from tests.ptt_server.rawclient import connect
from tests.ptt_server.test_cli_startup import (
    ServerProcess,
    alice_to_bob,
    copy_database,
    start,
    stop,
)

DISK_SIZE = "1m"  # the org's database is ~160 KB; each text adds ~14 KB of log
MAX_TEXTS = 400  # far more than fit
REFUSALS_IN_A_ROW = 5  # the disk is full for good once this many texts in a row were refused


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path.parent / f"{tmp_path.name}-disk"  # tmp_path is the org's data directory
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"this test needs root to mount a tmpfs: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def send_until_full(server: ServerProcess, org: Org) -> tuple[list[bytes], int]:
    """alice sends texts to bob until the disk refuses them; (acknowledged ids, refusals)."""
    alice = await connect(server, org.accounts["alice"], udp=False)  # type: ignore[arg-type]
    acknowledged: list[bytes] = []
    refused = in_a_row = 0
    try:
        for n in range(MAX_TEXTS):
            message_id, sealed = alice_to_bob(org, n, padding=300)
            errors = len(alice.received(control.Error))
            await alice.send(control.TextSend(message_id=message_id, to_user="bob", sealed=sealed))
            await alice.ping()  # the server handled the text before it answered the ping
            stored = [
                r
                for r in alice.received(control.TextReceipt)
                if r.message_id == message_id and r.kind == control.RECEIPT_STORED
            ]
            new_errors = alice.received(control.Error)[errors:]
            assert len(stored) + len(new_errors) == 1, (stored, new_errors)
            if stored:
                acknowledged.append(message_id)
                in_a_row = 0
            else:
                assert new_errors[0].code == control.ERROR_INTERNAL, new_errors
                refused += 1
                in_a_row += 1
                if in_a_row == REFUSALS_IN_A_ROW:
                    break
    finally:
        await alice.close()
    return acknowledged, refused


async def stored_ids(db: Path) -> set[bytes]:
    async with await Store.open(db) as store:
        return {m.message_id for m in await store.pending_for("bob", limit=10 * MAX_TEXTS)}


async def test_a_full_disk_refuses_texts_and_loses_no_acknowledged_one(
    org: Org, small_disk: Path, tmp_path: Path
) -> None:
    data_dir = small_disk / "data"
    shutil.copytree(org.data_dir, data_dir, ignore=shutil.ignore_patterns("*-server.toml"))
    server = await start(data_dir)
    try:
        acknowledged, refused = await send_until_full(server, org)
        assert server.process.returncode is None  # still serving on a full disk
    finally:
        err = await stop(server, signal.SIGKILL)
    assert acknowledged and refused, (len(acknowledged), refused, err)
    saved = await stored_ids(
        copy_database(data_dir / DATABASE_NAME, tmp_path.parent / f"{tmp_path.name}-saved")
    )
    assert set(acknowledged) <= saved, f"lost {len(set(acknowledged) - saved)} acknowledged"

    # Restarting on the still-full disk: it starts, or refuses in one line; either way the
    # acknowledged texts are still there.
    again = await start_or_refusal(data_dir)
    saved = await stored_ids(
        copy_database(data_dir / DATABASE_NAME, tmp_path.parent / f"{tmp_path.name}-again")
    )
    assert set(acknowledged) <= saved, again


async def start_or_refusal(data_dir: Path) -> str:
    try:
        server = await start(data_dir)
    except AssertionError as exc:  # no banner: the refusal's text is in the message
        message = str(exc)
        assert message.count("\\n") <= 1 and "Traceback" not in message, message
        return message
    await stop(server)
    assert server.process.returncode == 0
    return "started"
