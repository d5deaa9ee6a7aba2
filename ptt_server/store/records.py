"""The store's records: frozen values handed out by (and some taken in by) ``Store``.

Bytes fields are opaque: the store never parses what came from the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from crypto.identity import Credential

__all__ = [
    "Burst",
    "BurstFrame",
    "Channel",
    "Delivery",
    "Emergency",
    "EmergencyRaise",
    "KeyEnvelope",
    "Presence",
    "RevocationList",
    "Roster",
    "StoredMessage",
    "User",
]


@dataclass(frozen=True, slots=True)
class User:
    """An enrolled user's device credential, as issued by the org root (opaque here)."""

    user_id: str
    display_name: str
    role: str
    device_id: str
    credential: bytes
    fingerprint: bytes
    serial: int
    enrolled_at: float

    @classmethod
    def from_credential(cls, credential: Credential, enrolled_at: float) -> User:
        """The row that enrols ``credential`` (its user's one device) at ``enrolled_at``."""
        return cls(
            user_id=credential.user_id,
            display_name=credential.display_name,
            role=credential.role.value,
            device_id=credential.device_id,
            credential=credential.to_bytes(),
            fingerprint=credential.fingerprint(),
            serial=credential.serial,
            enrolled_at=enrolled_at,
        )


@dataclass(frozen=True, slots=True)
class RevocationList:
    """The newest root-signed revocation list and the ids it revokes."""

    version: int
    signed: bytes
    user_ids: frozenset[str]
    serials: frozenset[int]


@dataclass(frozen=True, slots=True)
class Channel:
    """A talk group; ``channel_id`` is a u32 that is never reused."""

    channel_id: int
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PatchLinks:
    """A patch: its own channel, the channels it links, who made it."""

    patch_id: int
    linked: tuple[int, ...]
    created_by: str
    signed_order: bytes
    """The latest signed order (``crypto.patch_order``), opaque here."""


@dataclass(frozen=True, slots=True)
class Roster:
    """A channel's signed member list and the member ids the signer put in it."""

    channel_id: int
    version: int
    signed: bytes
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class KeyEnvelope:
    """A channel epoch key wrapped (HPKE) to one member."""

    channel_id: int
    recipient: str
    epoch: int
    envelope: bytes
    stored_at: float


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A sealed text/status message; exactly one of ``to_user`` and ``to_channel`` is set."""

    message_id: bytes
    from_user: str
    to_user: str | None
    to_channel: int | None
    sealed: bytes
    sent_at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """Delivery state of one message to one recipient."""

    recipient: str
    delivered_at: float | None
    read_at: float | None


@dataclass(frozen=True, slots=True)
class Emergency:
    """An emergency alert and who acknowledged or cancelled it."""

    alert_id: bytes
    user_id: str
    channel_id: int | None
    sealed_location: bytes | None
    raised_at: float
    acked_by: str | None
    acked_at: float | None
    cancelled_by: str | None
    """Who cancelled it; None with ``cancelled_at`` set: merged into an older alert (schema 2)."""
    cancelled_at: float | None
    updated_at: float
    """The last press of the button (``raised_at`` is the first)."""
    presses: int
    """How many times the button was pressed for this alert."""
    kind: str = "emergency"
    """``emergency`` or ``imminent_peril`` (an emergency press upgrades a peril, schema 4)."""

    @property
    def acknowledged(self) -> bool:
        """True once a dispatcher acknowledged the alert."""
        return self.acked_at is not None

    @property
    def active(self) -> bool:
        """True until the alert is cancelled."""
        return self.cancelled_at is None


@dataclass(frozen=True, slots=True)
class EmergencyRaise:
    """What :meth:`Store.raise_emergency` did, and the alert as stored afterwards.

    ``outcome`` is ``created`` (a new alert), ``updated`` (the user's active alert, whatever id
    the press carried, now has the new location and time), ``closed`` (the press names an alert
    that was cancelled: nothing changed) or ``foreign`` (the id is another user's alert: nothing
    changed).
    """

    outcome: Literal["created", "updated", "closed", "foreign"]
    alert: Emergency


@dataclass(frozen=True, slots=True)
class Presence:
    """A user's last known status; the location is sealed end-to-end (opaque here)."""

    user_id: str
    status: str
    online: bool
    last_seen: float
    sealed_location: bytes | None = None
    node: str | None = None
    """The cluster node holding the user's session (None on one node): when that node dies,
    the survivors mark its users offline (:meth:`Store.mark_node_offline`)."""


@dataclass(frozen=True, slots=True)
class Burst:
    """One talk burst's log entry; ``frame_count`` is 0 once its recording was pruned."""

    burst_key: int
    channel_id: int
    burst_id: int
    talker: str
    priority: int
    started_at: float
    duration: float | None
    outcome: str | None
    frame_count: int
    broadcast: bool = False
    """Part of a dispatcher's broadcast group call (TS 22.179 6.2.3)."""


class BurstFrame(NamedTuple):
    """One recorded E2E-sealed voice frame of a burst (a plain tuple also works as input)."""

    seq: int
    flags: int
    frame: bytes
