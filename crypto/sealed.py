"""The sealed-message format shared by channel and direct messages: the envelopes' layout,
limits and labels, and the checks both kinds make (sender keys, message ids, plaintext,
the sender's signature). Channel sealing is in :mod:`crypto.text`, which also re-exports
the public names here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec

from crypto.errors import CredentialError, TextError
from crypto.identity import Credential, DeviceKeys, TrustAnchor

MESSAGE_ID_SIZE: Final = 16
MAX_SEALED_SIZE: Final = 16 * 1024
"""Largest sealed message: the control protocol's opaque-blob cap (ptt_protocol.control
MAX_BLOB_SIZE), so every message this module seals can be carried."""
MAX_PAYLOAD: Final = 12 * 1024
"""Largest plaintext payload (bytes; text is capped at this many UTF-8 bytes). Leaves room
for the HPKE encapsulation (1,120 bytes), tags, header and signature within MAX_SEALED_SIZE."""
LABEL_TEXT: Final = "text"
LABEL_LOCATION: Final = "location"

VERSION: Final = 1
KIND_CHANNEL: Final = 1
KIND_DIRECT: Final = 2
NONCE_SIZE: Final = 12
CHANNEL_KEY_CONTEXT: Final = b"fieldradio channel seal key v1\x00"
CHANNEL_AAD_CONTEXT: Final = b"fieldradio channel seal v1\x00"
CHANNEL_SIGNATURE_CONTEXT: Final = b"fieldradio channel seal signature v1\x00"
DIRECT_INFO_CONTEXT: Final = b"fieldradio direct seal v1\x00"
DIRECT_SIGNATURE_CONTEXT: Final = b"fieldradio direct seal signature v1\x00"

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Label = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
_MessageId = Annotated[bytes, msgspec.Meta(min_length=MESSAGE_ID_SIZE, max_length=MESSAGE_ID_SIZE)]
_Fingerprint = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
_Ciphertext = Annotated[bytes, msgspec.Meta(max_length=MAX_SEALED_SIZE)]
ENCODER: Final = msgspec.msgpack.Encoder()


class ChannelSealed(msgspec.Struct, array_like=True, frozen=True):
    channel_id: _U32
    epoch: _U32
    label: _Label
    message_id: _MessageId
    sender: _UserId
    sender_fingerprint: _Fingerprint
    nonce: Annotated[bytes, msgspec.Meta(min_length=NONCE_SIZE, max_length=NONCE_SIZE)]
    ciphertext: _Ciphertext
    signature: _Signature


class DirectSealed(msgspec.Struct, array_like=True, frozen=True):
    label: _Label
    message_id: _MessageId
    sender: _UserId
    sender_fingerprint: _Fingerprint
    recipient: _UserId
    recipient_fingerprint: _Fingerprint
    ciphertext: _Ciphertext
    signature: _Signature


class Plaintext(msgspec.Struct, array_like=True, frozen=True):
    sent_at: float
    payload: Annotated[bytes, msgspec.Meta(max_length=MAX_PAYLOAD)]


_CHANNEL_DECODER: Final = msgspec.msgpack.Decoder(ChannelSealed)
_DIRECT_DECODER: Final = msgspec.msgpack.Decoder(DirectSealed)
_PLAINTEXT_DECODER: Final = msgspec.msgpack.Decoder(Plaintext)


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


def check_sender(keys: DeviceKeys, credential: Credential) -> None:
    if not keys.matches(credential):
        raise TextError("sender keys do not match the sender credential: use this device's own")


def new_message_id(message_id: bytes | None) -> bytes:
    if message_id is None:
        return os.urandom(MESSAGE_ID_SIZE)
    if len(message_id) != MESSAGE_ID_SIZE:
        raise TextError(f"message id must be {MESSAGE_ID_SIZE} bytes")
    return bytes(message_id)


def plaintext(payload: bytes, now: float) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise TextError(f"payload is {len(payload)} bytes, over {MAX_PAYLOAD}: shorten it")
    return ENCODER.encode(Plaintext(float(now), bytes(payload)))


def check_label(label: str) -> None:
    if not 1 <= len(label) <= 32:
        raise TextError("label must be 1 to 32 characters")


def _split(data: bytes) -> tuple[int, bytes]:
    if len(data) > MAX_SEALED_SIZE:
        raise TextError(f"sealed message is {len(data)} bytes, over {MAX_SEALED_SIZE}")
    if len(data) < 2 or data[0] != VERSION or data[1] not in (KIND_CHANNEL, KIND_DIRECT):
        raise TextError("sealed message has an unsupported format version or kind")
    return data[1], bytes(data[2:])


def decode_channel(data: bytes) -> ChannelSealed:
    kind, body = _split(data)
    if kind != KIND_CHANNEL:
        raise TextError("this is a direct message, not a channel message")
    try:
        sealed = _CHANNEL_DECODER.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed channel message is malformed ({exc})") from exc
    if ENCODER.encode(sealed) != body:
        raise TextError("sealed channel message is not canonically encoded: it was altered")
    return sealed


def decode_direct(data: bytes) -> DirectSealed:
    kind, body = _split(data)
    if kind != KIND_DIRECT:
        raise TextError("this is a channel message, not a direct message")
    try:
        sealed = _DIRECT_DECODER.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed direct message is malformed ({exc})") from exc
    if ENCODER.encode(sealed) != body:
        raise TextError("sealed direct message is not canonically encoded: it was altered")
    return sealed


def decode_plaintext(plain: bytes) -> Plaintext:
    try:
        return _PLAINTEXT_DECODER.decode(plain)
    except (msgspec.DecodeError, ValueError) as exc:  # invalid UTF-8 is a ValueError
        raise TextError(f"sealed message content is malformed ({exc})") from exc


def verify_sender(
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
    if kind == KIND_CHANNEL:
        channel = decode_channel(data)
        return SealedHeader(
            channel.label,
            channel.message_id,
            channel.sender,
            channel.sender_fingerprint,
            channel_id=channel.channel_id,
            epoch=channel.epoch,
        )
    direct = decode_direct(data)
    return SealedHeader(
        direct.label,
        direct.message_id,
        direct.sender,
        direct.sender_fingerprint,
        recipient=direct.recipient,
    )
