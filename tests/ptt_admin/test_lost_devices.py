"""A lost device must lose its keys whatever order the operator does things in (issue 11).

docs/security.md (known gap 8) says a re-enrolled user's old device stays valid at
radios "until an operator runs `ptt-admin revoke DEVICE`", and the lost-phone
procedure relies on `revoke` rekeying every channel the device was on. Real relay,
real radios' bundles, the real `ptt_admin` functions the CLI calls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.identity import Role
from crypto.roster import RosterState
from ptt_admin import channels, people
from ptt_admin.authority import AdminError
from ptt_admin.session import connect
from ptt_protocol import control
from ptt_server import handlers
from ptt_server.policy import Refused
from ptt_server.server import RelayServer
from ptt_server.sessions import Session
from tests.tui.org import Field, open_field


@pytest.fixture
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    async with open_field(tmp_path) as running:
        yield running


async def test_a_replaced_phone_can_still_be_revoked(field: Field) -> None:
    """Bob's phone is lost; the operator gives him a new one first (`enroll bob`), then,
    as docs/security.md says, runs `ptt-admin revoke OLD-DEVICE`: the old credential must
    be revoked, the new one not."""
    old = field.bundles["bob"].decoded_credential()
    async with connect(field.authority) as session:
        enrolled = await people.enroll(
            session, "bob", role=Role.OFFICER, display_name="Bob Brown", now=time.time()
        )
    async with connect(field.authority) as session:
        result = await people.revoke(session, old.device_id, now=time.time())
    assert result.revocations.revokes(old)
    assert not result.revocations.revokes(enrolled.credential)


async def test_one_channel_that_cannot_be_rekeyed_does_not_leave_the_others_keyed(
    field: Field,
) -> None:
    """Bob is on patrol and traffic. His phone is stolen; `ptt-admin revoke bob` applies
    the revocation, but the relay fails to store patrol's new roster ("storage error: try
    again"). Traffic must still be rekeyed without bob: the revoke may report patrol, not
    leave every later channel open to the stolen phone."""
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    async with connect(field.authority) as session:
        await channels.change_members(session, "traffic", add=["bob"], now=time.time())
    stolen = field.bundles["bob"].decoded_credential()
    real = handlers.HANDLERS[control.RosterUpdate]

    async def patrol_store_fails(
        server: RelayServer, session: Session, msg: control.RosterUpdate, now: float
    ) -> None:
        if msg.channel_id == patrol:
            raise Refused(control.ERROR_INTERNAL, "server storage error: try again")
        await real(server, session, msg, now)

    handlers.HANDLERS[control.RosterUpdate] = patrol_store_fails
    try:
        async with connect(field.authority) as session:
            with contextlib.suppress(AdminError):  # reporting patrol is fine
                await people.revoke(session, "bob", now=time.time())
    finally:
        handlers.HANDLERS[control.RosterUpdate] = real
    revocations = field.server.trust.revocations
    assert revocations is not None and revocations.revokes(stolen)
    signed = field.server.channels[traffic].signed_roster
    assert signed is not None
    roster = RosterState(traffic).accept(signed, field.authority.anchor, time.time())
    assert roster.member("bob") is None, "traffic still gives bob's stolen phone its key"
