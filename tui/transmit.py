"""What the console says on air, and its own alerts: the transmit key (Space), broadcast
group calls (TS 22.179 6.2.3: ``b``, one way to several channels at once) and the
dispatcher's own imminent peril (``i`` raises it, ``I`` cancels it).

A mixin of :class:`tui.app.DispatchApp`: the app owns the client and the model; these run
the network work in its workers and report into its model, as the rest of the app does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptt_client.audio import AudioError, AudioInput
from tui.state import Broadcasting, Changed, ConsoleState, FloorReleased, Note

__all__ = ["TransmitOperations"]

if TYPE_CHECKING:
    from textual.worker import Worker

    from ptt_client.client import RadioClient
    from ptt_client.voice import TalkResult, Transmitter


class TransmitOperations:
    """The console's transmit key, broadcasts and own alerts (see the module docstring)."""

    client: RadioClient
    state: ConsoleState
    talk_file: Path | None
    _transmitter: Transmitter | None
    _talking: Worker[None] | None

    if TYPE_CHECKING:  # the app's own, which these operations use

        def _spawn(self, work: Awaitable[Any], what: str) -> Worker[Any]: ...

        def apply(self, event: object, at: float | None = None) -> Changed: ...

        def refresh_view(self, changed: Changed | None = None) -> None: ...

    @property
    def transmitting(self) -> bool:
        return self._talking is not None and not self._talking.is_finished

    def _opened_source(self) -> AudioInput | None:
        """What the dispatcher talks from, or None (and a note saying why) if it won't open."""
        try:
            return self._source()
        except (AudioError, OSError) as exc:
            self.apply(Note("error", f"no audio to send: {exc}"))
            return None

    def _source(self) -> AudioInput:
        if self.talk_file is not None:
            from ptt_client.audio import WavFileInput

            return WavFileInput(self.talk_file)
        from ptt_client.audio_devices import DeviceInput

        return DeviceInput()

    def _the_transmitter(self) -> Transmitter:
        if self._transmitter is None:
            from ptt_client.voice import Transmitter

            self._transmitter = Transmitter(self.client)
        return self._transmitter

    def toggle_transmit(self, channel_id: int) -> None:
        """Space: start talking on ``channel_id`` at dispatcher priority, or stop (a
        broadcast too).

        Space is the console's PTT key, latched: down from one press to the next, whatever
        the floor did meanwhile. So after a revoke (an emergency pre-empted the console) or
        a deny, Space only lets go of the key and sends nothing; the next Space talks. The
        client's floor participant knows whether the key is down, not this app (issue 10).
        """
        if self.transmitting:
            if self._transmitter is not None:
                self._transmitter.stop()
            return
        held = self.client.keys_down()
        if held:
            self._spawn(self._let_go(held), "releasing the transmit key")
            return
        self._talking = self._spawn(self._talk(channel_id), "transmit")
        self.refresh_view(Changed.STATUS)

    async def _let_go(self, channels: list[int]) -> None:
        for channel_id in channels:
            await self.client.release(channel_id)
            self.apply(FloorReleased(channel_id))
            self.apply(Note("floor", f"transmit key up on {self.state.channel_name(channel_id)}"))

    async def _talk(self, channel_id: int) -> None:
        source = self._opened_source()
        if source is None:
            return
        transmitter = self._the_transmitter()
        try:
            if channel_id not in self.client.affiliated:
                await self.client.affiliate(channel_id, select=False)
            self.state.transmit_channel = channel_id
            with source:
                # The dispatcher's priority, or during its own imminent peril that level.
                result = await transmitter.talk(
                    source, channel_id=channel_id, priority=self.client.core.default_priority()
                )
        finally:
            self.refresh_view(Changed.STATUS)
        if result.outcome in ("granted", "no-answer", "queued-timeout"):
            self.apply(FloorReleased(channel_id))
        held = " (Space lets go of the key)" if self.client.ptt_down(channel_id) else ""
        name = self.state.channel_name(channel_id)
        self.apply(Note("floor", f"transmit on {name}: {_summary(result)}{held}"))

    # --- broadcast group calls (TS 22.179 6.2.3) ----------------------------------------------

    def broadcast_channels(self, channel_id: int, others: Sequence[str]) -> None:
        """b: broadcast to ``channel_id`` and the channels named in ``others``, one way, over
        their ordinary talk, until Space."""
        if self.transmitting:
            self.apply(Note("error", "already on air: Space ends it first"))
            return
        wanted = [channel_id]
        for name in others:
            found = next((c for c, n in self.client.channels.items() if n == name), None)
            if found is None:
                self.apply(Note("error", f"no channel named {name!r} on this console"))
                return
            if found not in wanted:
                wanted.append(found)
        self._talking = self._spawn(self._broadcast(tuple(wanted)), "broadcast")
        self.refresh_view(Changed.STATUS)

    async def _broadcast(self, channel_ids: tuple[int, ...]) -> None:
        source = self._opened_source()
        if source is None:
            return
        transmitter = self._the_transmitter()
        for channel_id in channel_ids:
            if channel_id not in self.client.affiliated:
                await self.client.affiliate(channel_id, select=False)
        self.state.transmit_channel = channel_ids[0]
        self.apply(Broadcasting(channel_ids))
        try:
            with source:
                result = await transmitter.broadcast(source, channel_ids)
        finally:
            for channel_id in channel_ids:
                self.apply(FloorReleased(channel_id))
            self.apply(Broadcasting(()))
        refused = result.broadcast.denied if result.broadcast is not None else {}
        if refused:
            names = ", ".join(f"{self.state.channel_name(c)} ({why})" for c, why in refused.items())
            self.apply(Note("floor", f"broadcast refused on {names}"))
        self.apply(Note("floor", f"broadcast: {_summary(result)}"))

    # --- the dispatcher's own imminent peril ---------------------------------------------------

    def raise_peril(self, channel_id: int) -> None:
        """i: raise an imminent peril for this dispatcher on ``channel_id`` (its talk then
        goes at that level, between emergency and dispatcher, until cancelled)."""
        if self.client.emergency_alert is not None:
            self.apply(Note("error", "your alert is active already: I cancels it"))
            return
        self._spawn(self._raise_peril(channel_id), "raising an imminent peril")

    async def _raise_peril(self, channel_id: int) -> None:
        await self.client.raise_emergency(peril=True, channel_id=channel_id)
        name = self.state.channel_name(channel_id)
        self.apply(Note("emergency", f"IMMINENT PERIL raised by you on {name}"))

    def cancel_own_alert(self) -> None:
        """I: cancel this dispatcher's own alert, as an officer's radio does its own."""
        if self.client.emergency_alert is None:
            self.apply(Note("error", "you have no active alert to cancel"))
            return
        self._spawn(self.client.cancel_emergency(), "cancelling your alert")


def _summary(result: TalkResult) -> str:
    access = (
        f", access {result.access_time_s * 1000:.0f} ms" if result.access_time_s is not None else ""
    )
    return f"{result.outcome}, {result.frames_sent} frames{access}"
