"""A relay that lies to the org authority: what `ptt-admin` believes, signs and wraps.

The relay's operator owns its database and its code (docs/security.md, section 2:
"whoever runs code on the server"), and an honest operator may restore last week's
backup. Either way the relay must not be able to make the authority give a key to a
device it replaced or revoked, take back a revocation, or put a member on a channel
other than the one named. Each test plays the relay with the real server: its own
store API, a real SQLite backup and restart, or its in-memory state.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from crypto.identity import Role
from crypto.roster import Roster, RosterState
from ptt_admin import channels, people
from ptt_admin.authority import AdminError
from ptt_admin.session import connect
from ptt_client import events
from ptt_protocol import control
from ptt_server.config import DATABASE_NAME
from ptt_server.server import RelayServer
from ptt_server.store import User
from tests.tui.org import Field, open_field


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


def relay_roster(field: Field, channel_id: int) -> Roster:
    """The roster the relay now serves for ``channel_id``, verified against the org root."""
    signed = field.server.channels[channel_id].signed_roster
    assert signed is not None
    return RosterState(channel_id).accept(signed, field.authority.anchor, time.time())


def backup_relay(field: Field, to: Path) -> None:
    """What an operator's nightly job does: an online SQLite backup of the relay's database."""
    source = sqlite3.connect(Path(field.server.config.resolved_data_dir()) / DATABASE_NAME)
    target = sqlite3.connect(to)
    with contextlib.closing(source), contextlib.closing(target):
        source.backup(target)


def _put_back(data_dir: Path, backup: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (data_dir / (DATABASE_NAME + suffix)).unlink(missing_ok=True)
    (data_dir / DATABASE_NAME).write_bytes(backup.read_bytes())


async def restore_relay(field: Field, backup: Path) -> None:
    """Stop the relay, put the backup in place of its database, start it on the same port."""
    old = field.server
    port = old.control_port
    await old.stop()
    _put_back(Path(old.config.resolved_data_dir()), backup)
    config = msgspec.structs.replace(old.config, listen_port=port)
    field.server = await RelayServer.open(config)
    await field.server.start()


async def test_a_relay_cannot_make_the_authority_key_a_replaced_device(field: Field) -> None:
    """Bob's phone is lost; `ptt-admin enroll bob` gives him a new one and rekeys patrol.
    The relay's operator (who has the old phone) writes the old credential back into its
    own database: it is root-issued and still valid, only no longer bob's device. The
    authority's next `channel rekey patrol` must not pin, or wrap the key to, the old
    phone."""
    patrol = field.channels["patrol"]
    old = field.bundles["bob"].decoded_credential()
    async with connect(field.authority) as session:
        enrolled = await people.enroll(
            session, "bob", role=Role.OFFICER, display_name="Bob Brown", now=time.time()
        )
    rekeyed = relay_roster(field, patrol).member("bob")
    assert rekeyed is not None
    assert rekeyed.credential_fingerprint == enrolled.credential.fingerprint()
    await field.server.store.put_user(User.from_credential(old, time.time()))
    async with connect(field.authority) as session:
        with contextlib.suppress(AdminError):  # refusing is fine; keying the old phone is not
            await channels.rekey(session, "patrol", now=time.time())
    member = relay_roster(field, patrol).member("bob")
    assert member is not None
    assert member.credential_fingerprint != old.fingerprint(), (
        "the authority signed a roster that gives bob's replaced phone the channel key"
    )


async def test_a_relay_restored_from_backup_cannot_make_the_authority_unrevoke(
    field: Field, tmp_path: Path
) -> None:
    """Bob's phone is stolen: `ptt-admin revoke bob` (list version 1). The relay is then
    restored from the backup of the night before, which holds no list. After the
    authority's next revocation (carol) the relay's list must still revoke bob's phone
    (not a list 1 naming carol alone), and the relay must refuse bob's phone again."""
    backup = tmp_path / "nightly.db"
    backup_relay(field, backup)
    stolen = field.bundles["bob"].decoded_credential()
    async with connect(field.authority) as session:
        first = await people.revoke(session, "bob", now=time.time())
    assert first.revocations.revokes(stolen)
    await restore_relay(field, backup)
    try:
        assert field.server.trust.revocations is None  # the restored relay forgot the list
        async with connect(field.authority) as session:
            with contextlib.suppress(AdminError):  # refusing is fine; un-revoking is not
                await people.revoke(session, "carol", now=time.time())
        now_in_force = field.server.trust.revocations
        assert now_in_force is not None and now_in_force.revokes(stolen), (
            "the authority signed a revocation list that un-revokes bob's stolen phone"
        )
        thief = field.client("bob")
        await thief.start()
        try:
            refused = await thief.wait_for(events.LoginRefused)
            assert refused.code == control.ERROR_CREDENTIAL_REVOKED
        finally:
            await thief.stop()
    finally:
        await field.server.stop()


async def test_a_relay_restored_from_backup_cannot_make_the_authority_key_a_revoked_phone(
    field: Field, tmp_path: Path
) -> None:
    """As above, but after the restore the authority rekeys patrol (whose restored roster
    still lists bob): the stolen phone must get no envelope of the new epoch."""
    patrol = field.channels["patrol"]
    backup = tmp_path / "nightly.db"
    backup_relay(field, backup)
    async with connect(field.authority) as session:
        await people.revoke(session, "bob", now=time.time())
    await restore_relay(field, backup)
    try:
        held = {e.epoch for e in await field.server.store.envelopes_for("bob")}
        async with connect(field.authority) as session:
            with contextlib.suppress(AdminError):  # refusing is fine; keying bob is not
                await channels.rekey(session, "patrol", now=time.time())
        now_held = {
            e.epoch for e in await field.server.store.envelopes_for("bob") if e.channel_id == patrol
        }
        assert now_held <= held, "the authority wrapped a new epoch key to bob's revoked phone"
    finally:
        await field.server.stop()


async def test_a_relay_restored_from_backup_cannot_make_the_authority_put_a_removed_member_back(
    field: Field, tmp_path: Path
) -> None:
    """`ptt-admin channel remove patrol bob` (roster 2, epoch 2). The relay is restored from
    the night before, whose roster 1 still lists bob. The authority's next change (add
    carol) must not sign a roster, and wrap an epoch, that gives bob the key again."""
    patrol = field.channels["patrol"]
    backup = tmp_path / "nightly.db"
    backup_relay(field, backup)
    async with connect(field.authority) as session:
        await channels.change_members(session, "patrol", remove=["bob"], now=time.time())
    await restore_relay(field, backup)
    try:
        restored = relay_roster(field, patrol)
        assert restored.member("bob") is not None  # the night before, bob was on patrol
        async with connect(field.authority) as session:
            with contextlib.suppress(AdminError):  # refusing is fine; keying bob is not
                await channels.change_members(session, "patrol", add=["carol"], now=time.time())
        signed = relay_roster(field, patrol)
        assert signed == restored or signed.member("bob") is None, (
            "the authority signed bob, whom it removed, back onto patrol"
        )
    finally:
        await field.server.stop()


async def test_a_relay_cannot_redirect_a_member_change_to_another_channel(
    field: Field,
) -> None:
    """Channel names are not signed: the relay swaps the names of patrol and traffic in
    what it reports. `ptt-admin channel add patrol dave` must not give dave the key of
    traffic."""
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    async with connect(field.authority) as session:
        await people.enroll(
            session, "dave", role=Role.OFFICER, display_name="Dave", now=time.time()
        )
    field.server.channels[patrol].name = "traffic"
    field.server.channels[traffic].name = "patrol"
    async with connect(field.authority) as session:
        with contextlib.suppress(AdminError):  # refusing is fine; keying traffic is not
            await channels.change_members(session, "patrol", add=["dave"], now=time.time())
    assert relay_roster(field, traffic).member("dave") is None, (
        "the authority gave dave the key of traffic when asked to add him to patrol"
    )
