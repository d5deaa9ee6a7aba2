"""Which patch orders a radio follows (issue 11): a dispatcher's, on every channel involved.

A patch makes PTT on the officer's own channel talk on the patch's channel, so whoever is
on the patch's roster hears it. A radio follows an order only if it verifies
(``crypto.patch_order``: org root, a dispatcher's, signed, not expired), every roster it
holds of a channel involved is the one the order names, and the signer's device is on
those rosters: a dispatcher who could not already hear ``patrol`` cannot divert it, and
neither can the relay, whatever it sends. The order names rosters because the dispatcher
vouches for the patch's channel holding the linked channels' members and nobody else: once
one of them changes (a member leaves ``patrol``, another dispatcher rewrites the patch's
roster), the radio stops following it (:func:`stale_patches`) until a dispatcher on the
patch vouches again (:func:`fresh_order`; :func:`renewal` first rekeys the patch's channel
when a linked channel's members changed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from crypto.errors import CryptoError, PatchError
from crypto.identity import Credential, DeviceKeys
from crypto.patch_order import MAX_PATCH_LIFETIME, PatchOrder, sign_patch, verify_patch
from crypto.roster import Member, Roster
from ptt_client.e2e import Keyring
from ptt_client.roster_publish import roster_messages
from ptt_protocol import control

log = logging.getLogger("ptt_client")


def _roster(keyring: Keyring, channel_id: int) -> Roster | None:
    keys = keyring.channels.get(channel_id)
    return keys.roster if keys is not None else None


def _changed(order: PatchOrder, keyring: Keyring) -> str | None:
    """Why ``order`` does not hold for the rosters this radio holds, or None if it does."""
    for channel_id, digest in zip(order.involved, order.rosters, strict=True):
        roster = _roster(keyring, channel_id)
        if roster is not None and roster.digest() != digest:
            return f"the roster of channel {channel_id} is not the one the order names"
    return None


def check_patch(message: control.Patch, keyring: Keyring, now: float) -> PatchOrder:
    """The order to follow, or :class:`PatchError` saying why not (nothing changes)."""
    order, signer = verify_patch(message.order, keyring.trust, now)
    if order.patch_channel != message.channel_id or set(order.linked) != set(message.linked):
        raise PatchError("the relay's patch message does not match the signed order")
    mine = _roster(keyring, order.patch_channel)
    if mine is None:
        raise PatchError(
            f"no roster of the patch's channel {order.patch_channel} yet: wait for the dispatcher's"
        )
    changed = _changed(order, keyring)
    if changed is not None:
        raise PatchError(changed)
    fingerprint = signer.fingerprint()
    for channel_id in order.involved:
        roster = _roster(keyring, channel_id)
        if roster is None:
            continue  # not a channel of this radio
        if not roster.pins(signer.user_id, fingerprint):
            raise PatchError(
                f"patch order by {signer.user_id!r}, who is not on channel {channel_id}: refused"
            )
    if mine.member(keyring.credential.user_id) is None:
        raise PatchError(f"this radio is not on the patch's channel {order.patch_channel}")
    return order


def stale_patches(orders: Mapping[int, PatchOrder], keyring: Keyring) -> list[tuple[int, str]]:
    """The followed patches whose order no longer holds for the rosters now held, and why."""
    stale = []
    for patch, order in orders.items():
        why = _changed(order, keyring)
        if why is not None:
            stale.append((patch, why))
    return stale


def _involved_rosters(patch: int, linked: Sequence[int], keyring: Keyring) -> list[Roster]:
    """The rosters of the patch's channel and the linked ones, which this device is on."""
    rosters = []
    for channel_id in (patch, *linked):
        roster = _roster(keyring, channel_id)
        if roster is None or roster.member(keyring.credential.user_id) is None:
            raise PatchError(
                f"this console is not on channel {channel_id}: only a dispatcher on every"
                " channel of a patch signs its order"
            )
        rosters.append(roster)
    return rosters


def _order(rosters: Sequence[Roster], linked: Sequence[int], now: float) -> PatchOrder:
    digests = tuple(roster.digest() for roster in rosters)
    return PatchOrder(rosters[0].channel_id, tuple(linked), now, now + MAX_PATCH_LIFETIME, digests)


def _linked_members(rosters: Sequence[Roster]) -> list[Member]:
    return list(dict.fromkeys(member for roster in rosters[1:] for member in roster.members))


def fresh_order(patch: int, linked: Sequence[int], keyring: Keyring, now: float) -> PatchOrder:
    """A new order, valid for the longest a radio accepts, for the rosters this dispatcher
    holds now. Raises :class:`PatchError` unless this device is on every channel involved and
    the patch's channel holds exactly the linked channels' members (the order vouches for it).
    """
    rosters = _involved_rosters(patch, linked, keyring)
    if set(rosters[0].members) != set(_linked_members(rosters)):
        raise PatchError(
            f"the roster of the patch's channel {patch} is not the linked channels' members:"
            " publish it with exactly their members first"
        )
    return _order(rosters, linked, now)


def renewal(order: PatchOrder, keyring: Keyring, now: float) -> list[control.Message]:
    """What a dispatcher sends to replace ``order``: a fresh order, and first, if someone
    joined or left a linked channel since (``ptt-admin``, another console), the patch's
    channel with their new members and its own new epoch (a member who left gets no key).

    Raises :class:`crypto.errors.CryptoError` if this console cannot (not on every channel,
    a member's credential not fetched yet, a revoked member).
    """
    rosters = _involved_rosters(order.patch_channel, order.linked, keyring)
    current, members = rosters[0], _linked_members(rosters)
    messages: list[control.Message] = []
    if set(current.members) != set(members):
        # Continuing members keep their place (sender index), new ones go last.
        kept = [m for m in current.members if m in members]
        roster = Roster(
            current.channel_id,
            current.version + 1,
            (*kept, *(m for m in members if m not in kept)),
        )
        credentials = {}
        for member in roster.members:
            credential = keyring.credentials.get(member.user_id)
            if credential is None:
                raise PatchError(f"no credential of {member.user_id!r} yet: tried again later")
            credentials[member.user_id] = credential
        messages = roster_messages(keyring, roster, credentials, now)
        rosters[0] = roster
    fresh = _order(rosters, order.linked, now)
    return [*messages, signed_patch(fresh, keyring.keys, keyring.credential)]


def renewals(due: Iterable[PatchOrder], keyring: Keyring, now: float) -> list[control.Message]:
    """The :func:`renewal` of each order in ``due`` (``ClientSessionCore.patches_to_renew``)
    this dispatcher can make; the others are left to lapse, or to a later try (logged)."""
    messages = []
    for order in due:
        try:
            messages += renewal(order, keyring, now)
        except CryptoError as exc:
            log.info("patch %s not renewed: %s", order.patch_channel, exc)
    return messages


def signed_patch(order: PatchOrder, keys: DeviceKeys, credential: Credential) -> control.Patch:
    """The Patch message a dispatcher sends: ``order`` signed with this device's keys."""
    return control.Patch(
        channel_id=order.patch_channel,
        linked=order.linked,
        order=sign_patch(order, keys, credential),
    )
