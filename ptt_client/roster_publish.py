"""A signed roster change as the messages that publish it: the roster, its epoch, and one
key envelope per member (epoch N is made for roster version N).

Made here, sent by the caller: :func:`ptt_client.channel_admin.publish_roster` sends them
and waits for the relay to accept them; a console keeping a patch's channel in step with
the channels it links (``ptt_client.patch_orders``) sends them from the radio's own loop.
"""

from __future__ import annotations

from collections.abc import Mapping

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import Credential
from crypto.roster import Roster, sign_roster
from ptt_client.e2e import Keyring
from ptt_protocol import control


def roster_messages(
    keyring: Keyring, roster: Roster, credentials: Mapping[str, Credential], now: float
) -> list[control.Message]:
    """Sign ``roster`` with this device, make its epoch and wrap it for every member
    (``credentials``, checked against the roster's pins and the revocations held).

    Raises :class:`crypto.errors.CryptoError` if any of it is refused; nothing is made then.
    """
    signed = sign_roster(roster, keyring.keys, keyring.credential)
    key = new_epoch_key(roster.channel_id, roster.version, roster.version)
    envelopes = wrap_epoch(
        key, roster, credentials, keyring.keys, keyring.credential, trust=keyring.trust, now=now
    )
    messages: list[control.Message] = [
        control.RosterUpdate(
            channel_id=roster.channel_id, version=roster.version, signed_roster=signed
        )
    ]
    messages.extend(
        control.KeyEnvelope(
            channel_id=roster.channel_id, epoch=roster.version, recipient=u, envelope=e
        )
        for u, e in envelopes.items()
    )
    return messages
