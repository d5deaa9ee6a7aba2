"""Adversarial tests for crypto.talker: only the talker's own frames verify, losses are tolerated."""

from __future__ import annotations

import hashlib
import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.epoch import new_epoch_key
from crypto.errors import ForgedFrameError, SignatureError
from crypto.identity import Credential, DeviceKeys
from crypto.keyring import FrameOpener, FrameSealer
from crypto.talker import (
    HASH_SIZE,
    MAX_ENTRIES,
    MAX_STATEMENT_SIZE,
    BurstSigner,
    BurstStatement,
    BurstVerifier,
    FrameStatus,
    decode_statement,
    frame_hash,
)
from tests.crypto.test_identity import Org

CHANNEL = 9
BURST = 42
T0 = 1_000.0
FPS = 50


class People:
    def __init__(self) -> None:
        org = Org()
        self.alice: tuple[DeviceKeys, Credential] = org.enroll("alice")
        self.bob: tuple[DeviceKeys, Credential] = org.enroll("bob")


@pytest.fixture(scope="module")
def people() -> People:
    return People()


def talk(
    keys: DeviceKeys, frames: int, *, burst: int = BURST, channel: int = CHANNEL
) -> tuple[list[tuple[int, bytes]], list[tuple[float, bytes]]]:
    """A talker sending ``frames`` sealed frames at 50 frame/s: (sent frames, statements)."""
    epoch_key = new_epoch_key(channel, 1, 1)
    sealer = FrameSealer(epoch_key, 1)
    signer = BurstSigner(keys, channel, burst, T0)
    sent: list[tuple[int, bytes]] = []
    statements: list[tuple[float, bytes]] = []
    for sequence in range(frames):
        now = T0 + sequence / FPS
        frame = sealer.seal(sequence.to_bytes(4, "big"), bytes([sequence % 256]) * 60, now)
        sent.append((sequence, frame))
        signer.add(sequence, frame)
        if signer.due(now):
            statements.append((now, signer.sign(now)))
    end = T0 + frames / FPS
    statements.append((end, signer.sign(end, end=True)))
    return sent, statements


def test_whole_burst_verifies(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 3 * FPS)
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        assert verifier.add(sequence, frame) is FrameStatus.PENDING
    results = [verifier.check(statement) for _, statement in statements]
    assert sorted(s for r in results for s in r.verified) == list(range(3 * FPS))
    assert all(not r.missing for r in results)
    assert results[-1].end and verifier.ended
    assert verifier.pending == () and verifier.forged == ()


def test_signing_cadence_at_least_every_second_and_fits_a_datagram(people: People) -> None:
    sent, statements = talk(people.alice[0], 5 * FPS + 7)
    times = [T0] + [t for t, _ in statements]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 1.0
    for _, data in statements:
        assert len(data) <= MAX_STATEMENT_SIZE
        assert len(decode_statement(data).sequences) <= MAX_ENTRIES
    covered = [s for _, data in statements for s in decode_statement(data).sequences]
    assert covered == [s for s, _ in sent]
    assert [decode_statement(d).end for _, d in statements] == [False] * (len(statements) - 1) + [
        True
    ]


def test_worst_case_statement_fits_in_one_datagram(people: People) -> None:
    signer = BurstSigner(people.alice[0], 2**32 - 1, 2**32 - 1, T0)
    for sequence in range(2**32 - MAX_ENTRIES, 2**32):
        signer.add(sequence, b"x")
    assert signer.due(T0)
    data = signer.sign(T0, end=True)
    assert len(decode_statement(data).sequences) == MAX_ENTRIES
    assert len(data) <= MAX_STATEMENT_SIZE <= 1000


def test_lost_frames_do_not_stop_the_received_ones_verifying(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 2 * FPS)
    lost = {0, 1, 17, 18, 19, 64, 99}
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        if sequence not in lost:
            verifier.add(sequence, frame)
    results = [verifier.check(statement) for _, statement in statements]
    assert sorted(s for r in results for s in r.verified) == sorted(set(range(2 * FPS)) - lost)
    assert sorted(s for r in results for s in r.missing) == sorted(lost)
    # A lost frame that turns up late still verifies.
    assert verifier.add(17, sent[17][1]) is FrameStatus.VERIFIED


def test_lost_statement_leaves_frames_pending_not_verified(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 2 * FPS)
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        verifier.add(sequence, frame)
    first_covered = decode_statement(statements[0][1]).sequences
    for _, statement in statements[1:]:
        verifier.check(statement)
    assert verifier.pending == first_covered
    assert not set(first_covered) & set(verifier.verified)


def test_substituted_frame_is_flagged(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, FPS)
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        verifier.add(sequence, b"substituted" if sequence == 5 else frame)
    with pytest.raises(ForgedFrameError) as caught:
        for _, statement in statements:
            verifier.check(statement)
    assert caught.value.sequences == (5,)
    assert verifier.forged == (5,)
    assert 5 not in verifier.verified
    assert set(range(MAX_ENTRIES)) - {5} <= set(verifier.verified)


def test_injected_duplicate_is_flagged_and_genuine_still_verifies(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 10)
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        verifier.add(sequence, frame)
    verifier.add(3, b"injected with the same sequence")
    with pytest.raises(ForgedFrameError) as caught:
        verifier.check(statements[-1][1])
    assert caught.value.sequences == (3,)
    assert 3 in verifier.verified


def test_forged_frame_arriving_after_the_statement_is_flagged(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 10)
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    verifier.check(statements[-1][1])
    assert verifier.add(4, b"late forgery") is FrameStatus.FORGED
    assert verifier.add(5, sent[5][1]) is FrameStatus.VERIFIED
    assert verifier.forged == (4,) and verifier.verified == (5,)


def test_statement_signed_by_another_member_is_refused(people: People) -> None:
    _, alice = people.alice
    bob_keys, _ = people.bob
    sent, statements = talk(bob_keys, 10)  # bob claims alice's burst
    verifier = BurstVerifier(alice, CHANNEL, BURST)
    for sequence, frame in sent:
        verifier.add(sequence, frame)
    with pytest.raises(SignatureError, match="not signed by 'alice'"):
        verifier.check(statements[-1][1])
    assert verifier.verified == () and len(verifier.pending) == 10


def test_forged_kid_inside_a_burst_is_caught_by_the_signature(people: People) -> None:
    """Alice holds the floor; bob (a member, so he has the epoch key) seals under her index.

    The frame opener cannot tell (same group key, right KID) — the burst signature can.
    """
    alice_keys, alice = people.alice
    bob_keys, _ = people.bob
    epoch_key = new_epoch_key(CHANNEL, 1, 1)
    alice_index = 0
    opener = FrameOpener()
    opener.add_epoch(epoch_key, T0)
    genuine = FrameSealer(epoch_key, alice_index)
    forger = FrameSealer(epoch_key, alice_index, first_counter=1000)
    signer = BurstSigner(alice_keys, CHANNEL, BURST, T0)
    verifier = BurstVerifier(alice, CHANNEL, BURST)
    for sequence in range(6):
        metadata = sequence.to_bytes(4, "big")
        frame = genuine.seal(metadata, b"voice", T0)
        signer.add(sequence, frame)
        opener.open(metadata, frame, alice_index, T0, burst=BURST)
        verifier.add(sequence, frame)
        if sequence == 3:
            injected = forger.seal(metadata, b"say something else", T0)
            assert (
                opener.open(metadata, injected, alice_index, T0, burst=BURST)
                == b"say something else"
            )
            verifier.add(sequence, injected)
    with pytest.raises(ForgedFrameError) as caught:
        verifier.check(signer.sign(T0, end=True))
    assert caught.value.sequences == (3,)
    assert verifier.verified == (0, 1, 2, 3, 4, 5)
    # Bob cannot vouch for his frame either: his statement does not verify as alice's.
    bob_signer = BurstSigner(bob_keys, CHANNEL, BURST, T0)
    bob_signer.add(3, b"anything")
    with pytest.raises(SignatureError, match="not signed by 'alice'"):
        verifier.check(bob_signer.sign(T0))


def test_statement_for_another_burst_or_channel_is_refused(people: People) -> None:
    keys, credential = people.alice
    for burst, channel in ((BURST + 1, CHANNEL), (BURST, CHANNEL + 1)):
        sent, statements = talk(keys, 5, burst=burst, channel=channel)
        verifier = BurstVerifier(credential, CHANNEL, BURST)
        for sequence, frame in sent:
            verifier.add(sequence, frame)
        with pytest.raises(SignatureError, match="dropped"):
            verifier.check(statements[-1][1])
        assert verifier.verified == ()


def test_tampered_statement_is_refused(people: People) -> None:
    keys, credential = people.alice
    sent, statements = talk(keys, 5)
    data = statements[-1][1]
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for sequence, frame in sent:
        verifier.add(sequence, frame)
    for index in range(len(data)):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        with pytest.raises(SignatureError):
            verifier.check(bytes(tampered))
    assert verifier.verified == ()
    assert verifier.check(data).verified == (0, 1, 2, 3, 4)


def test_truncated_statements_are_typed_errors(people: People) -> None:
    keys, credential = people.alice
    _, statements = talk(keys, 5)
    data = statements[-1][1]
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    for cut in range(len(data)):
        with pytest.raises(SignatureError):
            verifier.check(data[:cut])


@settings(max_examples=200)
@given(st.binary(max_size=1100))
def test_garbage_statements_are_typed_errors(data: bytes) -> None:
    verifier = BurstVerifier(bytes(range(32)), CHANNEL, BURST)
    with pytest.raises(SignatureError):
        verifier.check(data)


@settings(max_examples=100)
@given(st.binary(max_size=400))
def test_garbage_after_a_valid_version_byte_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(SignatureError):
        decode_statement(b"\x01" + data)


def _resigned(keys: DeviceKeys, statement: BurstStatement) -> bytes:
    return msgspec.structs.replace(
        statement, signature=keys.sign(statement.signed_part())
    ).to_bytes()


def test_inconsistent_or_oversized_statements_are_refused(people: People) -> None:
    keys, credential = people.alice
    verifier = BurstVerifier(credential, CHANNEL, BURST)
    blank = bytes(64)
    digest = bytes(HASH_SIZE)
    cases = {
        "different number": BurstStatement(CHANNEL, BURST, (1, 2), digest, False, blank),
        "strictly increasing": BurstStatement(CHANNEL, BURST, (2, 2), digest * 2, False, blank),
    }
    for message, statement in cases.items():
        with pytest.raises(SignatureError, match=message):
            verifier.check(_resigned(keys, statement))
    too_many = BurstStatement(
        CHANNEL, BURST, tuple(range(MAX_ENTRIES + 1)), digest * (MAX_ENTRIES + 1), False, blank
    )
    with pytest.raises(SignatureError):
        verifier.check(_resigned(keys, too_many))
    with pytest.raises(SignatureError, match="exceeds"):
        verifier.check(b"\x01" + bytes(MAX_STATEMENT_SIZE))
    with pytest.raises(SignatureError, match="version 2"):
        verifier.check(b"\x02" + _resigned(keys, cases["different number"])[1:])


def test_frame_hash_is_sha256_truncated() -> None:
    assert frame_hash(b"abc") == hashlib.sha256(b"abc").digest()[:16]


def test_signer_refuses_non_increasing_sequences_and_bad_ids(people: People) -> None:
    signer = BurstSigner(people.alice[0], CHANNEL, BURST, T0)
    signer.add(5, b"a")
    for sequence in (5, 4, 2**32):
        with pytest.raises(SignatureError):
            signer.add(sequence, b"b")
    assert signer.pending == 1
    with pytest.raises(SignatureError):
        BurstSigner(people.alice[0], -1, BURST, T0)
    with pytest.raises(SignatureError):
        BurstVerifier(b"short", CHANNEL, BURST)


def test_signer_due_rules(people: People) -> None:
    signer = BurstSigner(people.alice[0], CHANNEL, BURST, T0)
    assert not signer.due(T0 + 5)  # nothing to sign
    signer.add(0, b"a")
    assert not signer.due(T0 + 0.5)
    assert signer.due(T0 + 1.0)
    signer.sign(T0 + 1.0)
    for sequence in range(1, MAX_ENTRIES + 1):
        signer.add(sequence, b"a")
    assert signer.due(T0 + 1.1)  # full before the second is up
    signer.add(MAX_ENTRIES + 1, b"a")
    first = decode_statement(signer.sign(T0 + 1.1, end=True))
    assert len(first.sequences) == MAX_ENTRIES and not first.end  # one frame left over
    assert signer.pending == 1
    last = decode_statement(signer.sign(T0 + 1.1, end=True))
    assert last.sequences == (MAX_ENTRIES + 1,) and last.end
