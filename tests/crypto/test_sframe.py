"""crypto.sframe against RFC 9605: the published vectors, then every way to break a frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import FrameError
from crypto.sframe import (
    MAX_HEADER_SIZE,
    CipherSuite,
    SFrameKey,
    decode_header,
    derive_key_salt,
    encode_header,
    open_frame,
    peek_kid,
    suite_params,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "sframe-rfc9605.json").read_text(encoding="utf-8")
)
GCM_SUITES = {int(suite) for suite in CipherSuite}
SFRAME_GCM = [v for v in VECTORS["sframe"] if v["cipher_suite"] in GCM_SUITES]

BASE_KEY = bytes(range(16))
METADATA = b"\x00\x00\x00\x09\x00\x00\x00\x2a\x00\x00\x00\x07\x00"  # channel 9, burst 42, seq 7
OPUS = bytes(range(60))


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


# --- RFC 9605 Appendix C vectors ---------------------------------------------------------------


def test_vector_file_has_the_sections_we_run() -> None:
    assert len(VECTORS["header"]) > 200
    assert {v["cipher_suite"] for v in SFRAME_GCM} == {4, 5}


@pytest.mark.parametrize("vector", VECTORS["header"], ids=lambda v: v["encoded"])
def test_header_vectors(vector: dict[str, Any]) -> None:
    encoded = _h(vector["encoded"])
    assert encode_header(vector["kid"], vector["ctr"]) == encoded
    assert decode_header(encoded) == (vector["kid"], vector["ctr"], len(encoded))
    # The header is parsed from the front of a whole frame: trailing bytes are not its business.
    assert decode_header(encoded + b"\xff" * 20) == (vector["kid"], vector["ctr"], len(encoded))


@pytest.mark.parametrize("vector", SFRAME_GCM, ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_vectors(vector: dict[str, Any]) -> None:
    suite, kid, ctr = vector["cipher_suite"], vector["kid"], vector["ctr"]
    base_key, metadata, plaintext = _h(vector["base_key"]), _h(vector["metadata"]), _h(vector["pt"])
    # The labels the RFC spells out, built here from the RFC's prose, must match its vector.
    suffix = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    assert b"SFrame 1.0 Secret key " + suffix == _h(vector["sframe_key_label"])
    assert b"SFrame 1.0 Secret salt " + suffix == _h(vector["sframe_salt_label"])
    key, salt = derive_key_salt(suite, kid, base_key)
    assert key == _h(vector["sframe_key"])
    assert salt == _h(vector["sframe_salt"])
    params = suite_params(suite)
    assert (len(key), len(salt)) == (params.nk, params.nn)
    nonce = bytes(a ^ b for a, b in zip(salt, ctr.to_bytes(len(salt), "big"), strict=True))
    assert nonce == _h(vector["nonce"])
    assert encode_header(kid, ctr) + metadata == _h(vector["aad"])

    sframe_key = SFrameKey(suite, kid, base_key)
    frame = sframe_key.seal(ctr, metadata, plaintext)
    assert frame == _h(vector["ct"])
    assert open_frame({kid: sframe_key}, frame, metadata) == (kid, plaintext)


def test_aes128gcm_sizes_are_the_rfc_ones() -> None:
    params = suite_params(0x0004)
    assert (params.nk, params.nn, params.nt, params.nh) == (16, 12, 16, 32)


@pytest.mark.parametrize("suite", [0x0000, 0x0001, 0x0002, 0x0003, 0x0006, 0xFFFF])
def test_unimplemented_suites_are_refused(suite: int) -> None:
    with pytest.raises(FrameError, match="not supported"):
        suite_params(suite)
    with pytest.raises(FrameError):
        SFrameKey(suite, 1, BASE_KEY)


# --- header round trip and malformed headers ---------------------------------------------------


def _length_class(size: int) -> st.SearchStrategy[int]:
    """Values that need exactly ``size`` extra bytes (0 = carried in the config byte)."""
    if size == 0:
        return st.integers(0, 7)
    return st.integers(max(8, 1 << (8 * (size - 1))), (1 << (8 * size)) - 1)


ANY_VALUE = st.integers(0, 8).flatmap(_length_class)


@settings(max_examples=300)
@given(kid=ANY_VALUE, ctr=ANY_VALUE, tail=st.binary(max_size=4))
def test_header_round_trip_across_length_classes(kid: int, ctr: int, tail: bytes) -> None:
    encoded = encode_header(kid, ctr)
    expected_size = 1 + sum(0 if v < 8 else (v.bit_length() + 7) // 8 for v in (kid, ctr))
    assert len(encoded) == expected_size <= MAX_HEADER_SIZE
    assert decode_header(encoded + tail) == (kid, ctr, expected_size)
    assert SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, kid, BASE_KEY).header(ctr) == encoded


@pytest.mark.parametrize(("kid", "ctr"), [(-1, 0), (0, -1), (2**64, 0), (0, 2**64)])
def test_out_of_range_values_are_refused(kid: int, ctr: int) -> None:
    with pytest.raises(FrameError):
        encode_header(kid, ctr)


def test_key_refuses_counters_it_cannot_encode() -> None:
    key = SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, 3, BASE_KEY)
    for ctr in (-1, 2**64):
        with pytest.raises(FrameError):
            key.seal(ctr, b"", OPUS)


def test_every_truncated_header_is_a_frame_error() -> None:
    for vector in VECTORS["header"]:
        encoded = _h(vector["encoded"])
        for cut in range(len(encoded)):
            with pytest.raises(FrameError):
                decode_header(encoded[:cut])


@pytest.mark.parametrize(
    "header",
    [
        "8005",  # KID 5 in an extended byte
        "900001",  # KID 1 in two bytes
        "08" + "07",  # CTR 7 in an extended byte
        "090010",  # CTR 16 with a leading zero byte
        "ff" + "00" * 16,  # 8-byte zero KID and CTR
    ],
)
def test_non_minimal_headers_are_refused(header: str) -> None:
    with pytest.raises(FrameError, match="minimally"):
        decode_header(_h(header))


@settings(max_examples=300)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_never_raise_anything_but_frame_error(data: bytes) -> None:
    try:
        header = decode_header(data)
    except FrameError:
        return
    assert encode_header(header.kid, header.ctr) == data[: header.size]


@settings(max_examples=300)
@given(kid=ANY_VALUE, ctr=ANY_VALUE, prefix=st.binary(max_size=13), tail=st.binary(max_size=4))
def test_peek_kid_reads_the_kid_decode_header_reads(
    kid: int, ctr: int, prefix: bytes, tail: bytes
) -> None:
    """The relay's cheap parse (KID only, at an offset) agrees with the full one."""
    data = prefix + encode_header(kid, ctr) + tail
    assert peek_kid(data, len(prefix)) == kid == decode_header(data[len(prefix) :]).kid


@settings(max_examples=300)
@given(st.binary(max_size=24))
def test_peek_kid_raises_only_frame_error_and_agrees_where_decode_header_accepts(
    data: bytes,
) -> None:
    try:
        kid = peek_kid(data)
    except FrameError:
        with pytest.raises(FrameError):
            decode_header(data)
        return
    try:
        assert decode_header(data).kid == kid
    except FrameError:
        pass  # not minimal, or the CTR is truncated: receivers refuse it, the relay need not


# --- sealed frames: tampering and keys ----------------------------------------------------------


@pytest.fixture
def key() -> SFrameKey:
    return SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, (7 << 4) | 2, BASE_KEY)


def test_seal_open_round_trip(key: SFrameKey) -> None:
    for ctr in (0, 7, 8, 300, 2**40, 2**64 - 1):
        frame = key.seal(ctr, METADATA, OPUS)
        header = decode_header(frame)
        assert (header.kid, header.ctr) == (key.kid, ctr)
        assert len(frame) == header.size + len(OPUS) + 16
        assert open_frame({key.kid: key}, frame, METADATA) == (key.kid, OPUS)


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag"])
def test_tampered_frame_is_refused(key: SFrameKey, where: str) -> None:
    frame = bytearray(key.seal(300, METADATA, OPUS))
    size = decode_header(bytes(frame)).size
    index = {"header": size - 1, "ciphertext": size + 5, "tag": len(frame) - 1}[where]
    frame[index] ^= 0x01
    with pytest.raises(FrameError):
        open_frame({key.kid: key}, bytes(frame), METADATA)


def test_tampered_or_moved_metadata_is_refused(key: SFrameKey) -> None:
    frame = key.seal(300, METADATA, OPUS)
    other_channel = b"\x00\x00\x00\x0a" + METADATA[4:]
    for metadata in (other_channel, METADATA[:-1], METADATA + b"\x00", b""):
        with pytest.raises(FrameError, match="authentication failed"):
            open_frame({key.kid: key}, frame, metadata)


def test_unknown_kid_and_other_key_are_refused(key: SFrameKey) -> None:
    frame = key.seal(1, METADATA, OPUS)
    with pytest.raises(FrameError, match="no key for SFrame KID"):
        open_frame({key.kid + 1: key}, frame, METADATA)
    impostor = SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, key.kid, bytes(16))
    with pytest.raises(FrameError, match="authentication failed"):
        open_frame({key.kid: impostor}, frame, METADATA)


def test_key_refuses_another_kids_header(key: SFrameKey) -> None:
    other = SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, key.kid + 16, BASE_KEY)
    frame = other.seal(1, METADATA, OPUS)
    with pytest.raises(FrameError, match="not this key's KID"):
        key.open(decode_header(frame), frame, METADATA)


def test_frames_too_short_for_a_tag_are_refused(key: SFrameKey) -> None:
    frame = key.seal(9, METADATA, b"")
    for cut in range(len(frame)):
        with pytest.raises(FrameError):
            open_frame({key.kid: key}, frame[:cut], METADATA)


_SEALED_KEY = SFrameKey(CipherSuite.AES_128_GCM_SHA256_128, 0x123, BASE_KEY)
_SEALED = _SEALED_KEY.seal(0x4567, METADATA, OPUS)


@settings(max_examples=200)
@given(bit=st.integers(0, len(_SEALED) * 8 - 1))
def test_any_single_bit_flip_is_refused(bit: int) -> None:
    frame = bytearray(_SEALED)
    frame[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError):
        open_frame({_SEALED_KEY.kid: _SEALED_KEY}, bytes(frame), METADATA)


def test_derivation_depends_on_kid_and_suite() -> None:
    a = derive_key_salt(4, 1, BASE_KEY)
    b = derive_key_salt(4, 2, BASE_KEY)
    c = derive_key_salt(5, 1, BASE_KEY)
    assert a != b
    assert a[0] != c[0][:16] and a[1] != c[1]
