"""Which bursts a radio plays, and what it shows as verified (ptt_client.bursts via the Keyring).

Pure: the keyrings of tests/ptt_client/keyring_org.py (real crypto, real roster,
envelopes and credentials, no server), time passed in. Alice talks, bob listens; bob's
keyring is also the forger's (he holds the epoch key).
"""

from __future__ import annotations

from typing import Any

from crypto.keyring import FrameSealer
from ptt_client import events
from ptt_client.bursts import ENDED_GRACE, ENDED_LIMIT, UNVERIFIED_AFTER, BurstTracker
from ptt_client.e2e import EARLY_FRAME_TTL, Keyring
from ptt_protocol import media
from tests.credentials import issue
from tests.ptt_client.keyring_org import ALICE, BOB, CHANNEL, ROOT, T0, joined_keyring

B1, B2, B3 = 11, 12, 13
SIGNATURE_BASE = 1 << 31


def of(kind: type[Any], reported: list[object]) -> list[Any]:
    return [e for e in reported if isinstance(e, kind)]


def played(reported: list[object]) -> list[tuple[str, bytes]]:
    return [(e.talker, e.opus) for e in of(events.VoiceFrame, reported)]


class Talker:
    """Alice's radio: seals frames and signs statements for her bursts."""

    def __init__(self, started: float = T0) -> None:
        self.keyring = joined_keyring(ALICE, started)  # counters start from this clock
        self.statements = 0

    def start(self, burst: int) -> None:
        self.keyring.start_burst(CHANNEL, burst, T0)

    def frame(self, burst: int, sequence: int, words: bytes) -> bytes:
        return self.keyring.seal_voice(CHANNEL, burst, sequence, 0, words, T0)

    def statement(self, burst: int, *, end: bool = False) -> bytes:
        self.statements += 1
        inner = self.keyring.seal_signature(
            CHANNEL, burst, SIGNATURE_BASE + self.statements, end, T0
        )
        assert inner is not None
        return inner


def forged(burst: int, sequence: int, words: bytes, counter: int) -> bytes:
    """Bob seals under alice's KID (he holds the epoch key)."""
    bob = joined_keyring(BOB, T0)
    channel = bob.channels[CHANNEL]
    assert channel.roster is not None
    sealer = FrameSealer(
        bob.epoch_key(CHANNEL), channel.roster.sender_index("alice"), first_counter=counter
    )
    header = media.pack_inner(CHANNEL, burst, sequence, 0, b"")
    return header + sealer.seal(header, words, T0)


def alices_next_counter(alice: Talker) -> int:
    sealer = alice.keyring.channels[CHANNEL].sealer
    assert sealer is not None
    return sealer.next_counter


def listener() -> Keyring:
    return joined_keyring(BOB, T0)


# --- which burst a frame is played under ---------------------------------------------------------


def test_a_released_bursts_last_frames_play_briefly_then_its_frames_are_dropped_not_held() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    assert played(bob.open_media(alice.frame(B1, 0, b"one"), T0, {})) == [("alice", b"one")]
    bob.end_heard_burst(CHANNEL, T0 + 1, released=True)  # FloorIdle overtook her last frame
    late = bob.open_media(alice.frame(B1, 1, b"two"), T0 + 1 + ENDED_GRACE / 2, {})
    assert played(late) == [("alice", b"two")]
    after = T0 + 1 + ENDED_GRACE
    at = alices_next_counter(alice) + 5
    refused = bob.open_media(forged(B1, 2, b"as alice", at), after, {})
    assert played(refused) == []
    assert "has ended" in of(events.VoiceRejected, refused)[0].reason
    assert len(bob.channels[CHANNEL].early_frames) == 0  # dropped, not held for a FloorTaken


def test_a_pre_empted_burst_plays_no_more_voice_but_its_signed_tail_is_checked() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    assert played(bob.open_media(alice.frame(B1, 0, b"one"), T0, {})) == [("alice", b"one")]
    bob.expect_talker(CHANNEL, "disp", B2, T0 + 1)  # pre-emption: no FloorIdle
    counter = alices_next_counter(alice) + 5
    assert played(bob.open_media(forged(B1, 1, b"as alice", counter), T0 + 1, {})) == []
    assert played(bob.open_media(alice.frame(B1, 1, b"too late"), T0 + 1, {})) == []
    tail = bob.open_media(alice.statement(B1, end=True), T0 + 1 + ENDED_GRACE / 2, {})
    assert [(e.talker, e.burst_id) for e in of(events.TalkerVerified, tail)] == [("alice", B1)]
    assert bob.tick(T0 + 60) == []  # everything played was covered


def test_a_floor_taken_naming_a_burst_that_ended_here_plays_nothing_of_it() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.end_heard_burst(CHANNEL, T0 + 1, released=True)
    again = bob.expect_talker(CHANNEL, "alice", B1, T0 + 5)  # a replayed FloorTaken
    assert "already ended" in of(events.VoiceRejected, again)[0].reason
    assert played(bob.open_media(alice.frame(B1, 1, b"replayed"), T0 + 5, {})) == []


def test_early_frames_are_held_only_for_bursts_not_named_yet_each_with_its_own_age() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)  # one signer: sequences only rise, whatever burst the frames claim
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.end_heard_burst(CHANNEL, T0, released=False)
    assert bob.open_media(alice.frame(B2, 0, b"b2 early"), T0 + 10, {}) == []
    assert bob.open_media(alice.frame(B3, 1, b"b3 early"), T0 + 10, {}) == []
    refused = bob.open_media(alice.frame(B1, 5, b"b1 ended"), T0 + 10, {})
    assert of(events.VoiceRejected, refused) and len(bob.channels[CHANNEL].early_frames) == 2
    opened = bob.expect_talker(CHANNEL, "alice", B2, T0 + 10.5)
    assert played(opened) == [("alice", b"b2 early")]
    # B3's frame still waits, aged from its arrival (not from B2's FloorTaken).
    assert bob.expect_talker(CHANNEL, "alice", B3, T0 + 10 + EARLY_FRAME_TTL + 0.1) == []


def test_ended_burst_ids_are_remembered_within_a_bound() -> None:
    tracker = BurstTracker()
    for burst in range(ENDED_LIMIT + 10):
        assert tracker.name("alice", burst, T0) is not None
    assert not tracker.has_ended(0) and tracker.has_ended(ENDED_LIMIT + 8)


# --- verified means verified -------------------------------------------------------------------


def test_frames_covered_within_the_bound_verify_and_nothing_is_reported() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    for n in range(5):
        bob.open_media(alice.frame(B1, n, b"%d" % n), T0 + n * 0.02, {})
    verified = bob.open_media(alice.statement(B1), T0 + 1.0, {})
    assert [(e.talker, e.burst_id) for e in of(events.TalkerVerified, verified)] == [("alice", B1)]
    assert bob.tick(T0 + 60) == []


def test_audio_no_statement_covers_within_the_bound_is_reported_once_and_stays_unverified() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.open_media(alice.frame(B1, 0, b"zero"), T0, {})
    assert bob.tick(T0 + UNVERIFIED_AFTER - 0.01) == []
    reports = bob.tick(T0 + UNVERIFIED_AFTER)
    assert [(e.talker, e.burst_id) for e in of(events.TalkerUnverified, reports)] == [("alice", B1)]
    assert len(reports) == 1
    assert bob.tick(T0 + 30) == []  # once per burst
    # A statement that arrives later vouches for that frame, but the burst stays unverified.
    assert of(events.TalkerVerified, bob.open_media(alice.statement(B1), T0 + 3, {})) == []


def test_a_frame_slipped_in_under_a_sequence_no_statement_lists_makes_the_burst_unverified() -> (
    None
):
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.open_media(alice.frame(B1, 0, b"genuine"), T0, {})
    counter = alices_next_counter(alice) + 5
    slipped = bob.open_media(forged(B1, 999, b"slipped in", counter), T0 + 0.1, {})
    assert played(slipped) == [("alice", b"slipped in")]  # SFrame cannot tell (shared key)
    verified = bob.open_media(alice.statement(B1, end=True), T0 + 0.5, {})
    assert of(events.TalkerVerified, verified)  # her statement is good ...
    reports = of(events.TalkerUnverified, bob.tick(T0 + 0.1 + UNVERIFIED_AFTER))
    assert [(e.talker, e.burst_id) for e in reports] == [("alice", B1)]  # ... the burst is not
    assert "1 frame(s)" in reports[0].reason


def test_without_the_talkers_credential_the_audio_is_reported_unverified() -> None:
    alice, bob = Talker(), listener()
    del bob.credentials["alice"]
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    assert played(bob.open_media(alice.frame(B1, 0, b"zero"), T0, {})) == [("alice", b"zero")]
    assert bob.open_media(alice.statement(B1), T0 + 0.5, {}) == []  # nothing to check it with
    reports = of(events.TalkerUnverified, bob.tick(T0 + UNVERIFIED_AFTER))
    assert len(reports) == 1 and "no credential" in reports[0].reason


def test_a_frame_that_arrives_after_its_statement_with_another_hash_is_not_played() -> None:
    alice, bob = Talker(), listener()
    alice.start(B1)
    genuine = alice.frame(B1, 0, b"genuine")
    statement = alice.statement(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.open_media(statement, T0, {})  # reordered: the statement first
    counter = alices_next_counter(alice) + 5
    refused = bob.open_media(forged(B1, 0, b"substitute", counter), T0, {})
    assert played(refused) == []
    assert "not what 'alice' signed" in of(events.VoiceRejected, refused)[0].reason
    assert played(bob.open_media(genuine, T0, {})) == [("alice", b"genuine")]
    assert bob.tick(T0 + 60) == []


def test_a_new_session_reports_what_still_waited_and_forgets_burst_ids() -> None:
    """The server restarted: burst ids start again, and statements for what was played before
    can no longer arrive."""
    alice, bob = Talker(), listener()
    alice.start(B1)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    bob.open_media(alice.frame(B1, 0, b"before"), T0, {})
    bob.end_heard_burst(CHANNEL, T0 + 0.1, released=True)
    reports = bob.new_session()
    assert [e.burst_id for e in of(events.TalkerUnverified, reports)] == [B1]
    assert len(reports) == 1
    # Her radio restarted too: counters from its clock, 20 million past the old window's.
    restarted = Talker(started=T0 + 5)
    restarted.start(B1)
    assert of(events.VoiceRejected, bob.expect_talker(CHANNEL, "alice", B1, T0 + 5)) == []
    frame = restarted.frame(B1, 0, b"after")
    assert played(bob.open_media(frame, T0 + 5, {})) == [("alice", b"after")]


# --- the talker's credential is the one the roster pins ----------------------------------------


def test_a_statement_by_another_device_of_the_talker_never_makes_it_verified() -> None:
    """The relay hands the listener a valid credential of alice's *other* device (say her
    old, stolen phone): statements signed with that device's key must not vouch for audio
    played as alice, since the roster pins her current device (issue 10: removing this
    check went unnoticed)."""
    old_keys, old_phone = issue(ROOT, "alice", ALICE[1].role, serial=77, now=T0)
    thief = joined_keyring((old_keys, old_phone), T0)
    bob = listener()
    bob.add_credentials([old_phone.to_bytes()], T0)  # what a hostile relay supplies
    assert bob.credentials["alice"].fingerprint() == old_phone.fingerprint()
    thief.start_burst(CHANNEL, B1, T0)
    bob.expect_talker(CHANNEL, "alice", B1, T0)
    counter = 1 << 40
    frame = forged(B1, 0, b"as alice", counter)
    thief.channels[CHANNEL].signer.add(0, media.unpack_inner(frame).frame)  # type: ignore[union-attr]
    statement = thief.seal_signature(CHANNEL, B1, SIGNATURE_BASE + 1, True, T0)
    assert statement is not None
    reported = bob.open_media(frame, T0, {}) + bob.open_media(statement, T0, {})
    assert of(events.TalkerVerified, reported) == []
    assert played(reported) == []
    assert any("not the one on the roster" in e.reason for e in of(events.VoiceRejected, reported))


def test_early_frames_play_at_the_priority_floor_control_names() -> None:
    """Issue 10: frames that overtook their FloorTaken were played at priority 0, so an
    emergency's first words lost the mix to an ordinary talker on another channel."""
    alice, bob = Talker(), listener()
    alice.start(B1)
    early = bob.open_media(alice.frame(B1, 0, b"mayday"), T0, {})
    assert played(early) == []  # held: FloorTaken not here yet
    named = bob.expect_talker(CHANNEL, "alice", B1, T0 + 0.05, priority=4)
    assert [(e.opus, e.priority) for e in of(events.VoiceFrame, named)] == [(b"mayday", 4)]
    later = bob.open_media(alice.frame(B1, 1, b"again"), T0 + 0.1, {})
    assert [e.priority for e in of(events.VoiceFrame, later)] == [4]
