"""The channels part: the channel list, affiliation, members online, keys."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import A2, T0, alert, channel_state, presence
from tui.state import Changed, MembersKnown


def test_channel_list_adds_renames_and_drops_channels() -> None:
    state = channel_state()
    assert [r.name for r in state.channel_list()] == ["patrol", "Traffic"]
    state.apply(
        control.ChannelList(channels=(control.ChannelInfo(channel_id=2, name="traffic-2"),)), T0
    )
    assert list(state.channels) == [2]
    assert state.channels[2].name == "traffic-2"
    assert "no longer a member of 1 channel(s)" in state.log[-1].text


def test_affiliated_sets_members_and_monitoring() -> None:
    state = channel_state()
    changed = state.apply(
        control.Affiliated(
            channel_id=1,
            name="patrol",
            members=(control.Member(user_id="alice"), control.Member(user_id="carol")),
            epoch=3,
        ),
        T0,
    )
    row = state.channels[1]
    assert row.affiliated and row.members == ("alice", "carol") and row.epoch == 3
    assert Changed.CHANNELS in changed
    state.apply(control.Deaffiliated(channel_id=1, reason="removed from the channel roster"), T0)
    assert not state.channels[1].affiliated
    assert state.log[-1].text == "left patrol: removed from the channel roster"


def test_members_online_counts_presence() -> None:
    state = channel_state()
    assert state.members_online(1) == (0, 3)
    state.apply(presence("alice", "Alice Adams"), T0)
    state.apply(presence("bob", "Bob Brown", online=False, status="offline"), T0)
    state.apply(presence("zed", "Zed (not a member)"), T0)
    assert state.members_online(1) == (1, 3)
    assert state.members_online(99) == (0, 0)
    # The console itself counts once it is connected (the server never reports it to itself).
    state.apply(events.Connected("disp", 1, False), T0)
    assert state.members_online(1) == (2, 3)
    state.apply(events.Disconnected("gone"), T0)
    assert state.members_online(1) == (1, 3)
    # An older roster never replaces a newer one.
    state.apply(MembersKnown(1, ("disp",), 0), T0)
    assert state.members_online(1) == (1, 3)


def test_channels_with_an_emergency_sort_first() -> None:
    state = channel_state()
    assert [r.name for r in state.channel_list()] == ["patrol", "Traffic"]
    state.apply(alert(A2, "bob", 2, T0), T0)
    assert [r.name for r in state.channel_list()] == ["Traffic", "patrol"]


def test_keys_updated_logs_only_on_change() -> None:
    state = channel_state()
    state.apply(events.KeysUpdated(1, 2, 2), T0)
    assert state.log[-1].text == "patrol: roster v2, key epoch 2"
    assert state.apply(events.KeysUpdated(1, 2, 2), T0) == Changed.NONE


def test_epoch_log_lines_say_who_made_or_sent_the_key() -> None:
    """Whoever made an epoch can read the channel (docs/security.md), so the log names them."""
    state = channel_state()
    made = events.EpochInstalled(1, 4, "sup", "Sergeant Sup", "supervisor")
    assert state.apply(made, T0) == Changed.LOG
    assert (state.log[-1].kind, state.log[-1].text) == (
        "keys",
        "patrol: key epoch 4 made by Sergeant Sup (supervisor)",
    )
    state.apply(events.EpochInstalled(9, 5, "sup", "", "supervisor"), T0)
    assert state.log[-1].text == "#9: key epoch 5 made by sup (supervisor)"
    state.apply(events.EpochRefused(2, 6, "mallory", "creator not a supervisor"), T0)
    assert (state.log[-1].kind, state.log[-1].text) == (
        "refused",
        "Traffic: key epoch 6 from mallory refused (creator not a supervisor)",
    )
    state.apply(events.EpochRefused(2, 7, "", "bad signature"), T0)
    assert state.log[-1].text == "Traffic: key epoch 7 from ? refused (bad signature)"
