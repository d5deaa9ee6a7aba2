"""``RadioClient``'s broadcast group calls (3GPP TS 22.179 6.2.3): start one, end it.

A mixin of :class:`ptt_client.client.RadioClient`: the floors are the session core's
(:class:`ptt_client.broadcasts.BroadcastFloors`), the voice is ``RadioClient.send_voice``'s
(each frame to every channel of the broadcast still held).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ptt_client.broadcasts import BroadcastAnswers, BroadcastOutcome, check_broadcast
from ptt_client.errors import ClientError

if TYPE_CHECKING:
    from ptt_client.session_core import ClientSessionCore, Effect

__all__ = ["BroadcastCalls"]


class BroadcastCalls:
    """Start and end a broadcast (see the module docstring)."""

    core: ClientSessionCore
    _ws: object | None

    if TYPE_CHECKING:  # the client's own

        async def _run_effects(self, effects: list[Effect]) -> None: ...

        async def ping_server(self, timeout: float = 5.0) -> None: ...

        def add_listener(self, callback: Callable[[object], None]) -> None: ...

        def remove_listener(self, callback: Callable[[object], None]) -> None: ...

    async def broadcast(self, channel_ids: Sequence[int]) -> BroadcastOutcome:
        """Start a broadcast group call (dispatchers only): take the floor of every channel
        in ``channel_ids`` (affiliated, at most ``MAX_PATCHED``) at once, one way, over
        ordinary talk on them. ``send_voice`` then sends each frame to every channel granted,
        sealed under each one's key; :meth:`end_broadcast` ends it.

        Returns once every channel answered; raises :class:`ClientError` for a call the server
        would refuse, and ``BroadcastRefused`` when it refused it (nothing changed then)."""
        core = self.core
        wanted = check_broadcast(channel_ids, core.affiliated, core.keys_down(), core.broadcasting)
        if self._ws is None:
            raise ClientError("not connected: PTT does nothing until the radio is back")
        answers = BroadcastAnswers(wanted)
        self.add_listener(answers.hear)
        try:
            await self._run_effects(core.broadcast(wanted))
            await self.ping_server()  # the server answers in order: every answer is in
            return answers.outcome()
        except BaseException:
            await self.end_broadcast()
            raise
        finally:
            self.remove_listener(answers.hear)

    async def end_broadcast(self) -> None:
        """PTT up on the broadcast: each channel's burst ends, signed, and its floor is
        released (nothing is sent for a channel whose floor was taken away meanwhile, nor
        after the connection dropped: the server released our floors with it)."""
        await self._run_effects(self.core.end_broadcast())
