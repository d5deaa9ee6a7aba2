"""When the server sends emergency alerts out: a per-user limit that holds presses back, never drops.

An emergency is never refused (docs/design.md): every press of the button is recorded, and the
store keeps one active alert per user, so a press with a fresh alert id updates that alert
instead of making another. What needs a limit is the broadcast: each alert goes to every
dispatcher and every listener of the channel, so a radio sending alerts as fast as it can
(issue 9: 300 in 0.27 s) made every console and radio take 300 copies, and every radio queue
299 s of emergency tone. Here each user has a token bucket (``rate_emergency_per_s``, burst
``rate_emergency_burst``); a press inside it goes out at once, a press past it is *held*: it is
already recorded, and the newest state of the alert goes out as soon as the bucket allows
(:meth:`EmergencyBroadcasts.due`). So a genuine first alert is at worst one token late (only
after the user already had ``burst`` broadcasts in the last seconds) and the last location of a
flood always reaches the consoles; the emergency floor priority never waits for any of this.

The bucket is kept per user, not per session, so logging in again does not refill it.

A cancel of an alert that was still held (raised and cancelled within the limit) is not news to
anyone: consoles never saw that alert, so the cancel is not broadcast either.

Radios choose a fresh alert id per press; when the press was merged into the user's active alert
the radio learns that alert's id from the server's answer, and until then a cancel naming the
radio's id must still find the alert: :meth:`EmergencyBroadcasts.resolve`.

Pure: time is passed in (``now``, the server's loop clock); ``server.py`` does the sending and
arms a timer at :meth:`EmergencyBroadcasts.next_due`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ptt_server.ratelimit import TokenBucket

ALIASES_PER_USER = 8
"""Radio-chosen ids remembered per active alert (presses merged into it before the radio heard
the alert's own id); older ones are forgotten."""
_PRUNE_PER_CALL = 2
"""Idle users looked at (and forgotten) per call: the table stays small at O(1) cost."""


@dataclass(slots=True)
class _User:
    bucket: TokenBucket
    active: bytes | None = None
    """The user's active alert as far as this module saw it raised."""
    aliases: deque[bytes] = field(default_factory=lambda: deque(maxlen=ALIASES_PER_USER))
    held: bytes | None = None
    """An alert recorded but not sent out yet (its newest state goes out at the next token)."""
    held_unannounced: bool = False
    """The held alert was never sent out at all (a new alert past the limit)."""


class EmergencyBroadcasts:
    """Decides, per user, whether a recorded press is broadcast now or held for later."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("the emergency rate must be > 0 per second with a burst of >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._users: OrderedDict[str, _User] = OrderedDict()
        self._held: dict[str, _User] = {}
        self.held_presses = 0
        """Presses recorded but not broadcast at once (for metrics)."""

    def raised(
        self, user_id: str, alert_id: bytes, sent_id: bytes, now: float, *, new: bool
    ) -> bool:
        """A press was recorded as ``alert_id``; True if it is to be broadcast now.

        ``sent_id`` is the id the radio put in the press (another one when the store merged
        the press into the user's active alert); ``new`` says the press created the alert.
        False: the press is held, and :meth:`due` releases the alert later.
        """
        self._prune(now)
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = _User(TokenBucket(self.rate_per_s, self.burst, now))
        else:
            self._users.move_to_end(user_id)
        if user.active != alert_id:
            user.active = alert_id
            user.aliases.clear()
        if sent_id != alert_id and sent_id not in user.aliases:
            user.aliases.append(sent_id)
        if user.bucket.take(now):
            # This broadcast carries the alert's newest state: nothing is left to send later.
            self._release(user_id, user)
            return True
        if user.held != alert_id:
            user.held, user.held_unannounced = alert_id, new
            self._held[user_id] = user
        self.held_presses += 1
        return False

    def resolve(self, user_id: str, alert_id: bytes) -> bytes:
        """The alert a cancel from ``user_id`` naming ``alert_id`` means (``alert_id`` itself if
        it is not one of the ids merged into the user's active alert)."""
        user = self._users.get(user_id)
        if user is not None and user.active is not None and alert_id in user.aliases:
            return user.active
        return alert_id

    def cancelled(self, user_id: str, alert_id: bytes) -> bool:
        """The alert was cancelled; True if that is news (the alert was ever sent out)."""
        user = self._users.get(user_id)
        if user is None:
            return True  # raised before a restart or long ago: consoles have it
        announced = True
        if user.held == alert_id:
            announced = not user.held_unannounced
            self._release(user_id, user)
        if user.active == alert_id:
            user.active = None
            user.aliases.clear()
        return announced

    def next_due(self) -> float | None:
        """When :meth:`due` next has an alert to release, or None if nothing is held."""
        return min((u.bucket.ready_at() for u in self._held.values()), default=None)

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """The held alerts whose user has a token again, as ``(user_id, alert_id)``: send each
        out with its current state. Each takes its user's token."""
        released = []
        for user_id, user in list(self._held.items()):
            if user.held is not None and user.bucket.take(now):
                released.append((user_id, user.held))
                self._release(user_id, user)
        return released

    def _release(self, user_id: str, user: _User) -> None:
        user.held, user.held_unannounced = None, False
        self._held.pop(user_id, None)

    def _prune(self, now: float) -> None:
        """Forget users with nothing active or held whose bucket is full again (least recently
        pressed first): they would start from a full bucket anyway. Users in an emergency go
        to the back, so they never stop the others from being forgotten."""
        for _ in range(_PRUNE_PER_CALL):
            if not self._users:
                return
            user_id, user = next(iter(self._users.items()))
            if user.active is not None or user.held is not None:
                self._users.move_to_end(user_id)
            elif user.bucket.ready_at(self.burst) <= now:
                del self._users[user_id]
            else:
                return

    def __len__(self) -> int:
        """Users remembered (active, held, or with a bucket still refilling)."""
        return len(self._users)
