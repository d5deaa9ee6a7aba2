"""Protections of the org authority's workflow that no other test exercised.

Each test was checked to fail with its protection removed (a one-line mutation of
the production code, named in the docstring) and to pass on the code as it is.
Real relay, real SQLite, real TLS; where the relay lies, it lies through its own
database or its own handlers (the operator runs the code, docs/security.md 2).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.identity import DeviceKeys, OrgRoot, Role
from ptt_admin import channels, people
from ptt_admin.authority import AdminError
from ptt_admin.session import connect
from ptt_client import events
from ptt_protocol import control
from ptt_server import handlers
from ptt_server.server import RelayServer
from ptt_server.sessions import Session
from ptt_server.store import User
from tests.tui.org import Field, open_field


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def test_the_relay_refuses_to_enroll_a_device_under_the_authoritys_own_user_id(
    field: Field,
) -> None:
    """Mutation caught: ``handlers.authority.on_enroll`` without its own-user-id check. A credential
    for ``admin`` (root-issued, role officer) sent as an Enroll would replace the authority's
    record and cut its own session off."""
    authority = field.authority
    keys = DeviceKeys.generate()
    now = time.time()
    own_id = authority.root.issue_credential(
        user_id=authority.admin_credential.user_id, display_name="Not the authority",
        role=Role.OFFICER, device_id="admin-phone", signing_key=keys.signing_public_key,
        hpke_key=keys.hpke_public_key, not_before=int(now) - 60, not_after=int(now) + 3600,
        serial=4242,
    )  # fmt: skip
    async with connect(authority) as session:
        before = await field.server.store.list_users()
        with pytest.raises(AdminError, match="own user id"):
            await session.ask(
                lambda e: e if isinstance(e, control.Enrolled | control.Error) else None,
                [control.Enroll(credential=own_id.to_bytes())],
                "the enrolment",
            )
        assert await field.server.store.list_users() == before
        await session.client.ping_server()  # still logged in
        assert session.client.connected.is_set()


async def test_a_second_revocation_keeps_every_earlier_one(field: Field) -> None:
    """Mutation caught: ``people.revoke`` signing only the new serial (dropping the
    serials of the current list). Revoking carol must not let bob's lost phone back in."""
    lost = field.bundles["bob"].decoded_credential()
    async with connect(field.authority) as session:
        await people.revoke(session, "bob", now=time.time())
    async with connect(field.authority) as session:
        second = await people.revoke(session, "carol", now=time.time())
    assert second.revocations.revokes(lost)
    assert second.revocations.revokes(field.bundles["carol"].decoded_credential())
    phone = field.client("bob")
    await phone.start()
    try:
        refused = await phone.wait_for(events.LoginRefused)
        assert refused.code == control.ERROR_CREDENTIAL_REVOKED
    finally:
        await phone.stop()


async def test_the_authority_ignores_credentials_the_root_did_not_issue(field: Field) -> None:
    """Mutation caught: ``AdminSession.directory`` without the root-signature check. The
    relay's operator writes a credential of another organisation for bob into its database,
    with alice's device id and serial: `ptt-admin users` must not list it, and
    `ptt-admin revoke bob` must not revoke alice's phone."""
    alice = field.bundles["alice"].decoded_credential()
    keys = DeviceKeys.generate()
    now = time.time()
    forged = OrgRoot.generate().issue_credential(
        user_id="bob", display_name="Bob Brown", role=Role.OFFICER, device_id=alice.device_id,
        signing_key=keys.signing_public_key, hpke_key=keys.hpke_public_key,
        not_before=int(now) - 60, not_after=int(now) + 3600, serial=alice.serial,
    )  # fmt: skip
    await field.server.store.put_user(User.from_credential(forged, now))
    async with connect(field.authority) as session:
        listed = await people.list_users(session, now=time.time())
        assert forged.fingerprint() not in {u.credential.fingerprint() for u in listed}
        with pytest.raises(AdminError, match="no user or device 'bob'"):
            await people.revoke(session, "bob", now=time.time())
    revocations = field.server.trust.revocations
    assert revocations is None or not revocations.revokes(alice)


async def test_a_roster_the_relay_altered_stops_the_authority(field: Field) -> None:
    """Mutation caught: ``AdminSession.directory`` treating a roster that does not verify as
    no roster (it would then sign roster version 1 of an existing channel, for whoever it
    is told). The relay's stored roster of patrol has a flipped bit: every channel command
    stops with the reason and signs nothing."""
    patrol = field.channels["patrol"]
    channel = field.server.channels[patrol]
    genuine = channel.signed_roster
    assert genuine is not None
    channel.signed_roster = genuine[:-1] + bytes([genuine[-1] ^ 1])
    version = channel.roster_version
    async with connect(field.authority) as session:
        with pytest.raises(AdminError, match="does not verify"):
            await channels.list_channels(session, now=time.time())
        with pytest.raises(AdminError, match="does not verify"):
            await channels.change_members(session, "patrol", add=["carol"], now=time.time())
    assert channel.roster_version == version


async def test_a_relay_that_hides_a_revocation_still_cannot_get_the_lost_phone_keyed(
    field: Field,
) -> None:
    """Mutations caught together (each alone is covered by the other):
    ``AdminSession.directory`` without its validity check, and ``publish_roster`` calling
    ``wrap_epoch`` without ``trust=``. Bob's phone is revoked; the relay (its directory
    handler altered) reports him as not revoked. `ptt-admin channel add patrol bob` must
    refuse, and bob's phone must get no envelope of a new epoch."""
    patrol = field.channels["patrol"]
    async with connect(field.authority) as session:
        await people.revoke(session, "bob", now=time.time())
    held = {e.epoch for e in await field.server.store.envelopes_for("bob")}

    async def lying_directory(
        server: RelayServer, session: Session, msg: control.DirectoryRequest, now: float
    ) -> None:
        users = tuple(
            control.DirectoryUser(credential=u.credential, revoked=False)
            for u in await server.store.list_users()
        )
        listed = tuple(
            control.DirectoryChannel(
                channel_id=c.channel_id, name=c.name, signed_roster=c.signed_roster
            )
            for c in server.channels.values()
        )
        session.send(control.Directory(users=users, channels=listed, last=True))

    real = handlers.HANDLERS[control.DirectoryRequest]
    handlers.HANDLERS[control.DirectoryRequest] = lying_directory
    try:
        async with connect(field.authority) as session:
            with pytest.raises(AdminError, match="revoked"):
                await channels.change_members(session, "patrol", add=["bob"], now=time.time())
    finally:
        handlers.HANDLERS[control.DirectoryRequest] = real
    assert "bob" not in field.server.channels[patrol].members
    assert {e.epoch for e in await field.server.store.envelopes_for("bob")} == held


async def test_adding_a_revoked_user_says_so_and_changes_nothing(field: Field) -> None:
    """Mutation caught: ``channels._check_members`` without its revoked check (the command
    then still fails, later, with "no enrolled user", which sends the operator looking for
    a typo). The refusal names the reason, and patrol keeps its roster."""
    patrol = field.channels["patrol"]
    async with connect(field.authority) as session:
        await people.revoke(session, "bob", now=time.time())
    version = field.server.channels[patrol].roster_version
    async with connect(field.authority) as session:
        with pytest.raises(
            AdminError, match="cannot give 'bob' the key of 'patrol': it is revoked"
        ):
            await channels.change_members(session, "patrol", add=["bob"], now=time.time())
    assert field.server.channels[patrol].roster_version == version


async def test_the_authority_cannot_enroll_a_device_under_its_own_user_id(field: Field) -> None:
    """Mutations caught together: ``people.enroll`` without its own-user-id check and
    ``handlers.authority.on_enroll`` without its own (each alone is backed by the other). The
    authority's own record on the relay stays its admin credential, and no bundle is
    written."""
    authority = field.authority
    own = authority.admin_credential.user_id
    out = field.authority.files.directory / "self.bundle"
    async with connect(authority) as session:
        with pytest.raises(AdminError, match="own user id"):
            await people.enroll(
                session, own, role=Role.OFFICER, display_name="Me", now=time.time(), out=out
            )
        await session.client.ping_server()
        assert session.client.connected.is_set()
    stored = await field.server.store.get_user(own)
    assert stored is not None
    assert stored.fingerprint == authority.admin_credential.fingerprint()
    assert not out.exists()
