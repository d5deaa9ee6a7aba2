"""A radio's private calls (TS 23.379): dial, ring, answer, talk, hang up, over aiortc.

:class:`PrivateCalls` is what :class:`ptt_client.client.RadioClient` exposes as ``calls``.
It drives the signalling (``ptt_protocol.control_calls``) over the radio's control
connection and one :class:`~ptt_client.calls.media.CallMedia` per call for the media, which
goes peer to peer (or through the relay's TURN server) under DTLS-SRTP. Every offer and
answer is signed by the sending device and checked by the other before its SDP reaches
WebRTC (:mod:`ptt_client.calls.descriptions`), so the relay cannot sit in the middle.

A radio is in at most one call. Calls report :class:`~ptt_client.events.CallAlerting`,
:class:`~ptt_client.events.CallConnected` and :class:`~ptt_client.events.CallEnded` on the
radio's event stream; every way a call can fail ends it on both sides with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from crypto.identity import Credential, DeviceKeys, TrustAnchor
from ptt_client import events
from ptt_client.audio import AudioInput, AudioOutput
from ptt_client.calls.descriptions import CallRefused, SeenOffers, check, describe
from ptt_client.calls.errors import CallMediaError
from ptt_client.calls.ice import IceServer, IceSettings
from ptt_client.calls.media import CLOSED_HERE, HUNG_UP, CallMedia
from ptt_client.errors import ClientError
from ptt_protocol import control

__all__ = ["AudioForCall", "Call", "CallError", "PrivateCalls"]

log = logging.getLogger(__name__)

ICE_SERVERS_TIMEOUT: Final = 5.0
ICE_REFRESH_MARGIN: Final = 60.0
"""Ask for fresh TURN credentials when the cached ones expire within this many seconds."""
SIGNAL_GRACE: Final = 1.0
"""Seconds the radio waits for the relay's word on why a call's media stopped."""
RING_LIMIT: Final = 310.0
"""Longer than the longest ring timeout a relay may be configured with (300 s)."""
ANSWER_WAIT: Final = 40.0
"""Seconds the caller waits for an answer; the relay's ring timeout ends it sooner."""

AudioForCall = Callable[["Call"], tuple[AudioInput | None, AudioOutput | None]]
"""What a call speaks from and plays to (the radio's microphone and speaker, WAV files)."""


class CallError(Exception):
    """A call action cannot be done now (not connected, already in a call, no such call)."""


@dataclass(eq=False)
class Call:
    """One private call, as this radio sees it."""

    call_id: bytes
    peer: str
    outgoing: bool
    mode: control.CallMode
    emergency: bool
    commencement: control.Commencement
    display_name: str = ""
    state: str = "dialing"
    """dialing, ringing, connecting, connected, ended."""
    media: CallMedia | None = None
    started_at: float = 0.0
    connected_at: float | None = None
    talker: str = ""
    """Half-duplex: who may talk now ("" nobody)."""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end: events.CallEnded | None = None
    _incoming: control.CallIncoming | None = None
    _answered: asyncio.Future[control.CallAnswer] | None = None


class PrivateCalls:
    """This radio's private calls; fed the call messages its control connection receives."""

    def __init__(
        self,
        *,
        credential: Credential,
        keys: DeviceKeys,
        trust: Callable[[], TrustAnchor],
        send: Callable[[control.Message], Awaitable[None]],
        emit: Callable[[object], None],
        audio: AudioForCall | None = None,
        relay_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.user_id = credential.user_id
        self._credential = credential
        self._keys = keys
        self._trust = trust
        self._send = send
        self._emit = emit
        self.audio = audio
        """Sources and sinks for the next calls (None: silence out, nothing played)."""
        self.relay_only = relay_only
        """Keep call media on TURN relay candidates (the peer never learns this radio's address)."""
        self.auto_answer = True
        """Answer ringing calls at once (MCPTT automatic commencement) when the caller asks."""
        self.ring_limit = RING_LIMIT
        """Seconds this radio rings before it refuses on its own (the relay's ring timeout
        normally ends the call sooner; this bounds a relay that does not)."""
        self._clock = clock
        self.on_emergency_call: Callable[[], Awaitable[None]] | None = None
        """Run when an emergency call comes in, before it is answered: the radio stops what it
        is doing (its group transmissions) for it."""
        self.active: Call | None = None
        self._ice: tuple[tuple[IceServer, ...], float] | None = None
        self._ice_wait: asyncio.Future[control.IceServers] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._offers = SeenOffers()

    # --- the officer's actions -------------------------------------------------------------

    async def dial(
        self,
        user: str,
        *,
        mode: control.CallMode = control.CALL_FULL_DUPLEX,
        emergency: bool = False,
        commencement: control.Commencement = control.COMMENCEMENT_AUTOMATIC,
    ) -> Call:
        """Call ``user``; returns once the offer is sent (watch the events, or ``call.ended``).

        An emergency call ends this radio's current call first (the relay does the same for
        the callee's)."""
        if self.active is not None:
            if not emergency:
                raise CallError(f"already in a call with {self.active.peer}: hang up first")
            await self.hangup()
        call = Call(
            call_id=secrets.token_bytes(16),
            peer=user,
            outgoing=True,
            mode=mode,
            emergency=emergency,
            commencement=control.COMMENCEMENT_AUTOMATIC if emergency else commencement,
            started_at=self._clock(),
        )
        self.active = call
        call._answered = asyncio.get_running_loop().create_future()
        try:
            servers = await self._ice_servers()
            if call.state == "ended":  # hung up (or pre-empted) while asking: nothing to undo
                return call
            media = self._media(call, servers)
            sdp = await media.offer()
            if call.state == "ended":  # hung up while gathering: _finish closed the media
                return call
            blob = self._describe(call, "offer", sdp, media)
            await self._send(
                control.CallOffer(
                    call_id=call.call_id,
                    to_user=user,
                    mode=mode,
                    commencement=call.commencement,
                    emergency=emergency,
                    description=blob,
                )
            )
        except (CallMediaError, CallError, ClientError, OSError, TimeoutError) as exc:
            await self._finish(call, control.END_FAILED, f"call to {user} not placed: {exc}")
            return call
        except BaseException:
            await self._finish(call, control.END_FAILED, "call not placed", tell=False)
            raise
        self._spawn(self._await_answer(call))
        return call

    async def accept(self) -> None:
        """Answer the call that rings at this radio."""
        call = self.active
        if call is None or call.outgoing or call.state != "ringing":
            raise CallError("no call is ringing")
        call.state = "connecting"
        self._spawn(self._answer(call))

    async def refuse(self, text: str = "") -> None:
        """Refuse the call that rings at this radio."""
        call = self.active
        if call is None or call.outgoing or call.state != "ringing":
            raise CallError("no call is ringing")
        await self._finish(call, control.END_REFUSED, text or f"{self.user_id} refused the call")

    async def hangup(self, text: str = "") -> None:
        """End the current call, whatever its state."""
        call = self.active
        if call is None:
            raise CallError("not in a call")
        await self._finish(call, control.END_HANGUP, text or f"{self.user_id} hung up")

    async def talk(self, talking: bool) -> None:
        """Half-duplex calls: press (``True``) or release the call's floor."""
        call = self.active
        if call is None or call.mode != control.CALL_HALF_DUPLEX:
            raise CallError("not in a half-duplex call")
        await self._send(control.CallTalk(call_id=call.call_id, talking=talking))

    async def close(self) -> None:
        """The radio stops: end the call, stop every task."""
        if self.active is not None:
            with contextlib.suppress(Exception):
                await self._finish(self.active, control.END_HANGUP, f"{self.user_id} went off air")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def connection_lost(self) -> None:
        """The control connection dropped: the relay ends our call for the peer (peer gone),
        so this side ends it too rather than talk into a call the peer has left."""
        if self.active is not None:
            self._spawn(
                self._finish(
                    self.active,
                    control.END_PEER_GONE,
                    "this radio lost its connection to the relay",
                    tell=False,
                )
            )

    # --- messages from the relay -----------------------------------------------------------

    def receive(self, message: control.Message) -> None:
        """One call message from the relay (never raises: the network may send anything)."""
        if isinstance(message, control.IceServers):
            if self._ice_wait is not None and not self._ice_wait.done():
                self._ice_wait.set_result(message)
            return
        if isinstance(message, control.CallIncoming):
            self._spawn(self._incoming(message))
            return
        call = self.active
        if call is None or getattr(message, "call_id", None) != call.call_id:
            return  # a late message of an ended call
        if isinstance(message, control.CallRinging) and call.outgoing:
            if call.state != "dialing":
                return  # a repeat, or one late past the answer: the call is not ringing again
            call.state = "ringing"
            self._emit(
                events.CallAlerting(
                    call.call_id, call.peer, "", outgoing=True, emergency=call.emergency
                )
            )
        elif isinstance(message, control.CallAnswer) and call.outgoing:
            if call._answered is not None and not call._answered.done():
                call._answered.set_result(message)
        elif isinstance(message, control.CallEnd):
            self._spawn(self._finish(call, message.reason, message.text, tell=False))
        elif isinstance(message, control.CallTalker):
            if call.mode != control.CALL_HALF_DUPLEX:
                return  # a full-duplex call has no floor (the signed mode): nobody is muted
            call.talker = message.user_id
            if call.media is not None:
                call.media.set_sending(message.user_id == self.user_id)
            self._emit(message)

    # --- the call's steps ------------------------------------------------------------------

    async def _await_answer(self, call: Call) -> None:
        assert call._answered is not None
        try:
            async with asyncio.timeout(ANSWER_WAIT):
                answer = await call._answered
        except TimeoutError:
            await self._finish(call, control.END_NO_ANSWER, f"{call.peer} did not answer")
            return
        call.state = "connecting"
        try:
            description, _signer = check(
                answer.description,
                self._trust(),
                self._clock(),
                call_id=call.call_id,
                side="answer",
                caller=self.user_id,
                callee=call.peer,
            )
            signed = (description.mode, description.emergency, description.commencement)
            if signed != (call.mode, call.emergency, call.commencement):
                raise CallRefused(f"answer from {call.peer} is for another kind of call")
            assert call.media is not None
            await call.media.accept(description.sdp)
            await call.media.wait_connected()
        except (CallRefused, CallMediaError) as exc:
            await self._finish(call, control.END_FAILED, str(exc))
            return
        self._connected(call)

    async def _incoming(self, message: control.CallIncoming) -> None:
        if self.active is not None and self.active.call_id == message.call_id:
            log.warning("call from %s offered twice: the repeat is ignored", message.from_user)
            return
        if self.active is not None and not message.emergency:
            await self._end_unknown(message, control.END_BUSY, f"{self.user_id} is busy")
            return
        try:
            description, signer = check(
                message.description,
                self._trust(),
                self._clock(),
                call_id=message.call_id,
                side="offer",
                caller=message.from_user,
                callee=self.user_id,
            )
            if not self._offers.first(message.call_id, description.issued_at, self._clock()):
                raise CallRefused(
                    f"offer from {message.from_user} refused: this call was offered to this "
                    "radio before (replayed by the relay?)"
                )
        except CallRefused as exc:
            log.warning("call refused: %s", exc)
            await self._end_unknown(message, control.END_FAILED, str(exc))
            return
        if self.active is not None:
            # Only a signed emergency pre-empts: the relay's flag alone ends no call here.
            if not description.emergency:
                await self._end_unknown(message, control.END_BUSY, f"{self.user_id} is busy")
                return
            await self._finish(
                self.active, control.END_PREEMPTED, "ended for an emergency call", tell=False
            )
            if self.active is not None:  # another call took this radio meanwhile
                await self._end_unknown(message, control.END_BUSY, f"{self.user_id} is busy")
                return
        # Mode, emergency and commencement are signed; the relay's copies are only for the
        # relay's rules.
        call = Call(
            call_id=message.call_id,
            peer=message.from_user,
            outgoing=False,
            mode=description.mode,
            emergency=description.emergency,
            commencement=description.commencement,
            display_name=signer.display_name,
            started_at=self._clock(),
            state="ringing",
            _incoming=message,
        )
        self.active = call
        automatic = call.emergency or (
            call.commencement == control.COMMENCEMENT_AUTOMATIC and self.auto_answer
        )
        self._emit(
            events.CallAlerting(
                call.call_id,
                call.peer,
                call.display_name,
                outgoing=False,
                emergency=call.emergency,
            )
        )
        if call.emergency and self.on_emergency_call is not None:
            try:
                await self.on_emergency_call()
            except Exception:  # the call matters more than what it interrupts
                log.exception("stopping for an emergency call failed")
        if automatic:
            call.state = "connecting"
            await self._answer(call)
        else:
            with contextlib.suppress(OSError, ClientError):
                await self._send(control.CallRinging(call_id=call.call_id))
            self._spawn(self._stop_ringing(call))

    async def _stop_ringing(self, call: Call) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.ring_limit):
                await call.ended.wait()
                return
        if call.state == "ringing":
            await self._finish(
                call, control.END_REFUSED, f"not answered within {self.ring_limit:g} s"
            )

    async def _answer(self, call: Call) -> None:
        message = call._incoming
        assert message is not None
        try:
            description, _signer = check(
                message.description,
                self._trust(),
                self._clock(),
                call_id=call.call_id,
                side="offer",
                caller=call.peer,
                callee=self.user_id,
            )
            servers = tuple(
                IceServer(tuple(s.urls), s.username, s.credential) for s in message.ice_servers
            )
            media = self._media(call, servers)
            sdp = await media.answer(description.sdp)
            if call.state == "ended":  # the caller hung up meanwhile: _finish closed the media
                return
            blob = self._describe(call, "answer", sdp, media)
            await self._send(control.CallAnswer(call_id=call.call_id, description=blob))
            await media.wait_connected()
        except (CallRefused, CallMediaError, CallError, ClientError, OSError) as exc:
            await self._finish(call, control.END_FAILED, str(exc))
            return
        self._connected(call)

    def _connected(self, call: Call) -> None:
        if call.state == "ended":
            return
        call.state = "connected"
        call.connected_at = self._clock()
        assert call.media is not None
        if call.mode == control.CALL_HALF_DUPLEX:
            call.media.set_sending(call.talker == self.user_id)
        path = call.media.media_path()
        self._emit(
            events.CallConnected(
                call.call_id,
                call.peer,
                outgoing=call.outgoing,
                mode=call.mode,
                emergency=call.emergency,
                relayed=path is not None and "relay" in path,
            )
        )

    async def _finish(
        self, call: Call, reason: control.EndReason, text: str, *, tell: bool = True
    ) -> None:
        """End ``call`` once: tell the relay (unless it told us), close the media, report."""
        if call.state == "ended":
            return
        call.state = "ended"
        if self.active is call:
            self.active = None
        if call._answered is not None and not call._answered.done():
            call._answered.cancel()
        if tell:
            with contextlib.suppress(Exception):  # the connection may be gone: the relay knows
                await self._send(
                    control.CallEnd(call_id=call.call_id, reason=reason, text=text[:4096])
                )
        if call.media is not None:
            await call.media.close()
        duration = 0.0 if call.connected_at is None else self._clock() - call.connected_at
        call.end = events.CallEnded(
            call.call_id, call.peer, call.outgoing, reason, text, max(0.0, duration)
        )
        call.ended.set()
        self._emit(call.end)

    async def _end_unknown(
        self, message: control.CallIncoming, reason: control.EndReason, text: str
    ) -> None:
        with contextlib.suppress(Exception):
            await self._send(
                control.CallEnd(call_id=message.call_id, reason=reason, text=text[:4096])
            )
        self._emit(events.CallEnded(message.call_id, message.from_user, False, reason, text, 0.0))

    # --- helpers -----------------------------------------------------------------------------

    def _media(self, call: Call, servers: tuple[IceServer, ...]) -> CallMedia:
        source, sink = self.audio(call) if self.audio is not None else (None, None)
        media = CallMedia(
            IceSettings(servers=servers, relay_only=self.relay_only),
            source,
            sink,
            on_ended=lambda reason: self._media_ended(call, reason),
        )
        if call.mode == control.CALL_HALF_DUPLEX:
            media.set_sending(False)
        call.media = media
        return media

    def _media_ended(self, call: Call, reason: str) -> None:
        if reason != CLOSED_HERE:
            self._spawn(self._media_lost(call, reason))

    async def _media_lost(self, call: Call, reason: str) -> None:
        # The media notices first (the peer's DTLS close_notify comes straight, its CallEnd
        # through the relay): the relay's word, with the peer's reason, wins if it follows.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SIGNAL_GRACE):
                await call.ended.wait()
        outcome: control.EndReason = control.END_HANGUP if reason == HUNG_UP else control.END_FAILED
        await self._finish(call, outcome, f"{reason} ({call.peer})")

    def _describe(
        self, call: Call, side: Literal["offer", "answer"], sdp: str, media: CallMedia
    ) -> bytes:
        caller, callee = (self.user_id, call.peer) if side == "offer" else (call.peer, self.user_id)
        return describe(
            call_id=call.call_id,
            side=side,
            caller=caller,
            callee=callee,
            mode=call.mode,
            emergency=call.emergency,
            commencement=call.commencement,
            sdp=sdp,
            fingerprints=media.local_fingerprints,
            now=self._clock(),
            keys=self._keys,
            credential=self._credential,
        )

    async def _ice_servers(self) -> tuple[IceServer, ...]:
        now = self._clock()
        if self._ice is not None and self._ice[1] - ICE_REFRESH_MARGIN > now:
            return self._ice[0]
        self._ice_wait = asyncio.get_running_loop().create_future()
        await self._send(control.IceServersRequest())
        async with asyncio.timeout(ICE_SERVERS_TIMEOUT):
            answer = await self._ice_wait
        servers = tuple(IceServer(tuple(s.urls), s.username, s.credential) for s in answer.servers)
        self._ice = (servers, answer.expires_at)
        return servers

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())
