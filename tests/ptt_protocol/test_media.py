"""Hop-layer datagrams: layout, keys, replay window, roaming, inner frames."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.replay import ReplayWindow
from ptt_protocol import media
from ptt_protocol.errors import (
    AuthenticationError,
    MalformedError,
    ProtocolError,
    ReplayError,
    SessionExhaustedError,
    UnsupportedVersionError,
)
from ptt_protocol.media import (
    DATA,
    KEEPALIVE,
    HopSession,
    inner_header,
    pack_inner,
    peek_session_index,
    unpack_inner,
)

INDEX = 0x0A0B0C0D
HOME = ("198.51.100.7", 40000)
ROAMED = ("203.0.113.9", 51515)
ATTACKER = ("192.0.2.66", 6666)


def pair(index: int = INDEX) -> tuple[HopSession, HopSession]:
    """A client and the relay's session for it, sharing a fresh hop key."""
    key = os.urandom(32)
    return HopSession(index, key, "client"), HopSession(index, key, "server", address=HOME)


def voice(sequence: int = 0, frame: bytes = b"opus-and-sframe") -> bytes:
    return pack_inner(7, 99, sequence, 0, frame)


# --- Layout, independent of the code under test ----------------------------------------------


def test_header_layout_is_version_type_reserved_index_counter() -> None:
    client, _ = pair(0x01020304)
    client.seal(voice())
    datagram = client.seal(voice(1))
    assert datagram[:16] == bytes.fromhex("01 01 0000 01020304 0000000000000001")
    keepalive = client.seal(b"", KEEPALIVE)
    assert keepalive[:16] == bytes.fromhex("01 02 0000 01020304 0000000000000002")
    assert len(keepalive) == 16 + 16
    assert len(datagram) == 16 + len(voice(1)) + 16


def test_datagram_is_aes_gcm_under_hkdf_directional_key() -> None:
    # Rebuilt from the documented construction, so a change to keys, nonce or AAD shows up.
    hop_key = bytes(range(32))
    client = HopSession(5, hop_key, "client")
    inner = voice()
    datagram = client.seal(inner)
    c2s = HKDF(SHA256(), 32, salt=None, info=b"fieldradio hop client->server").derive(hop_key)
    nonce = b"\x00" * 4 + (0).to_bytes(8, "big")
    assert AESGCM(c2s).decrypt(nonce, datagram[16:], datagram[:16]) == inner

    s2c = HKDF(SHA256(), 32, salt=None, info=b"fieldradio hop server->client").derive(hop_key)
    header = struct.pack("!BBHIQ", 1, 1, 0, 5, 0)
    forged_by_server = header + AESGCM(s2c).encrypt(nonce, inner, header)
    assert client.open(forged_by_server, HOME) == (DATA, inner)


def test_sizes_fit_under_1200_bytes() -> None:
    assert media.MAX_DATAGRAM_SIZE == 1200
    client, server = pair()
    biggest = pack_inner(1, 2, 3, 0, b"\x00" * media.MAX_FRAME_SIZE)
    datagram = client.seal(biggest)
    assert len(datagram) == 1200
    assert server.open(datagram, HOME) == (DATA, biggest)
    with pytest.raises(ValueError, match="exceeds"):
        pack_inner(1, 2, 3, 0, b"\x00" * (media.MAX_FRAME_SIZE + 1))
    with pytest.raises(ValueError, match="inner frame"):
        client.seal(biggest + b"\x00")


# --- Round trips -----------------------------------------------------------------------------

u32 = st.integers(min_value=0, max_value=2**32 - 1)
flags = st.sets(st.sampled_from([media.END_OF_BURST, media.SIGNATURE, media.FEC, media.PRIORITY]))
frames = st.binary(max_size=media.MAX_FRAME_SIZE)


@settings(max_examples=200, deadline=None)
@given(u32, u32, u32, flags, frames)
def test_inner_round_trip(
    channel: int, burst: int, sequence: int, flag_set: set[int], frame: bytes
) -> None:
    bits = sum(flag_set)
    inner = pack_inner(channel, burst, sequence, bits, frame)
    assert unpack_inner(inner) == (channel, burst, sequence, bits, frame)
    assert inner_header(inner) == struct.pack("!IIIB", channel, burst, sequence, bits)
    assert inner_header(inner) + frame == inner


@settings(max_examples=100, deadline=None)
@given(u32, st.lists(st.tuples(u32, frames), min_size=1, max_size=5))
def test_datagram_round_trip_both_directions(index: int, payloads: list[tuple[int, bytes]]) -> None:
    client, server = pair(index)
    for sequence, frame in payloads:
        inner = pack_inner(1, 2, sequence, 0, frame)
        up = client.seal(inner)
        assert peek_session_index(up) == index
        assert server.open(up, HOME) == (DATA, inner)
        down = server.seal(inner)
        assert client.open(down, HOME) == (DATA, inner)
    assert client.send_counter == server.send_counter == len(payloads)


def test_keepalive_round_trip() -> None:
    client, server = pair()
    assert server.open(client.seal(b"", KEEPALIVE), HOME) == (KEEPALIVE, b"")
    with pytest.raises(ValueError, match="no payload"):
        client.seal(b"x", KEEPALIVE)
    with pytest.raises(ValueError, match="unknown datagram type"):
        client.seal(voice(), 9)


def test_relay_reseals_inner_for_each_listener() -> None:
    talker, talker_at_relay = pair(1)
    listeners = [pair(i) for i in (2, 3, 4)]
    inner = voice(42)
    _, forwarded = talker_at_relay.open(talker.seal(inner), HOME)
    for listener, listener_at_relay in listeners:
        assert listener.open(listener_at_relay.seal(forwarded), HOME) == (DATA, inner)


# --- Directional keys ------------------------------------------------------------------------


def test_directional_keys_differ() -> None:
    key = os.urandom(32)
    client = HopSession(INDEX, key, "client")
    other_client = HopSession(INDEX, key, "client")
    server = HopSession(INDEX, key, "server")
    up = client.seal(voice())
    with pytest.raises(AuthenticationError):
        other_client.open(up, HOME)  # a client cannot open another client's datagram
    with pytest.raises(AuthenticationError):
        client.open(up, HOME)  # nor can it be reflected back at its sender
    down = server.seal(voice())
    with pytest.raises(AuthenticationError):
        HopSession(INDEX, key, "server").open(down, HOME)
    assert server.open(up, HOME) == (DATA, voice())
    assert client.open(down, HOME) == (DATA, voice())


def test_wrong_hop_key_fails_authentication() -> None:
    client = HopSession(INDEX, os.urandom(32), "client")
    server = HopSession(INDEX, os.urandom(32), "server", address=HOME)
    with pytest.raises(AuthenticationError):
        server.open(client.seal(voice()), ROAMED)
    assert server.address == HOME
    assert server.newest_received == -1


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        HopSession(1, b"short", "client")
    with pytest.raises(ValueError, match="u32"):
        HopSession(2**32, os.urandom(32), "client")
    with pytest.raises(ValueError, match="role"):
        HopSession(1, os.urandom(32), "relay")  # type: ignore[arg-type]


# --- Replay window through HopSession ---------------------------------------------------------


def test_out_of_order_within_window_accepted_once() -> None:
    client, server = pair()
    sent = [client.seal(voice(i)) for i in range(10)]
    for i in (0, 5, 2, 9, 1, 3, 8, 4, 7, 6):
        assert server.open(sent[i], HOME) == (DATA, voice(i))
    for datagram in sent:
        with pytest.raises(ReplayError):
            server.open(datagram, HOME)


def test_duplicate_rejected() -> None:
    client, server = pair()
    datagram = client.seal(voice())
    server.open(datagram, HOME)
    with pytest.raises(ReplayError, match="counter 0"):
        server.open(datagram, HOME)


def test_too_old_rejected_and_edge_of_window_accepted() -> None:
    client, server = pair()
    sent = [client.seal(b"", KEEPALIVE) for _ in range(media.REPLAY_WINDOW + 2)]
    server.open(sent[-1], HOME)  # counter W+1
    with pytest.raises(ReplayError):
        server.open(sent[0], HOME)  # W+1 behind: outside
    with pytest.raises(ReplayError):
        server.open(sent[1], HOME)  # exactly W behind: outside
    assert server.open(sent[2], HOME) == (KEEPALIVE, b"")  # W-1 behind: the oldest inside


def test_counter_far_ahead_accepted_and_window_slides() -> None:
    client, server = pair()
    early = [client.seal(voice(i)) for i in range(3)]
    server.open(early[0], HOME)
    client._send_counter = 10_000_000  # the client sent (and lost) ten million datagrams
    far = client.seal(voice(3))
    assert server.open(far, HOME) == (DATA, voice(3))
    assert server.newest_received == 10_000_000
    with pytest.raises(ReplayError):
        server.open(early[1], HOME)  # now far outside the window
    after = client.seal(voice(4))
    assert server.open(after, HOME) == (DATA, voice(4))
    with pytest.raises(ReplayError):
        server.open(far, HOME)


def test_tampered_byte_fails_and_changes_nothing() -> None:
    client, server = pair()
    server.open(client.seal(voice(0)), HOME)
    datagram = client.seal(voice(1))
    for position in range(len(datagram)):
        tampered = bytearray(datagram)
        tampered[position] ^= 0x01
        with pytest.raises(ProtocolError) as refused:
            server.open(bytes(tampered), ATTACKER)
        if position >= 16:  # ciphertext and tag: only the tag can tell
            assert isinstance(refused.value, AuthenticationError), position
        elif position >= 8:  # counter: an already-seen value is dropped before any crypto
            assert isinstance(refused.value, AuthenticationError | ReplayError), position
        assert server.address == HOME
        assert server.newest_received == 0
    assert server.open(datagram, HOME) == (DATA, voice(1))  # the real one still gets through


def test_header_fields_are_checked_before_cryptography() -> None:
    client, server = pair()
    datagram = bytearray(client.seal(voice()))
    cases = {
        0: (UnsupportedVersionError, "version"),
        1: (MalformedError, "unknown datagram type"),
        2: (MalformedError, "reserved"),
        4: (MalformedError, "session"),
    }
    for position, (error, message) in cases.items():
        bad = bytearray(datagram)
        bad[position] ^= 0x40
        with pytest.raises(error, match=message):
            server.open(bytes(bad), HOME)


def test_sizes_are_checked_before_slicing() -> None:
    client, server = pair()
    keepalive = client.seal(b"", KEEPALIVE)
    data = client.seal(voice())
    for short in (b"", b"\x01", keepalive[:-1], data[:31]):
        with pytest.raises(MalformedError):
            server.open(short, HOME)
    with pytest.raises(MalformedError, match="too short"):
        server.open(data[:1] + b"\x01" + data[2:32], HOME)  # a DATA header with no inner
    with pytest.raises(MalformedError, match="payload"):
        server.open(keepalive[:1] + b"\x02" + data[2:], HOME)  # KEEPALIVE with a payload
    with pytest.raises(MalformedError):
        server.open(data + b"\x00" * 1200, HOME)
    assert server.newest_received == -1


def test_exhausted_send_counter_raises() -> None:
    client, server = pair()
    client._send_counter = media.MAX_COUNTER
    last = client.seal(voice())
    assert last[8:16] == b"\xff" * 8
    assert server.open(last, HOME) == (DATA, voice())
    with pytest.raises(SessionExhaustedError, match="log in again"):
        client.seal(voice())
    with pytest.raises(SessionExhaustedError):
        client.seal(b"", KEEPALIVE)


# --- Roaming ---------------------------------------------------------------------------------


def roam_pending(client: HopSession, server: HopSession, now: float = 100.0) -> bytes:
    """A newer datagram from ROAMED makes it the candidate; returns the probe the relay sends."""
    server.open(client.seal(voice(0)), HOME)
    server.open(client.seal(b"", KEEPALIVE), ROAMED)
    assert server.address == HOME  # not moved yet: the old address is probed first
    assert server.candidate == ROAMED and server.probe_due
    probe = server.seal_probe(now)
    assert not server.probe_due
    assert server.roam_deadline == now + media.ROAM_PROBE_TIMEOUT
    return probe


def test_newer_datagram_from_new_address_moves_session_when_probe_goes_unanswered() -> None:
    client, server = pair()
    probe = roam_pending(client, server, now=100.0)
    assert client.open(probe, HOME) == (media.PROBE, b"")
    deadline = 100.0 + media.ROAM_PROBE_TIMEOUT
    assert not server.handle_timer(deadline - 0.001)
    assert server.address == HOME
    assert server.handle_timer(deadline)
    assert server.address == ROAMED
    assert server.candidate is None and server.roam_deadline is None
    assert not server.handle_timer(deadline + 10)  # nothing pending any more
    server.open(client.seal(voice(1)), ROAMED)
    assert server.address == ROAMED and server.candidate is None


def test_newer_datagram_from_old_address_cancels_the_move() -> None:
    client, server = pair()
    roam_pending(client, server)
    server.open(client.seal(b"", KEEPALIVE), HOME)  # the radio answers the probe: still home
    assert server.candidate is None and server.roam_deadline is None
    assert not server.handle_timer(1e9)
    assert server.address == HOME


def test_older_datagram_from_old_address_does_not_cancel_the_move() -> None:
    client, server = pair()
    late = client.seal(voice(1))  # sent before the roaming datagram, delivered after it
    roam_pending(client, server)
    assert server.open(late, HOME) == (DATA, voice(1))
    assert server.candidate == ROAMED
    assert server.handle_timer(1e9)
    assert server.address == ROAMED


def test_more_datagrams_from_the_candidate_do_not_shorten_the_probe() -> None:
    # Two withheld datagrams replayed together must not move the session either.
    client, server = pair()
    roam_pending(client, server, now=100.0)
    for sequence in range(1, 5):
        assert server.open(client.seal(voice(sequence)), ROAMED) == (DATA, voice(sequence))
    assert server.address == HOME
    assert not server.probe_due  # one probe per candidate
    assert server.roam_deadline == 100.0 + media.ROAM_PROBE_TIMEOUT


def test_not_newer_datagram_from_new_address_is_accepted_but_moves_nothing() -> None:
    client, server = pair()
    held_back = client.seal(voice(0))  # withheld by an on-path attacker
    server.open(client.seal(voice(1)), HOME)  # the radio keeps sending from home
    assert server.open(held_back, ATTACKER) == (DATA, voice(0))  # fresh, but older
    assert server.candidate is None and not server.probe_due
    assert not server.handle_timer(1e9)
    assert server.address == HOME


def test_third_address_replaces_the_candidate_and_restarts_the_window() -> None:
    client, server = pair()
    roam_pending(client, server, now=100.0)
    server.open(client.seal(voice(1)), ATTACKER)
    assert server.candidate == ATTACKER and server.probe_due
    assert server.roam_deadline is None  # the window starts with the new probe
    assert not server.handle_timer(1e9)
    server.seal_probe(200.0)
    assert not server.handle_timer(200.0 + media.ROAM_PROBE_TIMEOUT / 2)
    assert server.handle_timer(200.0 + media.ROAM_PROBE_TIMEOUT)
    assert server.address == ATTACKER


def test_proven_source_moves_at_once_when_newer_only() -> None:
    client, server = pair()
    older = client.seal(voice(0))
    server.open(client.seal(voice(1)), HOME)
    server.open(older, "tunnel", proven_source=True)
    # Compared as a pair: ``server.address == HOME`` alone would narrow its type for mypy
    # past the next call, which changes it.
    assert (server.address, server.candidate) == (HOME, None)  # older: no move, no probe
    server.open(client.seal(voice(2)), "tunnel", proven_source=True)
    assert server.address == "tunnel" and server.candidate is None and not server.probe_due


def test_proven_source_clears_a_pending_candidate() -> None:
    client, server = pair()
    roam_pending(client, server)
    server.open(client.seal(voice(1)), "tunnel", proven_source=True)
    assert server.address == "tunnel" and server.candidate is None
    assert not server.handle_timer(1e9)
    assert server.address == "tunnel"


def test_seal_probe_without_a_candidate_is_refused() -> None:
    client, server = pair()
    server.open(client.seal(voice(0)), HOME)
    with pytest.raises(ValueError, match="no roaming probe is due"):
        server.seal_probe(1.0)
    assert server.send_counter == 0


def test_probe_is_an_empty_datagram() -> None:
    client, server = pair()
    with pytest.raises(ValueError, match="no payload"):
        client.seal(b"x", media.PROBE)
    probe = server.open(client.seal(b"", media.PROBE), HOME)
    assert probe == (media.PROBE, b"")
    padded = client.seal(b"", media.PROBE) + b"\x00"
    with pytest.raises(MalformedError, match="carries a payload"):
        server.open(padded, HOME)


def test_session_without_address_learns_it_from_first_datagram() -> None:
    key = os.urandom(32)
    client = HopSession(INDEX, key, "client")
    server = HopSession(INDEX, key, "server")
    assert server.address is None
    server.open(client.seal(b"", KEEPALIVE), HOME)
    assert server.address == HOME


def test_spoofed_source_replay_does_not_move_session() -> None:
    client, server = pair()
    captured = client.seal(voice(0))
    server.open(captured, HOME)
    with pytest.raises(ReplayError):
        server.open(captured, ATTACKER)  # an on-path attacker replays from its own address
    assert server.address == HOME
    assert server.candidate is None and not server.probe_due


def test_delayed_old_datagram_from_spoofed_source_does_not_move_session() -> None:
    client, server = pair()
    first = client.seal(voice(0))
    for i in range(1, media.REPLAY_WINDOW + 5):
        server.open(client.seal(voice(i % 1000)), HOME)
    with pytest.raises(ReplayError):
        server.open(first, ATTACKER)  # never seen, but older than the window
    assert server.address == HOME


def test_forged_datagram_does_not_move_session() -> None:
    _, server = pair()
    forged = struct.pack("!BBHIQ", 1, 1, 0, INDEX, 77) + os.urandom(40)
    with pytest.raises(AuthenticationError):
        server.open(forged, ATTACKER)
    assert server.address == HOME
    assert server.newest_received == -1


# --- peek_session_index and inner frames ------------------------------------------------------


def test_peek_session_index() -> None:
    client, _ = pair(0xDEADBEEF)
    assert peek_session_index(client.seal(b"", KEEPALIVE)) == 0xDEADBEEF
    header = struct.pack("!BBHIQ", 1, 9, 0, 123, 0) + b"\x00" * 16
    assert peek_session_index(header) == 123  # no authentication: only a look-up key
    for bad in (b"", header[:-1], header + b"\x00" * 1200):
        with pytest.raises(MalformedError):
            peek_session_index(bad)
    with pytest.raises(UnsupportedVersionError):
        peek_session_index(b"\x02" + header[1:])


def test_wrong_session_index_refused() -> None:
    client, _ = pair(1)
    _, other = pair(2)
    with pytest.raises(MalformedError, match="session 1 given to session 2"):
        other.open(client.seal(voice()), HOME)


def test_unpack_inner_refuses_bad_input() -> None:
    good = voice()
    with pytest.raises(MalformedError):
        unpack_inner(good[:12])
    with pytest.raises(MalformedError):
        unpack_inner(b"\x00" * (media.MAX_INNER_SIZE + 1))
    with pytest.raises(MalformedError, match="unknown flags"):
        unpack_inner(good[:12] + b"\x80" + good[13:])
    for reader in (inner_header,):
        with pytest.raises(MalformedError):
            reader(b"\x00" * 12)


def test_pack_inner_refuses_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="u32"):
        pack_inner(2**32, 0, 0, 0, b"")
    with pytest.raises(ValueError, match="u32"):
        pack_inner(0, -1, 0, 0, b"")
    with pytest.raises(ValueError, match="flags"):
        pack_inner(0, 0, 0, 0x20, b"")
    with pytest.raises(ValueError, match="flags"):
        pack_inner(0, 0, 0, 0x101, b"")


def test_keepalive_inner_is_not_an_inner_frame() -> None:
    client, server = pair()
    kind, inner = server.open(client.seal(b"", KEEPALIVE), HOME)
    assert kind == KEEPALIVE
    with pytest.raises(MalformedError):
        unpack_inner(inner)


# --- ReplayWindow against a reference model --------------------------------------------------


def test_window_size_must_be_multiple_of_eight() -> None:
    for size in (0, -8, 12):
        with pytest.raises(ValueError):
            ReplayWindow(size)


@pytest.mark.parametrize("size", [8, 64, 2048])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_window_matches_set_model(size: int, data: st.DataObject) -> None:
    """Accept iff never accepted before and newer than (highest accepted - size)."""
    window = ReplayWindow(size)
    seen: set[int] = set()
    highest = -1
    base = 0
    steps = data.draw(
        st.lists(
            st.one_of(
                st.integers(-size - 10, size + 10).map(lambda d: ("near", d)),
                st.integers(0, 2**40).map(lambda d: ("jump", d)),
            ),
            max_size=300,
        )
    )
    for kind, delta in steps:
        if kind == "jump":
            base += delta
            counter = base
        else:
            counter = max(0, highest + delta)
        expected = counter not in seen and counter > highest - size
        assert window.check(counter) is expected, (counter, highest)
        if expected:
            window.mark(counter)
            seen.add(counter)
            highest = max(highest, counter)
            base = max(base, highest)
        assert window.newest == highest


def test_window_tracks_every_counter_across_block_boundaries() -> None:
    window = ReplayWindow(64)
    for counter in range(0, 1000, 3):
        assert window.check(counter)
        window.mark(counter)
    top = 999
    for counter in range(top - 63, top + 1):  # the 64 counters inside the window
        assert window.check(counter) is (counter % 3 != 0), counter
    assert (top - 64) % 3 != 0  # never marked, yet too old
    assert not window.check(top - 64)
