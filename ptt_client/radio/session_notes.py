"""The notes a radio prints for its session: reaching the server, logging in, losing the
link; and, headless (no status line to show them), the media path, the channels joined and
the floor: granted, queued, denied, who talks and when they stop.

:class:`SessionNotes` is pure: events go in (:meth:`SessionNotes.notes`), notes come out.
It remembers only what it needs to tell news from repeats: whether the radio ever logged
in, the media path and channels last told, and who is talking on each channel.
"""

from __future__ import annotations

from collections.abc import Callable

from ptt_client import events
from ptt_client.radio.notes import Note, note
from ptt_protocol import control

__all__ = ["SessionNotes"]


class SessionNotes:
    """Notes for the session and floor events of the radio of user ``me``.

    ``server_url()`` is the server the client tries or uses now (``RadioClient.server_url``),
    named in a refusal; the link events name their own server (it changes on a failover).
    ``channel_name(channel_id)`` names a channel; ``headless``: no status line shows the
    floor, the talker and the media path, so notes do; ``use_udp``: UDP was allowed (the
    tunnel is then a fallback, not a choice).
    """

    def __init__(
        self,
        me: str,
        server_url: Callable[[], str],
        channel_name: Callable[[int], str],
        *,
        headless: bool,
        use_udp: bool = True,
    ) -> None:
        self.me = me
        self.server_url = server_url
        self.channel_name = channel_name
        self.headless = headless
        self.use_udp = use_udp
        self.logged_in = False
        """The radio has logged in at least once (a failure after that is a lost link)."""
        self._on = ""
        """The server of the last login."""
        self._link_told = False
        """A failure was told and no login since: retries are not told again."""
        self._media: str | None = None
        self._up = False
        """Logged in now (the client reports the media path just before the login)."""
        self._media_waiting: events.MediaPath | None = None
        self._joined: set[int] = set()
        self._talkers: dict[int, tuple[str, int]] = {}
        """channel -> (talker, burst id) for other talkers heard now."""
        self._verified: set[tuple[int, int]] = set()

    def notes(self, event: object) -> list[Note]:
        """The notes ``event`` gives (often none)."""
        if isinstance(event, events.Connected | events.Disconnected | events.LoginRefused):
            return self._link(event)
        found = self._floor(event) if self.headless else []
        if isinstance(event, control.FloorRevoke):  # the radio is cut off: also on a terminal
            channel = self.channel_name(event.channel_id)
            found.append(
                note(
                    "floor_revoked",
                    f"floor revoked on {channel}: {event.cause}",
                    channel=channel,
                    cause=event.cause,
                )
            )
        elif isinstance(event, control.Deaffiliated):
            found += self._left(event)
        elif isinstance(event, control.Patch | control.Unpatch | events.PatchRefused):
            found.append(self._patch(event))  # where PTT talks changes: also on a terminal
        elif isinstance(event, control.ChannelDeleted):
            channel = event.name or self.channel_name(event.channel_id)
            found.append(note("channel_deleted", f"channel {channel} deleted", channel=channel))
        elif isinstance(event, events.MediaPath) and not self._up:
            self._media_waiting = event  # told after the login it belongs to
        elif self.headless and isinstance(event, events.MediaPath):
            found += self._media_path(event)
        elif self.headless and isinstance(event, control.Affiliated):
            found += self._joined_note(event)
        return found

    # --- patches ---------------------------------------------------------------------------

    def _patch(self, event: control.Patch | control.Unpatch | events.PatchRefused) -> Note:
        patch = self.channel_name(event.channel_id)
        if isinstance(event, control.Patch):
            linked = [self.channel_name(c) for c in event.linked]
            return note(
                "patched",
                f"{' + '.join(linked)} patched by {event.by_user or 'a dispatcher'}: you hear"
                f" them all, and PTT talks to them all on {patch}",
                patch=patch,
                linked=linked,
                by=event.by_user,
            )
        if isinstance(event, control.Unpatch):
            return note(
                "unpatched", f"patch {patch} ended: PTT talks on your own channel", patch=patch
            )
        return note(
            "patch_refused",
            f"patch {patch} not followed ({event.reason}): PTT stays on your own channel",
            patch=patch,
            reason=event.reason,
        )

    # --- the link --------------------------------------------------------------------------

    def _link(
        self, event: events.Connected | events.Disconnected | events.LoginRefused
    ) -> list[Note]:
        url = self.server_url()
        if isinstance(event, events.Connected | events.Disconnected) and event.server_url:
            url = event.server_url
        if isinstance(event, events.LoginRefused):
            if not self.logged_in:
                return []  # the program's one-line error says it (stderr, exit status 2)
            return [
                note(
                    "login_refused",
                    f"login refused by {url}: {event.text or event.code}",
                    url=url,
                    code=event.code,
                    reason=event.text,
                )
            ]
        if isinstance(event, events.Connected):
            self._link_told, self._up = False, True
            media, self._media_waiting = self._media_waiting, None
            then = self._media_path(media) if media is not None and self.headless else []
            before, self._on = self._on, url
            if not self.logged_in:
                self.logged_in = True
                first = note(
                    "logged_in",
                    f"logged in to {url} as {event.user_id}",
                    url=url,
                    user=event.user_id,
                    session=event.session_index,
                )
                return [first, *then]
            moved = before and url != before  # a failover: the officer's radio is on another node
            text = f"link restored on {url}, another server" if moved else f"link to {url} restored"
            again = note("reconnected", text, url=url, session=event.session_index)
            return [again, *then]
        self._up = False
        self._talkers.clear()  # the floor went with the link: nobody is heard now
        if self._link_told:
            return []  # the client retries every few seconds: told once until it is back
        self._link_told = True
        if not self.logged_in:
            return [
                note(
                    "unreachable",
                    f"cannot reach the server at {url} ({event.reason}): retrying",
                    url=url,
                    reason=event.reason,
                )
            ]
        return [
            note(
                "disconnected",
                f"link to {url} lost ({event.reason}): reconnecting",
                url=url,
                reason=event.reason,
            )
        ]

    # --- media and channels (headless) -----------------------------------------------------

    def _media_path(self, event: events.MediaPath) -> list[Note]:
        if event.path == self._media:
            return []  # the same path after a reconnect
        self._media = event.path
        if event.path == "udp":
            text = "media: UDP, direct to the relay"
        elif self.use_udp:
            text = "media: tunnel inside the TLS connection (UDP did not get through)"
        else:
            text = "media: tunnel inside the TLS connection (--no-udp)"
        return [note("media_path", text, path=event.path)]

    def _joined_note(self, event: control.Affiliated) -> list[Note]:
        if event.channel_id in self._joined:
            return []  # joined again after a reconnect
        self._joined.add(event.channel_id)
        channel = self.channel_name(event.channel_id)
        return [
            note(
                "channel_joined",
                f"joined {channel}",
                channel=channel,
                channel_id=event.channel_id,
            )
        ]

    def _left(self, event: control.Deaffiliated) -> list[Note]:
        self._joined.discard(event.channel_id)
        self._talkers.pop(event.channel_id, None)
        if event.reason == "at your request" and not self.headless:
            return []
        channel = self.channel_name(event.channel_id)
        why = f" ({event.reason})" if event.reason else ""
        return [
            note(
                "channel_left",
                f"left {channel}{why}",
                channel=channel,
                channel_id=event.channel_id,
                reason=event.reason,
            )
        ]

    # --- the floor (headless) --------------------------------------------------------------

    def _floor(self, event: object) -> list[Note]:
        if isinstance(event, control.FloorGranted):
            channel = self.channel_name(event.channel_id)
            return [
                note(
                    "floor_granted",
                    f"floor granted on {channel}: talk (at most {event.duration_limit:g} s)",
                    channel=channel,
                    burst_id=event.burst_id,
                    limit_s=event.duration_limit,
                )
            ]
        if isinstance(event, control.FloorQueuePosition):
            channel = self.channel_name(event.channel_id)
            return [
                note(
                    "floor_queued",
                    f"floor queued on {channel}: position {event.position}",
                    channel=channel,
                    position=event.position,
                )
            ]
        if isinstance(event, control.FloorDeny):
            channel = self.channel_name(event.channel_id)
            return [
                note(
                    "floor_denied",
                    f"floor denied on {channel}: {event.cause}",
                    channel=channel,
                    cause=event.cause,
                )
            ]
        if isinstance(event, control.FloorTaken):
            return self._taken(event)
        if isinstance(event, control.FloorIdle):
            return self._idle(event)
        if isinstance(event, events.TalkerVerified):
            return self._verified_note(event)
        return []

    def _taken(self, event: control.FloorTaken) -> list[Note]:
        if event.user_id == self.me:
            return []  # floor_granted told it
        self._talkers[event.channel_id] = (event.user_id, event.burst_id)
        channel = self.channel_name(event.channel_id)
        name = event.display_name or event.user_id
        emergency = event.priority >= control.PRIORITY_MAX
        # TS 22.179 6.2.3: a broadcast is shown as one (one way: nobody answers into it).
        what = "BROADCAST (one way) on" if event.broadcast else "talking on"
        return [
            note(
                "floor_taken",
                f"{name} ({event.user_id}) {what} {channel}"
                + (" - EMERGENCY priority" if emergency else ""),
                channel=channel,
                talker=event.user_id,
                name=event.display_name,
                priority=event.priority,
                emergency=emergency,
                burst_id=event.burst_id,
                broadcast=event.broadcast,
            )
        ]

    def _idle(self, event: control.FloorIdle) -> list[Note]:
        channel = self.channel_name(event.channel_id)
        talker, _ = self._talkers.pop(event.channel_id, ("", 0))
        text = f"{talker} stopped talking on {channel}" if talker else f"floor idle on {channel}"
        return [note("floor_idle", text, channel=channel, talker=talker)]

    def _verified_note(self, event: events.TalkerVerified) -> list[Note]:
        key = (event.channel_id, event.burst_id)
        if key in self._verified:
            return []  # a statement every few frames: one note per burst
        self._verified.add(key)
        if len(self._verified) > 64:  # bursts long over: keep the set small
            self._verified = {key}
        channel = self.channel_name(event.channel_id)
        return [
            note(
                "talker_verified",
                f"{event.talker}'s voice on {channel} verified (signed by their device)",
                channel=channel,
                talker=event.talker,
                burst_id=event.burst_id,
            )
        ]
