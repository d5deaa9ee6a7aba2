"""What CallMedia refuses in the other radio's SDP (ptt_client.calls.sdp_checks), and the
ICE configuration built from the call settings (ptt_client.calls.ice)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from ptt_client.calls import (
    CallMedia,
    CallMediaError,
    IceServer,
    IceSettings,
    check_remote_sdp,
    sdp_fingerprints,
)
from ptt_client.calls.ice import rtc_configuration
from ptt_client.calls.sdp_checks import MAX_SDP_BYTES


@pytest.fixture
async def offer() -> AsyncIterator[str]:
    """A real aiortc offer from a CallMedia."""
    media = CallMedia(IceSettings(), None, None)
    try:
        yield await media.offer()
    finally:
        await media.close()


def test_a_real_offer_passes(offer: str) -> None:
    check_remote_sdp(offer)


def test_mdns_candidate_is_refused(offer: str) -> None:
    mdns = re.sub(r"(a=candidate:\S+ 1 udp \d+ )127\.0\.0\.1", r"\g<1>6f1c-4a.local", offer)
    assert mdns != offer
    with pytest.raises(CallMediaError, match="mDNS"):
        check_remote_sdp(mdns)


def test_dns_name_candidate_is_refused(offer: str) -> None:
    named = re.sub(r"(a=candidate:\S+ 1 udp \d+ )127\.0\.0\.1", r"\g<1>radio.example", offer)
    with pytest.raises(CallMediaError, match="not an IP address"):
        check_remote_sdp(named)


def test_no_audio_is_refused(offer: str) -> None:
    video = offer.replace("m=audio ", "m=video ")
    with pytest.raises(CallMediaError, match="no audio"):
        check_remote_sdp(video)


def test_a_second_media_section_is_refused(offer: str) -> None:
    at = offer.index("m=audio")
    doubled = offer + offer[at:].replace("a=mid:0", "a=mid:1")
    with pytest.raises(CallMediaError, match="2 media sections"):
        check_remote_sdp(doubled)


def test_no_opus_is_refused(offer: str) -> None:
    pcmu = offer.replace("a=rtpmap:96 opus/48000/2", "a=rtpmap:96 PCMU/8000")
    with pytest.raises(CallMediaError, match="Opus"):
        check_remote_sdp(pcmu)


def test_no_fingerprint_is_refused(offer: str) -> None:
    bare = "".join(line for line in offer.splitlines(True) if "a=fingerprint" not in line)
    with pytest.raises(CallMediaError, match="fingerprint"):
        check_remote_sdp(bare)


@pytest.mark.parametrize("garbage", ["", "hello", "v=0\r\nm=audio x\r\n", "\x00" * 100])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(CallMediaError):
        check_remote_sdp(garbage)


def test_too_big_is_refused(offer: str) -> None:
    padded = offer + "a=x-pad:" + "x" * MAX_SDP_BYTES + "\r\n"
    with pytest.raises(CallMediaError, match="KiB"):
        check_remote_sdp(padded)
    with pytest.raises(CallMediaError, match="KiB"):
        sdp_fingerprints(padded)


async def test_answer_refuses_before_touching_aiortc(offer: str) -> None:
    callee = CallMedia(IceSettings(), None, None)
    try:
        with pytest.raises(CallMediaError, match="mDNS"):
            await callee.answer(
                re.sub(r"(a=candidate:\S+ 1 udp \d+ )127\.0\.0\.1", r"\g<1>x.local", offer)
            )
        assert callee._pc.remoteDescription is None
    finally:
        await callee.close()


def test_fingerprints_are_read_as_aiortc_compares_them(offer: str) -> None:
    lower = re.sub(
        r"a=fingerprint:(\S+) ([0-9A-F:]+)",
        lambda m: f"a=fingerprint:{m.group(1).upper()} {m.group(2).lower()}",
        offer,
    )
    assert sdp_fingerprints(lower) == sdp_fingerprints(offer)
    assert all(
        alg == alg.lower() and value == value.upper() for alg, value in sdp_fingerprints(offer)
    )


def test_session_level_fingerprint_is_inherited(offer: str) -> None:
    lines = offer.splitlines(True)
    prints = [line for line in lines if line.startswith("a=fingerprint")]
    rest = [line for line in lines if not line.startswith("a=fingerprint")]
    at = next(i for i, line in enumerate(rest) if line.startswith("m="))
    moved = "".join(rest[:at] + prints + rest[at:])
    assert sdp_fingerprints(moved) == sdp_fingerprints(offer)


# --------------------------------------------------------------------------- ICE settings


def test_no_servers_is_an_empty_list_never_aiortcs_default() -> None:
    config = rtc_configuration(IceSettings())
    assert config.iceServers == []  # None would mean stun:stun.l.google.com


def test_turn_server_and_relay_policy() -> None:
    settings = IceSettings(
        (IceServer(("turn:127.0.0.1:3478?transport=udp",), "1:alice", "pw"),), relay_only=True
    )
    config = rtc_configuration(settings)
    assert config.iceTransportPolicy.value == "relay"
    assert config.iceServers is not None and config.iceServers[0].username == "1:alice"


def test_relay_only_without_turn_is_refused() -> None:
    with pytest.raises(CallMediaError, match="TURN server"):
        rtc_configuration(IceSettings(relay_only=True))


def test_bad_url_and_missing_credentials_are_refused() -> None:
    with pytest.raises(CallMediaError, match="not a stun"):
        rtc_configuration(IceSettings((IceServer(("http://x",)),)))
    with pytest.raises(CallMediaError, match="credential"):
        rtc_configuration(IceSettings((IceServer(("turn:127.0.0.1:3478",)),)))
