"""What ``ptt-radio`` tells its officer, as pure code: which trust events concern the
officer (:mod:`ptt_client.radio.trust_notes`), the link, media and floor notes
(:mod:`ptt_client.radio.session_notes`), and the ``--json`` encoding of a note."""

from __future__ import annotations

import json
import math

import pytest

from crypto.identity import OrgRoot
from ptt_client import events
from ptt_client.audio import NullOutput
from ptt_client.client import RadioClient
from ptt_client.radio.display import Display
from ptt_client.radio.json_events import encode_note
from ptt_client.radio.notes import Note, note
from ptt_client.radio.session_notes import SessionNotes
from ptt_client.radio.trust_notes import trust_note
from ptt_client.voice import Player
from ptt_protocol import control
from tests.credentials import bundle_for, issue

URL = "wss://relay.example.org:7300"
NAMES = {1: "patrol", 2: "north"}


def name(channel_id: int) -> str:
    return NAMES.get(channel_id, str(channel_id))


def told(event: object, me: str = "alice") -> str | None:
    found = trust_note(event, me, name)
    return found.text if found is not None else None


# --- trust events: what concerns this officer ------------------------------------------------


def test_other_people_s_revoked_credentials_are_not_shown() -> None:
    revoked = events.CredentialRefused("o.blanc", "revoked", "credential for 'o.blanc' ...")
    assert told(revoked) is None
    mine = events.CredentialRefused("alice", "expired", "credential for 'alice' expired")
    assert told(mine) == (
        "WARNING: the server sent this radio's own credential and it did not verify:"
        " credential for 'alice' expired"
    )


def test_my_own_revocation_is_shown_with_what_to_do() -> None:
    line = told(events.CredentialRevoked("alice", 2, "alice-phone"))
    assert line is not None
    assert "this device's credential (serial 2, device 'alice-phone') is revoked" in line
    assert "`ptt-admin enroll alice`" in line


def test_a_stale_roster_is_silent_unless_it_would_change_me() -> None:
    stale = events.RosterRefused(1, 2, "not newer than version 3", older=True, changes_me=False)
    assert told(stale) is None
    rollback = events.RosterRefused(1, 2, "not newer", older=True, changes_me=True)
    assert told(rollback) == (
        "WARNING: roster version 2 for patrol refused, the one held stays: not newer"
    )
    forged = events.RosterRefused(1, 5, "bad signature", older=False, changes_me=False)
    assert "bad signature" in (told(forged) or "")


def test_roster_changes_say_who_and_above_all_me() -> None:
    assert told(events.RosterChanged(1, 2, added=(), removed=())) is None  # a rekey only
    assert told(events.RosterChanged(1, 3, added=("bob",), removed=("o.blanc", "carol"))) == (
        "roster of patrol (version 3): joined: bob; left: o.blanc, carol"
    )
    off = trust_note(events.RosterChanged(1, 4, added=(), removed=("alice",)), "alice", name)
    assert off is not None and off.event == "roster_removed"
    assert off.text.startswith("you are off the roster of patrol (version 4)")
    on = trust_note(events.RosterChanged(2, 1, added=("alice",), removed=()), "alice", name)
    assert on is not None and on.event == "roster_added"


def test_other_events_are_not_trust_events() -> None:
    assert told(control.FloorIdle(channel_id=1)) is None


# --- the session ------------------------------------------------------------------------------


def session(*, headless: bool = True, use_udp: bool = True) -> SessionNotes:
    return SessionNotes("alice", lambda: URL, name, headless=headless, use_udp=use_udp)


def texts(notes: SessionNotes, *happened: object) -> list[str]:
    return [found.text for event in happened for found in notes.notes(event)]


def test_a_server_never_reached_is_not_a_lost_link() -> None:
    notes = session()
    refused = events.Disconnected("Connection refused")
    assert texts(notes, refused, refused, refused) == [
        f"cannot reach the server at {URL} (Connection refused): retrying"
    ]
    assert not notes.logged_in


def test_login_then_a_lost_link_then_back() -> None:
    notes = session()
    lines = texts(
        notes,
        events.MediaPath("udp"),  # the client reports it just before the login
        events.Connected("alice", 3, reconnect=False),
        events.Disconnected("the server closed the connection"),
        events.Disconnected("Connection refused"),
        events.MediaPath("tunnel"),
        events.Connected("alice", 4, reconnect=True),
        events.MediaPath("tunnel"),
    )
    assert lines == [
        f"logged in to {URL} as alice",
        "media: UDP, direct to the relay",
        f"link to {URL} lost (the server closed the connection): reconnecting",
        f"link to {URL} restored",
        "media: tunnel inside the TLS connection (UDP did not get through)",
    ]
    assert notes.logged_in


def test_the_tunnel_asked_for_says_so() -> None:
    notes = session(use_udp=False)
    found = texts(notes, events.Connected("alice", 1, False), events.MediaPath("tunnel"))
    assert found[-1] == "media: tunnel inside the TLS connection (--no-udp)"


def test_a_refused_login_is_the_program_s_error_until_the_radio_was_in() -> None:
    notes = session()
    refused = events.LoginRefused(control.ERROR_CREDENTIAL_REVOKED, "revoked")
    assert texts(notes, refused) == []  # the one-line error on stderr says it
    notes.notes(events.Connected("alice", 1, False))
    assert texts(notes, refused) == [f"login refused by {URL}: revoked"]


def _taken(user: str, burst: int, priority: int = 1) -> control.FloorTaken:
    return control.FloorTaken(
        channel_id=1,
        user_id=user,
        display_name=user.title(),
        priority=priority,
        burst_id=burst,
        since=1.8e9,
    )


def test_headless_the_floor_and_the_talker_are_told() -> None:
    notes = session()
    lines = texts(
        notes,
        control.Affiliated(channel_id=1, name="patrol"),
        control.Affiliated(channel_id=1, name="patrol"),  # again after a reconnect
        _taken("bob", 7),
        events.TalkerVerified(1, "bob", "Bob", 7),
        events.TalkerVerified(1, "bob", "Bob", 7),  # a statement every few frames
        control.FloorIdle(channel_id=1),
        control.FloorQueuePosition(channel_id=1, position=2),
        control.FloorGranted(channel_id=1, burst_id=8, duration_limit=30.0),
        _taken("alice", 8),  # the server tells the talker too: granted said it
        control.FloorIdle(channel_id=1),
        control.FloorDeny(channel_id=1, cause="Floor busy"),
        _taken("carol", 9, priority=control.PRIORITY_MAX),
        control.FloorRevoke(channel_id=1, cause="Media burst pre-empted"),
        control.Deaffiliated(channel_id=1, reason="removed from the channel roster"),
    )
    assert lines == [
        "joined patrol",
        "Bob (bob) talking on patrol",
        "bob's voice on patrol verified (signed by their device)",
        "bob stopped talking on patrol",
        "floor queued on patrol: position 2",
        "floor granted on patrol: talk (at most 30 s)",
        "floor idle on patrol",
        "floor denied on patrol: Floor busy",
        "Carol (carol) talking on patrol - EMERGENCY priority",
        "floor revoked on patrol: Media burst pre-empted",
        "left patrol (removed from the channel roster)",
    ]


def test_on_a_terminal_the_status_line_shows_the_floor() -> None:
    notes = session(headless=False)
    lines = texts(
        notes,
        events.MediaPath("udp"),
        events.Connected("alice", 1, False),
        control.Affiliated(channel_id=1, name="patrol"),
        _taken("bob", 7),
        control.FloorIdle(channel_id=1),
        control.FloorRevoke(channel_id=1, cause="Media burst too long"),
        control.Deaffiliated(channel_id=2, reason="at your request"),
    )
    assert lines == [
        f"logged in to {URL} as alice",
        "floor revoked on patrol: Media burst too long",  # the radio was cut off: told
    ]


def test_a_lost_link_forgets_the_talker() -> None:
    notes = session()
    notes.notes(events.Connected("alice", 1, False))
    notes.notes(_taken("bob", 7))
    notes.notes(events.Disconnected("reset"))
    assert texts(notes, control.FloorIdle(channel_id=1)) == ["floor idle on patrol"]


# --- JSON ---------------------------------------------------------------------------------


def test_a_note_as_json() -> None:
    found = note(
        "text",
        "text from bob (direct): hi",
        channel=None,
        message_id=b"\x00\xff",
        added=("a", "b"),
        loss=math.nan,
        text="hi é",
    )
    line = encode_note(found, 1_767_225_600.1234)
    assert "\n" not in line
    assert json.loads(line) == {
        "t": 1_767_225_600.123,
        "event": "text",
        "channel": None,
        "message_id": "00ff",
        "added": ["a", "b"],
        "loss": None,
        "text": "hi é",
    }
    assert line.startswith('{"t": 1767225600.123, "event": "text", ')


def test_a_note_cannot_shadow_the_time_or_the_name() -> None:
    with pytest.raises(ValueError, match="reserved"):
        Note("floor_idle", "x", {"t": 1})
    with pytest.raises(ValueError, match="reserved"):
        note("floor_idle", "x", event="other")


# --- what the radio hears: acknowledgements ----------------------------------------------------


def test_an_acknowledgement_names_whose_emergency_it_is() -> None:
    root = OrgRoot.generate()
    issued = issue(root, "alice", serial=1)
    client = RadioClient(bundle_for(root, issued), issued[0])  # never started: no I/O
    display = Display(client, Player(client, NullOutput()))
    carols, mine = b"\x01" * 16, b"\x02" * 16
    alert = control.EmergencyAlert(alert_id=carols, user_id="carol", channel_id=1, raised_at=1.8e9)
    assert display.event_line(alert) == "EMERGENCY: carol on 1"
    ack = display.event_note(control.EmergencyAck(alert_id=carols, by_user="disp"))
    assert ack is not None and ack.text == "emergency of carol acknowledged by disp"
    assert (ack.event, ack.fields["user"], ack.fields["by"]) == (
        "emergency_acknowledged",
        "carol",
        "disp",
    )
    client.core.emergency_alert = mine  # as raise_emergency() leaves it
    assert display.event_line(control.EmergencyAck(alert_id=mine, by_user="disp")) == (
        "your emergency acknowledged by disp"
    )


def test_a_patch_says_where_ptt_talks_also_on_a_terminal() -> None:
    notes = session(headless=False)
    lines = texts(
        notes,
        control.Patch(channel_id=9, linked=(1, 2), by_user="disp"),
        control.Unpatch(channel_id=9),
        events.PatchRefused(9, "patch order expired"),
        control.ChannelDeleted(channel_id=9, name="patrol+traffic"),
    )
    assert lines == [
        f"{name(1)} + {name(2)} patched by disp: you hear them all, and PTT talks to them all"
        f" on {name(9)}",
        f"patch {name(9)} ended: PTT talks on your own channel",
        f"patch {name(9)} not followed (patch order expired): PTT stays on your own channel",
        "channel patrol+traffic deleted",
    ]
