"""Every change Fieldradio makes inside aiortc and aioice, in one place.

Each one targets a private detail of the pinned versions (aiortc 1.16, aioice 0.13), and
``tests/ptt_client/calls/test_aiortc_patches.py`` has a pin-check per target that fails as soon
as a new version moves it. None of them is needed for a call to work; each fixes a measured
problem (``/work/notes/issue13_spike_findings.md``):

1. :class:`CallTransaction` replaces ``aioice.stun.Transaction`` (process-wide, by
   :func:`apply`, idempotent):

   - the first STUN retransmission comes after :data:`FIRST_RETRANSMIT_S` instead of
     aioice's 0.5 s (``RETRY_RTO``). Through TURN, a callee's first connectivity check often
     reaches the caller's allocation before the caller bound a channel to it; coturn drops it
     and the retransmission is what gets through. Relay-only setup: median 595 ms -> ~200 ms.
     Setting ``aioice.stun.RETRY_RTO`` instead would also shorten consent checks, which aioice
     sends once (``retransmissions=0``) with RTO as their only timeout: on a 150 ms cellular
     path every check would fail and aioice would close the call after six of them. So a
     single-try transaction keeps aioice's timeout.
   - deleting a TURN allocation (Refresh with LIFETIME 0) gives up after
     :data:`DEALLOCATE_RETRANSMISSIONS` retransmissions. aioice retries it on the full
     schedule, so ``pc.close()`` blocks for 63 s when the TURN server has gone silent; the
     server frees the allocation when its lifetime ends anyway (RFC 8656 section 7).

2. :func:`tap_receiver` replaces one receiver's audio jitter buffer (per instance, not
   process-wide) with a tap that hands every RTP packet to the call's own playout
   (:mod:`ptt_client.calls.playout`). aiortc's buffer (capacity 16, prefetch 4) holds 80 ms
   before the first frame and, after one lost packet, stays 14 packets (280 ms) behind for
   the rest of the call (aiortc issue #543); it has no clock and conceals nothing.

3. :func:`nominated_candidate_types` reads which candidate pair aioice nominated (aiortc has
   no public API for it): tests prove a relay-only call really went through TURN with it, and
   the radio can log whether a call is relayed.

4. :func:`pin_host_addresses` replaces ``aioice.ice.get_host_addresses`` (process-wide) while
   ``FIELDRADIO_ICE_HOSTS`` pins the host candidates (:mod:`ptt_client.calls.ice`): aioice has
   no setting for which interfaces to gather on, and leaves 127.0.0.1 out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import aioice.ice
import aioice.stun
from aiortc import RTCIceTransport, RTCRtpReceiver
from aiortc.rtp import RtpPacket

__all__ = [
    "DEALLOCATE_RETRANSMISSIONS",
    "FIRST_RETRANSMIT_S",
    "CallTransaction",
    "apply",
    "nominated_candidate_types",
    "pin_host_addresses",
    "tap_receiver",
]

FIRST_RETRANSMIT_S: Final = 0.1
"""First STUN retransmission (then doubling, as RFC 8489 6.2.1 has it)."""
DEALLOCATE_RETRANSMISSIONS: Final = 2
"""Retransmissions of a TURN deallocation: gives up after 0.1 + 0.2 + 0.4 s."""

_JITTER_BUFFER_ATTRIBUTE: Final = "_RTCRtpReceiver__jitter_buffer"


class CallTransaction(aioice.stun.Transaction):
    """aioice's STUN transaction with a quicker first retransmission and a bounded
    TURN deallocation (see the module docstring)."""

    def __init__(
        self,
        request: aioice.stun.Message,
        addr: tuple[str, int],
        protocol: Any,
        retransmissions: int | None = None,
        integrity_key: bytes | None = None,
        long_term_credential: bool = False,
    ) -> None:
        super().__init__(
            request,
            addr,
            protocol,
            retransmissions=retransmissions,
            integrity_key=integrity_key,
            long_term_credential=long_term_credential,
        )
        if retransmissions != 0:
            # A single try (a consent check) keeps aioice's RTO as its only timeout.
            self._Transaction__timeout_delay = FIRST_RETRANSMIT_S
        if _is_deallocation(request):
            self._Transaction__tries_max = 1 + DEALLOCATE_RETRANSMISSIONS


def _is_deallocation(request: aioice.stun.Message) -> bool:
    return bool(
        request.message_method == aioice.stun.Method.REFRESH
        and request.message_class == aioice.stun.Class.REQUEST
        and request.attributes.get("LIFETIME") == 0
    )


def apply() -> None:
    """Install :class:`CallTransaction` in aioice (once; later calls do nothing)."""
    if aioice.stun.Transaction is not CallTransaction:
        aioice.stun.Transaction = CallTransaction  # type: ignore[misc]


class _RtpTap:
    """Stands where aiortc's jitter buffer was: gives each packet to ``on_packet`` and
    never returns a frame, so aiortc's decoder thread gets nothing to decode."""

    def __init__(self, on_packet: Callable[[RtpPacket], None]) -> None:
        self._on_packet = on_packet

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        """aiortc's ``JitterBuffer.add``: returns (send a picture-loss request, frame)."""
        self._on_packet(packet)
        return False, None


def tap_receiver(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
    """Send ``receiver``'s RTP packets (after SRTP, RTX unwrapping and payload-type check)
    to ``on_packet`` instead of aiortc's jitter buffer and decoder."""
    if not hasattr(receiver, _JITTER_BUFFER_ATTRIBUTE):
        raise RuntimeError(
            "this aiortc version has no RTCRtpReceiver jitter buffer to tap: "
            "update ptt_client/calls/aiortc_patches.py for it (see its pin-check tests)"
        )
    setattr(receiver, _JITTER_BUFFER_ATTRIBUTE, _RtpTap(on_packet))


def nominated_candidate_types(transport: RTCIceTransport) -> tuple[str, str] | None:
    """``(local, remote)`` candidate types (``"host"``, ``"srflx"``, ``"relay"``...) of the
    pair carrying RTP, or ``None`` before ICE nominated one (or after it closed)."""
    connection = getattr(transport, "_connection", None)
    nominated = getattr(connection, "_nominated", None)
    if not isinstance(nominated, dict):
        return None
    pair = nominated.get(1)  # component 1: RTP (and RTCP, multiplexed)
    if pair is None:
        return None
    return str(pair.local_candidate.type), str(pair.remote_candidate.type)


_AIOICE_HOST_ADDRESSES: Callable[[bool, bool], list[str]] | None = None
"""aioice's own ``get_host_addresses`` while ours stands in for it."""


def pin_host_addresses(addresses: tuple[str, ...] | None) -> None:
    """Offer only ``addresses`` as host candidates (IPv6 ones when aioice gathers IPv6);
    ``None`` puts aioice's function back if this module replaced it (and leaves anything
    else alone)."""
    global _AIOICE_HOST_ADDRESSES
    if addresses is None:
        if _AIOICE_HOST_ADDRESSES is not None:
            aioice.ice.get_host_addresses = _AIOICE_HOST_ADDRESSES  # type: ignore[assignment]
            _AIOICE_HOST_ADDRESSES = None
        return
    pinned = tuple(addresses)

    def pinned_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (use_ipv6 if ":" in a else use_ipv4)]

    if _AIOICE_HOST_ADDRESSES is None:
        _AIOICE_HOST_ADDRESSES = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = pinned_addresses
