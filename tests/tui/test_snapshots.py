"""How the console looks (pytest-textual-snapshot), fed with the fixed story of ``story.py``.

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py
--snapshot-update`` and review the SVGs in ``__snapshots__/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.tui.story import ALERT, NOW, T0, shift
from tests.tui.test_console_view import dupont_talks
from tui.app import ClientEvent, DispatchApp

SIZES = [(80, 24), (160, 48)]


def story_app(client: RadioClient, tmp_path: Path) -> DispatchApp:
    return DispatchApp(
        client, start_client=False, clock=lambda: NOW, tick_interval=0, export_dir=tmp_path
    )


def feeder(app: DispatchApp, extra: list[tuple[object, float]] = ()) -> Callable[..., Any]:  # type: ignore[assignment]
    async def run_before(pilot: Pilot[Any]) -> None:
        for event, at in [*shift(), *extra]:
            app.post_message(ClientEvent(event, at))
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(
    snap_compare: Any, offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = story_app(offline_client, tmp_path)
    assert snap_compare(app, terminal_size=size, run_before=feeder(app))


@pytest.mark.parametrize("size", SIZES)
def test_main_screen_after_acknowledgement(
    snap_compare: Any, offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = story_app(offline_client, tmp_path)
    ack = (control.EmergencyAck(alert_id=ALERT, by_user="disp"), NOW)
    granted = (control.FloorGranted(channel_id=3, burst_id=5, duration_limit=30.0), NOW - 4)
    assert snap_compare(app, terminal_size=size, run_before=feeder(app, [ack, granted]))


@pytest.mark.parametrize("size", SIZES)
def test_message_dialog(
    snap_compare: Any, offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = story_app(offline_client, tmp_path)
    assert snap_compare(
        app, terminal_size=size, run_before=feeder(app), press=["down", "m", *"copy"]
    )


@pytest.mark.parametrize("size", SIZES)
def test_long_names_enrolled_officers_and_two_emergencies(
    snap_compare: Any, offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    """Issue 11: a long talker name and locations in full where they fit, an officer who
    never logged in, and a leftover emergency listed under the one that just came in."""
    app = story_app(offline_client, tmp_path)
    enrolled = control.EnrolledUsers(
        users=(control.EnrolledUser(user_id="frank"), control.EnrolledUser(user_id="alice"))
    )
    leftover = control.EmergencyAlert(
        alert_id=b"o" * 16, user_id="carol", channel_id=2, raised_at=T0 - 86400
    )
    extra = [(enrolled, T0), (leftover, T0 + 1), *dupont_talks()]
    assert snap_compare(app, terminal_size=size, run_before=feeder(app, extra))


@pytest.mark.parametrize("size", SIZES)
def test_member_picker(
    snap_compare: Any, offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = story_app(offline_client, tmp_path)
    assert snap_compare(
        app, terminal_size=size, run_before=feeder(app, dupont_talks()), press=["plus", *"o"]
    )


def test_the_readmes_screenshot_is_the_console_as_it_is() -> None:
    """README.md shows docs/console.svg: the 160x48 snapshot above, copied after every change
    (``cp "tests/tui/__snapshots__/test_snapshots/test_long_names_enrolled_officers_and_two_\
emergencies[size1].svg" docs/console.svg``), so the README never shows an older console."""
    root = Path(__file__).resolve().parents[2]
    snapshot = (
        Path(__file__).parent
        / "__snapshots__"
        / "test_snapshots"
        / "test_long_names_enrolled_officers_and_two_emergencies[size1].svg"
    )
    assert (root / "docs" / "console.svg").read_bytes() == snapshot.read_bytes()
    assert "![The dispatcher console](docs/console.svg)" in (root / "README.md").read_text()
