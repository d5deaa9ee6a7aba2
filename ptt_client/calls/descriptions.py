"""A radio's word on its side of a call, and its check of the other side's.

:func:`describe` signs this radio's SDP with the fingerprints of *its own* DTLS certificate
(read from the peer connection, not from the SDP it made). :func:`check` opens the other
radio's signed description (:func:`crypto.call_description.verify_call_description`: the
org root issued the signer's credential, the signer is the user the side names, for this
call) and then compares the fingerprints that aiortc's own SDP parser finds - the ones the
DTLS handshake will be checked against - with the signed ones. Only then may the SDP go to
WebRTC: a relay that put its own certificate's fingerprint in (to sit in the middle of the
DTLS handshake) is refused before a single packet, with a message that says so.
"""

from __future__ import annotations

from typing import Final, Literal

from crypto.call_description import (
    MAX_CLOCK_SKEW,
    CallDescription,
    sign_call_description,
    verify_call_description,
)
from crypto.errors import CallError
from crypto.identity import Credential, DeviceKeys, TrustAnchor
from ptt_client.calls.errors import CallMediaError
from ptt_client.calls.sdp_checks import sdp_fingerprints
from ptt_protocol import control

__all__ = ["CallRefused", "SeenOffers", "check", "describe"]

MAX_SEEN_OFFERS: Final = 4096
"""More offers than a radio is made in the freshness window; a backstop, never reached."""


class CallRefused(Exception):
    """The other side's description is not to be trusted: the call ends with this text."""


def describe(
    *,
    call_id: bytes,
    side: Literal["offer", "answer"],
    caller: str,
    callee: str,
    mode: control.CallMode,
    emergency: bool,
    commencement: control.Commencement,
    sdp: str,
    fingerprints: frozenset[tuple[str, str]],
    now: float,
    keys: DeviceKeys,
    credential: Credential,
) -> bytes:
    """This radio's signed description of its side of the call."""
    description = CallDescription(
        call_id=call_id,
        side=side,
        caller=caller,
        callee=callee,
        mode=mode,
        emergency=emergency,
        commencement=commencement,
        sdp=sdp,
        fingerprints=tuple(sorted(fingerprints)),
        issued_at=now,
    )
    return sign_call_description(description, keys, credential)


def check(
    blob: bytes,
    trust: TrustAnchor,
    now: float,
    *,
    call_id: bytes,
    side: Literal["offer", "answer"],
    caller: str,
    callee: str,
) -> tuple[CallDescription, Credential]:
    """The other side's description and credential, or :class:`CallRefused` saying why."""
    peer = caller if side == "offer" else callee
    try:
        description, signer = verify_call_description(
            blob, trust, now, call_id=call_id, side=side, caller=caller, callee=callee
        )
    except CallError as exc:
        raise CallRefused(f"{side} from {peer} refused: {exc}") from exc
    try:
        in_sdp = sdp_fingerprints(description.sdp)
    except CallMediaError as exc:
        raise CallRefused(f"{side} from {peer} refused: {exc}") from exc
    signed = description.fingerprint_set()
    if in_sdp != signed:
        shown = ", ".join(f"{a} {v[:23]}..." for a, v in sorted(in_sdp - signed)) or "none"
        raise CallRefused(
            f"{side} from {peer}: the DTLS fingerprint in its SDP ({shown}) is not the one "
            f"{peer} signed; call refused (a relay in the middle?)"
        )
    return description, signer


class SeenOffers:
    """The calls offered to this radio while their offers are still fresh enough to verify.

    A signed offer is taken for :data:`~crypto.call_description.MAX_CLOCK_SKEW` either side
    of this radio's clock, and names its call id: a relay that sends it again (after the
    call ended, or twice) would otherwise ring this radio again for a call nobody makes."""

    def __init__(self) -> None:
        self._until: dict[bytes, float] = {}

    def first(self, call_id: bytes, issued_at: float, now: float) -> bool:
        """Record ``call_id``; False if it was offered here before (a replay)."""
        for old in [c for c, until in self._until.items() if until < now]:
            del self._until[old]
        if call_id in self._until:
            return False
        if len(self._until) >= MAX_SEEN_OFFERS:
            del self._until[next(iter(self._until))]
        # Verifiable until MAX_CLOCK_SKEW past its own time and past now (our clock may jump).
        self._until[call_id] = max(issued_at, now) + MAX_CLOCK_SKEW
        return True
