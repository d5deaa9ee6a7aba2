"""Texts on a radio: sealed and sent (and re-sent until stored), opened and shown once, and
the receipts that tell the sender.

:class:`Texts` seals with the key ring (channel texts under the channel's epoch key, direct
texts to the recipient's credential), keeps every text the server has not stored yet for
the next login, shows each received text once however often it is delivered (the server
delivers at least once, until it has the delivery receipt), and sends read receipts when
the person has seen a text (queued while offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final

import websockets

from crypto.errors import CryptoError
from crypto.identity import Credential
from ptt_client import events
from ptt_client.e2e import Keyring
from ptt_client.errors import ClientError
from ptt_protocol import control

__all__ = ["READS_LIMIT", "SEEN_TEXTS_LIMIT", "Texts"]

SEEN_TEXTS_LIMIT: Final = 10_000
"""Message ids remembered for deduplication (the server stops re-sending once receipted)."""
READS_LIMIT: Final = 1000
"""Read receipts kept while offline (the oldest are dropped: a receipt is a courtesy)."""


class Texts:
    """Sending, receiving and receipting texts for one radio."""

    def __init__(
        self,
        keyring: Keyring,
        user_id: str,
        *,
        send: Callable[[control.Message], Awaitable[None]],
        connected: Callable[[], bool],
        credential_of: Callable[[str], Awaitable[Credential]],
        emit: Callable[[object], None],
    ) -> None:
        self.keyring = keyring
        self.user_id = user_id
        self._send = send
        self._connected = connected
        self._credential_of = credential_of
        self._emit = emit
        self.pending: dict[bytes, control.TextSend] = {}
        """Texts sent and not yet stored by the server, re-sent at every login."""
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        """Ids of texts already shown (or refused), oldest first, bounded."""
        self._opening: set[bytes] = set()
        self._reads: OrderedDict[bytes, None] = OrderedDict()
        """Read receipts not sent yet (the radio was offline)."""
        self.tasks: set[asyncio.Future[None]] = set()
        """Texts being opened (that may wait for a credential): never on the read loop."""

    # --- sending ---------------------------------------------------------------------------

    async def send_text(self, text: str, *, to_user: str | None, to_channel: int | None) -> bytes:
        """Seal and send a text; kept and re-sent after a reconnect until the server stores it."""
        message_id = secrets.token_bytes(control.MESSAGE_ID_SIZE)
        if to_channel is not None:
            sealed = self.keyring.seal_channel_text(to_channel, text, message_id)
        elif to_user is not None:
            recipient = await self._credential_of(to_user)
            sealed = self.keyring.seal_direct_text(recipient, text, message_id)
        else:
            raise ClientError("a text needs to_user or to_channel")
        message = control.TextSend(
            message_id=message_id, to_user=to_user, to_channel=to_channel, sealed=sealed
        )
        self.pending[message_id] = message
        await self._try_send(message)
        return message_id

    def stored(self, message_id: bytes) -> None:
        """The server's stored receipt: stop re-sending the text."""
        self.pending.pop(message_id, None)

    def to_resend(self) -> list[control.Message]:
        """What the server has not got yet, for a new login: texts, then read receipts."""
        receipts = [self._read_receipt(message_id) for message_id in self._reads]
        return [*self.pending.values(), *receipts]

    def resent(self, message: control.Message) -> None:
        """``message`` from :meth:`to_resend` went out."""
        if isinstance(message, control.TextReceipt):
            self._reads.pop(message.message_id, None)

    async def mark_read(self, message_id: bytes) -> None:
        """The person has seen the text ``message_id``: tell its sender (after the next login
        if the radio is offline now)."""
        self._reads[message_id] = None
        if len(self._reads) > READS_LIMIT:
            self._reads.popitem(last=False)
        if await self._try_send(self._read_receipt(message_id)):
            self._reads.pop(message_id, None)

    def _read_receipt(self, message_id: bytes) -> control.TextReceipt:
        return control.TextReceipt(
            message_id=message_id, kind=control.RECEIPT_READ, by_user=self.user_id
        )

    async def _try_send(self, message: control.Message) -> bool:
        """Send now if connected; False if it has to wait for the next login."""
        if not self._connected():
            return False
        try:
            await self._send(message)
        except (websockets.ConnectionClosed, ClientError):
            return False
        return True

    # --- receiving -------------------------------------------------------------------------

    def arrived(self, message: control.TextDeliver) -> None:
        """A sealed text: opened in a task (it may need the sender's credential first)."""
        task = asyncio.ensure_future(self._open(message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _open(self, message: control.TextDeliver) -> None:
        message_id = message.message_id
        if message_id in self._seen or message_id in self._opening:
            await self._delivered(message_id)  # at-least-once on the wire, exactly once shown
            return
        self._opening.add(message_id)
        try:
            sender = await self._credential_of(message.from_user)
            text = self.keyring.open_text(message, sender)
        except (TimeoutError, ClientError):
            return  # transient: no receipt, so the server delivers it again next login
        except CryptoError as exc:
            self._remember(message_id)  # refused for good: do not ask for it again
            await self._delivered(message_id)
            self._emit(
                events.VoiceRejected(
                    channel_id=message.to_channel or 0, reason=f"text refused: {exc}"
                )
            )
            return
        finally:
            self._opening.discard(message_id)
        self._remember(message_id)
        await self._delivered(message_id)
        self._emit(
            events.TextReceived(
                message_id=message_id,
                from_user=message.from_user,
                to_channel=message.to_channel,
                text=text,
                sent_at=message.sent_at,
            )
        )

    def _remember(self, message_id: bytes) -> None:
        self._seen[message_id] = None
        if len(self._seen) > SEEN_TEXTS_LIMIT:
            self._seen.popitem(last=False)

    async def _delivered(self, message_id: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, ClientError):
            if self._connected():
                await self._send(
                    control.TextReceipt(
                        message_id=message_id, kind=control.RECEIPT_DELIVERED, by_user=self.user_id
                    )
                )
