"""Which patch orders a radio follows (issue 11): a dispatcher's, on every channel involved.

A patch makes PTT on the officer's own channel talk on the patch's channel, so whoever is
on the patch's roster hears it. A radio follows an order only if it verifies
(``crypto.patch_order``: org root, a dispatcher's, signed, not expired) and its signer's
device is on the current roster of the patch's channel and of every linked channel this
radio holds the roster of: a dispatcher who could not already hear ``patrol`` cannot divert
it, and neither can the relay, whatever it sends.
"""

from __future__ import annotations

from crypto.errors import PatchError
from crypto.identity import Credential, DeviceKeys
from crypto.patch_order import PatchOrder, sign_patch, verify_patch
from ptt_client.e2e import Keyring
from ptt_protocol import control


def check_patch(message: control.Patch, keyring: Keyring, now: float) -> PatchOrder:
    """The order to follow, or :class:`PatchError` saying why not (nothing changes)."""
    order, signer = verify_patch(message.order, keyring.trust, now)
    if order.patch_channel != message.channel_id or set(order.linked) != set(message.linked):
        raise PatchError("the relay's patch message does not match the signed order")
    fingerprint = signer.fingerprint()
    involved = [order.patch_channel, *order.linked]
    for channel_id in involved:
        keys = keyring.channels.get(channel_id)
        roster = keys.roster if keys is not None else None
        if roster is None:
            if channel_id == order.patch_channel:
                raise PatchError(
                    f"no roster of the patch's channel {channel_id} yet: wait for the dispatcher's"
                )
            continue  # not a channel of this radio
        member = roster.member(signer.user_id)
        if member is None or member.credential_fingerprint != fingerprint:
            raise PatchError(
                f"patch order by {signer.user_id!r}, who is not on channel {channel_id}: refused"
            )
    mine = keyring.channels[order.patch_channel].roster
    if mine is None or mine.member(keyring.credential.user_id) is None:
        raise PatchError(f"this radio is not on the patch's channel {order.patch_channel}")
    return order


def signed_patch(order: PatchOrder, keys: DeviceKeys, credential: Credential) -> control.Patch:
    """The Patch message a dispatcher sends: ``order`` signed with this device's keys."""
    return control.Patch(
        channel_id=order.patch_channel,
        linked=order.linked,
        order=sign_patch(order, keys, credential),
    )
