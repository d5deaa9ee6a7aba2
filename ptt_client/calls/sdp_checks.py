"""What a call accepts in the other radio's SDP, read with aiortc's own parser.

The signalling layer signs and verifies DTLS fingerprints; :func:`sdp_fingerprints` reads them
exactly as aiortc will when it checks the peer's certificate after the handshake (every
``a=fingerprint`` of every media section, session-level lines inherited), so what was
verified is what aiortc enforces. :func:`check_remote_sdp` refuses what we never want aiortc to
act on: no audio section, more than one section, no Opus, a candidate that is not an IP address (an mDNS ``.local``
name would make aioice multicast a query on the local network, a DNS name would leak a
lookup), no fingerprint, more than :data:`MAX_SDP_BYTES`, or text aiortc cannot parse.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from aiortc import sdp as aiortc_sdp

from ptt_client.calls.errors import CallMediaError

__all__ = ["MAX_SDP_BYTES", "check_remote_sdp", "parse_sdp", "sdp_fingerprints"]

MAX_SDP_BYTES: Final = 16 * 1024
"""Largest SDP accepted. A call's SDP is 1.2-1.4 KB (one audio section, a few candidates)."""


def parse_sdp(sdp: str) -> aiortc_sdp.SessionDescription:
    """Parse ``sdp`` with aiortc's parser; :class:`CallMediaError` if it is too big or broken."""
    if len(sdp.encode("utf-8", "surrogatepass")) > MAX_SDP_BYTES:
        raise CallMediaError(
            f"the other radio's call description is over {MAX_SDP_BYTES // 1024} KiB: "
            "call refused (is its software up to date?)"
        )
    try:
        return aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on bad input
        raise CallMediaError(
            f"the other radio's call description cannot be read ({type(exc).__name__}): "
            "call refused"
        ) from exc


def sdp_fingerprints(sdp: str) -> frozenset[tuple[str, str]]:
    """The DTLS fingerprints aiortc will require of the peer: ``{(algorithm, VALUE)}`` with
    the algorithm in lower case and the value in upper case, as aiortc compares them."""
    parsed = parse_sdp(sdp)
    return frozenset(
        (f.algorithm.lower(), f.value.upper())
        for media in parsed.media
        if media.dtls is not None
        for f in media.dtls.fingerprints
    )


def check_remote_sdp(sdp: str) -> None:
    """Raise :class:`CallMediaError` if the other radio's SDP is one we refuse (see the
    module docstring); return quietly if aiortc may use it."""
    parsed = parse_sdp(sdp)
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise CallMediaError("the other radio offered no audio: call refused")
    if len(parsed.media) > 1:
        # A second section would get a receiver of its own, outside the call's playout.
        raise CallMediaError(
            f"the other radio's call description has {len(parsed.media)} media sections, "
            "a call has one (audio): call refused"
        )
    if not any(c.mimeType.lower() == "audio/opus" for m in audio for c in m.rtp.codecs):
        raise CallMediaError(
            "the other radio does not offer Opus audio: call refused (update its software)"
        )
    for media in parsed.media:
        for candidate in media.ice_candidates:
            try:
                ipaddress.ip_address(candidate.ip)
            except ValueError:
                raise CallMediaError(
                    f"the other radio's network address {candidate.ip!r} is a name, not an "
                    "IP address (mDNS or DNS): call refused"
                ) from None
    if not any(m.dtls is not None and m.dtls.fingerprints for m in audio):
        raise CallMediaError("the other radio's call description has no DTLS fingerprint")
