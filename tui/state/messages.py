"""The messages part of the console: texts per conversation, unread counts and receipts."""

from __future__ import annotations

from collections import deque
from typing import Final

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import TextSent
from tui.state.model import StateModel
from tui.state.rows import Changed, ChatMessage, Conversation

MESSAGES_PER_CONVERSATION: Final = 500
"""Texts kept per channel or direct conversation."""


class MessagesMixin(StateModel):
    """Conversations, unread counts, and text and receipt handlers."""

    def messages(self, conversation: Conversation) -> list[ChatMessage]:
        return list(self.conversations.get(conversation, ()))

    def mark_read(self, conversation: Conversation) -> bool:
        """The dispatcher saw ``conversation``; True if it had unread texts."""
        return bool(self.take_unread(conversation))

    def take_unread(self, conversation: Conversation) -> list[bytes]:
        """The dispatcher saw ``conversation``: it has no unread texts any more. Returns the
        ids of the ones it had (oldest first), so their senders can be told."""
        count = self.unread.pop(conversation, 0)
        if count <= 0:
            return []
        thread = self.conversations.get(conversation, ())
        incoming = [m.message_id for m in thread if not m.outgoing]
        return incoming[-count:]

    def unread_total(self) -> int:
        return sum(self.unread.values())

    def conversation_title(self, conversation: Conversation) -> str:
        if conversation.channel_id is not None:
            return "#" + self.channel_name(conversation.channel_id)
        assert conversation.user_id is not None
        return "@" + self.name_of(conversation.user_id)

    def _append(self, conversation: Conversation, message: ChatMessage) -> None:
        thread = self.conversations.get(conversation)
        if thread is None:
            thread = self.conversations[conversation] = deque(maxlen=MESSAGES_PER_CONVERSATION)
        if len(thread) == thread.maxlen and thread[0].outgoing:
            self._sent.pop(thread[0].message_id, None)
        thread.append(message)

    def _on_text(self, event: events.TextReceived, now: float) -> Changed:
        conversation = (
            Conversation.channel(event.to_channel)
            if event.to_channel is not None
            else Conversation.user(event.from_user)
        )
        outgoing = event.from_user == self.me
        self._append(
            conversation,
            ChatMessage(event.message_id, event.from_user, event.text, event.sent_at, outgoing),
        )
        if not outgoing:
            self.unread[conversation] = self.unread.get(conversation, 0) + 1
        preview = event.text if len(event.text) <= 60 else event.text[:57] + "..."
        to = "you" if conversation.user_id is not None else self.conversation_title(conversation)
        return Changed.MESSAGES | self.note(
            "text", f"{self.name_of(event.from_user)} -> {to}: {preview}", now
        )

    def _on_text_sent(self, event: TextSent, now: float) -> Changed:
        conversation = (
            Conversation.channel(event.to_channel)
            if event.to_channel is not None
            else Conversation.user(event.to_user or "")
        )
        message = ChatMessage(event.message_id, self.me, event.text, event.sent_at, True)
        self._append(conversation, message)
        self._sent[event.message_id] = message
        return Changed.MESSAGES | self.note(
            "text", f"you -> {self.conversation_title(conversation)}: {event.text[:60]}", now
        )

    def _on_receipt(self, event: control.TextReceipt, now: float) -> Changed:
        message = self._sent.get(event.message_id)
        if message is None:
            return Changed.NONE
        if event.kind == control.RECEIPT_STORED:
            message.stored = True
        elif event.kind == control.RECEIPT_DELIVERED:
            message.delivered_to.add(event.by_user)
        else:
            message.read_by.add(event.by_user)
        return Changed.MESSAGES
