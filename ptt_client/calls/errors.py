"""The exception tree of :mod:`ptt_client.calls`.

Tree::

    Exception
    +-- CallMediaError     a call's media could not be set up or was refused; the message says
                           what failed and what to do (safe to show the officer, never sent to
                           the peer in detail)
"""

from __future__ import annotations

__all__ = ["CallMediaError"]


class CallMediaError(Exception):
    """A call's media failed or was refused; the message says what failed and what to do."""
