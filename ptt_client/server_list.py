"""Which server a radio tries next, and when it waits first (issue 12: cluster failover).

A credential bundle names the nodes of one cluster, the preferred one first
(:attr:`crypto.bundle.CredentialBundle.server_urls`); they share the store and the TLS
certificate, so any of them will have the radio. :class:`ServerList` is the rotation,
without I/O or a clock of its own (the time comes in, as for every state machine here):

* The radio starts on the preferred server. When a try fails or a session ends, it goes on
  at once to the next server in the bundle's order, wrapping around (round robin from where
  it failed). A fleet then spreads over the nodes instead of all falling back on the first.
* Only when every server failed in turn (a round) does it wait, with exponential backoff and
  jitter, so radios do not all come back in the same instant.
* A session that lasted (:data:`STABLE_SESSION`) starts a new round with the initial delay.
  A shorter one counts as a failure of its round: nodes that accept the login and then drop
  the radio at once still get the backoff, instead of a tight reconnect loop.

Refusals that mean "stop" (revoked, logged in elsewhere, not enrolled) never reach this
module: every node shares one store, so another one would refuse the radio too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["BACKOFF_INITIAL", "BACKOFF_MAX", "STABLE_SESSION", "ServerList"]

BACKOFF_INITIAL: Final = 0.1
"""Seconds to wait (before jitter) after the first round in which every server failed."""
BACKOFF_MAX: Final = 2.0
"""Radios must be back within seconds of the server: never wait longer than this (+50%)."""
STABLE_SESSION: Final = 10.0
"""A session that lasted this many seconds was a working server: its end starts a new round."""


class ServerList:
    """The servers one radio may use, the one to try now, and the wait before trying it."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        stable_session: float = STABLE_SESSION,
    ) -> None:
        """``urls``: the preferred server first. ValueError for none, or one given twice."""
        if isinstance(urls, str) or not urls:
            raise ValueError("give the radio at least one server URL (a sequence of them)")
        if len(set(urls)) != len(urls):
            raise ValueError(f"server URLs {list(urls)} name a server twice: give each once")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError(f"backoff {backoff_initial}..{backoff_max} s is not an interval")
        self.urls: tuple[str, ...] = tuple(urls)
        self._initial = backoff_initial
        self._max = backoff_max
        self._stable = stable_session
        self._index = 0
        self._failures = 0
        """Tries failed in the current round (a round ends when every server failed once)."""
        self._delay = backoff_initial
        """The wait after the next failed round, before jitter."""
        self._up_since: float | None = None
        self.backoffs = 0
        """How many rounds failed (the radio waited after each)."""

    @property
    def current(self) -> str:
        """The server to try now."""
        return self.urls[self._index]

    def logged_in(self, now: float) -> None:
        """The current server accepted the login at ``now``."""
        self._up_since = now

    def failed(self, now: float, jitter: float) -> float:
        """The try of :attr:`current` failed, or its session ended, at ``now``: move on to the
        next server and return the seconds to wait before trying it (0.0: at once).

        ``jitter`` in [0, 1) spreads a waiting fleet: the wait is 0.5 to 1.5 times the delay.
        """
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter {jitter} is not in [0, 1)")
        up_since, self._up_since = self._up_since, None
        if up_since is not None and now - up_since >= self._stable:
            self._failures = 0
            self._delay = self._initial
        self._failures += 1
        self._index = (self._index + 1) % len(self.urls)
        if self._failures < len(self.urls):
            return 0.0
        self._failures = 0
        self.backoffs += 1
        wait = self._delay * (0.5 + jitter)
        self._delay = min(self._delay * 2, self._max)
        return wait
