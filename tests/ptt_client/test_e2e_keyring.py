"""The promises of docs/security.md checked on :class:`ptt_client.e2e.Keyring` alone (no
server), as properties over many inputs: no altered frame is ever played, no nonce is reused
after a restart, early frames are bounded.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.sframe import decode_header
from ptt_client import events
from ptt_client.e2e import EARLY_FRAME_LIMIT, EARLY_FRAME_TTL
from ptt_protocol import media
from tests.ptt_client.keyring_org import ALICE, BOB, BURST, CHANNEL, T0, joined_keyring
from tests.ptt_client.relay_adversary import of

_GENUINE = joined_keyring(ALICE, T0).seal_voice(CHANNEL, BURST, 9, 0, b"genuine opus", T0)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_no_bit_flip_of_a_received_inner_frame_is_ever_played(bit: int) -> None:
    """Whatever single bit the relay flips (channel, burst, sequence, flags, KID, counter,
    ciphertext, tag), the radio plays nothing, and the genuine frame still plays after."""
    listener = joined_keyring(BOB, T0)
    listener.expect_talker(CHANNEL, "alice", BURST, T0)
    flipped = bytearray(_GENUINE)
    bit %= len(flipped) * 8
    flipped[bit // 8] ^= 1 << (bit % 8)
    reported = listener.open_media(bytes(flipped), T0, {})
    assert of(events.VoiceFrame, reported) == []
    played = of(events.VoiceFrame, listener.open_media(_GENUINE, T0, {}))
    assert [f.opus for f in played] == [b"genuine opus"]


def test_counters_restart_from_the_wall_clock_so_a_restarted_radio_reuses_no_nonce() -> None:
    """Two runs of alice's radio 1 ms apart, each sending 1,000 frames: no (KID, CTR) pair
    (an AES-GCM nonce under one key) is used twice."""

    def run(start: float) -> list[tuple[int, int]]:
        keyring = joined_keyring(ALICE, start)
        sent = []
        for sequence in range(1000):
            inner = keyring.seal_voice(CHANNEL, BURST, sequence, 0, b"x", start)
            header = decode_header(inner[media.INNER_HEADER.size :])
            sent.append((header.kid, header.ctr))
        return sent

    first, second = run(T0), run(T0 + 0.001)
    assert len(set(first)) == len(first) == 1000
    assert not set(first) & set(second)
    assert first[0][1] == int(T0 * 1000) << 12


def test_early_frames_wait_for_their_floor_taken_but_not_forever_and_not_unbounded() -> None:
    alice = joined_keyring(ALICE, T0)
    frames = [
        alice.seal_voice(CHANNEL, BURST, n, 0, bytes([n]), T0)
        for n in range(EARLY_FRAME_LIMIT + 10)
    ]
    listener = joined_keyring(BOB, T0)
    for inner in frames:
        assert listener.open_media(inner, T0, {}) == []  # UDP overtook FloorTaken: held
    opened = listener.expect_talker(CHANNEL, "alice", BURST, T0 + 0.1)
    played = [f.opus for f in of(events.VoiceFrame, opened)]
    assert played == [bytes([n]) for n in range(10, EARLY_FRAME_LIMIT + 10)]  # newest 50 kept

    late = joined_keyring(BOB, T0)
    assert late.open_media(frames[0], T0, {}) == []
    assert late.expect_talker(CHANNEL, "alice", BURST, T0 + EARLY_FRAME_TTL + 0.1) == []
