"""What a radio knows, read from its session core: the part of
:class:`ptt_client.client.RadioClient` that only looks (channels, selection, floors, the
active alert, why it was refused, the media path), apart from the part that acts.
"""

from __future__ import annotations

from ptt_client import events
from ptt_client.floor_view import FloorView
from ptt_client.media_path import MediaPath
from ptt_client.session_core import ClientSessionCore


class SessionView:
    """Read-only views of ``core`` and ``media`` (set by the client that owns them)."""

    core: ClientSessionCore
    media: MediaPath

    @property
    def channels(self) -> dict[int, str]:
        """Channels this user may join, by id."""
        return self.core.channels

    @property
    def affiliated(self) -> set[int]:
        return self.core.affiliated

    @property
    def selected(self) -> int | None:
        """The channel PTT talks on."""
        return self.core.selected

    @selected.setter
    def selected(self, channel_id: int | None) -> None:
        self.core.selected = channel_id

    @property
    def floors(self) -> dict[int, FloorView]:
        """Every channel's floor as this radio sees it (its own and other talkers)."""
        return self.core.floors

    @property
    def broadcasting(self) -> tuple[int, ...]:
        """The channels of this radio's broadcast while it is on (empty otherwise)."""
        return self.core.broadcasting

    @property
    def status(self) -> str:
        return self.core.status

    @property
    def emergency_alert(self) -> bytes | None:
        """This radio's active alert, if any (floor requests get emergency priority)."""
        return self.core.emergency_alert

    @property
    def refused(self) -> events.LoginRefused | None:
        """Why the server will not have this radio (it stopped retrying), or None."""
        return self.core.refused

    @property
    def session_index(self) -> int:
        return self.core.session_index

    @property
    def media_path(self) -> str:
        return self.media.path
