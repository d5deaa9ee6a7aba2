"""One private call's media: a WebRTC peer connection (aiortc) carrying Opus both ways.

The signalling layer drives it: the caller's :meth:`CallMedia.offer` and the callee's
:meth:`CallMedia.answer` return complete SDP (aiortc does vanilla ICE: every candidate is in
it, so no candidate messages follow), the caller then :meth:`CallMedia.accept`\\ s the answer.
Before either side passes the other's SDP in, the signalling layer verifies that its
:func:`~ptt_client.calls.sdp_checks.sdp_fingerprints` are the ones the other radio signed;
aiortc then refuses a DTLS peer whose certificate does not match them.

Send: :class:`~ptt_client.calls.opus_track.OpusSourceTrack` (the radio's Opus encoder,
silence when :meth:`CallMedia.set_sending` is off). Receive: every RTP packet is tapped before
aiortc's jitter buffer and played by :class:`~ptt_client.calls.playout.CallPlayout` to the
sink. The call ends (``on_ended`` once, with a reason the officer can read) when:

- the other radio hangs up (its DTLS close_notify: at once);
- no RTP packet came for ``rtp_timeout`` (the other radio vanished: out of coverage,
  crashed; both sides always send, so silence on the wire means nobody is there);
- ICE or DTLS failed (a fingerprint mismatch among them), or ICE did not connect within
  ``connect_timeout`` of the negotiation.

:meth:`CallMedia.close` always returns within ~2 s and leaves no thread or socket behind.
Construct and use a :class:`CallMedia` on the event loop that runs the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtp import RtpPacket
from aiortc.stats import RTCRemoteInboundRtpStreamStats, RTCStatsReport

from ptt_client.audio import AudioInput, AudioOutput
from ptt_client.calls import aiortc_patches
from ptt_client.calls.errors import CallMediaError
from ptt_client.calls.ice import IceSettings, pinned_host_addresses, rtc_configuration
from ptt_client.calls.opus_track import FRAME_S, OpusSourceTrack
from ptt_client.calls.playout import CallPlayout
from ptt_client.calls.sdp_checks import check_remote_sdp
from ptt_client.codec import Pcm

__all__ = ["CLOSE_TIMEOUT_S", "CallMedia"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S: Final = 2.0
"""Longest :meth:`CallMedia.close` waits for aiortc (the TURN deallocation is bounded well
below it by :mod:`ptt_client.calls.aiortc_patches`; this is the backstop)."""
CLOSED_HERE: Final = "the call was closed on this radio"
HUNG_UP: Final = "the other radio hung up"
LOSS_CHECK_S: Final = 2.0
"""How often the encoder's loss hint follows the peer's receiver reports (RTCP: about 5 s)."""


def reported_loss_pct(report: RTCStatsReport) -> float | None:
    """The loss the peer last reported for our audio (RTCP fraction lost), in percent."""
    for stats in report.values():
        if isinstance(stats, RTCRemoteInboundRtpStreamStats):
            return 100.0 * stats.fractionLost / 256.0
    return None


def _opus_only() -> list[object]:
    capabilities = RTCRtpSender.getCapabilities("audio")
    assert capabilities is not None
    return [c for c in capabilities.codecs if c.mimeType.lower() == "audio/opus"]


class CallMedia:
    """One call's peer connection, its audio in both directions and its end."""

    def __init__(
        self,
        ice: IceSettings,
        source: AudioInput | None,
        sink: AudioOutput | None,
        *,
        rtp_timeout: float = 1.5,
        connect_timeout: float = 5.0,
        on_ended: Callable[[str], None] | None = None,
        initial_delay_ms: float = 40.0,
    ) -> None:
        if rtp_timeout <= 0 or connect_timeout <= 0:
            raise CallMediaError("rtp_timeout and connect_timeout must be positive seconds")
        aiortc_patches.apply()
        hosts = ice.host_addresses if ice.host_addresses is not None else pinned_host_addresses()
        aiortc_patches.pin_host_addresses(hosts)
        self._rtp_timeout = rtp_timeout
        self._connect_timeout = connect_timeout
        self._on_ended = on_ended
        self._sink = sink
        self._pc = RTCPeerConnection(rtc_configuration(ice))
        self._track = OpusSourceTrack(source)
        self._transceiver = self._pc.addTransceiver(self._track, direction="sendrecv")
        self._transceiver.setCodecPreferences(_opus_only())  # type: ignore[arg-type]
        aiortc_patches.tap_receiver(self._transceiver.receiver, self._on_rtp)
        self._dtls = self._transceiver.sender.transport
        self.local_fingerprints: frozenset[tuple[str, str]] = frozenset(
            (f.algorithm.lower(), f.value.upper())
            for f in self._dtls.getLocalParameters().fingerprints
        )
        """This call's DTLS certificate fingerprints, ``{(algorithm, VALUE)}``, for the
        signed offer or answer (a new certificate per call)."""
        self._playout = CallPlayout(initial_delay_ms=initial_delay_ms)
        self.ended_reason: str | None = None
        """Why the call ended (``None`` while it runs)."""
        self.first_frame_at: float | None = None
        """``time.monotonic()`` when the first decoded frame went to the sink."""
        self.connected_at: float | None = None
        """``time.monotonic()`` when ICE and DTLS were up."""
        self.frames_received = 0
        self._last_rtp_at = 0.0
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_task: asyncio.Task[None] | None = None
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._dtls.on("statechange", self._on_dtls_state)

    # ------------------------------------------------------------------ negotiation

    async def offer(self) -> str:
        """Caller: this radio's complete offer SDP (Opus only, every candidate in it)."""
        self._check_running()
        try:
            await self._pc.setLocalDescription(await self._pc.createOffer())
        except Exception as exc:
            raise CallMediaError(f"could not prepare the call ({exc}): try again") from exc
        return self._local_sdp()

    async def answer(self, offer_sdp: str) -> str:
        """Callee: take the caller's offer, return this radio's complete answer SDP."""
        self._check_running()
        check_remote_sdp(offer_sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except CallMediaError:
            raise
        except Exception as exc:
            raise CallMediaError(
                f"the other radio's call offer was not usable ({exc}): call refused"
            ) from exc
        sdp = self._local_sdp()
        self._negotiated()
        return sdp

    async def accept(self, answer_sdp: str) -> None:
        """Caller: take the callee's answer; media starts once ICE and DTLS are up."""
        self._check_running()
        check_remote_sdp(answer_sdp)
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        except Exception as exc:
            raise CallMediaError(
                f"the other radio's call answer was not usable ({exc}): call refused"
            ) from exc
        self._negotiated()

    def _local_sdp(self) -> str:
        description = self._pc.localDescription
        assert description is not None
        if "\na=candidate:" not in description.sdp:
            # Without a candidate ICE would sit in "new" for ever.
            raise CallMediaError(
                "this radio found no network address for the call (the TURN server is "
                "unreachable or refused its credentials): check the call settings"
            )
        return description.sdp

    def _negotiated(self) -> None:
        self._spawn(self._watch_connect())
        self._spawn(self._run_playout())

    def _check_running(self) -> None:
        if self.ended_reason is not None:
            raise CallMediaError(f"this call has ended ({self.ended_reason}): start a new one")

    # ------------------------------------------------------------------ running call

    async def wait_connected(self) -> None:
        """Return once ICE and DTLS are up; :class:`CallMediaError` if the call ends first or
        nothing connects within ``connect_timeout``."""
        if not self._connected.is_set() and self.ended_reason is None:
            waits = [
                asyncio.ensure_future(self._connected.wait()),
                asyncio.ensure_future(self._ended.wait()),
            ]
            try:
                await asyncio.wait(
                    waits, timeout=self._connect_timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for wait in waits:
                    wait.cancel()
            if not self._connected.is_set():
                self._end(self._no_path_reason())
        if self.ended_reason is not None:
            raise CallMediaError(self.ended_reason)

    def set_sending(self, on: bool) -> None:
        """Half duplex: with ``on`` False the other radio hears silence (RTP keeps flowing)."""
        self._track.sending = on

    @property
    def sending(self) -> bool:
        """Whether this radio's source is sent (see :meth:`set_sending`)."""
        return self._track.sending

    @property
    def frames_sent(self) -> int:
        """20 ms packets sent (speech or silence)."""
        return self._track.frames_sent

    @property
    def frames_concealed(self) -> int:
        """Frames played without their own packet: rebuilt by FEC or concealed."""
        stats = self._playout.stats
        return stats.recovered + stats.concealed

    @property
    def playout(self) -> CallPlayout:
        """The receive side (its ``stats`` for diagnostics)."""
        return self._playout

    def media_path(self) -> tuple[str, str] | None:
        """Candidate types of the pair carrying media, ``(local, remote)`` such as
        ``("relay", "relay")``; ``None`` before ICE chose one."""
        return aiortc_patches.nominated_candidate_types(self._dtls.transport)

    def _on_rtp(self, packet: RtpPacket) -> None:
        now = time.monotonic()
        self._last_rtp_at = now
        self.frames_received += 1
        if self._playout.push(packet.sequence_number, packet.payload, now):
            self._wake.set()

    async def _run_playout(self) -> None:
        while True:
            frame = self._playout.pop(time.monotonic())
            if frame is None:
                due = self._playout.next_due()
                self._wake.clear()
                timeout = FRAME_S if due is None else max(0.0, due - time.monotonic())
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (gh-86296).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            if frame.kind == "play" and self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
            await self._write(frame.pcm)

    async def _write(self, pcm: Pcm) -> None:
        sink = self._sink
        if sink is None:
            return
        if sink.blocking:
            # A sound device's write waits for the hardware: never on the event loop.
            await asyncio.to_thread(sink.write, pcm)
        else:
            sink.write(pcm)

    async def _watch_connect(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout):
                await self._connected.wait()
                return
        self._end(self._no_path_reason())

    def _no_path_reason(self) -> str:
        return (
            f"no media path to the other radio within {self._connect_timeout:g} s "
            "(firewall, or no TURN relay both radios can reach): the call cannot be made"
        )

    async def _follow_loss(self) -> None:
        # The peer's RTCP receiver reports say how much of our audio it loses; the encoder
        # spends bits on in-band FEC only as far as that loss calls for.
        while True:
            await asyncio.sleep(LOSS_CHECK_S)
            pct = reported_loss_pct(await self._transceiver.sender.getStats())
            if pct is not None:
                self._track.set_expected_loss(pct)

    async def _watch_rtp(self) -> None:
        # Both radios send a packet every 20 ms for the whole call (silence included).
        while True:
            left = self._last_rtp_at + self._rtp_timeout - time.monotonic()
            if left <= 0:
                self._end(f"no audio from the other radio for {self._rtp_timeout:g} s")
                return
            await asyncio.sleep(left)

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and not self._connected.is_set():
            self.connected_at = self._last_rtp_at = time.monotonic()
            self._connected.set()
            self._spawn(self._watch_rtp())
            self._spawn(self._follow_loss())
        elif state == "failed":
            if self._dtls.transport.state in ("failed", "closed"):
                self._end("no media path to the other radio (ICE failed): the call cannot be made")
            else:
                self._end(
                    "the other radio's media encryption did not match its signed call "
                    "description (DTLS failed): call refused"
                )

    def _on_dtls_state(self) -> None:
        if self._dtls.state != "closed" or self._shutdown_task is not None:
            return
        if self._dtls.transport.state in ("closed", "failed"):
            self._end("lost the connection to the other radio (ICE consent expired)")
        else:
            self._end(HUNG_UP)  # its DTLS close_notify

    # ------------------------------------------------------------------ the end

    def _end(self, reason: str) -> None:
        if self.ended_reason is not None:
            return
        self.ended_reason = reason
        self._ended.set()
        logger.info("call media ended: %s", reason)
        self._start_shutdown()
        if self._on_ended is not None:
            try:
                self._on_ended(reason)
            except Exception:
                # It runs inside aiortc's event handlers: an exception there would break them.
                logger.exception("on_ended callback failed")

    async def close(self) -> None:
        """Hang up (the other radio sees DTLS close_notify) and release everything; returns
        within ~:data:`CLOSE_TIMEOUT_S` and may be called again. ``on_ended`` is not called
        for a close asked for here."""
        if self.ended_reason is None:
            self.ended_reason = CLOSED_HERE
            self._ended.set()
        # Shielded: a cancelled close() still lets the shutdown finish in the background.
        await asyncio.shield(self._start_shutdown())

    def _start_shutdown(self) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown())
        return self._shutdown_task

    async def _shutdown(self) -> None:
        self._track.sending = False
        for task in list(self._tasks):
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pc.close()
        except TimeoutError:
            logger.warning("aiortc did not close the call within %g s", CLOSE_TIMEOUT_S)
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
