"""Adversarial tests of the promises in docs/security.md about whom a radio trusts: rosters,
revocation lists, credentials and key envelopes the relay pushes must chain to the org root and
be addressed to this radio; a removed member opens nothing new; a man in the middle gets no
session; a credential revoked mid-session cuts the radio off for good (the adversary is
:mod:`tests.ptt_client.relay_adversary`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec

from crypto import roster as roster_module
from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import Credential, DeviceKeys, OrgRoot, Role
from crypto.keyring import DEFAULT_GRACE, DEFAULT_SWITCH_DELAY, FrameSealer
from crypto.roster import Roster, sign_roster
from ptt_client import channel_admin, events
from ptt_client.client import RadioClient
from ptt_protocol import control, media
from ptt_server import tls
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_client.relay_adversary import (
    Clock,
    handled,
    of,
    radio,
    radios,
    relay_forwards,
    relay_says,
    take_floor,
)

# --- rosters, revocations, credentials, envelopes pushed by the relay -------------------------


def forge_roster(roster: Roster, keys: DeviceKeys, credential: Credential) -> bytes:
    """A roster signed by anyone (a modified client bypassing sign_roster's role check)."""
    signature = keys.sign(roster_module._signed_part(roster, credential.fingerprint()))
    signed = roster_module._SignedRoster(roster, credential.to_bytes(), signature)
    return b"\x01" + msgspec.msgpack.encode(signed)


async def test_rosters_the_radio_refuses_officer_foreign_expired_and_rolled_back(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    v2 = Roster(cid, 2, org.roster.members)
    alice = org.accounts["alice"]
    stranger_root = OrgRoot.generate()
    foreign_dispatcher = org.issue("disp", Role.DISPATCHER, root=stranger_root)
    now = time.time()
    expired_dispatcher = org.issue(
        "disp2", Role.DISPATCHER, not_before=now - 7200, not_after=now - 60
    )
    disp = org.accounts["disp"]
    refused_rosters = [
        forge_roster(v2, alice.keys, alice.credential),  # signed by an officer
        sign_roster(v2, foreign_dispatcher.keys, foreign_dispatcher.credential),
        sign_roster(v2, expired_dispatcher.keys, expired_dispatcher.credential),
        sign_roster(Roster(cid + 1, 2, v2.members), disp.keys, disp.credential),  # other channel
    ]
    genuine = sign_roster(v2, disp.keys, disp.credential)
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        for signed in [*refused_rosters, genuine, org.signed_roster, genuine]:
            relay_says(
                server, "bob", control.RosterUpdate(channel_id=cid, version=2, signed_roster=signed)
            )
        reported = await handled(bob)
        state = bob.keyring.channels[cid].roster_state
        assert state.signed == genuine  # v1 (rollback) and v2 again (replay) were refused
        assert [e.roster_version for e in of(events.KeysUpdated, reported)] == [2]


async def test_revocation_lists_and_credentials_the_relay_pushes_must_chain_to_the_root(
    org: Org, server: RelayServer
) -> None:
    now = time.time()
    lost = org.issue("erin")
    expired = org.issue("frank", not_before=now - 7200, not_after=now - 60)
    impostor = org.issue("alice", root=OrgRoot.generate())  # attacker keys, foreign root
    altered = bytearray(org.accounts["alice"].credential.to_bytes())
    altered[-70] ^= 0x01  # inside the root's signature
    newcomer = org.issue("gina")
    current = org.root.sign_revocations(
        version=2, issued_at=int(now), serials=[lost.credential.serial]
    )
    older = org.root.sign_revocations(version=1, issued_at=int(now), serials=[])
    foreign = OrgRoot.generate().sign_revocations(version=9, issued_at=int(now), serials=[])
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        genuine_alice = bob.keyring.credentials["alice"]
        for revocations in (current, older, foreign):
            relay_says(server, "bob", control.RevocationUpdate(signed_list=revocations.to_bytes()))
        blobs = [lost, expired, impostor]
        relay_says(
            server,
            "bob",
            control.Credentials(
                credentials=(
                    *(a.credential.to_bytes() for a in blobs),
                    bytes(altered),
                    newcomer.credential.to_bytes(),
                )
            ),
        )
        await handled(bob)
        held = bob.keyring.trust.revocations
        assert held is not None and held.version == 2 and held.revokes(lost.credential)
        known = bob.keyring.credentials
        assert "erin" not in known and "frank" not in known
        assert known["alice"] == genuine_alice
        assert "gina" in known  # the push itself was processed: a valid credential is taken


async def test_envelopes_for_someone_else_another_channel_or_another_org_are_refused(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    disp = org.accounts["disp"]
    credentials = {u: a.credential for u, a in org.accounts.items()}
    roster2 = Roster(cid, 2, org.roster.members)  # epoch N is made for roster version N
    epoch2 = wrap_epoch(new_epoch_key(cid, 2, 2), roster2, credentials, disp.keys, disp.credential)
    elsewhere = Roster(cid + 1, 2, org.roster.members)
    other_channel = wrap_epoch(
        new_epoch_key(cid + 1, 2, 2), elsewhere, credentials, disp.keys, disp.credential
    )["bob"]
    stranger = org.issue("disp", Role.DISPATCHER, root=OrgRoot.generate())
    foreign = wrap_epoch(
        new_epoch_key(cid, 2, 2), roster2, credentials, stranger.keys, stranger.credential
    )["bob"]
    async with radios(org, server, "bob") as c:
        bob = c["bob"]
        relay_says(
            server,
            "bob",
            control.RosterUpdate(
                channel_id=cid,
                version=2,
                signed_roster=sign_roster(roster2, disp.keys, disp.credential),
            ),
        )
        for envelope in (epoch2["carol"], other_channel, foreign, epoch2["bob"]):
            relay_says(
                server,
                "bob",
                control.KeyEnvelope(channel_id=cid, epoch=2, recipient="bob", envelope=envelope),
            )
        reported = await handled(bob)
        assert set(bob.keyring.channels[cid].epochs) == {1, 2}
        assert [e.epoch for e in of(events.KeysUpdated, reported) if e.roster_version == 2][-1] == 2
        assert [e.epoch for e in of(events.EpochInstalled, reported)] == [2]


# --- removed members -----------------------------------------------------------------------------


async def test_a_removed_member_opens_nothing_new_and_is_not_heard_even_with_the_relays_help(
    org: Org, server: RelayServer
) -> None:
    """The dispatcher console removes carol (signed roster v2, epoch 2 for the others). The
    relay then hands carol every envelope of epoch 2 and alice's epoch-2 frames; and it
    passes carol's old-epoch frames to bob, as herself and as alice."""
    cid = org.channel_id
    alice_clock, bob_clock = Clock(), Clock()
    alice = await radio(org, server, "alice", clock=alice_clock)
    bob = await radio(org, server, "bob", clock=bob_clock)
    async with radios(org, server, "carol", "disp") as c:
        carol, disp = c["carol"], c["disp"]
        try:
            assert await channel_admin.remove_member(disp, cid, "carol") == 2
            for client in (alice, bob):
                await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 2)
            await carol.wait_for(control.Deaffiliated)
            for user in ("alice", "bob", "disp"):
                for stored in await server.store.envelopes_for(user):
                    relay_says(
                        server,
                        "carol",
                        control.KeyEnvelope(
                            channel_id=cid,
                            epoch=stored.epoch,
                            recipient="carol",
                            envelope=stored.envelope,
                        ),
                    )
            assert of(events.KeysUpdated, await handled(carol)) == []
            assert set(carol.keyring.channels[cid].epochs) == {1}

            alice_clock.offset = DEFAULT_SWITCH_DELAY + 0.5  # alice now seals under epoch 2
            burst = await take_floor(alice, bob)
            inner = alice.keyring.seal_voice(cid, burst, 0, 0, b"not for carol", alice_clock())
            relay_forwards(server, "bob", inner)
            assert [f.opus for f in of(events.VoiceFrame, await handled(bob))] == [b"not for carol"]
            relay_says(server, "carol", taken(cid, "alice", burst))
            relay_forwards(server, "carol", inner)
            reported = await handled(carol)
            assert of(events.VoiceFrame, reported) == []
            assert "no key for the epoch" in of(events.VoiceRejected, reported)[0].reason

            # Carol still holds epoch 1: as herself she is not on bob's roster any more ...
            as_carol = carol.keyring.seal_voice(cid, 777, 0, 0, b"carol again", time.time())
            relay_says(server, "bob", taken(cid, "carol", 777))
            relay_forwards(server, "bob", as_carol)
            # ... and as alice (alice's epoch-1 key derives from the secret carol kept)
            # she is refused once epoch 1's grace has passed at bob.
            epoch1 = carol.keyring.channels[cid].epochs[1]
            old_roster = carol.keyring.channels[cid].rosters[1]
            header = media.pack_inner(cid, 778, 0, 0, b"")
            as_alice = header + FrameSealer(epoch1, old_roster.sender_index("alice")).seal(
                header, b"carol as alice", time.time()
            )
            bob_clock.offset = DEFAULT_GRACE + 0.5
            relay_says(server, "bob", taken(cid, "alice", 778))
            relay_forwards(server, "bob", as_alice)
            reported = await handled(bob)
            assert of(events.VoiceFrame, reported) == []
            reasons = [e.reason for e in of(events.VoiceRejected, reported)]
            assert len(reasons) == 2, reasons
            assert "carol is not on the roster" in reasons[0]
            assert "ended" in reasons[1]
        finally:
            await alice.stop()
            await bob.stop()


def taken(channel_id: int, talker: str, burst: int) -> control.FloorTaken:
    return control.FloorTaken(
        channel_id=channel_id, user_id=talker, priority=1, burst_id=burst, since=time.time()
    )


# --- login: a man in the middle, a credential revoked mid-session ----------------------------


@contextlib.asynccontextmanager
async def man_in_the_middle(tmp_path: Path, server: RelayServer) -> AsyncIterator[tuple[int, str]]:
    """A TLS proxy with its own certificate that relays bytes to the real server over a
    second TLS connection. Yields its port and its certificate's fingerprint."""
    cert, key = tmp_path / "mitm-cert.pem", tmp_path / "mitm-key.pem"
    tls.ensure_self_signed(cert, key, [])
    upstream_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    upstream_tls.check_hostname = False
    upstream_tls.verify_mode = ssl.CERT_NONE

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", server.control_port, ssl=upstream_tls
        )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=tls.server_context(cert, key))
    try:
        yield proxy.sockets[0].getsockname()[1], tls.fingerprint(cert)
    finally:
        proxy.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await proxy.wait_closed()


async def test_a_man_in_the_middle_with_another_certificate_gets_no_session(
    org: Org, server: RelayServer, tmp_path: Path
) -> None:
    """A radio pinning the real certificate refuses the proxy's. A radio made to pin the
    proxy's certificate logs in through it, but the login statement it signs names the
    proxy's certificate, so the real server refuses the relayed login."""
    genuine = org.bundle("alice", server)
    async with man_in_the_middle(tmp_path, server) as (port, mitm_fingerprint):
        url = f"wss://127.0.0.1:{port}"
        outcomes = []
        for pin in (genuine.tls_fingerprint, mitm_fingerprint):
            bundle = msgspec.structs.replace(genuine, server_url=url, tls_fingerprint=pin)
            client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), use_udp=False)
            await client.start()
            try:
                outcomes.append(await client.wait_for(events.LoginRefused))
            finally:
                await client.stop()
    assert outcomes[0].code == "certificate"
    assert outcomes[1].code == control.ERROR_AUTH_FAILED
    assert "alice" not in server.sessions.by_user


async def test_a_credential_revoked_mid_session_cuts_the_radio_off_for_good(
    org: Org, server: RelayServer
) -> None:
    async with radios(org, server, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        await take_floor(alice, bob)
        await org.revoke(server, 1, org.accounts["alice"])  # what `ptt-admin revoke alice` sends
        error = await alice.wait_for(control.Error, timeout=5)
        assert error.code == control.ERROR_CREDENTIAL_REVOKED
        await bob.wait_for(control.FloorIdle, timeout=5)
        again = await alice.wait_for(events.LoginRefused, timeout=5)  # its reconnect
        assert again.code == control.ERROR_CREDENTIAL_REVOKED
        assert "alice" not in server.sessions.by_user
