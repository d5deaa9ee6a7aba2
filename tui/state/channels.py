"""The channels part of the console: which channels, their members, keys and patches."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tui.state.console_events import MembersKnown
from tui.state.model import StateModel
from tui.state.rows import Changed, ChannelRow


class ChannelsMixin(StateModel):
    """The channel list and its handlers (the floor on a channel is :mod:`tui.state.floor`)."""

    def channel_list(self) -> list[ChannelRow]:
        """Channels in display order: emergencies first, then by name."""
        return sorted(
            self.channels.values(),
            key=lambda row: (self.channel_emergency(row.channel_id) is None, row.name.lower()),
        )

    def members_online(self, channel_id: int) -> tuple[int, int]:
        """(members online, members) of a channel."""
        row = self.channels.get(channel_id)
        if row is None:
            return (0, 0)
        online = sum(1 for user in row.members if self._is_online(user))
        return (online, len(row.members))

    def _on_channel_list(self, event: control.ChannelList, now: float) -> Changed:
        listed = {info.channel_id for info in event.channels}
        for info in event.channels:
            self._channel(info.channel_id, info.name)
        gone = [cid for cid in self.channels if cid not in listed]
        for cid in gone:
            del self.channels[cid]
        changed = Changed.CHANNELS
        if gone:
            changed |= self.note("channel", f"no longer a member of {len(gone)} channel(s)", now)
        return changed

    def _on_affiliated(self, event: control.Affiliated, now: float) -> Changed:
        row = self._channel(event.channel_id, event.name)
        row.affiliated = True
        if event.members:
            row.members = tuple(m.user_id for m in event.members)
            for member in event.members:
                self._learn_name(member.user_id, member.display_name)
        if event.epoch:
            row.epoch = event.epoch
        return Changed.CHANNELS | self.note("channel", f"monitoring {row.name}", now)

    def _on_deaffiliated(self, event: control.Deaffiliated, now: float) -> Changed:
        row = self.channels.get(event.channel_id)
        if row is None:
            return Changed.NONE
        row.affiliated = False
        row.talker, row.verified, row.talk_started = None, False, None
        reason = f": {event.reason}" if event.reason else ""
        return Changed.CHANNELS | self.note("channel", f"left {row.name}{reason}", now)

    def _on_channel_created(self, event: control.ChannelCreated, now: float) -> Changed:
        row = self._channel(event.channel_id, event.name)
        return Changed.CHANNELS | self.note("channel", f"created {row.name}", now)

    def _on_members_known(self, event: MembersKnown, now: float) -> Changed:
        row = self._channel(event.channel_id)
        if event.roster_version < row.roster_version:
            return Changed.NONE
        row.members = event.members
        row.roster_version = event.roster_version
        return Changed.CHANNELS

    def _on_keys_updated(self, event: events.KeysUpdated, now: float) -> Changed:
        row = self._channel(event.channel_id)
        before = (row.epoch, row.roster_version)
        row.epoch = max(row.epoch, event.epoch)
        row.roster_version = max(row.roster_version, event.roster_version)
        if (row.epoch, row.roster_version) == before:
            return Changed.NONE
        return Changed.CHANNELS | self.note(
            "keys", f"{row.name}: roster v{row.roster_version}, key epoch {row.epoch}", now
        )

    def _on_epoch_installed(self, event: events.EpochInstalled, now: float) -> Changed:
        # Whoever made the epoch can read the channel (docs/security.md): say who, verified.
        made_by = f"made by {event.creator_name or event.creator} ({event.creator_role})"
        return self._epoch_note("keys", event.channel_id, event.epoch, made_by, now)

    def _on_epoch_refused(self, event: events.EpochRefused, now: float) -> Changed:
        refused = f"from {event.creator or '?'} refused ({event.reason})"
        return self._epoch_note("refused", event.channel_id, event.epoch, refused, now)

    def _epoch_note(self, kind: str, channel_id: int, epoch: int, what: str, now: float) -> Changed:
        return self.note(kind, f"{self.channel_name(channel_id)}: key epoch {epoch} {what}", now)

    def patch_of(self, channel_id: int) -> int | None:
        """The patch ``channel_id`` is in: its own, or the one it is linked through."""
        if channel_id in self.patches:
            return channel_id
        return next((p for p, linked in self.patches.items() if channel_id in linked), None)

    def _on_patch(self, event: control.Patch, now: float) -> Changed:
        if self.patches.get(event.channel_id) == event.linked:
            return Changed.NONE  # a dispatcher renewed the order
        self.patches[event.channel_id] = event.linked
        linked = " and ".join(self.channel_name(c) for c in event.linked)
        by = f" by {self.name_of(event.by_user)}" if event.by_user else ""
        return Changed.CHANNELS | self.note(
            "channel",
            f"{linked} patched{by}: traffic crosses on {self.channel_name(event.channel_id)}",
            now,
        )

    def _on_unpatch(self, event: control.Unpatch, now: float) -> Changed:
        linked = self.patches.pop(event.channel_id, ())
        back = " and ".join(self.channel_name(c) for c in linked) or "its channels"
        return Changed.CHANNELS | self.note(
            "channel",
            f"patch {self.channel_name(event.channel_id)} ended: {back} on their own",
            now,
        )

    def _on_channel_deleted(self, event: control.ChannelDeleted, now: float) -> Changed:
        row = self.channels.pop(event.channel_id, None)
        self.patches.pop(event.channel_id, None)
        self.recalls.pop(event.channel_id, None)
        name = row.name if row is not None else event.name or str(event.channel_id)
        by = f" by {self.name_of(event.by_user)}" if event.by_user else ""
        return Changed.CHANNELS | self.note("channel", f"channel {name} deleted{by}", now)

    def _on_recall_list(self, event: control.RecallList, now: float) -> Changed:
        self.recalls[event.channel_id] = event.bursts
        return Changed.NONE
