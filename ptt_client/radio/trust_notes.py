"""Which trust events a radio shows: those that concern its own officer.

At every login the server sends the whole revocation list, the rosters and the credentials
of the channels' members again. A radio is not the place to read about other people's
revoked devices, nor about a stale copy of a roster it has a newer one of: it shows its own
credential's revocation, its own joining or leaving a channel's roster, a change of who is
on a channel it hears, and a refused roster that would have changed any of that.

:func:`trust_note` is pure: an event and whose radio this is go in, a note or ``None`` out.
"""

from __future__ import annotations

from collections.abc import Callable

from ptt_client import events
from ptt_client.radio.notes import Note, note

__all__ = ["concerns_me", "trust_note"]

TrustEvent = (
    events.RosterChanged
    | events.RosterRefused
    | events.CredentialRefused
    | events.CredentialRevoked
)


def concerns_me(event: TrustEvent, me: str) -> bool:
    """True if ``event`` is worth telling ``me``, the officer whose radio received it."""
    if isinstance(event, events.RosterChanged):
        return bool(event.added or event.removed)  # who may talk on a channel I hear
    if isinstance(event, events.RosterRefused):
        # A late copy of an older roster changes nothing: the newer one stays in force.
        return not event.older or event.changes_me
    if isinstance(event, events.CredentialRefused):
        return event.user_id == me  # someone else's revoked device is their authority's news
    return event.user_id == me


def trust_note(event: object, me: str, channel_name: Callable[[int], str]) -> Note | None:
    """The note for a trust event that concerns ``me``; ``None`` for any other event."""
    if not isinstance(event, TrustEvent) or not concerns_me(event, me):
        return None
    if isinstance(event, events.RosterChanged):
        return _roster_note(event, me, channel_name(event.channel_id))
    if isinstance(event, events.RosterRefused):
        channel = channel_name(event.channel_id)
        version = f"version {event.version} " if event.version else ""
        return note(
            "roster_refused",
            f"WARNING: roster {version}for {channel} refused, the one held stays: {event.reason}",
            channel=channel,
            version=event.version,
            reason=event.reason,
        )
    if isinstance(event, events.CredentialRefused):
        return note(
            "credential_refused",
            f"WARNING: the server sent this radio's own credential and it did not verify:"
            f" {event.text}",
            user=event.user_id,
            reason=event.reason,
        )
    return note(
        "credential_revoked",
        f"this device's credential (serial {event.serial}, device {event.device_id!r}) is"
        f" revoked: the server cuts it off; ask the org authority to enroll a new device"
        f" (`ptt-admin enroll {event.user_id}`)",
        user=event.user_id,
        serial=event.serial,
        device=event.device_id,
    )


def _roster_note(event: events.RosterChanged, me: str, channel: str) -> Note:
    fields: dict[str, object] = {
        "channel": channel,
        "version": event.version,
        "added": event.added,
        "removed": event.removed,
    }
    if me in event.removed:
        return Note(
            "roster_removed",
            f"you are off the roster of {channel} (version {event.version}): you will not"
            " hear it nor talk on it any more; ask a dispatcher if that is a mistake",
            fields,
        )
    if me in event.added:
        return Note(
            "roster_added",
            f"you are on the roster of {channel} now (version {event.version})",
            fields,
        )
    changes = []
    if event.added:
        changes.append("joined: " + ", ".join(event.added))
    if event.removed:
        changes.append("left: " + ", ".join(event.removed))
    return Note(
        "roster_changed",
        f"roster of {channel} (version {event.version}): {'; '.join(changes)}",
        fields,
    )
