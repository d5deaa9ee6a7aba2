"""The promises of docs/security.md checked on :class:`ptt_client.e2e.Keyring` alone (no
server), as properties over many inputs: no altered frame is ever played, no nonce is reused
after a restart, early frames are bounded.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import OrgRoot, Role
from crypto.roster import Member, Roster, sign_roster
from crypto.sframe import decode_header
from ptt_client import events
from ptt_client.e2e import EARLY_FRAME_LIMIT, EARLY_FRAME_TTL, Keyring
from ptt_protocol import media
from tests.credentials import Issued, bundle_for, issue
from tests.ptt_client.relay_adversary import of

# --- the keyring alone: properties over many inputs -------------------------------------------

_T0 = 1_900_000_000.0
_ROOT = OrgRoot.generate()
_CHANNEL = 12
_BURST = 3


_DISP = issue(_ROOT, "disp", Role.DISPATCHER, serial=1, now=_T0)
_ALICE = issue(_ROOT, "alice", serial=2, now=_T0)
_BOB = issue(_ROOT, "bob", serial=3, now=_T0)
_ROSTER = Roster(_CHANNEL, 1, tuple(Member.from_credential(a[1]) for a in (_DISP, _ALICE, _BOB)))
_SIGNED_ROSTER = sign_roster(_ROSTER, *_DISP)
_ENVELOPES = wrap_epoch(
    new_epoch_key(_CHANNEL, 1, 1),
    _ROSTER,
    {a[1].user_id: a[1] for a in (_DISP, _ALICE, _BOB)},
    *_DISP,
)


def _keyring(account: Issued, now: float) -> Keyring:
    keys, credential = account
    keyring = Keyring(bundle_for(_ROOT, account), keys, lambda: now)
    keyring.accept_roster(_CHANNEL, _SIGNED_ROSTER, now)
    keyring.accept_envelope(_CHANNEL, _ENVELOPES[credential.user_id], now)
    keyring.add_credentials([a[1].to_bytes() for a in (_DISP, _ALICE, _BOB)], now)
    return keyring


_GENUINE = _keyring(_ALICE, _T0).seal_voice(_CHANNEL, _BURST, 9, 0, b"genuine opus", _T0)


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_no_bit_flip_of_a_received_inner_frame_is_ever_played(bit: int) -> None:
    """Whatever single bit the relay flips (channel, burst, sequence, flags, KID, counter,
    ciphertext, tag), the radio plays nothing, and the genuine frame still plays after."""
    listener = _keyring(_BOB, _T0)
    listener.expect_talker(_CHANNEL, "alice", _BURST, _T0)
    flipped = bytearray(_GENUINE)
    bit %= len(flipped) * 8
    flipped[bit // 8] ^= 1 << (bit % 8)
    reported = listener.open_media(bytes(flipped), _T0, {})
    assert of(events.VoiceFrame, reported) == []
    played = of(events.VoiceFrame, listener.open_media(_GENUINE, _T0, {}))
    assert [f.opus for f in played] == [b"genuine opus"]


def test_counters_restart_from_the_wall_clock_so_a_restarted_radio_reuses_no_nonce() -> None:
    """Two runs of alice's radio 1 ms apart, each sending 1,000 frames: no (KID, CTR) pair
    (an AES-GCM nonce under one key) is used twice."""

    def run(start: float) -> list[tuple[int, int]]:
        keyring = _keyring(_ALICE, start)
        sent = []
        for sequence in range(1000):
            inner = keyring.seal_voice(_CHANNEL, _BURST, sequence, 0, b"x", start)
            header = decode_header(inner[media.INNER_HEADER.size :])
            sent.append((header.kid, header.ctr))
        return sent

    first, second = run(_T0), run(_T0 + 0.001)
    assert len(set(first)) == len(first) == 1000
    assert not set(first) & set(second)
    assert first[0][1] == int(_T0 * 1000) << 12


def test_early_frames_wait_for_their_floor_taken_but_not_forever_and_not_unbounded() -> None:
    alice = _keyring(_ALICE, _T0)
    frames = [
        alice.seal_voice(_CHANNEL, _BURST, n, 0, bytes([n]), _T0)
        for n in range(EARLY_FRAME_LIMIT + 10)
    ]
    listener = _keyring(_BOB, _T0)
    for inner in frames:
        assert listener.open_media(inner, _T0, {}) == []  # UDP overtook FloorTaken: held
    opened = listener.expect_talker(_CHANNEL, "alice", _BURST, _T0 + 0.1)
    played = [f.opus for f in of(events.VoiceFrame, opened)]
    assert played == [bytes([n]) for n in range(10, EARLY_FRAME_LIMIT + 10)]  # newest 50 kept

    late = _keyring(_BOB, _T0)
    assert late.open_media(frames[0], _T0, {}) == []
    assert late.expect_talker(_CHANNEL, "alice", _BURST, _T0 + EARLY_FRAME_TTL + 0.1) == []
