"""Adversarial tests for crypto.keyring: only the floor holder's fresh frames of a held epoch open."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.epoch import EpochKey, new_epoch_key
from crypto.errors import FrameError, KeyringError, ReplayError
from crypto.identity import Role
from crypto.keyring import (
    BURSTS_PER_SENDER,
    DEFAULT_GRACE,
    EPOCH_BITS,
    MAX_SPAN,
    PLAUSIBLE_JUMP,
    PLAUSIBLE_RATE,
    REPLAY_WINDOW,
    FrameOpener,
    FrameSealer,
    make_kid,
    sender_base_key,
    split_kid,
)
from crypto.roster import Member, Roster
from crypto.sframe import decode_header

CHANNEL = 9
BURST = 42
T0 = 1_000.0
OPUS = bytes(range(60))
NAMES = ("dispatch", "alice", "bob", "carol")


def meta(sequence: int, channel: int = CHANNEL, burst: int = BURST) -> bytes:
    """A media inner header as the caller would pass it (channel, burst, sequence, flags)."""
    return (
        channel.to_bytes(4, "big") + burst.to_bytes(4, "big") + sequence.to_bytes(4, "big") + b"\0"
    )


def roster(version: int, names: tuple[str, ...] = NAMES) -> Roster:
    members = tuple(Member(name, Role.OFFICER, os.urandom(32)) for name in names)
    return Roster(CHANNEL, version, members)


def opener_with(*keys: EpochKey, now: float = T0) -> FrameOpener:
    opener = FrameOpener()
    for key in keys:
        opener.add_epoch(key, now)
    return opener


@pytest.fixture
def key1() -> EpochKey:
    return new_epoch_key(CHANNEL, 1, 1)


@pytest.fixture
def key2() -> EpochKey:
    return new_epoch_key(CHANNEL, 2, 2)


# --- KIDs and keys -----------------------------------------------------------------------------


def test_kid_packing_is_rfc9605_mls_style() -> None:
    assert EPOCH_BITS == 4
    assert make_kid(0, 0) == 0
    assert make_kid(3, 1) == 0x31
    assert make_kid(199, 37) == 199 * 16 + 37 % 16
    assert split_kid(make_kid(199, 37)) == (199, 5)
    # A 200-member channel's KIDs fit in two header bytes.
    key = new_epoch_key(CHANNEL, 37, 1)
    frame = FrameSealer(key, 199).seal(meta(0), OPUS, T0)
    assert decode_header(frame).size == 1 + 2
    for bad in (-1, 2**60):
        with pytest.raises(KeyringError):
            make_kid(bad, 1)


def test_base_keys_differ_per_sender_epoch_and_channel(key1: EpochKey) -> None:
    other_channel = EpochKey(CHANNEL + 1, key1.epoch, key1.roster_version, key1.secret)
    other_epoch = EpochKey(CHANNEL, key1.epoch + 1, key1.roster_version, key1.secret)
    keys = {
        sender_base_key(key1, 0),
        sender_base_key(key1, 1),
        sender_base_key(other_channel, 0),
        sender_base_key(other_epoch, 0),
    }
    assert len(keys) == 4
    assert all(len(k) == 32 for k in keys)


def test_frame_round_trip_and_header_kid(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 2)
    opener = opener_with(key1)
    for sequence in range(20):
        frame = sealer.seal(meta(sequence), OPUS, T0)
        assert decode_header(frame).kid == (2 << 4) | 1
        assert opener.open(meta(sequence), frame, 2, T0, burst=BURST) == OPUS


# --- tampering, replay, counters ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag", "metadata"])
def test_tampered_frame_is_refused_and_changes_nothing(key1: EpochKey, where: str) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frame = sealer.seal(meta(5), OPUS, T0)
    bad = bytearray(frame)
    metadata = meta(5)
    if where == "metadata":
        metadata = meta(5, channel=CHANNEL + 1)
    else:
        size = decode_header(frame).size
        bad[{"header": 0, "ciphertext": size, "tag": len(bad) - 1}[where]] ^= 0x04
    with pytest.raises(FrameError):
        opener.open(metadata, bytes(bad), 1, T0, burst=BURST)
    # The genuine frame with that counter still opens: the failure left no trace.
    assert opener.open(meta(5), frame, 1, T0, burst=BURST) == OPUS


def test_replayed_frame_is_refused(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frames = [sealer.seal(meta(i), OPUS, T0) for i in range(5)]
    for i in (0, 3, 1, 4, 2):  # out of order inside the window is fine
        opener.open(meta(i), frames[i], 1, T0, burst=BURST)
    for i in range(5):
        with pytest.raises(ReplayError):
            opener.open(meta(i), frames[i], 1, T0, burst=BURST)


def test_frames_older_than_the_window_are_refused(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    old = sealer.seal(meta(0), OPUS, T0)
    late = [sealer.seal(meta(i), OPUS, T0) for i in range(1, REPLAY_WINDOW + 1)]
    opener.open(meta(REPLAY_WINDOW), late[-1], 1, T0, burst=BURST)
    with pytest.raises(ReplayError, match="too old"):
        opener.open(meta(0), old, 1, T0, burst=BURST)
    # The oldest counter still inside the window opens.
    assert opener.open(meta(1), late[0], 1, T0, burst=BURST) == OPUS


def test_forged_high_counter_cannot_push_the_window(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    genuine = sealer.seal(meta(0), OPUS, T0)
    attacker = FrameSealer(new_epoch_key(CHANNEL, 1, 1), 1, first_counter=10**9)
    with pytest.raises(FrameError):
        opener.open(meta(0), attacker.seal(meta(0), OPUS, T0), 1, T0, burst=BURST)
    assert opener.open(meta(0), genuine, 1, T0, burst=BURST) == OPUS


def test_one_forged_far_ahead_frame_cannot_silence_the_senders_later_bursts(
    key1: EpochKey,
) -> None:
    """Bob holds the epoch key and seals one frame under alice's KID with a counter a billion
    ahead, numbered as alice's burst 1 (a relay helped it through). Alice's later frames in
    burst 1 and her next burst still open: replay state is per sender and burst, and a
    counter no talker could reach by now is refused without moving it."""
    alice = FrameSealer(key1, 1)
    opener = opener_with(key1)
    assert opener.open(meta(0, burst=1), alice.seal(meta(0, burst=1), OPUS, T0), 1, T0, burst=1)
    bob = FrameSealer(key1, 1, first_counter=alice.next_counter + 10**9)
    with pytest.raises(ReplayError, match="no talker counts that fast"):
        opener.open(meta(1, burst=1), bob.seal(meta(1, burst=1), b"x", T0), 1, T0 + 1, burst=1)
    # In a burst alice never used, bob's frame is the first: it opens (the talker's own
    # burst statement then flags it), but that burst's window is the only one it moves.
    bob_first = bob.seal(meta(0, burst=7), b"x", T0)
    assert opener.open(meta(0, burst=7), bob_first, 1, T0 + 1, burst=7) == b"x"
    for sequence in range(1, 30):
        frame = alice.seal(meta(sequence, burst=1), OPUS, T0)
        assert opener.open(meta(sequence, burst=1), frame, 1, T0 + 1, burst=1) == OPUS
    for sequence in range(30):
        frame = alice.seal(meta(sequence, burst=2), OPUS, T0)
        assert opener.open(meta(sequence, burst=2), frame, 1, T0 + 2, burst=2) == OPUS


def test_the_plausibility_bound_grows_with_time_and_refusals_change_nothing(
    key1: EpochKey,
) -> None:
    opener = opener_with(key1)
    first = 5_000

    def frame_at(counter: int, sequence: int) -> bytes:
        return FrameSealer(key1, 1, first_counter=counter).seal(meta(sequence), OPUS, T0)

    assert opener.open(meta(0), frame_at(first, 0), 1, T0, burst=BURST) == OPUS
    with pytest.raises(ReplayError):
        opener.open(meta(1), frame_at(first + PLAUSIBLE_JUMP + 1, 1), 1, T0, burst=BURST)
    edge = first + PLAUSIBLE_JUMP
    assert opener.open(meta(2), frame_at(edge, 2), 1, T0, burst=BURST) == OPUS
    # The bound is measured from the burst's first frame, not from the newest: walking the
    # window forward frame by frame gets no further.
    with pytest.raises(ReplayError):
        opener.open(meta(3), frame_at(edge + 2, 3), 1, T0, burst=BURST)
    ten_s = first + PLAUSIBLE_JUMP + int(PLAUSIBLE_RATE * 10)
    with pytest.raises(ReplayError):
        opener.open(meta(4), frame_at(ten_s, 4), 1, T0 + 9.9, burst=BURST)
    assert opener.open(meta(4), frame_at(ten_s, 4), 1, T0 + 10, burst=BURST) == OPUS
    # A genuine frame the refused ones would have pushed out of the window still opens.
    assert opener.open(meta(5), frame_at(first + 1, 5), 1, T0 + 10, burst=BURST) == OPUS


def test_a_bursts_window_remembers_every_counter_up_to_its_span(key1: EpochKey) -> None:
    """Frames a forger took far ahead (within the bound) push none of the talker's own out;
    only a burst longer than MAX_SPAN counters slides its window."""
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frames = [sealer.seal(meta(n), OPUS, T0) for n in range(MAX_SPAN + 5)]

    def at(n: int) -> float:
        return T0 + n / 50  # a talker's 50 frames a second

    assert opener.open(meta(0), frames[0], 1, at(0), burst=BURST) == OPUS
    late = 2 * REPLAY_WINDOW  # taken 20 s early by a forger: allowed by the bound then
    assert opener.open(meta(late), frames[late], 1, at(0) + 20, burst=BURST) == OPUS
    for n in range(1, MAX_SPAN + 5):
        if n != late:
            assert opener.open(meta(n), frames[n], 1, at(n), burst=BURST) == OPUS
    with pytest.raises(ReplayError, match="too old"):
        opener.open(meta(4), frames[4], 1, at(MAX_SPAN + 5), burst=BURST)
    for n in (5, MAX_SPAN + 4):
        with pytest.raises(ReplayError, match="already received"):
            opener.open(meta(n), frames[n], 1, at(MAX_SPAN + 5), burst=BURST)


def test_windows_are_per_burst_but_a_frame_cannot_move_to_another_bursts_window(
    key1: EpochKey,
) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frame = sealer.seal(meta(0, burst=1), OPUS, T0)
    assert opener.open(meta(0, burst=1), frame, 1, T0, burst=1) == OPUS
    with pytest.raises(ReplayError):
        opener.open(meta(0, burst=1), frame, 1, T0, burst=1)
    # Presented as burst 2 (fresh window), it fails: the burst id is authenticated data.
    with pytest.raises(FrameError, match="authentication failed"):
        opener.open(meta(0, burst=2), frame, 1, T0, burst=2)


def test_replay_windows_are_kept_for_a_few_recent_bursts_per_sender(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frames = {}
    for burst in range(BURSTS_PER_SENDER + 1):
        frames[burst] = sealer.seal(meta(0, burst=burst), OPUS, T0)
        opener.open(meta(0, burst=burst), frames[burst], 1, T0, burst=burst)
    # The newest BURSTS_PER_SENDER bursts still refuse their replays ...
    for burst in range(1, BURSTS_PER_SENDER + 1):
        with pytest.raises(ReplayError):
            opener.open(meta(0, burst=burst), frames[burst], 1, T0, burst=burst)
    # ... the oldest was forgotten (memory stays bounded); the radio plays only the burst
    # its floor control names, and never one it saw end (ptt_client.bursts).
    assert opener.open(meta(0, burst=0), frames[0], 1, T0, burst=0) == OPUS


def test_forget_bursts_keeps_keys_and_drops_windows(key1: EpochKey) -> None:
    """After a reconnect: the server may reuse burst ids and a restarted talker counts from
    its clock, far past the old window of a reused id."""
    opener = opener_with(key1)
    before = FrameSealer(key1, 1, first_counter=100)
    assert opener.open(meta(0), before.seal(meta(0), OPUS, T0), 1, T0, burst=BURST) == OPUS
    restarted = FrameSealer(key1, 1, first_counter=100 + 10**9)
    frame = restarted.seal(meta(0), OPUS, T0)
    with pytest.raises(ReplayError):
        opener.open(meta(0), frame, 1, T0 + 1, burst=BURST)
    opener.forget_bursts()
    assert opener.open(meta(0), frame, 1, T0 + 1, burst=BURST) == OPUS


def test_a_recording_opened_at_once_has_no_plausibility_bound(key1: EpochKey) -> None:
    """Instant recall opens a whole burst with one ``now``: 1,500 frames (30 s) all open."""
    sealer = FrameSealer(key1, 1)
    opener = FrameOpener(live=False)
    opener.add_epoch(key1, T0)
    for sequence in range(PLAUSIBLE_JUMP + 500):
        frame = sealer.seal(meta(sequence), OPUS, T0)
        assert opener.open(meta(sequence), frame, 1, T0, burst=BURST) == OPUS


def test_counter_is_never_reused_by_a_sealer(key1: EpochKey, key2: EpochKey) -> None:
    sealer = FrameSealer(key1, 1, switch_delay=0.0)
    seen: set[tuple[int, int]] = set()

    def seal_some(count: int, now: float) -> None:
        for _ in range(count):
            header = decode_header(sealer.seal(b"", OPUS, now))
            assert (header.kid, header.ctr) not in seen
            seen.add((header.kid, header.ctr))

    seal_some(3000, T0)
    # The client offers the same key again on every roster/envelope: no counter reset.
    assert not sealer.rekey(key1, 1, T0)
    seal_some(10, T0)
    # A roster change without a rekey moves us to index 2, then back to 1: continue, never restart.
    assert sealer.rekey(key1, 2, T0)
    seal_some(10, T0)
    assert sealer.rekey(key1, 1, T0)
    seal_some(10, T0)
    assert sealer.rekey(key2, 1, T0)
    seal_some(10, T0 + 1)
    assert len(seen) == 3040
    assert sealer.next_counter == 10


def test_restart_within_an_epoch_is_the_callers_job(key1: EpochKey) -> None:
    """Documented contract: persist next_counter, or get a new epoch, before talking again."""
    opener = opener_with(key1)
    first = FrameSealer(key1, 1)
    for i in range(3):
        opener.open(meta(i), first.seal(meta(i), OPUS, T0), 1, T0, burst=BURST)
    saved = first.next_counter
    # Restarting without the saved counter reuses counter 0 (a nonce reuse): receivers drop it.
    careless = FrameSealer(key1, 1)
    with pytest.raises(ReplayError):
        opener.open(meta(3), careless.seal(meta(3), OPUS, T0), 1, T0, burst=BURST)
    resumed = FrameSealer(key1, 1, first_counter=saved)
    assert opener.open(meta(4), resumed.seal(meta(4), OPUS, T0), 1, T0, burst=BURST) == OPUS


def test_counter_exhaustion_demands_a_rekey(key1: EpochKey) -> None:
    sealer = FrameSealer(key1, 1, first_counter=2**64 - 1)
    sealer.seal(b"", OPUS, T0)
    with pytest.raises(KeyringError, match="rekey"):
        sealer.seal(b"", OPUS, T0)


# --- epochs, rekey, removal ----------------------------------------------------------------------


def test_sender_switches_after_the_delay_and_no_burst_is_cut(
    key1: EpochKey, key2: EpochKey
) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    opener.add_epoch(key2, T0)  # receivers install first
    assert sealer.rekey(key2, 1, T0)
    assert not sealer.rekey(key2, 1, T0 + 0.9)  # offering it again does not postpone the switch
    assert sealer.pending_epoch == 2
    before = sealer.seal(meta(0), OPUS, T0 + 0.5)
    after = sealer.seal(meta(1), OPUS, T0 + 1.0)
    assert split_kid(decode_header(before).kid)[1] == 1
    assert split_kid(decode_header(after).kid)[1] == 2
    assert sealer.epoch == 2 and sealer.pending_epoch is None
    assert opener.open(meta(0), before, 1, T0 + 0.5, burst=BURST) == OPUS
    assert opener.open(meta(1), after, 1, T0 + 1.0, burst=BURST) == OPUS


def test_old_epoch_is_refused_after_the_grace(key1: EpochKey, key2: EpochKey) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    opener.add_epoch(key2, T0)
    in_grace = sealer.seal(meta(0), OPUS, T0)
    too_late = sealer.seal(meta(1), OPUS, T0)
    assert opener.open(meta(0), in_grace, 1, T0 + DEFAULT_GRACE - 0.01, burst=BURST) == OPUS
    with pytest.raises(FrameError, match="ended"):
        opener.open(meta(1), too_late, 1, T0 + DEFAULT_GRACE, burst=BURST)
    assert opener.epochs == (2,)
    # Offering the old key again does not bring it back.
    assert not opener.add_epoch(key1, T0 + 10)
    with pytest.raises(FrameError, match="no key for the epoch"):
        opener.open(meta(1), too_late, 1, T0 + 10, burst=BURST)


def test_offering_a_held_epoch_again_keeps_its_grace_and_window(
    key1: EpochKey, key2: EpochKey
) -> None:
    sealer = FrameSealer(key1, 1)
    opener = opener_with(key1)
    frame = sealer.seal(meta(0), OPUS, T0)
    opener.open(meta(0), frame, 1, T0, burst=BURST)
    opener.add_epoch(key2, T0)
    # The client re-adds every epoch it holds whenever a roster or envelope arrives.
    assert not opener.add_epoch(key1, T0 + 4)
    assert not opener.add_epoch(key2, T0 + 4)
    with pytest.raises(ReplayError):
        opener.open(meta(0), frame, 1, T0 + 4, burst=BURST)
    with pytest.raises(FrameError, match="ended"):
        opener.open(meta(1), sealer.seal(meta(1), OPUS, T0), 1, T0 + DEFAULT_GRACE, burst=BURST)


def test_removed_member_is_not_heard_after_the_rekey(key1: EpochKey) -> None:
    old_roster, new_roster = roster(1), roster(2, ("dispatch", "alice", "carol"))
    key2 = new_epoch_key(CHANNEL, 2, new_roster.version)
    opener = FrameOpener()
    opener.add_epoch(key1, T0, old_roster)
    opener.add_epoch(key2, T0, new_roster)
    bob_index = old_roster.sender_index("bob")
    bob = FrameSealer(key1, bob_index)  # bob got no envelope for epoch 2
    # Under the new epoch bob has no key: the best he can do is guess one, which fails.
    guessed = FrameSealer(EpochKey(CHANNEL, 2, 2, os.urandom(32)), bob_index)
    with pytest.raises(FrameError, match="authentication failed"):
        opener.open(meta(0), guessed.seal(meta(0), OPUS, T0), bob_index, T0, burst=BURST)
    with pytest.raises(FrameError, match="not on the roster"):
        opener.open(meta(0), guessed.seal(meta(1), OPUS, T0), "bob", T0, burst=BURST)
    # Under the old epoch he is heard only until the grace passes.
    assert opener.open(meta(1), bob.seal(meta(1), OPUS, T0), "bob", T0 + 1, burst=BURST) == OPUS
    with pytest.raises(FrameError, match="ended"):
        opener.open(meta(2), bob.seal(meta(2), OPUS, T0), "bob", T0 + DEFAULT_GRACE, burst=BURST)


def test_talker_user_id_maps_to_each_epochs_own_index(key1: EpochKey) -> None:
    """After a removal, carol is index 3 in epoch 1 but 2 in epoch 2: both open in the grace."""
    old_roster, new_roster = roster(1), roster(2, ("dispatch", "alice", "carol"))
    key2 = new_epoch_key(CHANNEL, 2, 2)
    opener = FrameOpener()
    opener.add_epoch(key1, T0, old_roster)
    opener.add_epoch(key2, T0, new_roster)
    old = FrameSealer(key1, old_roster.sender_index("carol")).seal(meta(0), OPUS, T0)
    new = FrameSealer(key2, new_roster.sender_index("carol")).seal(meta(1), OPUS, T0)
    assert opener.open(meta(0), old, "carol", T0 + 1, burst=BURST) == OPUS
    assert opener.open(meta(1), new, "carol", T0 + 1, burst=BURST) == OPUS
    with pytest.raises(FrameError, match="names sender 2, but sender 1 holds the floor"):
        opener.open(meta(1), new, "alice", T0 + 1, burst=BURST)


def test_user_id_needs_the_epochs_roster(key1: EpochKey) -> None:
    opener = opener_with(key1)
    frame = FrameSealer(key1, 1).seal(meta(0), OPUS, T0)
    with pytest.raises(FrameError, match="without its roster"):
        opener.open(meta(0), frame, "alice", T0, burst=BURST)
    # The roster can be supplied later by offering the epoch again.
    opener.add_epoch(key1, T0, roster(1))
    assert opener.open(meta(0), frame, "alice", T0, burst=BURST) == OPUS


def test_forged_kid_from_the_floor_holder_is_refused(key1: EpochKey) -> None:
    """Bob holds the floor but seals under alice's sender index to put words in her mouth."""
    the_roster = roster(1)
    opener = FrameOpener()
    opener.add_epoch(key1, T0, the_roster)
    forged = FrameSealer(key1, the_roster.sender_index("alice")).seal(meta(0), OPUS, T0)
    with pytest.raises(FrameError, match="impersonation"):
        opener.open(meta(0), forged, the_roster.sender_index("bob"), T0, burst=BURST)
    with pytest.raises(FrameError, match="impersonation"):
        opener.open(meta(0), forged, "bob", T0, burst=BURST)


def test_unknown_epoch_is_refused(key1: EpochKey, key2: EpochKey) -> None:
    opener = opener_with(key1)
    frame = FrameSealer(key2, 1).seal(meta(0), OPUS, T0)
    with pytest.raises(FrameError, match="no key for the epoch"):
        opener.open(meta(0), frame, 1, T0, burst=BURST)
    with pytest.raises(FrameError, match="no key for the epoch"):
        FrameOpener().open(meta(0), frame, 1, T0, burst=BURST)


def test_epoch_sixteen_later_replaces_the_one_sharing_its_kid_bits(key1: EpochKey) -> None:
    key17 = new_epoch_key(CHANNEL, 1 + 2**EPOCH_BITS, 3)
    opener = opener_with(key1)
    old = FrameSealer(key1, 1).seal(meta(0), OPUS, T0)
    opener.add_epoch(key17, T0)
    assert opener.epochs == (17,)
    with pytest.raises(FrameError, match="authentication failed"):
        opener.open(meta(0), old, 1, T0, burst=BURST)
    assert (
        opener.open(meta(1), FrameSealer(key17, 1).seal(meta(1), OPUS, T0), 1, T0, burst=BURST)
        == OPUS
    )


def test_bad_keys_are_refused_without_changing_state(key1: EpochKey) -> None:
    opener = opener_with(key1)
    sealer = FrameSealer(key1, 1)
    twin = EpochKey(CHANNEL, 1, 1, os.urandom(32))
    foreign = new_epoch_key(CHANNEL + 1, 2, 1)
    for bad in (twin, foreign):
        with pytest.raises(KeyringError):
            opener.add_epoch(bad, T0)
        with pytest.raises(KeyringError):
            sealer.rekey(bad, 1, T0)
    with pytest.raises(KeyringError, match="not the one"):
        opener.add_epoch(new_epoch_key(CHANNEL, 2, 5), T0, roster(4))
    with pytest.raises(KeyringError):
        sealer.rekey(new_epoch_key(CHANNEL, 2, 2), -1, T0)
    assert opener.epochs == (1,) and sealer.epoch == 1 and sealer.pending_epoch is None
    assert opener.open(meta(0), sealer.seal(meta(0), OPUS, T0), 1, T0, burst=BURST) == OPUS


def test_older_epoch_offered_late_is_ignored(key1: EpochKey, key2: EpochKey) -> None:
    opener = opener_with(key2)
    assert not opener.add_epoch(key1, T0)
    assert opener.epochs == (2,) and opener.current_epoch == 2
    sealer = FrameSealer(key2, 1)
    assert not sealer.rekey(key1, 1, T0)
    assert sealer.epoch == 2


def test_garbage_frames_are_frame_errors(key1: EpochKey) -> None:
    opener = opener_with(key1)
    for frame in (b"", b"\x80", b"\xff" * 3, b"\x11", b"\x11" + os.urandom(40)):
        with pytest.raises(FrameError):
            opener.open(meta(0), frame, 1, T0, burst=BURST)


_KEY = new_epoch_key(CHANNEL, 3, 1)
_FRAME = FrameSealer(_KEY, 2, first_counter=300).seal(meta(9), OPUS, T0)


@settings(max_examples=200)
@given(bit=st.integers(0, len(_FRAME) * 8 - 1))
def test_any_single_bit_flip_is_refused_by_the_opener(bit: int) -> None:
    opener = opener_with(_KEY)
    frame = bytearray(_FRAME)
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError):
        opener.open(meta(9), bytes(frame), 2, T0, burst=BURST)
    assert opener.open(meta(9), _FRAME, 2, T0, burst=BURST) == OPUS


def test_a_rekeyed_sealer_starts_the_new_kid_at_its_first_counter_not_zero() -> None:
    # A radio restarted within an epoch starts from the clock; if it then switches to an
    # epoch it also used before the restart, counter 0 would repeat a (key, nonce) pair.
    first = new_epoch_key(7, 1, 1)
    second = new_epoch_key(7, 2, 2)
    start = 1_700_000_000_000 << 12
    sealer = FrameSealer(first, 0, first_counter=start, switch_delay=0.0)
    sealer.seal(b"m", b"frame", 0.0)
    assert sealer.rekey(second, 0, 1.0)
    sealed = sealer.seal(b"m", b"frame", 2.0)
    assert sealer.epoch == 2
    assert decode_header(sealed).ctr == start
