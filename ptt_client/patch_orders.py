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
patch vouches again (:func:`fresh_order`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from crypto.errors import PatchError
from crypto.identity import Credential, DeviceKeys
from crypto.patch_order import MAX_PATCH_LIFETIME, PatchOrder, sign_patch, verify_patch
from crypto.roster import Roster
from ptt_client.e2e import Keyring
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
        member = roster.member(signer.user_id)
        if member is None or member.credential_fingerprint != fingerprint:
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


def fresh_order(patch: int, linked: Sequence[int], keyring: Keyring, now: float) -> PatchOrder:
    """A new order, valid for the longest a radio accepts, for the rosters this dispatcher
    holds now. Raises :class:`PatchError` unless this device is on every channel involved and
    the patch's channel holds exactly the linked channels' members (the order vouches for it).
    """
    involved = (patch, *linked)
    rosters = []
    for channel_id in involved:
        roster = _roster(keyring, channel_id)
        if roster is None or roster.member(keyring.credential.user_id) is None:
            raise PatchError(
                f"this console is not on channel {channel_id}: only a dispatcher on every"
                " channel of a patch signs its order"
            )
        rosters.append(roster)
    on_patch = set(rosters[0].members)
    union = {member for roster in rosters[1:] for member in roster.members}
    if on_patch != union:
        raise PatchError(
            f"the roster of the patch's channel {patch} is not the linked channels' members:"
            " publish it with exactly their members first"
        )
    digests = tuple(roster.digest() for roster in rosters)
    return PatchOrder(patch, tuple(linked), now, now + MAX_PATCH_LIFETIME, digests)


def renewals(due: Iterable[PatchOrder], keyring: Keyring, now: float) -> list[control.Patch]:
    """Signed fresh orders replacing ``due`` (``ClientSessionCore.patches_to_renew``) that
    this dispatcher can still vouch for; the others are left to lapse (logged)."""
    messages = []
    for order in due:
        try:
            fresh = fresh_order(order.patch_channel, order.linked, keyring, now)
        except PatchError as exc:
            log.info("patch %s not renewed: %s", order.patch_channel, exc)
            continue
        messages.append(signed_patch(fresh, keyring.keys, keyring.credential))
    return messages


def signed_patch(order: PatchOrder, keys: DeviceKeys, credential: Credential) -> control.Patch:
    """The Patch message a dispatcher sends: ``order`` signed with this device's keys."""
    return control.Patch(
        channel_id=order.patch_channel,
        linked=order.linked,
        order=sign_patch(order, keys, credential),
    )
