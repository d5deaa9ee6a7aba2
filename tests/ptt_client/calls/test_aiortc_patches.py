"""Pin-checks: each target of ptt_client.calls.aiortc_patches is still where the patch
expects it. When one fails after an aiortc or aioice upgrade, re-read the new code and
update (or drop) that patch; do not just silence the test."""

from __future__ import annotations

import inspect

import aioice.ice
import aioice.stun
import aioice.turn
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer

from ptt_client.calls import aiortc_patches
from ptt_client.calls.aiortc_patches import (
    DEALLOCATE_RETRANSMISSIONS,
    FIRST_RETRANSMIT_S,
    CallTransaction,
)


class _Sink:
    def send_stun(self, message: aioice.stun.Message, addr: tuple[str, int]) -> None:
        pass


def _request(method: aioice.stun.Method, **attributes: object) -> aioice.stun.Message:
    message = aioice.stun.Message(message_method=method, message_class=aioice.stun.Class.REQUEST)
    message.attributes.update(attributes)
    return message


# ----------------------------------------------------------- 1. aioice's STUN transaction


def test_apply_installs_the_transaction_once() -> None:
    aiortc_patches.apply()
    aiortc_patches.apply()
    assert aioice.stun.Transaction is CallTransaction
    assert CallTransaction.__mro__[1].__module__ == "aioice.stun"  # one layer, not two


def test_transaction_signature_is_the_one_we_override() -> None:
    original = CallTransaction.__mro__[1]
    names = list(inspect.signature(original).parameters)
    assert names == [
        "request",
        "addr",
        "protocol",
        "retransmissions",
        "integrity_key",
        "long_term_credential",
    ]


def test_transaction_timing_attributes_exist() -> None:
    original = CallTransaction.__mro__[1]
    plain = original(_request(aioice.stun.Method.BINDING), ("127.0.0.1", 9), _Sink())
    assert plain._Transaction__timeout_delay == aioice.stun.RETRY_RTO
    assert plain._Transaction__tries_max == 1 + aioice.stun.RETRY_MAX


def test_aioice_builds_transactions_through_the_module_attribute() -> None:
    # A call-time lookup of stun.Transaction is what makes replacing it reach aioice.
    assert "stun.Transaction(" in inspect.getsource(aioice.ice.StunProtocol.request)
    assert "stun.Transaction(" in inspect.getsource(aioice.turn.TurnClientMixin.request)


def test_consent_checks_are_single_tries() -> None:
    # CallTransaction keeps aioice's timeout for these (retransmissions=0).
    assert "retransmissions=0" in inspect.getsource(aioice.ice.Connection.query_consent)


def test_turn_deallocation_is_a_refresh_with_lifetime_zero() -> None:
    source = inspect.getsource(aioice.turn.TurnClientMixin.delete)
    assert "Method.REFRESH" in source and 'request.attributes["LIFETIME"] = 0' in source


def test_call_transaction_timings() -> None:
    check = CallTransaction(_request(aioice.stun.Method.BINDING), ("127.0.0.1", 9), _Sink())
    assert check._Transaction__timeout_delay == FIRST_RETRANSMIT_S
    assert check._Transaction__tries_max == 1 + aioice.stun.RETRY_MAX
    consent = CallTransaction(
        _request(aioice.stun.Method.BINDING), ("127.0.0.1", 9), _Sink(), retransmissions=0
    )
    assert consent._Transaction__timeout_delay == aioice.stun.RETRY_RTO
    assert consent._Transaction__tries_max == 1
    delete = CallTransaction(
        _request(aioice.stun.Method.REFRESH, LIFETIME=0), ("127.0.0.1", 9), _Sink()
    )
    assert delete._Transaction__tries_max == 1 + DEALLOCATE_RETRANSMISSIONS
    refresh = CallTransaction(
        _request(aioice.stun.Method.REFRESH, LIFETIME=600), ("127.0.0.1", 9), _Sink()
    )
    assert refresh._Transaction__tries_max == 1 + aioice.stun.RETRY_MAX


# ------------------------------------------------------- 2. the receiver's jitter buffer


def _receiver() -> RTCRtpReceiver:
    ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
    dtls = RTCDtlsTransport(ice, [RTCCertificate.generateCertificate()])
    return RTCRtpReceiver("audio", dtls)


async def test_receiver_has_the_jitter_buffer_we_replace() -> None:
    receiver = _receiver()
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)  # type: ignore[attr-defined]
    source = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__jitter_buffer.add(packet)" in source
    assert "pli_flag, encoded_frame = " in source  # what the tap's add() returns


async def test_tap_receives_packets_and_yields_no_frame() -> None:
    from aiortc.rtp import RtpPacket

    receiver = _receiver()
    got: list[int] = []
    aiortc_patches.tap_receiver(receiver, lambda p: got.append(p.sequence_number))
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert buffer.add(RtpPacket(sequence_number=7)) == (False, None)
    assert got == [7]


# ----------------------------------------------------------- 3. the nominated pair


def test_nominated_pair_lives_where_we_read_it() -> None:
    connection = aioice.ice.Connection(ice_controlling=True)
    assert connection._nominated == {}
    assert "self._nominated[" in inspect.getsource(aioice.ice.Connection)
    pair = aioice.ice.CandidatePair
    assert isinstance(pair.local_candidate, property)
    assert "remote_candidate" in inspect.signature(pair.__init__).parameters
    ice = RTCIceTransport(RTCIceGatherer(iceServers=[]))
    assert isinstance(ice._connection, aioice.ice.Connection)
    assert aiortc_patches.nominated_candidate_types(ice) is None
