"""What the trust material the server sends tells this radio, as events for the key ring to
report: who joined or left a channel (:func:`roster_changed`), what a refused roster would
have changed (:func:`roster_refused`), a member's credential that did not verify
(:func:`credential_refused`) and this device's own revocation (:func:`own_revocation`).

Pure: no I/O, no clock. Whether an officer is shown any of it is the radio's business
(``ptt_client.radio.trust_notes``); the key ring only leaves out what is no news at all (the
roster it holds, sent again at every login).
"""

from __future__ import annotations

from crypto.errors import CredentialError, CryptoError, StaleRosterError
from crypto.identity import Credential, RevocationList
from crypto.roster import Roster, decode_signed_roster
from ptt_client import events

__all__ = ["credential_refused", "own_revocation", "roster_changed", "roster_refused"]


def _user_ids(roster: Roster | None) -> set[str]:
    return {member.user_id for member in roster.members} if roster is not None else set()


def roster_changed(previous: Roster | None, roster: Roster) -> events.RosterChanged | None:
    """Who ``roster`` adds and removes against ``previous``; None for a channel's first."""
    if previous is None:
        return None
    before, after = _user_ids(previous), _user_ids(roster)
    return events.RosterChanged(
        roster.channel_id,
        roster.version,
        tuple(sorted(after - before)),
        tuple(sorted(before - after)),
    )


def roster_refused(
    channel_id: int, held: Roster | None, signed: bytes, error: CryptoError, me: str
) -> events.RosterRefused:
    """The event for a roster :class:`~crypto.roster.RosterState` refused with ``error``."""
    try:
        refused, _, _ = decode_signed_roster(signed)
    except CryptoError:
        # Unreadable: what it would have changed is unknown, so it may well concern us.
        return events.RosterRefused(channel_id, 0, str(error), older=False, changes_me=True)
    changes_me = (me in _user_ids(refused)) != (me in _user_ids(held))
    return events.RosterRefused(
        channel_id,
        refused.version,
        str(error),
        older=isinstance(error, StaleRosterError),
        changes_me=changes_me,
    )


def credential_refused(blob: bytes, error: CryptoError) -> events.CredentialRefused:
    """The event for a member's credential that did not verify."""
    try:
        user_id = Credential.from_bytes(blob).user_id
    except (CryptoError, ValueError):
        user_id = ""
    reason = error.reason if isinstance(error, CredentialError) else "invalid"
    return events.CredentialRefused(user_id, reason, str(error))


def own_revocation(
    before: RevocationList | None, installed: RevocationList, mine: Credential
) -> events.CredentialRevoked | None:
    """This device's revocation, the first time an installed list names it (the server
    re-sends the list at every login: a list that named it already is no news)."""
    if not installed.revokes(mine) or (before is not None and before.revokes(mine)):
        return None
    return events.CredentialRevoked(mine.user_id, mine.serial, mine.device_id)
