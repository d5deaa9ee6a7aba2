"""The relay's per-connection protocol core and its authorisation table, without a server.

Driven with bytes and ``now`` in, verdicts out (ptt_server.session_core, ptt_server.policy):
the login handshake, the legal messages in each phase, the refusals with their codes and
every rate budget, in microseconds.
"""

from __future__ import annotations

import secrets

import pytest

from crypto.identity import Credential, DeviceKeys, OrgRoot, Role, TrustAnchor
from ptt_protocol import control
from ptt_protocol.login import login_statement
from ptt_server.policy import (
    RULES,
    Enrolment,
    Refusal,
    Who,
    authorise,
    enrolment,
    may_cancel_emergency,
    on_the_air,
)
from ptt_server.session_core import (
    Dispatch,
    LoginAttempt,
    Phase,
    RateLimits,
    ServerSessionCore,
)
from tests.credentials import HOUR, Issued, issue

T0 = 1_000.0
WALL = 1_900_000_000.0
ROOT = OrgRoot.generate()
FINGERPRINT = secrets.token_bytes(32)
LIMITS = RateLimits(floor_per_s=5.0, messages_per_s=10.0, control_bytes_per_s=2048.0)


def account(role: Role, user: str = "alice") -> Issued:
    # Valid for the hour after WALL: the expiry test logs in two hours later.
    serial = secrets.randbits(40)
    return issue(ROOT, user, role, serial=serial, not_before=WALL - 60, not_after=WALL + HOUR)


OFFICER, DISPATCHER, ADMIN = (
    account(Role.OFFICER),
    account(Role.DISPATCHER, "disp"),
    account(Role.ADMIN, "admin"),
)


def core(now: float = T0) -> ServerSessionCore:
    return ServerSessionCore(
        secrets.token_bytes(32),
        TrustAnchor(ROOT.public_key_bytes()),
        FINGERPRINT,
        LIMITS,
        now,
        10.0,
    )


def login_frame(session: ServerSessionCore, who: tuple[DeviceKeys, Credential]) -> bytes:
    keys, credential = who
    client_nonce = secrets.token_bytes(32)
    signature = keys.sign(login_statement(session.nonce, client_nonce, FINGERPRINT))
    return control.encode(
        control.Login(
            credential=credential.to_bytes(), signature=signature, client_nonce=client_nonce
        )
    )


def logged_in(who: tuple[DeviceKeys, Credential]) -> ServerSessionCore:
    session = core()
    verdict = session.receive(login_frame(session, who), T0, WALL)
    assert isinstance(verdict, LoginAttempt)
    session.logged_in(verdict.credential)
    return session


# --- login ------------------------------------------------------------------------------------


def test_a_good_login_is_an_attempt_then_the_session_is_live() -> None:
    session = core()
    assert session.hello(WALL).server_nonce == session.nonce
    verdict = session.receive(login_frame(session, OFFICER), T0 + 1, WALL)
    assert isinstance(verdict, LoginAttempt) and verdict.credential.user_id == "alice"
    phases = [session.phase]  # awaiting login until the enrolment check passes
    session.logged_in(verdict.credential)
    phases.append(session.phase)
    assert phases == [Phase.AWAITING_LOGIN, Phase.LOGGED_IN]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("text", control.ERROR_BAD_MESSAGE),
        (b"\x01garbage", control.ERROR_BAD_MESSAGE),
        (control.encode(control.Ping(nonce=1)), control.ERROR_BAD_MESSAGE),
    ],
)
def test_anything_but_a_login_first_is_refused_and_ends_the_connection(
    frame: bytes | str, code: str
) -> None:
    session = core()
    verdict = session.receive(frame, T0, WALL)
    assert isinstance(verdict, Refusal) and verdict.code == code
    assert session.phase is Phase.CLOSED
    assert isinstance(session.receive(login_frame(session, OFFICER), T0, WALL), Refusal)


def test_a_login_signed_over_another_nonce_or_certificate_is_refused() -> None:
    session = core()
    keys, credential = OFFICER
    client_nonce = secrets.token_bytes(32)
    wrong = keys.sign(login_statement(secrets.token_bytes(32), client_nonce, FINGERPRINT))
    frame = control.encode(
        control.Login(credential=credential.to_bytes(), signature=wrong, client_nonce=client_nonce)
    )
    verdict = session.receive(frame, T0, WALL)
    assert isinstance(verdict, Refusal) and verdict.code == control.ERROR_AUTH_FAILED


def test_expired_and_foreign_credentials_get_their_codes() -> None:
    session = core()
    expired = session.receive(login_frame(session, OFFICER), T0, WALL + 7200)
    assert isinstance(expired, Refusal) and expired.code == control.ERROR_CREDENTIAL_EXPIRED
    other = ServerSessionCore(
        secrets.token_bytes(32),
        TrustAnchor(OrgRoot.generate().public_key_bytes()),
        FINGERPRINT,
        LIMITS,
        T0,
        10.0,
    )
    foreign = other.receive(login_frame(other, OFFICER), T0, WALL)
    assert isinstance(foreign, Refusal) and foreign.code == control.ERROR_UNKNOWN_ROOT


def test_a_login_after_the_timeout_is_refused() -> None:
    session = core()
    assert not session.login_expired(T0 + 9.9) and session.login_expired(T0 + 10.0)
    verdict = session.receive(login_frame(session, OFFICER), T0 + 10.0, WALL)
    assert isinstance(verdict, Refusal) and "timed out" in verdict.text


def test_a_second_login_on_a_live_session_is_refused() -> None:
    session = logged_in(OFFICER)
    verdict = session.receive(login_frame(session, OFFICER), T0, WALL)
    assert isinstance(verdict, Refusal) and verdict.text == "already logged in"
    assert session.phase is Phase.LOGGED_IN


# --- the table --------------------------------------------------------------------------------


def test_every_client_message_has_a_rule_and_server_messages_are_refused() -> None:
    server_only = {
        control.Hello, control.Login, control.LoginOk, control.Error, control.Goodbye,
        control.ChannelList, control.Affiliated, control.Deaffiliated, control.ChannelCreated,
        control.FloorGranted, control.FloorDeny, control.FloorTaken, control.FloorIdle,
        control.FloorRevoke, control.FloorQueuePosition, control.PresenceUpdate,
        control.TextDeliver, control.Credentials, control.Pong, control.Enrolled,
        control.Directory, control.LinkReport, control.ChannelDeleted, control.EnrolledUsers,
        control.IceServers, control.CallIncoming, control.CallTalker, control.CallLog,
    }  # fmt: skip
    assert set(RULES) | server_only == set(control.MESSAGE_TYPES)
    assert not set(RULES) & server_only
    refused = authorise(
        Role.ADMIN, control.FloorGranted(channel_id=1, burst_id=1, duration_limit=0)
    )
    assert isinstance(refused, Refusal) and "is not for the server" in refused.text


# Sorted out here: inside the decorator mypy infers `sorted` against parametrize's `object`.
RULED = sorted(RULES, key=lambda t: t.__name__)


@pytest.mark.parametrize("message_type", RULED)
def test_each_rule_lets_exactly_its_roles_through(message_type: type[control.Message]) -> None:
    allowed = {
        Who.ANY_MEMBER: {Role.OFFICER, Role.DISPATCHER, Role.ADMIN},
        Who.KEY_MANAGER: {Role.DISPATCHER, Role.ADMIN},
        Who.AUTHORITY: {Role.ADMIN},
    }[RULES[message_type].who]
    message = _example(message_type)
    for role in Role:
        verdict = authorise(role, message)
        if role in allowed:
            assert verdict is RULES[message_type]
        else:
            assert isinstance(verdict, Refusal) and verdict.code == control.ERROR_FORBIDDEN


def test_who_may_do_what_in_words() -> None:
    """The table's answers that the issue names: rekey, cancel, patch, watch presence,
    recall, enrol."""
    assert RULES[control.RosterUpdate].who is Who.KEY_MANAGER  # rekey / change members
    assert RULES[control.KeyEnvelope].who is Who.KEY_MANAGER
    assert RULES[control.Patch].who is Who.KEY_MANAGER
    assert RULES[control.PresenceSubscribe].who is Who.KEY_MANAGER
    assert RULES[control.EmergencyAck].who is Who.KEY_MANAGER
    assert RULES[control.RecallFrames].who is Who.ANY_MEMBER  # members only: checked per channel
    assert RULES[control.Enroll].who is Who.AUTHORITY
    assert RULES[control.RevocationUpdate].who is Who.AUTHORITY
    assert may_cancel_emergency("alice", Role.OFFICER, "alice")
    assert not may_cancel_emergency("bob", Role.OFFICER, "alice")
    assert may_cancel_emergency("disp", Role.DISPATCHER, "alice")


def test_an_officer_session_is_refused_what_the_table_forbids() -> None:
    session = logged_in(OFFICER)
    verdict = session.receive(control.encode(control.PresenceSubscribe()), T0, WALL)
    assert isinstance(verdict, Refusal) and verdict.code == control.ERROR_FORBIDDEN
    assert "watch presence" in verdict.text
    ok = session.receive(control.encode(control.Ping(nonce=3)), T0, WALL)
    assert isinstance(ok, Dispatch) and ok.message == control.Ping(nonce=3)


# --- budgets ----------------------------------------------------------------------------------


def test_floor_requests_draw_on_their_own_budget_and_refill_with_time() -> None:
    session = logged_in(OFFICER)
    request = control.encode(control.FloorRequest(channel_id=1, priority=1))
    verdicts = [session.receive(request, T0, WALL) for _ in range(12)]
    assert sum(isinstance(v, Dispatch) for v in verdicts) == 10  # 2 s of 5/s
    assert isinstance(verdicts[-1], Refusal) and "floor requests" in verdicts[-1].text
    assert isinstance(session.receive(request, T0 + 0.2, WALL), Dispatch)  # one more token
    # Texts do not touch the floor budget.
    status = control.encode(control.SetStatus(status=control.STATUS_BUSY))
    assert isinstance(session.receive(status, T0 + 0.2, WALL), Dispatch)


def test_the_message_budget_covers_texts_status_location_and_lookups() -> None:
    session = logged_in(OFFICER)
    frames = [
        control.encode(control.SetStatus(status=control.STATUS_BUSY)),
        control.encode(control.LocationReport(sealed_location=b"x")),
        control.encode(control.CredentialRequest(user_ids=("bob",))),
        control.encode(control.RecallList(channel_id=1)),
    ]
    verdicts = [session.receive(frames[n % 4], T0, WALL) for n in range(40)]
    assert sum(isinstance(v, Dispatch) for v in verdicts) == 30  # 3 s of 10/s
    assert all(isinstance(v, Refusal) for v in verdicts[30:])


def test_bytes_past_the_budget_are_refused_before_decoding() -> None:
    session = logged_in(OFFICER)
    tunnel = control.encode(control.MediaTunnel(datagram=bytes(1000)))
    verdicts = [session.receive(tunnel, T0, WALL) for _ in range(6)]
    fits = int(LIMITS.control_bytes_per_s * 2 // len(tunnel))  # the bucket holds 2 s of bytes
    assert 0 < fits < 6
    assert [isinstance(v, Dispatch) for v in verdicts] == [True] * fits + [False] * (6 - fits)
    assert isinstance(verdicts[-1], Refusal) and "too many bytes" in verdicts[-1].text
    # Garbage is charged too, so it cannot be sent for free.
    assert isinstance(session.receive(b"\x01" + bytes(900), T0, WALL), Refusal)


def _example(message_type: type[control.Message]) -> control.Message:
    """A valid instance of each client message type."""
    mid = bytes(16)
    examples: dict[type[control.Message], control.Message] = {
        control.Affiliate: control.Affiliate(channel_id=1),
        control.Deaffiliate: control.Deaffiliate(channel_id=1),
        control.SelectChannel: control.SelectChannel(channel_id=1),
        control.FloorRequest: control.FloorRequest(channel_id=1, priority=1),
        control.BroadcastRequest: control.BroadcastRequest(channel_ids=(1, 2)),
        control.FloorRelease: control.FloorRelease(channel_id=1),
        control.MediaTunnel: control.MediaTunnel(datagram=b"x"),
        control.ReceiverReport: control.ReceiverReport(channel_id=1, loss_pct=1, jitter_ms=1),
        control.Ping: control.Ping(nonce=1),
        control.SetStatus: control.SetStatus(status=control.STATUS_BUSY),
        control.LocationReport: control.LocationReport(sealed_location=b"x"),
        control.TextSend: control.TextSend(message_id=mid, to_user="bob", sealed=b"x"),
        control.TextReceipt: control.TextReceipt(
            message_id=mid, kind=control.RECEIPT_READ, by_user="a"
        ),
        control.CredentialRequest: control.CredentialRequest(user_ids=("a",)),
        control.EmergencyAlert: control.EmergencyAlert(
            alert_id=mid, user_id="a", channel_id=1, raised_at=1.0
        ),
        control.EmergencyCancel: control.EmergencyCancel(alert_id=mid, by_user="a"),
        control.EmergencyAck: control.EmergencyAck(alert_id=mid, by_user="a"),
        control.RecallList: control.RecallList(channel_id=1),
        control.RecallFrames: control.RecallFrames(channel_id=1, burst_key=1),
        control.PresenceSubscribe: control.PresenceSubscribe(),
        control.RosterUpdate: control.RosterUpdate(channel_id=1, version=1, signed_roster=b"x"),
        control.KeyEnvelope: control.KeyEnvelope(
            channel_id=1, epoch=1, recipient="a", envelope=b"x"
        ),
        control.ChannelCreate: control.ChannelCreate(name="x"),
        control.Patch: control.Patch(channel_id=3, linked=(1, 2)),
        control.Unpatch: control.Unpatch(channel_id=3),
        control.ChannelDelete: control.ChannelDelete(channel_id=1),
        control.Enroll: control.Enroll(credential=b"x"),
        control.RevocationUpdate: control.RevocationUpdate(signed_list=b"x"),
        control.DirectoryRequest: control.DirectoryRequest(),
        control.IceServersRequest: control.IceServersRequest(),
        control.CallOffer: control.CallOffer(call_id=mid, to_user="b", description=b"x"),
        control.CallRinging: control.CallRinging(call_id=mid),
        control.CallAnswer: control.CallAnswer(call_id=mid, description=b"x"),
        control.CallEnd: control.CallEnd(call_id=mid, reason=control.END_HANGUP),
        control.CallTalk: control.CallTalk(call_id=mid, talking=True),
        control.CallLogRequest: control.CallLogRequest(),
    }
    return examples[message_type]


FLOOR_COST = {control.FloorRequest, control.BroadcastRequest, control.CallTalk}
"""Messages that take the floor (TS 24.380 Floor Request, broadcast, a call's talk turn)."""
MESSAGE_COST = {
    control.SetStatus,
    control.LocationReport,
    control.TextSend,
    control.CredentialRequest,
    control.RecallList,
    control.RecallFrames,
    control.IceServersRequest,
    control.CallOffer,
    control.CallLogRequest,
    control.EmergencyCancel,  # raise/cancel cycles stored a new alert per cycle (issue 9)
}
"""Messages that cost the relay a store call, a push to others, or a large answer."""


@pytest.mark.parametrize("message_type", RULED)
def test_each_message_draws_on_the_budget_it_should(message_type: type[control.Message]) -> None:
    """Written out here, not read from the table: a message moved to the free budget (a
    RecallFrames flood, a BroadcastRequest storm) is refused by this test, not by review."""
    frame = control.encode(_example(message_type))
    no_floor = logged_in(ADMIN)  # the authority may send every client message
    request = control.encode(control.FloorRequest(channel_id=1, priority=1))
    while isinstance(spent := no_floor.receive(request, T0, WALL), Dispatch):
        pass
    assert isinstance(spent, Refusal) and "floor requests" in spent.text
    verdict = no_floor.receive(frame, T0, WALL)
    assert isinstance(verdict, Refusal if message_type in FLOOR_COST else Dispatch), verdict
    no_messages = logged_in(ADMIN)
    status = control.encode(control.SetStatus(status=control.STATUS_BUSY))
    while isinstance(spent := no_messages.receive(status, T0, WALL), Dispatch):
        pass
    assert isinstance(spent, Refusal) and "too many requests" in spent.text
    verdict = no_messages.receive(frame, T0, WALL)
    assert isinstance(verdict, Refusal if message_type in MESSAGE_COST else Dispatch), verdict


def test_a_closed_session_refuses_everything() -> None:
    """After a refused enrolment nothing is accepted, not even a good login; after close()
    a live session dispatches nothing more."""
    refused = core()
    assert isinstance(refused.receive(login_frame(refused, OFFICER), T0, WALL), LoginAttempt)
    refused.refuse_login()
    assert refused.phase is Phase.CLOSED
    assert isinstance(refused.receive(login_frame(refused, OFFICER), T0, WALL), Refusal)
    live = logged_in(OFFICER)
    live.close()
    ping = control.encode(control.Ping(nonce=1))
    assert isinstance(live.receive(ping, T0, WALL), Refusal)


def test_only_the_org_authority_logs_in_without_enrolment() -> None:
    """A device enrolled with another key (a lost phone's copy, a re-enrolled user) is not
    enrolled; the authority is recorded at its first login instead of refused."""
    mine, other = b"\x01" * 32, b"\x02" * 32
    for role in Role:
        assert enrolment(role, mine, mine) is Enrolment.ENROLLED
    for role in (Role.OFFICER, Role.DISPATCHER):
        assert enrolment(role, mine, None) is Enrolment.NOT_ENROLLED
        assert enrolment(role, mine, other) is Enrolment.NOT_ENROLLED
    assert enrolment(Role.ADMIN, mine, None) is Enrolment.RECORD_AUTHORITY
    assert enrolment(Role.ADMIN, mine, other) is Enrolment.RECORD_AUTHORITY


def test_the_org_authority_has_no_presence_on_the_air() -> None:
    assert on_the_air(Role.OFFICER) and on_the_air(Role.DISPATCHER)
    assert on_the_air(Role.OFFICER.value)  # as the store keeps it
    assert not on_the_air(Role.ADMIN) and not on_the_air(Role.ADMIN.value)
