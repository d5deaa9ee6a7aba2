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
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.epoch import EpochKey
from crypto.errors import CredentialError, CryptoError, SignatureError, TextError
from crypto.identity import Credential, DeviceKeys, TrustAnchor, hpke_seal
from crypto.roster import Roster

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

MESSAGE_ID_SIZE: Final = 16
MAX_SEALED_SIZE: Final = 16 * 1024
"""Largest sealed message: the control protocol's opaque-blob cap (ptt_protocol.control
MAX_BLOB_SIZE), so every message this module seals can be carried."""
MAX_PAYLOAD: Final = 12 * 1024
"""Largest plaintext payload (bytes; text is capped at this many UTF-8 bytes). Leaves room
for the HPKE encapsulation (1,120 bytes), tags, header and signature within MAX_SEALED_SIZE."""
LABEL_TEXT: Final = "text"
LABEL_LOCATION: Final = "location"

_VERSION: Final = 1
_KIND_CHANNEL: Final = 1
_KIND_DIRECT: Final = 2
_NONCE_SIZE: Final = 12
_CHANNEL_KEY_CONTEXT: Final = b"fieldradio channel seal key v1\x00"
_CHANNEL_AAD_CONTEXT: Final = b"fieldradio channel seal v1\x00"
_CHANNEL_SIGNATURE_CONTEXT: Final = b"fieldradio channel seal signature v1\x00"
_DIRECT_INFO_CONTEXT: Final = b"fieldradio direct seal v1\x00"
_DIRECT_SIGNATURE_CONTEXT: Final = b"fieldradio direct seal signature v1\x00"

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Label = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
_MessageId = Annotated[bytes, msgspec.Meta(min_length=MESSAGE_ID_SIZE, max_length=MESSAGE_ID_SIZE)]
_Fingerprint = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
_Ciphertext = Annotated[bytes, msgspec.Meta(max_length=MAX_SEALED_SIZE)]
_ENCODER: Final = msgspec.msgpack.Encoder()


class _ChannelSealed(msgspec.Struct, array_like=True, frozen=True):
    channel_id: _U32
    epoch: _U32
    label: _Label
    message_id: _MessageId
    sender: _UserId
    sender_fingerprint: _Fingerprint
    nonce: Annotated[bytes, msgspec.Meta(min_length=_NONCE_SIZE, max_length=_NONCE_SIZE)]
    ciphertext: _Ciphertext
    signature: _Signature


class _DirectSealed(msgspec.Struct, array_like=True, frozen=True):
    label: _Label
    message_id: _MessageId
    sender: _UserId
    sender_fingerprint: _Fingerprint
    recipient: _UserId
    recipient_fingerprint: _Fingerprint
    ciphertext: _Ciphertext
    signature: _Signature


class _Plaintext(msgspec.Struct, array_like=True, frozen=True):
    sent_at: float
    payload: Annotated[bytes, msgspec.Meta(max_length=MAX_PAYLOAD)]


_CHANNEL_DECODER: Final = msgspec.msgpack.Decoder(_ChannelSealed)
_DIRECT_DECODER: Final = msgspec.msgpack.Decoder(_DirectSealed)
_PLAINTEXT_DECODER: Final = msgspec.msgpack.Decoder(_Plaintext)


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """Clear routing fields of a sealed message (unauthenticated until opened).

    ``channel_id``/``epoch`` are set for channel messages, ``recipient`` for direct ones.
    """

    label: str
    message_id: bytes
    sender: str
    sender_fingerprint: bytes
    channel_id: int | None = None
    epoch: int | None = None
    recipient: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """An opened, verified channel message."""

    message_id: bytes
    channel_id: int
    epoch: int
    sender: str
    label: str
    sent_at: float
    """Sender's clock when sealed (signed, but only as honest as the sender's clock)."""
    payload: bytes

    @property
    def text(self) -> str:
        """The payload as text (valid UTF-8 is checked by :func:`open_channel_text`)."""
        return self.payload.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class DirectMessage:
    """An opened, verified direct message."""

    message_id: bytes
    sender: str
    recipient: str
    label: str
    sent_at: float
    payload: bytes

    @property
    def text(self) -> str:
        """The payload as text (valid UTF-8 is checked by :func:`open_direct_text`)."""
        return self.payload.decode("utf-8", errors="replace")


# --- shared checks ------------------------------------------------------------------------------


def _check_sender(keys: DeviceKeys, credential: Credential) -> None:
    if not keys.matches(credential):
        raise TextError("sender keys do not match the sender credential: use this device's own")


def _new_message_id(message_id: bytes | None) -> bytes:
    if message_id is None:
        return os.urandom(MESSAGE_ID_SIZE)
    if len(message_id) != MESSAGE_ID_SIZE:
        raise TextError(f"message id must be {MESSAGE_ID_SIZE} bytes")
    return bytes(message_id)


def _plaintext(payload: bytes, now: float) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise TextError(f"payload is {len(payload)} bytes, over {MAX_PAYLOAD}: shorten it")
    return _ENCODER.encode(_Plaintext(float(now), bytes(payload)))


def _check_label(label: str) -> None:
    if not 1 <= len(label) <= 32:
        raise TextError("label must be 1 to 32 characters")


def _split(data: bytes) -> tuple[int, bytes]:
    if len(data) > MAX_SEALED_SIZE:
        raise TextError(f"sealed message is {len(data)} bytes, over {MAX_SEALED_SIZE}")
    if len(data) < 2 or data[0] != _VERSION or data[1] not in (_KIND_CHANNEL, _KIND_DIRECT):
        raise TextError("sealed message has an unsupported format version or kind")
    return data[1], bytes(data[2:])


def _decode_channel(data: bytes) -> _ChannelSealed:
    kind, body = _split(data)
    if kind != _KIND_CHANNEL:
        raise TextError("this is a direct message, not a channel message")
    try:
        sealed = _CHANNEL_DECODER.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed channel message is malformed ({exc})") from exc
    if _ENCODER.encode(sealed) != body:
        raise TextError("sealed channel message is not canonically encoded: it was altered")
    return sealed


def _decode_direct(data: bytes) -> _DirectSealed:
    kind, body = _split(data)
    if kind != _KIND_DIRECT:
        raise TextError("this is a channel message, not a direct message")
    try:
        sealed = _DIRECT_DECODER.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed direct message is malformed ({exc})") from exc
    if _ENCODER.encode(sealed) != body:
        raise TextError("sealed direct message is not canonically encoded: it was altered")
    return sealed


def _decode_plaintext(plain: bytes) -> _Plaintext:
    try:
        return _PLAINTEXT_DECODER.decode(plain)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed message content is malformed ({exc})") from exc


def _verify_sender(
    sender: str,
    sender_fingerprint: bytes,
    sender_credential: Credential,
    trust: TrustAnchor,
    now: float,
) -> None:
    if sender_credential.user_id != sender or sender_credential.fingerprint() != sender_fingerprint:
        raise TextError(
            f"message claims sender {sender!r} but the credential given is for"
            f" {sender_credential.user_id!r} (or another device): fetch the sender's credential"
            " by the fingerprint in the header"
        )
    try:
        trust.verify_credential(sender_credential, now)
    except CredentialError as exc:
        raise TextError(f"message sender refused: {exc}") from exc


def read_sealed_header(data: bytes) -> SealedHeader:
    """Decode the clear header of a channel or direct sealed message (verifies nothing).

    Tells the receiver which epoch key and which sender credential to use, and the
    server where to route and how to deduplicate. Raises :class:`TextError`.
    """
    kind, _ = _split(data)
    if kind == _KIND_CHANNEL:
        channel = _decode_channel(data)
        return SealedHeader(
            channel.label,
            channel.message_id,
            channel.sender,
            channel.sender_fingerprint,
            channel_id=channel.channel_id,
            epoch=channel.epoch,
        )
    direct = _decode_direct(data)
    return SealedHeader(
        direct.label,
        direct.message_id,
        direct.sender,
        direct.sender_fingerprint,
        recipient=direct.recipient,
    )


# --- channel messages ---------------------------------------------------------------------------


def _channel_key(epoch_key: EpochKey, label: str) -> AESGCM:
    info = _CHANNEL_KEY_CONTEXT + _ENCODER.encode((epoch_key.channel_id, epoch_key.epoch, label))
    key = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(epoch_key.secret)
    return AESGCM(key)


def _channel_aad(
    channel_id: int, epoch: int, label: str, message_id: bytes, sender: str, fingerprint: bytes
) -> bytes:
    return _CHANNEL_AAD_CONTEXT + _ENCODER.encode(
        (channel_id, epoch, label, message_id, sender, fingerprint)
    )


def _channel_signed_part(sealed: _ChannelSealed) -> bytes:
    return _CHANNEL_SIGNATURE_CONTEXT + _ENCODER.encode(
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
    _check_label(label)
    _check_sender(sender_keys, sender_credential)
    message_id = _new_message_id(message_id)
    fingerprint = sender_credential.fingerprint()
    nonce = os.urandom(_NONCE_SIZE)
    aad = _channel_aad(
        epoch_key.channel_id,
        epoch_key.epoch,
        label,
        message_id,
        sender_credential.user_id,
        fingerprint,
    )
    ciphertext = _channel_key(epoch_key, label).encrypt(nonce, _plaintext(payload, now), aad)
    unsigned = _ChannelSealed(
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
    return bytes((_VERSION, _KIND_CHANNEL)) + _ENCODER.encode(sealed)


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
    message = _decode_channel(sealed)
    if message.label != label:
        raise TextError(f"sealed message is a {message.label!r} message, not {label!r}")
    if message.channel_id != epoch_key.channel_id or message.epoch != epoch_key.epoch:
        raise TextError(
            f"message was sealed for channel {message.channel_id} epoch {message.epoch}, but"
            f" the key given is channel {epoch_key.channel_id} epoch {epoch_key.epoch}:"
            " use the matching epoch key"
        )
    _verify_sender(message.sender, message.sender_fingerprint, sender_credential, trust, now)
    if roster is not None:
        member = roster.member(message.sender)
        if member is None or member.credential_fingerprint != message.sender_fingerprint:
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
    content = _decode_plaintext(plain)
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
    return _DIRECT_INFO_CONTEXT + _ENCODER.encode(
        (label, message_id, sender, sender_fingerprint, recipient, recipient_fingerprint)
    )


def _direct_signed_part(sealed: _DirectSealed) -> bytes:
    return _DIRECT_SIGNATURE_CONTEXT + _ENCODER.encode(
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
    _check_label(label)
    _check_sender(sender_keys, sender_credential)
    message_id = _new_message_id(message_id)
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
        ciphertext = hpke_seal(recipient_credential.hpke_key, _plaintext(payload, now), info)
    except CredentialError as exc:
        raise TextError(f"cannot seal to {recipient_credential.user_id!r}: {exc}") from exc
    unsigned = _DirectSealed(
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
    return bytes((_VERSION, _KIND_DIRECT)) + _ENCODER.encode(sealed)


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
    message = _decode_direct(sealed)
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
    _verify_sender(message.sender, message.sender_fingerprint, sender_credential, trust, now)
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
    content = _decode_plaintext(plain)
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
