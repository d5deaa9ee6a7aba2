"""The dispatchers' patches a radio follows, its side, without I/O (a mixin of
:class:`ptt_client.session_core.ClientSessionCore`).

A patch links channels through a patch channel for as long as a signed
:class:`~crypto.patch_order.PatchOrder` says (the dispatcher's console renews it): a radio on a
linked channel also listens on the patch channel and talks there. Kept here: the order in force
per patch, the ones held while a roster they name changed, the renewals a dispatcher's radio
owes, and the patches seen ending, so a relay replaying an old order is refused.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

from crypto.identity import Credential
from crypto.patch_order import PatchOrder
from ptt_client import events
from ptt_client.session_effects import Effect, Emit

__all__ = ["ENDED_PATCHES", "RENEW_RETRY", "PatchFollowing"]

ENDED_PATCHES: Final = 64
"""Ended patches remembered, to refuse a relay's replay of their orders (and as many other
deleted channels)."""
RENEW_RETRY: Final = 30.0
"""Seconds before a dispatcher's renewal of a patch order is sent again if none came back."""


class PatchFollowing:
    """The session core's patches (a mixin of ``ClientSessionCore``, whose channels it joins
    and leaves and whose floors it releases)."""

    credential: Credential
    affiliated: set[int]

    if TYPE_CHECKING:  # the session core's own

        def affiliate(self, channel_id: int, select: bool | None = None) -> list[Effect]: ...

        def deaffiliate(self, channel_id: int) -> list[Effect]: ...

        def release(self, channel_id: int) -> list[Effect]: ...

        def ptt_down(self, channel_id: int) -> bool: ...

    def _init_patches(self) -> None:
        self._orders: dict[int, PatchOrder] = {}
        """The verified order in force for each patch (it expires unless renewed)."""
        self._held: dict[int, PatchOrder] = {}
        """Patches not followed since a roster their order names changed, until a new order."""
        self._renewing: dict[int, float] = {}
        self._ended: deque[int] = deque(maxlen=ENDED_PATCHES)
        """Patches this radio followed, seen ending: an order for one of them is a replay (ids
        are never reused). Only those: ends the relay makes up for other ids cannot push a
        real one out, as a relay only has the few genuine unexpired orders to make it follow."""
        self._deleted: deque[int] = deque(maxlen=ENDED_PATCHES)
        """Other channels seen deleted (best effort), e.g. one made for a patch the relay
        refused: its order, unexpired, would be a replay too."""

    def patch_of(self, channel_id: int) -> int | None:
        """The patch ``channel_id`` is linked through, or None."""
        # On every voice frame (send_voice -> transmit_channel): no dict is built for it.
        return next((p for p, order in self._orders.items() if channel_id in order.linked), None)

    def _join_patches(self) -> list[Effect]:
        """Listen on the patch of every affiliated linked channel (still selected on its own)."""
        effects: list[Effect] = []
        for patch, linked in self.patches.items():
            if patch not in self.affiliated and self.affiliated.intersection(linked):
                effects += self.affiliate(patch, select=False)
        return effects

    def follow_patch(self, order: PatchOrder) -> list[Effect]:
        """Follow a verified patch order (a renewal only moves its expiry)."""
        if order.patch_channel in self._ended or order.patch_channel in self._deleted:
            why = "that patch ended: its order is replayed"
            return [Emit(events.PatchRefused(order.patch_channel, why))]
        current = self._orders.get(order.patch_channel)
        if current is not None and current.issued_at >= order.issued_at:
            return []  # an older order, replayed
        self._orders[order.patch_channel] = order
        self._held.pop(order.patch_channel, None)
        self._renewing.pop(order.patch_channel, None)
        return self._join_patches()

    @property
    def patches(self) -> dict[int, tuple[int, ...]]:
        """Patches this radio follows: the patch's channel -> the linked channels."""
        return {patch: order.linked for patch, order in self._orders.items()}

    @property
    def orders(self) -> dict[int, PatchOrder]:
        """The order followed for each patch (read-only: to check it still holds)."""
        return dict(self._orders)

    def hold_patch(self, patch: int, why: str) -> list[Effect]:
        """Stop following a patch whose order no longer holds (a roster it names changed):
        talk on our own channel until a new order comes (a dispatcher's radio signs one)."""
        order = self._orders.get(patch)
        if order is None:
            return []
        effects = self._unpatch(patch, ended=False)
        self._held[patch] = order
        return [*effects, Emit(events.PatchRefused(patch, why))]

    def expire_patches(self, now: float) -> list[Effect]:
        """End the patches whose order ran out with nobody renewing it (a console gone)."""
        for patch, order in list(self._held.items()):
            if now >= order.expires_at:
                del self._held[patch]
        effects: list[Effect] = []
        for patch, order in list(self._orders.items()):
            if now >= order.expires_at:
                # Not "ended": a dispatcher may still renew it with a fresh order.
                effects += self._unpatch(patch, ended=False)
        return effects

    def patches_to_renew(self, now: float) -> list[PatchOrder]:
        """Orders a dispatcher on the patch replaces with a fresh one
        (``ptt_client.patch_orders.renewals``): once half their life is gone (the patch lives
        while a dispatcher's console on it runs), or at once when held."""
        if not self.credential.is_key_manager():
            return []
        due = []
        for patch, order in [*self._orders.items(), *self._held.items()]:
            half_life = order.issued_at + (order.expires_at - order.issued_at) / 2
            if patch in self._held or (patch in self.affiliated and now >= half_life):
                if now - self._renewing.get(patch, -RENEW_RETRY) >= RENEW_RETRY:
                    self._renewing[patch] = now
                    due.append(order)
        return due

    def _unpatch(self, patch: int, *, ended: bool = True) -> list[Effect]:
        """Back to talking on our own channel: let go of the patch's floor, leave it."""
        was_followed = self._orders.pop(patch, None) is not None
        followed = was_followed or patch in self._held
        if ended:
            self._held.pop(patch, None)
            if followed and patch not in self._ended:
                self._ended.append(patch)
        if not was_followed or patch not in self.affiliated:
            return []
        effects = self.release(patch) if self.ptt_down(patch) else []
        return effects + self.deaffiliate(patch)
