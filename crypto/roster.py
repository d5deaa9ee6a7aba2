"""Signed channel rosters: who may hold a channel's key, in which order.

A :class:`Roster` lists a channel's members, each pinned to one credential by its
fingerprint. Its position in ``members`` is the member's SFrame sender index for
every epoch made for this roster version (RFC 9605 section 5.2 MLS profile uses the
MLS leaf index the same way).

Only a dispatcher or admin may sign a roster (:func:`sign_roster`). The signed
form carries the signer's credential, so any client can check it against the
pinned org root. :class:`RosterState` keeps the newest roster per channel and
refuses anything that is not strictly newer: a relay cannot roll a channel back
to a roster that still lists a removed member, nor replay an old one.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Final

import msgspec

from crypto.errors import CredentialError, RosterError, SignatureError, StaleRosterError
from crypto.identity import Credential, DeviceKeys, Role, TrustAnchor
from crypto.wire import decode_versioned

__all__ = ["MAX_MEMBERS", "Member", "Roster", "RosterState", "decode_signed_roster", "sign_roster"]

MAX_MEMBERS: Final = 1000
"""Largest roster (the control protocol's list cap); bounds the work one signed roster costs.
A signed roster is about 1.4 KB (signer credential) + ~50 bytes per member."""
_SIGNED_ROSTER_VERSION: Final = 1
_MAX_SIGNED_ROSTER_BYTES: Final = 1024 * 1024
_ROSTER_CONTEXT: Final = b"fieldradio roster v1\x00"
_FINGERPRINT_SIZE: Final = 32

_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_ENCODER: Final = msgspec.msgpack.Encoder()


class Member(msgspec.Struct, array_like=True, frozen=True):
    """One channel member, pinned to one credential (one device) by fingerprint."""

    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: Role
    credential_fingerprint: Annotated[
        bytes, msgspec.Meta(min_length=_FINGERPRINT_SIZE, max_length=_FINGERPRINT_SIZE)
    ]

    @classmethod
    def from_credential(cls, credential: Credential) -> Member:
        """The roster entry for the holder of ``credential``."""
        return cls(credential.user_id, credential.role, credential.fingerprint())


class Roster(msgspec.Struct, array_like=True, frozen=True):
    """Members of channel ``channel_id`` at roster ``version`` (order = sender index)."""

    channel_id: _U32
    version: _U32
    members: Annotated[tuple[Member, ...], msgspec.Meta(max_length=MAX_MEMBERS)]

    def sender_index(self, user_id: str) -> int:
        """Position of ``user_id`` in :attr:`members`: its SFrame sender index this epoch.

        Raises :class:`RosterError` if the user is not a member.
        """
        for index, member in enumerate(self.members):
            if member.user_id == user_id:
                return index
        raise RosterError(
            f"{user_id!r} is not a member of channel {self.channel_id} (roster version"
            f" {self.version}): ask a dispatcher to add them"
        )

    def member(self, user_id: str) -> Member | None:
        """The entry for ``user_id``, or None if not a member."""
        for member in self.members:
            if member.user_id == user_id:
                return member
        return None

    def pins(self, user_id: str, credential_fingerprint: bytes) -> bool:
        """Whether ``user_id`` is a member through exactly this credential (the roster pins
        one device per member: another credential of the same user is not on it)."""
        member = self.member(user_id)
        return member is not None and member.credential_fingerprint == credential_fingerprint

    def digest(self) -> bytes:
        """SHA-256 of this roster (channel, version, members in order): what a signed patch
        order names, so it holds for this roster and no other with the same version."""
        return hashlib.sha256(_ENCODER.encode(self)).digest()

    def check(self) -> None:
        """Raise :class:`RosterError` if a user id appears twice (sender indexes would clash)."""
        seen: set[str] = set()
        for member in self.members:
            if member.user_id in seen:
                raise RosterError(
                    f"roster for channel {self.channel_id} lists {member.user_id!r} twice: refused"
                )
            seen.add(member.user_id)


class _SignedRoster(msgspec.Struct, array_like=True, frozen=True):
    roster: Roster
    signer_credential: Annotated[bytes, msgspec.Meta(max_length=4096)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


_SIGNED_ROSTER_DECODER: Final = msgspec.msgpack.Decoder(_SignedRoster)


def _signed_part(roster: Roster, signer_fingerprint: bytes) -> bytes:
    return _ROSTER_CONTEXT + signer_fingerprint + _ENCODER.encode(roster)


def sign_roster(roster: Roster, signer_keys: DeviceKeys, signer_credential: Credential) -> bytes:
    """Sign ``roster`` as a dispatcher or admin; the result carries the signer's credential.

    Raises :class:`RosterError` if the signer's role may not sign rosters, the keys do
    not match the credential, or the roster is invalid.
    """
    if not signer_credential.is_key_manager():
        raise RosterError(
            f"{signer_credential.user_id!r} has role {signer_credential.role.value!r}: only a"
            " dispatcher or admin may sign a roster"
        )
    if not signer_keys.matches(signer_credential):
        raise RosterError("signer keys do not match the signer credential: use this device's own")
    roster.check()
    credential_bytes = signer_credential.to_bytes()
    signature = signer_keys.sign(_signed_part(roster, signer_credential.fingerprint()))
    signed = _SignedRoster(roster, credential_bytes, signature)
    data = bytes((_SIGNED_ROSTER_VERSION,)) + _ENCODER.encode(signed)
    decode_signed_roster(data)  # enforce every cap before anything is sent
    return data


def decode_signed_roster(data: bytes) -> tuple[Roster, Credential, bytes]:
    """Decode a signed roster: (roster, signer credential, signature). Checks structure only.

    Raises :class:`RosterError` for oversize, unknown version, malformed or non-canonical input.
    """
    signed = decode_versioned(
        data,
        version=_SIGNED_ROSTER_VERSION,
        decoder=_SIGNED_ROSTER_DECODER,
        max_size=_MAX_SIGNED_ROSTER_BYTES,
        what="signed roster",
        error=RosterError,
        fix="update the client",
    )
    try:
        credential = Credential.from_bytes(signed.signer_credential)
    except CredentialError as exc:
        raise RosterError(f"signed roster carries a malformed signer credential: {exc}") from exc
    signed.roster.check()
    return signed.roster, credential, signed.signature


def check_roster_signer(signer: Credential, roster: Roster, held: Roster | None) -> None:
    """Refuse a dispatcher's roster unless that dispatcher is on the roster ``held``.

    A dispatcher may key only a channel it is a member of
    (:func:`crypto.epoch.check_epoch_creator`); if it could also sign the roster that makes
    it a member, any dispatcher could put itself on any channel and read it. So a
    dispatcher changes only a channel it is already on; the org authority (role admin)
    changes any. With no roster held (a channel's first roster) there is nothing to check
    against. Raises :class:`RosterError`.
    """
    if held is None or signer.role is Role.ADMIN:
        return
    if not held.pins(signer.user_id, signer.fingerprint()):
        raise RosterError(
            f"roster version {roster.version} for channel {roster.channel_id} is signed by"
            f" dispatcher {signer.user_id!r}, who is not on its roster (version"
            f" {held.version}): a dispatcher may only change a channel it is on; refused"
        )


class RosterState:
    """The newest accepted roster of one channel (sans-I/O; time is passed in)."""

    __slots__ = ("channel_id", "current", "signed")

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self.current: Roster | None = None
        """Newest accepted roster, None before the first."""
        self.signed: bytes | None = None
        """The signed bytes of :attr:`current`, to store or forward to a late joiner."""

    def accept(self, signed_bytes: bytes, trust: TrustAnchor, now: float) -> Roster:
        """Verify a signed roster and make it current.

        Accepted only if it is for this channel, the signer's credential is valid at
        ``now`` (org root, not expired, not revoked) with role dispatcher or admin, the
        signature verifies, and its version is strictly higher than the current one.
        Otherwise raises :class:`RosterError` and changes nothing.
        """
        roster, signer, signature = decode_signed_roster(signed_bytes)
        if roster.channel_id != self.channel_id:
            raise RosterError(
                f"roster is for channel {roster.channel_id}, not channel {self.channel_id}: refused"
            )
        try:
            trust.verify_credential(signer, now)
        except CredentialError as exc:
            raise RosterError(f"roster signer refused: {exc}") from exc
        if not signer.is_key_manager():
            raise RosterError(
                f"roster for channel {roster.channel_id} is signed by {signer.user_id!r} with role"
                f" {signer.role.value!r}: only a dispatcher or admin may change a roster"
            )
        try:
            signer.verify_signature(_signed_part(roster, signer.fingerprint()), signature)
        except SignatureError as exc:
            raise RosterError(
                f"roster for channel {roster.channel_id} has a bad signature (tampered): {exc}"
            ) from exc
        if self.current is not None and roster.version == self.current.version + 1:
            # The next version is judged against the one held. A device that missed versions
            # cannot tell who was on the ones between; the relay, which sees every version,
            # checks each (ptt_server.handlers.keys.on_roster_update).
            check_roster_signer(signer, roster, self.current)
        if self.current is not None and roster.version <= self.current.version:
            kind = "replayed" if roster.version == self.current.version else "rolled back"
            raise StaleRosterError(
                f"roster version {roster.version} for channel {roster.channel_id} is not newer"
                f" than version {self.current.version} ({kind}): refused"
            )
        self.current = roster
        self.signed = bytes(signed_bytes)
        return roster
