"""What the org authority itself signed, kept in its own directory (``ledger.json``).

``ptt-admin`` signs "version + 1" of what it is shown, and the relay shows it: a relay
restored from an old backup (or a lying one) could otherwise make it un-revoke a lost
phone, key a revoked or replaced device, put a removed member back, or key the wrong
channel under a swapped name. The ledger remembers, per organisation: the newest
revocation list it signed, every device it enrolled (so a replaced one can still be
revoked), each user's current credential, and each channel's id and newest roster
version. Every command checks the relay's directory against it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptt_admin.authority import AdminError

__all__ = ["Device", "Ledger"]


@dataclass(frozen=True, slots=True)
class Device:
    """A device the authority enrolled: whose, and the credential's serial and fingerprint."""

    user_id: str
    serial: int
    fingerprint: str


@dataclass
class Ledger:
    """The authority's own record; :meth:`load` it, change it, :meth:`save` it."""

    path: Path
    users: dict[str, str] = field(default_factory=dict)
    """User id -> fingerprint (hex) of the credential enrolled last."""
    devices: dict[str, Device] = field(default_factory=dict)
    """Device id -> the device, for every enrolment ever made."""
    channels: dict[str, int] = field(default_factory=dict)
    """Channel name -> id, as created by the authority."""
    rosters: dict[int, int] = field(default_factory=dict)
    """Channel id -> newest roster version this authority signed."""
    revocations: bytes | None = None
    """The newest revocation list this authority signed."""

    @classmethod
    def load(cls, directory: Path) -> Ledger:
        path = directory / "ledger.json"
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            return cls(
                path,
                users={str(k): str(v) for k, v in raw.get("users", {}).items()},
                devices={
                    str(k): Device(str(v["user_id"]), int(v["serial"]), str(v["fingerprint"]))
                    for k, v in raw.get("devices", {}).items()
                },
                channels={str(k): int(v) for k, v in raw.get("channels", {}).items()},
                rosters={int(k): int(v) for k, v in raw.get("rosters", {}).items()},
                revocations=bytes.fromhex(raw["revocations"]) if raw.get("revocations") else None,
            )
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AdminError(
                f"{path} is damaged ({exc}): restore the authority directory from backup"
            ) from None

    def save(self) -> None:
        data = {
            "users": self.users,
            "devices": {
                k: {"user_id": d.user_id, "serial": d.serial, "fingerprint": d.fingerprint}
                for k, d in self.devices.items()
            },
            "channels": self.channels,
            "rosters": {str(k): v for k, v in self.rosters.items()},
            "revocations": self.revocations.hex() if self.revocations else None,
        }
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.path)
