"""The messages part: conversations, unread counts, receipts and bounds."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import T0, channel_state, presence
from tui.state import Changed, Conversation, TextSent


def test_texts_unread_counts_and_receipts() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    state.apply(events.TextReceived(b"m" * 16, "alice", 1, "on scene", T0), T0)
    state.apply(events.TextReceived(b"n" * 16, "alice", None, "need backup", T0 + 1), T0 + 1)
    state.apply(events.TextReceived(b"o" * 16, "alice", None, "now!", T0 + 2), T0 + 2)
    patrol, direct = Conversation.channel(1), Conversation.user("alice")
    assert state.unread == {patrol: 1, direct: 2}
    assert state.unread_total() == 3
    assert [m.text for m in state.messages(direct)] == ["need backup", "now!"]
    assert state.mark_read(direct) is True
    assert state.mark_read(direct) is False
    assert state.unread_total() == 1
    assert state.conversation_title(patrol) == "#patrol"
    assert state.conversation_title(direct) == "@Alice Adams"
    state.apply(TextSent(b"s" * 16, "copy", T0 + 3, to_user="alice"), T0 + 3)
    sent = state.messages(direct)[-1]
    assert sent.outgoing and sent.from_user == "disp"
    assert state.unread.get(direct, 0) == 0
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="stored", by_user=""), T0)
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="delivered", by_user="alice"), T0)
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="read", by_user="alice"), T0)
    assert sent.stored and sent.delivered_to == {"alice"} and sent.read_by == {"alice"}
    unknown = control.TextReceipt(message_id=b"x" * 16, kind="read", by_user="alice")
    assert state.apply(unknown, T0) == Changed.NONE


def test_own_text_echoed_on_a_channel_is_not_unread() -> None:
    state = channel_state()
    state.apply(events.TextReceived(b"m" * 16, "disp", 1, "all units", T0), T0)
    assert state.unread_total() == 0


def test_conversation_needs_exactly_one_target() -> None:
    for bad in ({}, {"channel_id": 1, "user_id": "a"}):
        try:
            Conversation(**bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_messages_are_bounded_per_conversation() -> None:
    state = channel_state()
    for i in range(600):
        state.apply(TextSent(i.to_bytes(16, "big"), f"t{i}", T0 + i, to_channel=1), T0 + i)
    thread = state.messages(Conversation.channel(1))
    assert len(thread) == 500
    assert thread[0].text == "t100"
    # Receipts for texts that fell out are ignored, not kept forever.
    old = control.TextReceipt(message_id=(5).to_bytes(16, "big"), kind="read", by_user="a")
    assert state.apply(old, T0) == Changed.NONE


def test_the_unread_texts_of_a_conversation_seen_are_named_for_their_receipts() -> None:
    state = channel_state()
    state.apply(events.TextReceived(b"m" * 16, "alice", None, "one", T0), T0)
    state.apply(TextSent(b"s" * 16, "copy", T0 + 1, to_user="alice"), T0 + 1)
    state.apply(events.TextReceived(b"n" * 16, "alice", None, "two", T0 + 2), T0 + 2)
    direct = Conversation.user("alice")
    assert state.take_unread(direct) == [b"m" * 16, b"n" * 16]  # not our own "copy"
    assert state.take_unread(direct) == []
    state.apply(events.TextReceived(b"o" * 16, "alice", None, "three", T0 + 3), T0 + 3)
    assert state.take_unread(direct) == [b"o" * 16]  # only what came since
