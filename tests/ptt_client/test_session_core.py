"""The radio's control session without I/O (ptt_client.session_core): the login handshake, what
each server message does, which ones are dropped, and the floor as one TS 24.380 participant
per channel. Driven by hand, no server, no clock."""

from __future__ import annotations

import msgspec
import pytest

from crypto.identity import Credential, DeviceKeys
from crypto.patch_order import MAX_PATCH_LIFETIME, PatchOrder
from ptt_client import events
from ptt_client.session_core import (
    ENDED_PATCHES,
    RENEW_RETRY,
    BurstEnded,
    BurstStarted,
    ClientSessionCore,
    Dropped,
    Effect,
    Emit,
    HeardBurstOver,
    KeyMaterial,
    LoggedIn,
    MediaArrived,
    PatchArrived,
    Phase,
    PongArrived,
    Refused,
    Send,
    TalkerNamed,
    TextArrived,
    TextStored,
)
from ptt_protocol import control
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement
from tests.ptt_client.keyring_org import ALICE as _ALICE_KEYS
from tests.ptt_client.keyring_org import DISP as _DISP_KEYS

CH = 7
OTHER = 8
FINGERPRINT = b"\x11" * 32
SERVER_NONCE = b"\x22" * control.NONCE_SIZE
CLIENT_NONCE = b"\x33" * control.NONCE_SIZE


_ALICE = _ALICE_KEYS[1], _ALICE_KEYS[0]
_DISP = _DISP_KEYS[1], _DISP_KEYS[0]


def hello() -> control.Hello:
    return control.Hello(server_nonce=SERVER_NONCE, server_time=1.0)


def login_ok() -> control.LoginOk:
    return control.LoginOk(
        user_id="alice",
        session_index=42,
        hop_key=b"\x44" * 32,
        media_port=7301,
        server_time=1.0,
        heartbeat_interval=10.0,
    )


def logged_in(who: tuple[Credential, DeviceKeys] = _ALICE) -> ClientSessionCore:
    core = ClientSessionCore(*who)
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    assert isinstance(core.login_answer(login_ok()), LoggedIn)
    return core


def sent(effects: list[Effect]) -> list[control.Message]:
    return [e.message for e in effects if isinstance(e, Send)]


def emitted(effects: list[Effect]) -> list[object]:
    return [e.event for e in effects if isinstance(e, Emit)]


def floor_requests(effects: list[Effect]) -> list[control.FloorRequest]:
    return [m for m in sent(effects) if isinstance(m, control.FloorRequest)]


def granted(burst: int = 5, channel: int = CH) -> control.FloorGranted:
    return control.FloorGranted(channel_id=channel, burst_id=burst, duration_limit=30.0)


def taken(user: str, burst: int, priority: int = 1, channel: int = CH) -> control.FloorTaken:
    return control.FloorTaken(
        channel_id=channel,
        user_id=user,
        display_name=user.title(),
        priority=priority,
        burst_id=burst,
        since=1.0,
    )


# --- the login handshake ----------------------------------------------------------------------


def test_hello_is_answered_with_a_login_bound_to_the_challenge_and_the_certificate() -> None:
    credential, keys = _ALICE
    core = ClientSessionCore(credential, keys)
    core.connection_opened()
    login = core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    assert login.credential == credential.to_bytes() and login.client_nonce == CLIENT_NONCE
    credential.verify_signature(
        login_statement(SERVER_NONCE, CLIENT_NONCE, FINGERPRINT), login.signature
    )
    assert core.phase is Phase.AWAITING_ANSWER


def test_the_server_must_say_hello_first_and_only_once() -> None:
    core = ClientSessionCore(*_ALICE)
    core.connection_opened()
    with pytest.raises(ProtocolError, match="did not say hello"):
        core.hello(login_ok(), FINGERPRINT, CLIENT_NONCE)
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    with pytest.raises(ProtocolError, match="Hello while awaiting the login answer"):
        core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    with pytest.raises(ProtocolError, match="did not answer the login"):
        core.login_answer(hello())


def test_a_login_answer_before_the_login_is_a_protocol_error() -> None:
    core = ClientSessionCore(*_ALICE)
    core.connection_opened()
    with pytest.raises(ProtocolError):
        core.login_answer(login_ok())


def test_login_ok_rejoins_what_the_radio_had_joined() -> None:
    core = ClientSessionCore(*_ALICE)
    core.affiliate(OTHER)
    core.affiliate(CH, select=True)
    core.set_status(control.STATUS_ON_SCENE)
    core.connection_lost()
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    answer = core.login_answer(login_ok())
    assert isinstance(answer, LoggedIn) and core.session_index == 42 and core.logged_in
    assert sent(answer.effects) == [
        control.Affiliate(channel_id=CH),
        control.Affiliate(channel_id=OTHER),
        control.SelectChannel(channel_id=CH),
        control.SetStatus(status=control.STATUS_ON_SCENE),
    ]


@pytest.mark.parametrize(
    "code",
    [
        control.ERROR_AUTH_FAILED,
        control.ERROR_CREDENTIAL_EXPIRED,
        control.ERROR_CREDENTIAL_REVOKED,
        control.ERROR_UNKNOWN_ROOT,
        control.ERROR_BAD_MESSAGE,
    ],
)
def test_a_refused_credential_stops_the_retries(code: str) -> None:
    core = ClientSessionCore(*_ALICE)
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    answer = core.login_answer(control.Error(code=code, text="enroll again"))
    assert answer == Refused(code, "enroll again", retry=False)
    assert not core.may_retry and core.refused == events.LoginRefused(code, "enroll again")
    with pytest.raises(RuntimeError, match="refused"):
        core.connection_opened()


@pytest.mark.parametrize("code", [control.ERROR_INTERNAL, control.ERROR_RATE_LIMITED])
def test_a_login_refused_for_now_is_retried(code: str) -> None:
    """ "server storage error: try again" must not silence a radio for good."""
    core = ClientSessionCore(*_ALICE)
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    answer = core.login_answer(control.Error(code=code, text="try again"))
    assert isinstance(answer, Refused) and answer.retry
    assert core.may_retry and core.refused is None and core.phase is Phase.DISCONNECTED
    core.connection_opened()  # the next attempt


def test_logged_in_elsewhere_stops_the_retries() -> None:
    core = logged_in()
    error = control.Error(code=control.ERROR_LOGGED_IN_ELSEWHERE, text="report the device")
    effects = core.receive(error)
    assert emitted(effects) == [
        events.LoginRefused(control.ERROR_LOGGED_IN_ELSEWHERE, "report the device"),
        error,
    ]
    assert not core.may_retry
    core.connection_lost()
    assert not core.may_retry


def test_other_errors_are_reported_and_the_session_goes_on() -> None:
    core = logged_in()
    error = control.Error(code=control.ERROR_FORBIDDEN, text="only a dispatcher may")
    assert core.receive(error) == [Emit(error)]
    assert core.may_retry and core.logged_in


# --- which messages mean something ------------------------------------------------------------


def test_nothing_is_accepted_before_login() -> None:
    core = ClientSessionCore(*_ALICE)
    core.connection_opened()
    effects = core.receive(granted())
    assert [type(e) for e in effects] == [Dropped]
    assert core.floors == {}


@pytest.mark.parametrize(
    "message",
    [
        control.FloorRequest(channel_id=CH, priority=4),
        control.Affiliate(channel_id=CH),
        control.TextSend(message_id=b"m" * 16, to_channel=CH, sealed=b"x"),
        control.Login(credential=b"c", signature=b"s", client_nonce=CLIENT_NONCE),
        hello(),
        login_ok(),
    ],
)
def test_what_only_a_client_sends_is_dropped_after_login(message: control.Message) -> None:
    core = logged_in()
    effects = core.receive(message)
    assert [type(e) for e in effects] == [Dropped]
    assert core.affiliated == set() and core.phase is Phase.LOGGED_IN


def test_each_message_goes_where_it_belongs() -> None:
    core = logged_in()
    deliver = control.TextDeliver(
        message_id=b"m" * 16, from_user="bob", to_user="alice", sealed=b"x", sent_at=1.0
    )
    stored = control.TextReceipt(message_id=b"s" * 16, kind=control.RECEIPT_STORED, by_user="alice")
    read = control.TextReceipt(message_id=b"s" * 16, kind=control.RECEIPT_READ, by_user="bob")
    roster = control.RosterUpdate(channel_id=CH, version=2, signed_roster=b"r")
    assert core.receive(control.MediaTunnel(datagram=b"d" * 20)) == [MediaArrived(b"d" * 20)]
    assert core.receive(control.Pong(nonce=9)) == [PongArrived(9), Emit(control.Pong(nonce=9))]
    assert core.receive(deliver) == [TextArrived(deliver), Emit(deliver)]
    assert core.receive(stored) == [TextStored(b"s" * 16), Emit(stored)]
    assert core.receive(read) == [Emit(read)]
    assert core.receive(roster) == [KeyMaterial(roster), Emit(roster)]


def test_channels_and_affiliations_follow_the_server() -> None:
    core = logged_in()
    info = control.ChannelInfo(channel_id=CH, name="patrol")
    core.receive(control.ChannelList(channels=(info,)))
    core.receive(control.ChannelCreated(channel_id=OTHER, name="incident-1"))
    assert core.channels == {CH: "patrol", OTHER: "incident-1"}
    core.affiliate(CH)
    core.affiliate(OTHER, select=False)
    assert core.selected == CH
    core.receive(control.Deaffiliated(channel_id=CH, reason="at your request"))
    assert CH in core.affiliated  # a late answer to our own leave must not undo a re-join
    core.receive(control.Deaffiliated(channel_id=OTHER, reason="removed from the roster"))
    assert core.affiliated == {CH}


PATCH = 9
T0 = 1_000_000.0


def order(linked: tuple[int, ...] = (CH, OTHER), at: float = T0) -> PatchOrder:
    """An order as the core gets it, checked already (the rosters are the key ring's part)."""
    rosters = (bytes(32),) * (1 + len(linked))
    return PatchOrder(PATCH, linked, at, at + MAX_PATCH_LIFETIME, rosters)


def test_a_patch_message_is_followed_only_once_its_order_is_checked() -> None:
    core = logged_in()
    core.affiliate(CH)
    patch = control.Patch(channel_id=PATCH, linked=(CH, OTHER))
    effects = core.receive(patch)
    assert [e.message for e in effects if isinstance(e, PatchArrived)] == [patch]
    assert sent(effects) == [] and core.transmit_channel(None) == CH


def test_a_patch_listens_on_the_patch_and_talks_there_without_leaving_the_channel() -> None:
    core = logged_in()
    core.affiliate(CH)
    effects = core.follow_patch(order())
    assert sent(effects) == [control.Affiliate(channel_id=PATCH)]  # not selected
    assert core.selected == CH and core.affiliated == {CH, PATCH}
    assert core.transmit_channel(None) == PATCH == core.transmit_channel(CH)
    assert floor_requests(core.press(core.transmit_channel(None) or 0))[0].channel_id == PATCH
    # Unpatched with the key down: let go of the patch's floor, leave it, talk on CH again.
    effects = core.receive(control.Unpatch(channel_id=PATCH))
    assert sent(effects) == [
        control.FloorRelease(channel_id=PATCH),
        control.Deaffiliate(channel_id=PATCH),
    ]
    assert core.selected == CH and core.transmit_channel(None) == CH
    assert core.affiliated == {CH}
    # A relay replaying the (still unexpired) order of the ended patch is not followed.
    replayed = core.follow_patch(order(at=T0 + 1))
    assert sent(replayed) == [] and core.transmit_channel(None) == CH
    assert [type(e) for e in emitted(replayed)] == [events.PatchRefused]


def test_a_patch_of_channels_the_radio_is_not_on_changes_nothing() -> None:
    core = logged_in()
    core.affiliate(CH)
    assert sent(core.follow_patch(order((OTHER, 10)))) == []
    assert core.transmit_channel(None) == CH
    # ...until it joins one of them (affiliating later joins the patch too).
    assert sent(core.affiliate(OTHER, select=False))[-1] == control.Affiliate(channel_id=PATCH)
    assert core.transmit_channel(OTHER) == PATCH and core.transmit_channel(CH) == CH


def test_an_order_nobody_renews_lapses_and_a_dispatcher_renews_at_half_life() -> None:
    core = logged_in()
    core.affiliate(CH)
    first = order()
    core.follow_patch(first)
    assert core.patches_to_renew(T0 + 3000) == []  # an officer never renews
    assert core.expire_patches(first.expires_at - 1) == []
    assert sent(core.expire_patches(first.expires_at)) == [control.Deaffiliate(channel_id=PATCH)]
    assert core.transmit_channel(None) == CH
    # A lapsed patch is not "ended": a dispatcher's fresh order is followed again.
    assert sent(core.follow_patch(order(at=first.expires_at + 5)))
    dispatcher = logged_in(_DISP)
    dispatcher.affiliate(CH)
    dispatcher.follow_patch(first)
    half_life = (first.issued_at + first.expires_at) / 2
    assert dispatcher.patches_to_renew(half_life - 1) == []
    assert dispatcher.patches_to_renew(half_life) == [first]  # to replace with a fresh one
    assert dispatcher.patches_to_renew(half_life + 1) == []  # sent; not again at once
    renewal = order(at=half_life)
    # The renewal coming back moves the expiry; an older order replayed does nothing.
    assert dispatcher.follow_patch(renewal) == [] and dispatcher.follow_patch(first) == []
    assert dispatcher.expire_patches(first.expires_at) == []


def test_a_patch_whose_roster_changed_is_held_until_a_new_order() -> None:
    core = logged_in()
    core.affiliate(CH)
    first = order()
    core.follow_patch(first)
    core.press(PATCH)
    effects = core.hold_patch(PATCH, "the roster changed")
    # Off the air on the patch at once, back on our own channel, and told why.
    assert sent(effects) == [
        control.FloorRelease(channel_id=PATCH),
        control.Deaffiliate(channel_id=PATCH),
    ]
    assert [type(e) for e in emitted(effects)] == [events.PatchRefused]
    assert core.transmit_channel(None) == CH and core.hold_patch(PATCH, "again") == []
    assert core.patches_to_renew(T0 + 1) == []  # an officer waits for a dispatcher's order
    assert sent(core.follow_patch(order(at=T0 + 2))) == [control.Affiliate(channel_id=PATCH)]
    # A dispatcher re-signs a held patch at once, not at half-life; it lapses unrenewed.
    dispatcher = logged_in(_DISP)
    dispatcher.affiliate(CH)
    dispatcher.follow_patch(first)
    dispatcher.hold_patch(PATCH, "the roster changed")
    assert dispatcher.patches_to_renew(T0 + 1) == [first]
    dispatcher.expire_patches(first.expires_at)
    assert dispatcher.patches_to_renew(first.expires_at + RENEW_RETRY) == []


def test_made_up_ends_and_deletions_do_not_push_out_a_real_end() -> None:
    core = logged_in()
    core.affiliate(CH)
    core.follow_patch(order())
    core.receive(control.Unpatch(channel_id=PATCH))
    for n in range(3 * ENDED_PATCHES):
        core.receive(control.Unpatch(channel_id=1000 + n))
        core.receive(control.ChannelDeleted(channel_id=5000 + n))
    replayed = core.follow_patch(order(at=T0 + 1))
    assert [type(e) for e in emitted(replayed)] == [events.PatchRefused]
    # A deleted channel's order is a replay too, though this radio never followed it.
    core.receive(control.ChannelDeleted(channel_id=PATCH + 1))
    other = msgspec.structs.replace(order(), patch_channel=PATCH + 1)
    assert [type(e) for e in emitted(core.follow_patch(other))] == [events.PatchRefused]


def test_after_a_reconnect_only_the_patches_the_server_repeats_are_kept() -> None:
    core = logged_in()
    core.affiliate(CH)
    core.follow_patch(order())
    core.connection_lost()
    core.connection_opened()
    core.hello(hello(), FINGERPRINT, CLIENT_NONCE)
    login = core.login_answer(login_ok())
    assert isinstance(login, LoggedIn)
    assert sent(login.effects) == [
        control.Affiliate(channel_id=CH),
        control.SelectChannel(channel_id=CH),
    ]  # not the patch's channel: the patch may have ended while we were away
    assert core.transmit_channel(None) == CH


def test_a_deleted_channel_is_forgotten() -> None:
    core = logged_in()
    core.affiliate(CH)
    core.receive(control.ChannelDeleted(channel_id=CH, name="patrol"))
    assert CH not in core.affiliated and CH not in core.channels and core.selected is None


def test_the_radios_own_alert_gives_emergency_priority_until_cancelled() -> None:
    core = logged_in()
    assert core.default_priority() == 1
    assert logged_in(_DISP).default_priority() == 2
    alert = control.EmergencyAlert(
        alert_id=b"a" * 16, user_id="alice", channel_id=CH, raised_at=1.0
    )
    core.receive(alert)  # e.g. after a restart of this radio: the server still has it
    assert core.emergency_alert == b"a" * 16 and core.default_priority() == 4
    assert floor_requests(core.press(CH)) == [control.FloorRequest(channel_id=CH, priority=4)]
    core.receive(control.EmergencyCancel(alert_id=b"a" * 16, by_user="disp"))
    assert core.emergency_alert is None
    others = control.EmergencyAlert(alert_id=b"b" * 16, user_id="bob", channel_id=CH, raised_at=1)
    core.receive(others)
    assert core.emergency_alert is None


def test_an_imminent_peril_gives_the_level_below_emergency_and_an_emergency_press_raises_it() -> (
    None
):
    core = logged_in()
    peril = control.EmergencyAlert(
        alert_id=b"p" * 16, user_id="alice", channel_id=CH, raised_at=1.0, kind="imminent_peril"
    )
    assert sent(core.raise_emergency(peril)) == [peril]
    assert core.default_priority() == 3
    emergency = control.EmergencyAlert(
        alert_id=b"e" * 16, user_id="alice", channel_id=CH, raised_at=2
    )
    core.raise_emergency(emergency)
    assert core.default_priority() == 4
    core.raise_emergency(peril)  # a peril press never makes an emergency less
    assert core.default_priority() == 4
    # The server's record is what counts (it merged the presses into one alert).
    core.receive(control.EmergencyAlert(alert_id=b"p" * 16, user_id="alice", channel_id=CH,
                                         raised_at=1.0, kind="imminent_peril"))  # fmt: skip
    assert core.default_priority() == 3
    core.receive(control.EmergencyCancel(alert_id=b"p" * 16, by_user="alice"))
    assert core.default_priority() == 1


# --- the floor: one TS 24.380 participant per channel -----------------------------------------


def test_press_grant_talk_release() -> None:
    core = logged_in()
    assert sent(core.press(CH)) == [control.FloorRequest(channel_id=CH, priority=1)]
    assert core.floors[CH].state == "requested" and core.ptt_down(CH)
    assert core.press(CH) == []  # a held key never asks twice
    effects = core.receive(granted(5))
    assert effects == [BurstStarted(CH, 5), Emit(granted(5))]
    assert core.talking_burst(CH) == 5 and core.floors[CH].state == "granted"
    assert core.floors[CH].talker == "alice" and core.floors[CH].burst_id == 5
    assert core.release(CH) == [
        BurstEnded(CH, 5, "released"),
        Send(control.FloorRelease(channel_id=CH)),
    ]
    assert core.talking_burst(CH) is None and not core.ptt_down(CH)
    assert core.release(CH) == []  # the key is up already


def test_a_pre_empted_radio_that_lets_go_sends_nothing_and_stays_off_the_air() -> None:
    """Issue 10 through the session: talk, be pre-empted by an emergency, let go of PTT."""
    core = logged_in(_DISP)
    story = core.press(CH)
    story += core.receive(granted(11))
    revoke = control.FloorRevoke(channel_id=CH, cause="Media Burst pre-empted")
    effects = core.receive(revoke)
    # TS 24.380 6.2.4.5.4: stop sending (the tail is signed), release, report.
    assert effects == [
        HeardBurstOver(CH, released=False),
        BurstEnded(CH, 11, "Media Burst pre-empted"),
        Send(control.FloorRelease(channel_id=CH)),
        Emit(revoke),
    ]
    assert core.floors[CH].state == "revoked" and core.floors[CH].cause == revoke.cause
    assert core.talking_burst(CH) is None and core.ptt_down(CH)
    emergency = taken("bob", 12, priority=4)
    story += effects + core.receive(emergency)
    assert core.floors[CH].state == "taken" and core.floors[CH].talker == "bob"
    assert core.keys_down() == [CH]
    assert core.release(CH) == []  # Space: "stop" lets go of the key, and that is all
    story += core.receive(control.FloorIdle(channel_id=CH))
    assert floor_requests(story) == [control.FloorRequest(channel_id=CH, priority=2)]
    assert core.floors[CH].state == "idle" and core.keys_down() == []


def test_a_floor_answer_that_does_not_fit_is_dropped_unreported() -> None:
    """A grant nobody asked for must not show "talking" nor play the talk-permit tone."""
    core = logged_in()
    for stray in (
        granted(3),
        control.FloorDeny(channel_id=CH, cause="Queue full"),
        control.FloorQueuePosition(channel_id=CH, position=2),
        control.FloorRevoke(channel_id=CH, cause="Media Burst pre-empted"),
    ):
        effects = core.receive(stray)
        assert [type(e) for e in effects] == [Dropped], stray
        assert core.floors[CH].state == "idle" and core.talking_burst(CH) is None


def test_a_grant_after_the_cancel_is_not_used() -> None:
    core = logged_in()
    core.press(CH)
    core.receive(control.FloorQueuePosition(channel_id=CH, position=1))
    assert core.floors[CH].state == "queued" and core.floors[CH].queue_position == 1
    assert sent(core.release(CH)) == [control.FloorRelease(channel_id=CH)]  # cancels
    effects = core.receive(granted(4))  # crossed our release: the server frees it on that
    assert [type(e) for e in effects] == [Dropped] and core.talking_burst(CH) is None


def test_deny_keeps_the_key_down_and_letting_go_sends_nothing() -> None:
    core = logged_in()
    core.press(CH)
    deny = control.FloorDeny(channel_id=CH, cause="Queue full")
    assert core.receive(deny) == [Emit(deny)]
    assert core.floors[CH].state == "denied" and core.ptt_down(CH)
    assert core.release(CH) == []
    assert core.floors[CH].state == "idle"


def test_other_talkers_are_heard_on_each_channel_apart() -> None:
    core = logged_in()
    bob = taken("bob", 3)
    assert core.receive(bob) == [TalkerNamed(bob), Emit(bob)]
    view = core.floors[CH]
    assert (view.state, view.talker, view.talker_name, view.burst_id) == ("taken", "bob", "Bob", 3)
    assert OTHER not in core.floors
    idle = control.FloorIdle(channel_id=CH)
    assert core.receive(idle) == [HeardBurstOver(CH, released=True), Emit(idle)]
    assert core.floors[CH].state == "idle" and core.floors[CH].talker is None


def test_a_dropped_connection_ends_our_burst_and_what_we_heard() -> None:
    core = logged_in()
    core.press(CH)
    core.receive(granted(6))
    core.receive(taken("bob", 2, channel=OTHER))
    effects = core.connection_lost()
    assert effects == [BurstEnded(CH, 6, "link lost")]
    assert core.floors[CH].state == "idle" and core.talking_burst(CH) is None
    assert core.floors[OTHER].state == "idle" and core.floors[OTHER].talker is None
    assert core.ptt_down(CH)  # the officer still holds the key ...
    assert core.release(CH) == []  # ... and letting go of it sends nothing


def _raised(core: ClientSessionCore, alert_id: bytes = b"a" * 16) -> None:
    core.raise_emergency(
        control.EmergencyAlert(alert_id=alert_id, user_id="alice", channel_id=CH, raised_at=1.0)
    )


def test_a_cancel_ends_the_radios_alert_only_when_the_server_confirms_it() -> None:
    core = logged_in()
    _raised(core)
    sent = core.cancel_emergency(None)
    assert [e.message for e in sent if isinstance(e, Send)] == [
        control.EmergencyCancel(alert_id=b"a" * 16, by_user="alice")
    ]
    assert core.emergency_alert == b"a" * 16 and core.default_priority() == 4  # still active
    core.receive(control.EmergencyCancel(alert_id=b"b" * 16, by_user="disp"))  # someone else's
    assert core.emergency_alert == b"a" * 16
    core.receive(control.EmergencyCancel(alert_id=b"a" * 16, by_user="alice"))
    assert core.emergency_alert is None and core.default_priority() == 1


def test_a_refused_cancel_leaves_the_alert_active_and_a_cancel_of_nothing_ends_it() -> None:
    core = logged_in()
    _raised(core)
    core.cancel_emergency(None)
    core.receive(control.Error(code=control.ERROR_RATE_LIMITED, text="slow down"))
    assert core.emergency_alert == b"a" * 16  # the server keeps it: so does the radio
    core.receive(control.Error(code=control.ERROR_NOT_FOUND, text="no such user"))
    assert core.emergency_alert == b"a" * 16  # no cancel outstanding: not the cancel's answer
    core.cancel_emergency(None)
    core.receive(control.Error(code=control.ERROR_NOT_FOUND, text="no such emergency"))
    assert core.emergency_alert is None  # the server holds no such alert: nothing is active


def test_a_press_after_a_cancel_is_a_new_alert_no_late_refusal_ends() -> None:
    core = logged_in()
    _raised(core)
    core.cancel_emergency(None)
    _raised(core, b"c" * 16)
    core.receive(control.Error(code=control.ERROR_NOT_FOUND, text="no such emergency"))
    assert core.emergency_alert == b"c" * 16
