"""``RadioClient``'s reports beside voice and texts: the officer's status and position, the
emergency alerts it raises, cancels and acknowledges, the presence it watches, and the
credentials it looks up to check what others signed.

A mixin of :class:`ptt_client.client.RadioClient`, like
:class:`ptt_client.broadcast_calls.BroadcastCalls`: what is state (the alert in force, the
status re-sent after a reconnect) is the session core's, and what is sealed is sealed by the
client's :class:`~ptt_client.e2e.Keyring`, so the server stores only ciphertext.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING

from crypto.identity import Credential
from ptt_protocol import control

if TYPE_CHECKING:
    from ptt_client.e2e import Keyring
    from ptt_client.session_core import ClientSessionCore, Effect

__all__ = ["OfficerReports"]


class OfficerReports:
    """Status, location, emergencies, presence and credential look-ups (see the module
    docstring)."""

    core: ClientSessionCore
    keyring: Keyring
    user_id: str

    if TYPE_CHECKING:  # the client's own

        @property
        def selected(self) -> int | None: ...

        @selected.setter
        def selected(self, channel_id: int | None) -> None: ...

        async def _run_effects(self, effects: list[Effect]) -> None: ...

        async def _send(self, message: control.Message) -> None: ...

    async def set_status(self, status: str) -> None:
        await self._run_effects(self.core.set_status(status))

    async def send_location(self, lat: float, lon: float) -> None:
        """Report a position, sealed for dispatchers (the server stores only ciphertext)."""
        sealed = self.keyring.seal_location(self.selected, lat, lon)
        if sealed is not None:
            await self._send(control.LocationReport(sealed_location=sealed))

    async def raise_emergency(
        self,
        lat: float | None = None,
        lon: float | None = None,
        *,
        peril: bool = False,
        channel_id: int | None = None,
    ) -> bytes:
        """Raise an emergency alert (``peril``: an imminent-peril one) on ``channel_id`` (the
        selected one by default); floor requests get its priority until it is cancelled."""
        alert_id = secrets.token_bytes(control.MESSAGE_ID_SIZE)
        channel = channel_id if channel_id is not None else self.selected
        located = lat is not None and lon is not None
        sealed = self.keyring.seal_location(channel, lat, lon) if located else None
        alert = control.EmergencyAlert(
            alert_id=alert_id,
            user_id=self.user_id,
            channel_id=channel or 0,
            sealed_location=sealed,
            raised_at=time.time(),
            kind=control.ALERT_IMMINENT_PERIL if peril else control.ALERT_EMERGENCY,
        )
        await self._run_effects(self.core.raise_emergency(alert))
        return alert_id

    async def cancel_emergency(self, alert_id: bytes | None = None) -> None:
        await self._run_effects(self.core.cancel_emergency(alert_id))

    async def acknowledge_emergency(self, alert_id: bytes) -> None:
        await self._send(control.EmergencyAck(alert_id=alert_id, by_user=self.user_id))

    async def subscribe_presence(self) -> None:
        await self._send(control.PresenceSubscribe())

    async def credential_of(self, user_id: str) -> Credential:
        """The verified credential of ``user_id`` (asked from the server once, then cached)."""
        known = self.keyring.credentials.get(user_id)
        if known is not None:
            return known
        await self._send(control.CredentialRequest(user_ids=(user_id,)))
        async with asyncio.timeout(5):
            while user_id not in self.keyring.credentials:
                await self.keyring.credentials_changed.wait()
                self.keyring.credentials_changed.clear()
        return self.keyring.credentials[user_id]
