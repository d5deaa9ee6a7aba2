"""Sealed messages: channel text (and locations) under the epoch key, direct text with HPKE.

Channel messages are sealed for everyone who holds the channel's epoch key:

* key = HKDF-SHA256 (RFC 5869) of the epoch secret, ``info`` = a "channel seal"
  label + channel + epoch + the payload label ("text", "location", ...), so each
  kind of payload has its own key and none shares a key with SFrame audio;
* AES-128-GCM with a random 96-bit nonce (a channel key is shared by all members,
  so there is no single counter; far fewer than 2**32 messages per epoch keep the
  random-nonce collision risk negligible, NIST SP 800-38D section 8.3);
* AAD binds channel, epoch, label, the 16-byte random message id and the sender
  (user id and credential fingerprint);
* the sender signs the whole sealed message with its device's Ed25519 key, so a
  member cannot forge another member's text (the epoch key alone would let any
  member write anything).

Direct messages are sealed with HPKE (same suite as envelopes) to the recipient's
credential; ``info`` binds label, message id, sender and recipient (ids and
fingerprints); the sender signs. Both kinds carry the message id for dedup.

The relay sees the header in clear (channel or recipient, epoch, label, sender,
message id, sizes): it routes and deduplicates by it but cannot read or forge
the content.
"""

from __future__ import annotations

import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.epoch import EpochKey
from crypto.errors import CredentialError, CryptoError, SignatureError, TextError
from crypto.identity import Credential, DeviceKeys, TrustAnchor, hpke_seal
from crypto.roster import Roster
from crypto.sealed import (
    CHANNEL_AAD_CONTEXT,
    CHANNEL_KEY_CONTEXT,
    CHANNEL_SIGNATURE_CONTEXT,
    DIRECT_INFO_CONTEXT,
    DIRECT_SIGNATURE_CONTEXT,
    ENCODER,
    KIND_CHANNEL,
    KIND_DIRECT,
    LABEL_LOCATION,
    LABEL_TEXT,
    MAX_PAYLOAD,
    MAX_SEALED_SIZE,
    MESSAGE_ID_SIZE,
    NONCE_SIZE,
    VERSION,
    ChannelMessage,
    ChannelSealed,
    DirectMessage,
    DirectSealed,
    SealedHeader,
    check_label,
    check_sender,
    decode_channel,
    decode_direct,
    decode_plaintext,
    new_message_id,
    plaintext,
    read_sealed_header,
    verify_sender,
)

__all__ = [
    "LABEL_LOCATION",
    "LABEL_TEXT",
    "MAX_PAYLOAD",
    "MAX_SEALED_SIZE",
    "MESSAGE_ID_SIZE",
    "ChannelMessage",
    "DirectMessage",
    "SealedHeader",
    "open_channel_text",
    "open_direct_text",
    "open_for_channel",
    "open_for_member",
    "read_sealed_header",
    "seal_channel_text",
    "seal_direct_text",
    "seal_for_channel",
    "seal_for_member",
]

# --- channel messages ---------------------------------------------------------------------------


def _channel_key(epoch_key: EpochKey, label: str) -> AESGCM:
    info = CHANNEL_KEY_CONTEXT + ENCODER.encode((epoch_key.channel_id, epoch_key.epoch, label))
    key = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(epoch_key.secret)
    return AESGCM(key)


def _channel_aad(
    channel_id: int, epoch: int, label: str, message_id: bytes, sender: str, fingerprint: bytes
) -> bytes:
    return CHANNEL_AAD_CONTEXT + ENCODER.encode(
        (channel_id, epoch, label, message_id, sender, fingerprint)
    )


def _channel_signed_part(sealed: ChannelSealed) -> bytes:
    return CHANNEL_SIGNATURE_CONTEXT + ENCODER.encode(
        (
            sealed.channel_id,
            sealed.epoch,
            sealed.label,
            sealed.message_id,
            sealed.sender,
            sealed.sender_fingerprint,
            sealed.nonce,
            sealed.ciphertext,
        )
    )


def seal_for_channel(
    epoch_key: EpochKey,
    label: str,
    payload: bytes,
    sender_keys: DeviceKeys,
    sender_credential: Credential,
    now: float,
    *,
    message_id: bytes | None = None,
) -> bytes:
    """Seal ``payload`` for every holder of ``epoch_key``, signed by the sender.

    ``label`` names the kind of payload ("text", "location", ...) and selects its key.
    ``message_id`` defaults to 16 random bytes. Raises :class:`TextError`.
    """
    check_label(label)
    check_sender(sender_keys, sender_credential)
    message_id = new_message_id(message_id)
    fingerprint = sender_credential.fingerprint()
    nonce = os.urandom(NONCE_SIZE)
    aad = _channel_aad(
        epoch_key.channel_id,
        epoch_key.epoch,
        label,
        message_id,
        sender_credential.user_id,
        fingerprint,
    )
    ciphertext = _channel_key(epoch_key, label).encrypt(nonce, plaintext(payload, now), aad)
    unsigned = ChannelSealed(
        epoch_key.channel_id,
        epoch_key.epoch,
        label,
        message_id,
        sender_credential.user_id,
        fingerprint,
        nonce,
        ciphertext,
        b"",
    )
    sealed = msgspec.structs.replace(
        unsigned, signature=sender_keys.sign(_channel_signed_part(unsigned))
    )
    return bytes((VERSION, KIND_CHANNEL)) + ENCODER.encode(sealed)


def open_for_channel(
    sealed: bytes,
    label: str,
    epoch_key: EpochKey,
    sender_credential: Credential,
    trust: TrustAnchor,
    now: float,
    *,
    roster: Roster | None = None,
) -> ChannelMessage:
    """Open a channel message sealed with :func:`seal_for_channel`.

    Checks: the label is ``label``; it was sealed under ``epoch_key``'s channel and
    epoch; ``sender_credential`` is the one named in the header and is valid under
    ``trust`` at ``now``; if ``roster`` is given, the sender is a member pinned to that
    credential; AES-GCM authentication; the sender's signature. Raises :class:`TextError`.
    """
    message = decode_channel(sealed)
    if message.label != label:
        raise TextError(f"sealed message is a {message.label!r} message, not {label!r}")
    if message.channel_id != epoch_key.channel_id or message.epoch != epoch_key.epoch:
        raise TextError(
            f"message was sealed for channel {message.channel_id} epoch {message.epoch}, but"
            f" the key given is channel {epoch_key.channel_id} epoch {epoch_key.epoch}:"
            " use the matching epoch key"
        )
    verify_sender(message.sender, message.sender_fingerprint, sender_credential, trust, now)
    if roster is not None:
        if not roster.pins(message.sender, message.sender_fingerprint):
            raise TextError(
                f"sender {message.sender!r} is not on roster version {roster.version} of"
                f" channel {roster.channel_id} with this device: refused"
            )
    aad = _channel_aad(
        message.channel_id,
        message.epoch,
        message.label,
        message.message_id,
        message.sender,
        message.sender_fingerprint,
    )
    try:
        plain = _channel_key(epoch_key, message.label).decrypt(
            message.nonce, message.ciphertext, aad
        )
    except InvalidTag as exc:
        raise TextError(
            "channel message does not decrypt with this epoch key (altered, or another epoch)"
        ) from exc
    try:
        sender_credential.verify_signature(_channel_signed_part(message), message.signature)
    except SignatureError as exc:
        raise TextError(f"channel message signature refused (forged or altered): {exc}") from exc
    content = decode_plaintext(plain)
    return ChannelMessage(
        message.message_id,
        message.channel_id,
        message.epoch,
        message.sender,
        message.label,
        content.sent_at,
        content.payload,
    )


def _encode_text(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > MAX_PAYLOAD:
        raise TextError(f"text is {len(data)} bytes in UTF-8, over {MAX_PAYLOAD}: shorten it")
    return data


def _check_utf8(payload: bytes) -> None:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextError("text message is not valid UTF-8: refused") from exc


def seal_channel_text(
    epoch_key: EpochKey,
    text: str,
    sender_keys: DeviceKeys,
    sender_credential: Credential,
    now: float,
    *,
    message_id: bytes | None = None,
) -> bytes:
    """Seal a channel text message (label "text"); see :func:`seal_for_channel`."""
    return seal_for_channel(
        epoch_key,
        LABEL_TEXT,
        _encode_text(text),
        sender_keys,
        sender_credential,
        now,
        message_id=message_id,
    )


def open_channel_text(
    sealed: bytes,
    epoch_key: EpochKey,
    sender_credential: Credential,
    trust: TrustAnchor,
    now: float,
    *,
    roster: Roster | None = None,
) -> ChannelMessage:
    """Open a channel text message; ``.text`` of the result is the text. Raises TextError."""
    message = open_for_channel(
        sealed, LABEL_TEXT, epoch_key, sender_credential, trust, now, roster=roster
    )
    _check_utf8(message.payload)
    return message


# --- direct messages ----------------------------------------------------------------------------


def _direct_info(
    label: str,
    message_id: bytes,
    sender: str,
    sender_fingerprint: bytes,
    recipient: str,
    recipient_fingerprint: bytes,
) -> bytes:
    return DIRECT_INFO_CONTEXT + ENCODER.encode(
        (label, message_id, sender, sender_fingerprint, recipient, recipient_fingerprint)
    )


def _direct_signed_part(sealed: DirectSealed) -> bytes:
    return DIRECT_SIGNATURE_CONTEXT + ENCODER.encode(
        (
            sealed.label,
            sealed.message_id,
            sealed.sender,
            sealed.sender_fingerprint,
            sealed.recipient,
            sealed.recipient_fingerprint,
            sealed.ciphertext,
        )
    )


def seal_for_member(
    recipient_credential: Credential,
    label: str,
    payload: bytes,
    sender_keys: DeviceKeys,
    sender_credential: Credential,
    now: float,
    *,
    message_id: bytes | None = None,
) -> bytes:
    """Seal ``payload`` with HPKE to one recipient device, signed by the sender.

    The caller should have verified ``recipient_credential`` with its TrustAnchor.
    Raises :class:`TextError`.
    """
    check_label(label)
    check_sender(sender_keys, sender_credential)
    message_id = new_message_id(message_id)
    sender_fingerprint = sender_credential.fingerprint()
    recipient_fingerprint = recipient_credential.fingerprint()
    info = _direct_info(
        label,
        message_id,
        sender_credential.user_id,
        sender_fingerprint,
        recipient_credential.user_id,
        recipient_fingerprint,
    )
    try:
        ciphertext = hpke_seal(recipient_credential.hpke_key, plaintext(payload, now), info)
    except CredentialError as exc:
        raise TextError(f"cannot seal to {recipient_credential.user_id!r}: {exc}") from exc
    unsigned = DirectSealed(
        label,
        message_id,
        sender_credential.user_id,
        sender_fingerprint,
        recipient_credential.user_id,
        recipient_fingerprint,
        ciphertext,
        b"",
    )
    sealed = msgspec.structs.replace(
        unsigned, signature=sender_keys.sign(_direct_signed_part(unsigned))
    )
    return bytes((VERSION, KIND_DIRECT)) + ENCODER.encode(sealed)


def open_for_member(
    sealed: bytes,
    label: str,
    my_keys: DeviceKeys,
    my_credential: Credential,
    sender_credential: Credential,
    trust: TrustAnchor,
    now: float,
) -> DirectMessage:
    """Open a direct message sealed to this device with :func:`seal_for_member`.

    Checks: the label; addressed to ``my_credential`` (user id and fingerprint); the
    sender credential is the one named and valid under ``trust`` at ``now``; the
    sender's signature; HPKE decryption with all context in ``info``. Raises TextError.
    """
    message = decode_direct(sealed)
    if message.label != label:
        raise TextError(f"sealed message is a {message.label!r} message, not {label!r}")
    if (
        message.recipient != my_credential.user_id
        or message.recipient_fingerprint != my_credential.fingerprint()
    ):
        raise TextError(
            f"direct message is addressed to {message.recipient!r}, not to this device of"
            f" {my_credential.user_id!r}: ignore it"
        )
    verify_sender(message.sender, message.sender_fingerprint, sender_credential, trust, now)
    try:
        sender_credential.verify_signature(_direct_signed_part(message), message.signature)
    except SignatureError as exc:
        raise TextError(f"direct message signature refused (forged or altered): {exc}") from exc
    info = _direct_info(
        message.label,
        message.message_id,
        message.sender,
        message.sender_fingerprint,
        message.recipient,
        message.recipient_fingerprint,
    )
    try:
        plain = my_keys.hpke_open(message.ciphertext, info)
    except CryptoError as exc:
        raise TextError(
            "direct message does not decrypt with this device's keys (altered, or sealed to"
            " another device)"
        ) from exc
    content = decode_plaintext(plain)
    return DirectMessage(
        message.message_id,
        message.sender,
        message.recipient,
        message.label,
        content.sent_at,
        content.payload,
    )


def seal_direct_text(
    recipient_credential: Credential,
    text: str,
    sender_keys: DeviceKeys,
    sender_credential: Credential,
    now: float,
    *,
    message_id: bytes | None = None,
) -> bytes:
    """Seal a direct text message (label "text"); see :func:`seal_for_member`."""
    return seal_for_member(
        recipient_credential,
        LABEL_TEXT,
        _encode_text(text),
        sender_keys,
        sender_credential,
        now,
        message_id=message_id,
    )


def open_direct_text(
    sealed: bytes,
    my_keys: DeviceKeys,
    my_credential: Credential,
    sender_credential: Credential,
    trust: TrustAnchor,
    now: float,
) -> DirectMessage:
    """Open a direct text message; ``.text`` of the result is the text. Raises TextError."""
    message = open_for_member(
        sealed, LABEL_TEXT, my_keys, my_credential, sender_credential, trust, now
    )
    _check_utf8(message.payload)
    return message
