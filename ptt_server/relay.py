"""The media relay: one UDP socket, forwarding E2E frames it cannot decrypt.

Hot path (``datagram_received``): a dict look-up by session index, the hop
layer's authentication and replay check, a floor check, a sender check, then
one re-seal per listener. No awaits, no logging, drops counted by reason.

The floor check forwards only the holder, and only frames of the burst the floor
was granted for (plus a released burst's last frames for a moment). The sender
check reads the SFrame KID (two header bytes, no key, no crypto) and forwards a
voice frame only if its sender index is the holder's own in the channel's roster
of that epoch (:mod:`ptt_server.senders`): every member can derive every sender
key of an epoch, so without it any member holding the floor could speak under
another member's name. Burst statements (``media.SIGNATURE``) carry no SFrame
header; they are bound to the holder's session and burst like everything else.

A redundant datagram (:mod:`ptt_protocol.repeats`) carries earlier frames of the burst:
each one passes the same KID check (one foreign KID drops the datagram) and is recorded
once; the bytes are forwarded as they came. The holder's voice frames also feed the
channel's loss feedback (:mod:`ptt_server.link_feedback`): jitter, and a report at once on
a first loss.

The same path serves datagrams tunnelled over the WebSocket when UDP is blocked: the
tunnel is just another source address (:data:`TUNNEL`), so the roaming rule moves a
session between UDP and the tunnel in both directions.

Roaming (``ptt_protocol.media``): a newer datagram from a new UDP address only
makes it a candidate; the relay probes the old address and moves the session
when the probe window ends unanswered (a timer), then tells the new address
with a keepalive. The tunnel is the radio's own TLS connection, so a move to it
is immediate. Keepalives are answered on the path they came from, so a radio
learns its new path works even while the move is pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from crypto.errors import FrameError
from crypto.keyring import EPOCH_BITS
from crypto.sframe import peek_kid
from ptt_protocol import control, media, repeats
from ptt_protocol.errors import ProtocolError, ReplayError
from ptt_server.batch_send import Address, Sender, batch_sender
from ptt_server.channels import Channel
from ptt_server.metrics import RelayCounters
from ptt_server.senders import EPOCH_MASK
from ptt_server.sessions import Session, SessionTable

SIGNATURE: Final = media.SIGNATURE
REDUNDANT: Final = media.REDUNDANT

TUNNEL: Final = ("websocket-tunnel", 0)
"""The pseudo source address of datagrams that arrived over the control connection."""
_SFRAME_AT: Final = media.INNER_HEADER.size
"""Where the E2E (SFrame) bytes start in an inner frame."""


class MediaRelay(asyncio.DatagramProtocol):
    """Authenticates, authorises and fans out media datagrams."""

    def __init__(
        self,
        sessions: SessionTable,
        channels: dict[int, Channel],
        counters: RelayCounters,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions.by_index
        self._users = sessions.by_user
        self._channels = channels
        self._counters = counters
        self._clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self._fan_out_sender: Sender | None = None
        self.publish: Callable[[int, str, bytes], None] | None = None
        """On a cluster node: publish an admitted frame once for the other nodes
        (channel id, talker, inner frame)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: neither CPython 3.11's selector UDP transport nor uvloop's
        # UDPTransport subclasses asyncio.DatagramTransport, though both implement it.
        self.transport = cast(asyncio.DatagramTransport, transport)
        # One sendmmsg per forwarded frame (ptt_server.batch_send); errors as sendto's.
        self._fan_out_sender = batch_sender(transport, self.error_received)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a listener went away) must not stop the relay.
        self._counters.drops["icmp_error"] += 1

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._counters.received_packets += 1
        try:
            index = media.peek_session_index(data)
        except ProtocolError:
            self._counters.drops["malformed"] += 1
            return
        session = self._sessions.get(index)
        if session is None:
            self._counters.drops["unknown_session"] += 1
            return
        self.receive(session, data, addr)

    def receive_tunnelled(self, session: Session, data: bytes) -> None:
        """A datagram that came over ``session``'s control connection (UDP blocked)."""
        self._counters.received_packets += 1
        try:
            index = media.peek_session_index(data)
        except ProtocolError:
            self._counters.drops["malformed"] += 1
            return
        if index != session.session_index:
            self._counters.drops["wrong_tunnel_session"] += 1
            return
        self.receive(session, data, TUNNEL)

    def receive(self, session: Session, data: bytes, addr: tuple[str | object, int]) -> None:
        """Handle one datagram of ``session`` from ``addr`` (a UDP address or :data:`TUNNEL`)."""
        drops = self._counters.drops
        hop = session.hop
        try:
            kind, inner = hop.open(data, addr, proven_source=addr is TUNNEL)
        except ReplayError:
            drops["replay"] += 1
            return
        except ProtocolError:
            drops["unauthenticated"] += 1
            return
        if hop.probe_due:
            self._probe(session)
        if kind != media.DATA:
            if kind == media.KEEPALIVE:
                # Answer on the path it came from, so the client knows that path works
                # (else it stays on the tunnel), even while a move there is pending.
                self._send_to(session, hop.seal(b"", media.KEEPALIVE), addr)
            else:
                drops["probe_from_client"] += 1  # only the relay probes
            return
        try:
            frame = media.unpack_inner(inner)
        except ProtocolError:
            # Bad size or unknown flags: refuse before forwarding, never raise out of here.
            drops["malformed"] += 1
            return
        channel = self._channels.get(frame.channel_id)
        if channel is None or session.session_index not in channel.listeners:
            drops["not_affiliated"] += 1
            return
        now = self._clock()
        user = session.user_id
        passed = self._pass(channel, user, frame, inner, session, len(data), now)
        if passed is None:
            return
        holder, carried = passed
        if self.publish is not None:
            self.publish(channel.channel_id, user, inner)
        if holder:
            feedback = channel.feedback
            if not frame.flags & SIGNATURE:
                feedback.voice_frame(frame.sequence, now)
            if feedback.watching and hop.lost != feedback.lost_when_clean:
                channel.report_link(session)  # the first loss of the burst: protect now
            self._record(channel, frame, carried)

    def receive_from_bus(self, channel_id: int, user: str, inner: bytes) -> None:
        """A frame that ``user``'s node authenticated and published for the other nodes.

        The same floor and sender checks as a frame from a radio here (a node that publishes
        what the floor does not allow is refused and counted), then this node's fan-out;
        on the floor's owner it restarts T1 and is recorded.
        """
        drops = self._counters.drops
        channel = self._channels.get(channel_id)
        if channel is None:
            drops["bus_unknown_channel"] += 1
            return
        try:
            frame = media.unpack_inner(inner)
        except ProtocolError:
            drops["bus_malformed"] += 1
            return
        if frame.channel_id != channel_id:  # published on another channel's subject
            drops["bus_malformed"] += 1
            return
        if user in self._users:
            # The talker is logged in here: its frames come from its radio, never from the
            # bus (a node does not hear its own publishes), so this one is not its node's.
            drops["bus_local_talker"] += 1
            return
        passed = self._pass(channel, user, frame, inner, None, len(inner), self._clock())
        if passed is None:
            return
        self._counters.bus_received_packets += 1
        holder, carried = passed
        if holder:
            self._record(channel, frame, carried)

    def _pass(
        self,
        channel: Channel,
        user: str,
        frame: media.InnerFrame,
        inner: bytes,
        source: Session | None,
        size: int,
        now: float,
    ) -> tuple[bool, tuple[tuple[bytes, bool], ...] | None] | None:
        """What a frame of ``user`` goes through, from a radio here (``source``) or from the
        bus: the floor's timers due by ``now``, the floor and sender checks, then the fan-out
        to this node's listeners (``size``: the bytes counted per datagram sent). Returns what
        :meth:`_admit` does."""
        # FloorControl.may_send wants the timers due by the packet's time fired first, so a
        # holder whose T1 or T3 ran out a moment ago is not forwarded.
        channel.media_received(user, now)
        admitted = self._admit(channel, user, frame, inner, now)
        if admitted is not None:
            sent = self._fan_out(channel, inner, source)
            counters = self._counters
            counters.forwarded_packets += sent
            counters.forwarded_bytes += sent * size
        return admitted

    def _admit(
        self, channel: Channel, user: str, frame: media.InnerFrame, inner: bytes, now: float
    ) -> tuple[bool, tuple[tuple[bytes, bool], ...] | None] | None:
        """(holder, repeats carried) if the floor and sender checks let ``user``'s frame
        through; None (the drop counted) if not."""
        drops = self._counters.drops
        flags = frame.flags
        holder = channel.may_send(user)
        if holder:
            if frame.burst_id != channel.burst_id:
                # Another burst's number: a frame passed off as part of an earlier burst
                # whose talker listeners may still be showing.
                drops["wrong_burst"] += 1
                return None
        elif not channel.accepts_trailing(user, frame.burst_id, bool(flags & SIGNATURE), now):
            drops["not_floor_holder"] += 1
            return None
        carried: tuple[tuple[bytes, bool], ...] | None = None
        if flags & REDUNDANT:
            # Repeats of earlier frames (RFC 2198 style): every one must pass the same
            # sender check as a frame of its own, and is recorded once.
            try:
                carried = repeats.explode(frame).frames
            except ProtocolError:
                drops["malformed"] += 1
                return None
            for plain, _ in carried:
                if not self._own_kid(channel, user, plain):
                    return None
        elif not flags & SIGNATURE and not self._own_kid(channel, user, inner):
            return None
        return holder, carried

    def _fan_out(self, channel: Channel, inner: bytes, source: Session | None) -> int:
        """Re-seal ``inner`` for every listener of the channel here but ``source``."""
        sent = 0
        datagrams: list[bytes] = []
        addresses: list[Address] = []
        for listener in channel.listeners.values():
            if listener is not source:
                listener_hop = listener.hop
                address = listener_hop.address
                if address is None or address is TUNNEL:
                    self.send(listener, listener_hop.seal(inner))
                else:
                    datagrams.append(listener_hop.seal(inner))
                    addresses.append(address)  # type: ignore[arg-type]  # UDP: a tuple
                sent += 1
        if datagrams and self._fan_out_sender is not None:
            self._fan_out_sender.send_all(datagrams, addresses)
        return sent

    @staticmethod
    def _record(
        channel: Channel, frame: media.InnerFrame, carried: tuple[tuple[bytes, bool], ...] | None
    ) -> None:
        if carried is None:
            channel.record_frame(frame.sequence, frame.flags, frame.frame)
        else:
            for plain, _ in carried:
                part = media.unpack_inner(plain)
                channel.record_frame(part.sequence, part.flags, part.frame)

    def _own_kid(self, channel: Channel, user: str, inner: bytes) -> bool:
        """Whether a voice frame's SFrame KID is ``user``'s own sender index in its epoch
        (two header bytes and two dict look-ups: no key, no crypto); counts the drop if not."""
        try:
            kid = peek_kid(inner, _SFRAME_AT)
        except FrameError:
            self._counters.drops["malformed"] += 1
            return False
        indexes = channel.sender_indexes.by_bits.get(kid & EPOCH_MASK)
        if indexes is None or indexes.get(user) != kid >> EPOCH_BITS:
            self._counters.drops["wrong_sender"] += 1
            return False
        return True

    def _probe(self, session: Session) -> None:
        """Ask the session's current address to prove it is still there (roaming)."""
        hop = session.hop
        now = self._clock()
        self.send(session, hop.seal_probe(now))
        self._counters.roam_probes += 1
        deadline = hop.roam_deadline
        assert deadline is not None
        asyncio.get_running_loop().call_at(deadline, self._roam_timer, session)

    def _roam_timer(self, session: Session) -> None:
        if self._sessions.get(session.session_index) is not session:
            return  # logged out meanwhile
        hop = session.hop
        if hop.handle_timer(self._clock()):
            self._counters.roam_moves += 1
            # Tell the new address its downlink is back (and that the move happened).
            self.send(session, hop.seal(b"", media.KEEPALIVE))

    def send(self, session: Session, datagram: bytes) -> None:
        """Send to where the session is (its hop address)."""
        # The body of _send_to, repeated: this runs once per listener per forwarded packet.
        address = session.hop.address
        if address is None:
            self._counters.drops["no_address"] += 1
        elif address is TUNNEL:  # HopSession keeps the very object it was given
            session.send(control.MediaTunnel(datagram=datagram), urgent=True)
        elif self.transport is not None:
            self.transport.sendto(datagram, address)  # type: ignore[arg-type]

    def _send_to(self, session: Session, datagram: bytes, address: object) -> None:
        if address is None:
            self._counters.drops["no_address"] += 1
        elif address is TUNNEL:  # HopSession keeps the very object it was given
            session.send(control.MediaTunnel(datagram=datagram))
        elif self.transport is not None:
            self.transport.sendto(datagram, address)  # type: ignore[arg-type]
