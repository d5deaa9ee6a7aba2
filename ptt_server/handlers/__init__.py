"""The relay's control-message handlers, by feature, and the table that routes to them.

Each handler is ``async def on_x(server, session, message, now)``. By the time one runs,
the session core (:mod:`ptt_server.session_core`) has decoded the message, checked that the
session may send it (:data:`ptt_server.policy.RULES`) and charged its rate budget; a
handler checks only what depends on the object (the channel, the alert, the roster).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from ptt_protocol import control
from ptt_server.handlers import (
    authority,
    calls,
    channels,
    emergencies,
    keys,
    patches,
    presence,
    recall,
    texts,
)

Handler = Callable[[Any, Any, Any, float], Awaitable[None]]

HANDLERS: Final[dict[type[control.Message], Handler]] = {
    control.Affiliate: channels.on_affiliate,
    control.Deaffiliate: channels.on_deaffiliate,
    control.SelectChannel: channels.on_select,
    control.FloorRequest: channels.on_floor_request,
    control.FloorRelease: channels.on_floor_release,
    control.BroadcastRequest: channels.on_broadcast_request,
    control.MediaTunnel: channels.on_media_tunnel,
    control.ReceiverReport: channels.on_receiver_report,
    control.Ping: channels.on_ping,
    control.ChannelCreate: channels.on_channel_create,
    control.Patch: patches.on_patch,
    control.Unpatch: patches.on_unpatch,
    control.ChannelDelete: patches.on_channel_delete,
    control.PresenceSubscribe: presence.on_presence_subscribe,
    control.SetStatus: presence.on_set_status,
    control.LocationReport: presence.on_location,
    control.TextSend: texts.on_text_send,
    control.TextReceipt: texts.on_text_receipt,
    control.CredentialRequest: keys.on_credential_request,
    control.RosterUpdate: keys.on_roster_update,
    control.KeyEnvelope: keys.on_key_envelope,
    control.EmergencyAlert: emergencies.on_emergency_alert,
    control.EmergencyAck: emergencies.on_emergency_ack,
    control.EmergencyCancel: emergencies.on_emergency_cancel,
    control.RecallList: recall.on_recall_list,
    control.RecallFrames: recall.on_recall_frames,
    control.IceServersRequest: calls.on_ice_servers_request,
    control.CallOffer: calls.on_call_offer,
    control.CallRinging: calls.on_call_ringing,
    control.CallAnswer: calls.on_call_answer,
    control.CallEnd: calls.on_call_end,
    control.CallTalk: calls.on_call_talk,
    control.CallLogRequest: calls.on_call_log_request,
    control.Enroll: authority.on_enroll,
    control.RevocationUpdate: authority.on_revocations,
    control.DirectoryRequest: authority.on_directory,
}
"""Every client message's handler (the same keys as :data:`ptt_server.policy.RULES`)."""
