"""Login over the real TLS WebSocket: accepted, and every way it must be refused."""

from __future__ import annotations

import secrets
import time

import pytest

from crypto.epoch import open_envelope
from crypto.identity import OrgRoot, Role
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, start_server
from tests.ptt_server.rawclient import (
    LoginRefused,
    connect,
    login_message,
    open_control,
    recv_message,
    wait_closed,
)


async def test_login_ok_gets_session_channels_roster_and_key(org: Org, server: RelayServer) -> None:
    alice = await connect(server, org.accounts["alice"])
    try:
        ok = alice.login_ok
        assert ok.user_id == "alice"
        assert ok.media_port == server.media_port
        assert len(ok.hop_key) == control.HOP_KEY_SIZE
        channels = await alice.wait_for(control.ChannelList)
        assert [(c.channel_id, c.name) for c in channels.channels] == [(org.channel_id, "patrol")]
        roster = await alice.wait_for(control.RosterUpdate)
        assert roster.signed_roster == org.signed_roster
        assert roster.version == 1
        envelope = await alice.wait_for(control.KeyEnvelope)
        assert envelope.recipient == "alice"
        assert envelope.channel_id == org.channel_id
        # The envelope is the one wrapped for alice: it opens with her keys.
        key = open_envelope(
            envelope.envelope,
            org.accounts["alice"].keys,
            org.accounts["alice"].credential,
            org.trust,
            time.time(),
        )
        assert key.secret == org.epoch_key.secret
        assert server.sessions.by_user["alice"].session_index == ok.session_index
    finally:
        await alice.close()


async def refused(server: RelayServer, login: control.Login | bytes) -> control.Error:
    """Send ``login`` (a message or raw bytes) after Hello; the Error, once the server closed."""
    ws, _ = await open_control(server)
    try:
        await recv_message(ws)
        await ws.send(login if isinstance(login, bytes) else control.encode(login))
        reply = await recv_message(ws)
        assert isinstance(reply, control.Error), reply
        assert await wait_closed(ws) == []
        return reply
    finally:
        await ws.close()


async def signed_login(server: RelayServer, org: Org, user: str) -> control.Login:
    """A correct login for ``user`` (used when the refusal lies elsewhere)."""
    ws, fingerprint = await open_control(server)
    try:
        hello = await recv_message(ws)
        assert isinstance(hello, control.Hello)
        return login_message(org.accounts[user], hello.server_nonce, fingerprint)
    finally:
        await ws.close()


async def test_expired_credential_refused(org: Org, server: RelayServer) -> None:
    now = time.time()
    stale = org.issue("dave", not_before=now - 7200, not_after=now - 60)
    await org.enroll(stale)
    with pytest.raises(LoginRefused) as caught:
        await connect(server, stale)
    assert caught.value.error.code == control.ERROR_CREDENTIAL_EXPIRED
    assert "dave" not in server.sessions.by_user


async def test_not_yet_valid_credential_refused(org: Org, server: RelayServer) -> None:
    now = time.time()
    early = org.issue("dave", not_before=now + 3600, not_after=now + 7200)
    await org.enroll(early)
    with pytest.raises(LoginRefused) as caught:
        await connect(server, early)
    assert caught.value.error.code == control.ERROR_CREDENTIAL_EXPIRED


async def test_revoked_credential_refused(org: Org) -> None:
    first = await start_server(org)
    try:
        await org.revoke(first, 1, org.accounts["bob"])
    finally:
        await first.stop()
    server = await start_server(org)  # the list outlives a restart
    try:
        with pytest.raises(LoginRefused) as caught:
            await connect(server, org.accounts["bob"])
        assert caught.value.error.code == control.ERROR_CREDENTIAL_REVOKED
        # Others still get in.
        alice = await connect(server, org.accounts["alice"])
        await alice.close()
    finally:
        await server.stop()


async def test_foreign_root_refused(org: Org, server: RelayServer) -> None:
    stranger = org.issue("alice", root=OrgRoot.generate())
    with pytest.raises(LoginRefused) as caught:
        await connect(server, stranger)
    assert caught.value.error.code == control.ERROR_UNKNOWN_ROOT


async def test_signature_over_another_nonce_refused(org: Org, server: RelayServer) -> None:
    ws, fingerprint = await open_control(server)
    try:
        hello = await recv_message(ws)
        assert isinstance(hello, control.Hello)
        other_nonce = secrets.token_bytes(control.NONCE_SIZE)
        await ws.send(
            control.encode(login_message(org.accounts["alice"], other_nonce, fingerprint))
        )
        reply = await recv_message(ws)
        assert isinstance(reply, control.Error)
        assert reply.code == control.ERROR_AUTH_FAILED
        assert await wait_closed(ws) == []
    finally:
        await ws.close()
    assert "alice" not in server.sessions.by_user


async def test_signature_over_another_tls_fingerprint_refused(
    org: Org, server: RelayServer
) -> None:
    # A man in the middle with its own certificate would make the device sign its fingerprint.
    ws, _ = await open_control(server)
    try:
        hello = await recv_message(ws)
        assert isinstance(hello, control.Hello)
        login = login_message(org.accounts["alice"], hello.server_nonce, bytes(32))
        await ws.send(control.encode(login))
        reply = await recv_message(ws)
        assert isinstance(reply, control.Error)
        assert reply.code == control.ERROR_AUTH_FAILED
        assert await wait_closed(ws) == []
    finally:
        await ws.close()


async def test_unenrolled_user_refused(org: Org, server: RelayServer) -> None:
    dave = org.issue("dave")
    with pytest.raises(LoginRefused) as caught:
        await connect(server, dave)
    assert caught.value.error.code == control.ERROR_AUTH_FAILED
    assert "enroll" in caught.value.error.text


async def test_other_device_of_enrolled_user_refused(org: Org, server: RelayServer) -> None:
    # Same user id, valid root-issued credential, but not the device the server enrolled.
    second_phone = org.issue("alice", Role.OFFICER)
    with pytest.raises(LoginRefused) as caught:
        await connect(server, second_phone)
    assert caught.value.error.code == control.ERROR_AUTH_FAILED


@pytest.mark.parametrize(
    "first",
    [
        b"\x01\xff\xfe garbage",
        b"",
        b"\x07" + b"\x00" * 20,
        control.encode(control.Ping(nonce=1)),
    ],
    ids=["msgpack-garbage", "empty", "wrong-version", "not-a-login"],
)
async def test_garbage_first_message_refused(org: Org, server: RelayServer, first: bytes) -> None:
    error = await refused(server, first)
    assert error.code == control.ERROR_BAD_MESSAGE
    # The server is still fine.
    alice = await connect(server, org.accounts["alice"])
    await alice.close()


async def test_text_frame_first_refused(org: Org, server: RelayServer) -> None:
    ws, _ = await open_control(server)
    try:
        await recv_message(ws)
        await ws.send("hello, I am text")
        reply = await recv_message(ws)
        assert isinstance(reply, control.Error)
        assert reply.code == control.ERROR_BAD_MESSAGE
        assert await wait_closed(ws) == []
    finally:
        await ws.close()


async def test_garbage_credential_refused(org: Org, server: RelayServer) -> None:
    ws, fingerprint = await open_control(server)
    try:
        hello = await recv_message(ws)
        assert isinstance(hello, control.Hello)
        bad = login_message(
            org.accounts["alice"], hello.server_nonce, fingerprint, credential=b"\x01junk"
        )
        await ws.send(control.encode(bad))
        reply = await recv_message(ws)
        assert isinstance(reply, control.Error)
        assert reply.code == control.ERROR_AUTH_FAILED
        assert await wait_closed(ws) == []
    finally:
        await ws.close()
    assert "alice" not in server.sessions.by_user


async def test_replayed_login_refused(org: Org, server: RelayServer) -> None:
    # A Login captured from one connection is useless on another (fresh server nonce).
    captured = await signed_login(server, org, "alice")
    error = await refused(server, captured)
    assert error.code == control.ERROR_AUTH_FAILED


async def test_second_login_replaces_first(org: Org, server: RelayServer) -> None:
    first = await connect(server, org.accounts["alice"])
    second = await connect(server, org.accounts["alice"])
    try:
        await first.wait_closed()
        assert server.sessions.by_user["alice"].session_index == second.login_ok.session_index
        assert first.login_ok.session_index not in server.sessions.by_index
        await second.ping()
    finally:
        await first.close()
        await second.close()


async def test_client_close_removes_session(org: Org, server: RelayServer) -> None:
    disp = await connect(server, org.accounts["disp"])
    alice = await connect(server, org.accounts["alice"])
    try:
        await disp.send(control.PresenceSubscribe())
        await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "alice" and p.online)
        await alice.close()
        # The dispatcher sees alice go offline: the server noticed the clean close.
        await disp.wait_for(control.PresenceUpdate, lambda p: p.user_id == "alice" and not p.online)
        assert "alice" not in server.sessions.by_user
        assert alice.login_ok.session_index not in server.sessions.by_index
    finally:
        await disp.close()
        await alice.close()
