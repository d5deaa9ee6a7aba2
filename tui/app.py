"""``ptt-dispatch``: the dispatcher console.

The app owns one :class:`~ptt_client.client.RadioClient` (given to it, so tests
can pass one logged in to a test server). Its client task reads every client
event and posts it into the app as a :class:`ClientEvent`; on the UI thread the
event updates :class:`~tui.state.ConsoleState`, and the widgets re-render the
parts that changed. Everything that talks to the server (transmit, texts,
alerts, channel changes, recall) runs in workers started from here (what goes on air, in
:mod:`tui.transmit`); widgets and screens never touch the network.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import Worker

from ptt_client import channel_admin, events
from ptt_client.audio import AudioError, AudioOutput
from ptt_protocol import control
from tui import listening
from tui.calls import ConsoleCalls
from tui.directory import NameChecker
from tui.log_export import default_log_dir, write_log_csv
from tui.screens.main import MainScreen
from tui.state import (
    Changed,
    ConsoleState,
    Conversation,
    LocationText,
    MembersKnown,
    Note,
    TextSent,
    format_location,
)
from tui.transmit import TransmitOperations

if TYPE_CHECKING:
    from ptt_client.client import RadioClient
    from ptt_client.voice import Player, SavedBurst, Transmitter

DEFAULT_PASSPHRASE_ENV = "PTT_PASSPHRASE"
"""Read for the bundle's passphrase when no --passphrase-env is given."""
BELL_INTERVAL = 10.0
"""Seconds between bells while an emergency is unacknowledged."""


class ClientEvent(Message):
    """One event from the client (a control message or a ``ptt_client.events`` event)."""

    def __init__(self, event: object, at: float) -> None:
        super().__init__()
        self.event = event
        self.at = at


class DispatchApp(TransmitOperations, App[int]):
    """The console. ``client`` may be started already; otherwise the app starts it."""

    CSS_PATH = "app.tcss"
    TITLE = "Fieldradio dispatch"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 (Textual API)

    def __init__(
        self,
        client: RadioClient,
        *,
        talk_file: Path | None = None,
        monitor: Sequence[str] | None = None,
        audio_output: AudioOutput | None = None,
        play_live: bool = True,
        listen_dir: Path | None = None,
        save_dir: Path | None = None,
        export_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        start_client: bool = True,
        tick_interval: float = 1.0,
        notes: Sequence[str | Note] = (),
        call_speaker: Callable[[], AudioOutput] | None = None,
        auto_answer: bool = False,
    ) -> None:
        """``call_speaker`` opens the sound card for a private call (``None``: calls are
        not played; with ``listen_dir`` they are written there); ``auto_answer``: calls are
        answered at once when the caller asks, else they ring until y."""
        super().__init__()
        self.client = client
        self.state = ConsoleState(client.user_id, client.credential.display_name)
        self.talk_file = talk_file
        self.monitor = {name.strip() for name in monitor or () if name.strip()} or None
        """Channel names to affiliate to; None = every channel this console is a member of."""
        self.audio_output = audio_output
        self.play_live = play_live
        self.listen_dir = listen_dir
        """Every burst heard is also written here, one WAV file each (tui/listening.py)."""
        self.export_dir = export_dir or default_log_dir()
        """Where ``l`` writes the event log (never the current directory)."""
        self.save_dir = save_dir or listen_dir or self.export_dir
        """Where recalls are saved as WAV (w; r too when there is no speaker)."""
        self.clock = clock
        self.start_client = start_client
        self.tick_interval = tick_interval
        self._startup_notes = [n if isinstance(n, Note) else Note("error", n) for n in notes]
        """Found before the app started; a plain string is a problem, shown as an error."""
        self.last_recall: channel_admin.OpenedBurst | None = None
        self.last_export: Path | None = None
        self.last_saved: Path | None = None
        """The last recall saved as WAV."""
        self._transmitter: Transmitter | None = None
        self._player: Player | None = None
        self._recorder: Player | None = None
        self._talking: Worker[None] | None = None
        self._affiliating: set[int] = set()
        self._created: set[int] = set()
        self._locations: dict[str, bytes] = {}
        self._names = NameChecker(client, self.apply)
        self._last_bell = 0.0
        self.bells = 0
        """Times the console rang for an emergency (or a call ringing here)."""
        self.calls = ConsoleCalls(self, speaker=call_speaker, auto_answer=auto_answer)

    # --- lifecycle ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(MainScreen())
        self.run_worker(self._pump(), name="client events", group="client", exit_on_error=False)
        if self.start_client:
            self._spawn(self.client.start(), "start the client")
        if self.audio_output is not None and self.play_live:
            from ptt_client.voice import Player

            self._player = Player(self.client, self.audio_output)
            self._player.start()
        if self.listen_dir is not None:
            try:
                self._recorder = listening.recorder(self.client, self.listen_dir, self._heard)
            except AudioError as exc:
                self.apply(Note("error", f"what you hear is not written: {exc}"))
        if self.tick_interval > 0:
            self.set_interval(self.tick_interval, self._tick)
        for note in self._startup_notes:
            self.apply(note)
        self.refresh_view()

    def _heard(self, burst: SavedBurst) -> None:
        who, where = self.state.name_of(burst.talker), self.state.channel_name(burst.channel_id)
        self.apply(Note("audio", f"heard {who} on {where}, {burst.seconds:.1f} s: {burst.path}"))

    async def on_unmount(self) -> None:
        for player in (self._player, self._recorder):
            if player is not None:
                await player.stop()
        if self.start_client:
            await self.client.stop()

    async def _pump(self) -> None:
        """The client task: every client event into the app, in order."""
        while True:
            try:
                event = await self.client.next_event(timeout=3600)
            except TimeoutError:
                continue
            self.post_message(ClientEvent(event, self.clock()))

    def _spawn(self, work: Awaitable[Any], what: str) -> Worker[Any]:
        """Run network work in a worker; a failure becomes an error line, never a crash."""

        async def guarded() -> Any:
            try:
                return await work
            except Exception as exc:  # network and user input must not end the console
                self.apply(Note("error", f"{what} failed: {exc}"))
                return None

        return self.run_worker(guarded(), name=what, group="network", exit_on_error=False)

    def _tick(self) -> None:
        now = self.clock()
        if self.state.unacknowledged() and now - self._last_bell >= BELL_INTERVAL:
            self._ring()
        self.refresh_view(
            Changed.CHANNELS | Changed.STATUS | Changed.EMERGENCIES | Changed.PRESENCE
        )

    def _ring(self) -> None:
        self._last_bell = self.clock()
        self.bells += 1
        self.bell()

    # --- the model --------------------------------------------------------------------------------

    def apply(self, event: object, at: float | None = None) -> Changed:
        """Update the model with ``event`` (on the UI thread) and re-render what changed."""
        changed = self.state.apply(event, self.clock() if at is None else at)
        if Changed.ALARM in changed:
            self._ring()
        self.refresh_view(changed)
        return changed

    def on_client_event(self, message: ClientEvent) -> None:
        event = message.event
        self.apply(event, message.at)
        self.calls.on_event(event)
        if isinstance(event, events.KeysUpdated | control.RosterUpdate):
            self._members_from_keyring(event.channel_id)
        if not self.client.connected.is_set():
            return  # nothing to ask a server we are not connected to (Connected runs it all)
        if isinstance(event, control.EnrolledUsers | control.PresenceUpdate):
            named = event.users if isinstance(event, control.EnrolledUsers) else [event]
            work = self._names.check([u.user_id for u in named], self.state.verified_names)
            if work is not None:
                self._spawn(work, "checking names")
        if isinstance(event, events.Connected):
            self._spawn(self.client.subscribe_presence(), "presence subscription")
            self._affiliate_monitored()
        elif isinstance(event, control.ChannelList | control.ChannelCreated):
            self._affiliate_monitored()
        elif isinstance(event, control.PresenceUpdate) and event.sealed_location is not None:
            if self._locations.get(event.user_id) != event.sealed_location:
                self._locations[event.user_id] = event.sealed_location
                self._spawn(
                    self._open_location(event.user_id, event.sealed_location, None),
                    "opening a location",
                )
        elif isinstance(event, control.EmergencyAlert) and event.sealed_location is not None:
            self._spawn(
                self._open_location(event.user_id, event.sealed_location, event.alert_id),
                "opening an alert location",
            )

    def _members_from_keyring(self, channel_id: int) -> None:
        keys = self.client.keyring.channels.get(channel_id)
        roster = keys.roster if keys is not None else None
        if roster is not None:
            self.apply(
                MembersKnown(channel_id, tuple(m.user_id for m in roster.members), roster.version)
            )

    def _affiliate_monitored(self) -> None:
        for channel_id, name in list(self.client.channels.items()):
            wanted = self.monitor is None or name in self.monitor or channel_id in self._created
            if (
                wanted
                and channel_id not in self.client.affiliated
                and channel_id not in self._affiliating
            ):
                self._affiliating.add(channel_id)
                self._spawn(self._affiliate(channel_id), f"monitoring {name}")

    async def _affiliate(self, channel_id: int) -> None:
        try:
            await self.client.affiliate(channel_id)
        finally:
            self._affiliating.discard(channel_id)

    async def _open_location(self, user_id: str, sealed: bytes, alert_id: bytes | None) -> None:
        try:
            sender = await self.client.credential_of(user_id)
            lat, lon = self.client.keyring.open_location(sealed, sender)
            text = format_location(lat, lon)
        except Exception:  # whatever is sealed, a bad blob only means no location is shown
            text = "sealed (no key)"
        self.apply(LocationText(user_id, text, alert_id))

    # --- rendering --------------------------------------------------------------------------------

    def refresh_view(self, changed: Changed | None = None) -> None:
        """Re-render the parts of the main screen that ``changed`` (all when None)."""
        screen = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if screen is None or not screen.is_mounted:
            return
        try:
            read = screen.render_state(
                self.state, self.clock(), changed, transmitting=self.transmitting
            )
        except NoMatches:
            return  # the screen is still being built; its on_mount renders everything
        if read:  # texts on screen are read: their senders are told
            self._spawn(self._send_read_receipts(read), "sending read receipts")

    async def _send_read_receipts(self, message_ids: list[bytes]) -> None:
        for message_id in message_ids:
            await self.client.mark_read(message_id)

    # --- operations (called by the main screen's key actions) ------------------------------------

    def send_text(self, conversation: Conversation, text: str) -> None:
        self._spawn(self._send_text(conversation, text), "sending a text")

    async def _send_text(self, conversation: Conversation, text: str) -> None:
        message_id = await self.client.send_text(
            text, to_user=conversation.user_id, to_channel=conversation.channel_id
        )
        self.apply(
            TextSent(
                message_id,
                text,
                self.clock(),
                to_user=conversation.user_id,
                to_channel=conversation.channel_id,
            )
        )

    def acknowledge_selected(self) -> None:
        alert = self.state.selected_emergency()
        if alert is None:
            self.notify("no active emergency", severity="warning")
            return
        if alert.acked_by is not None:
            self.notify(f"already acknowledged by {self.state.name_of(alert.acked_by)}")
            return
        self._spawn(self.client.acknowledge_emergency(alert.alert_id), "acknowledging")

    def cancel_selected(self) -> None:
        alert = self.state.selected_emergency()
        if alert is None:
            self.notify("no active emergency", severity="warning")
            return
        self._spawn(self.client.cancel_emergency(alert.alert_id), "cancelling the emergency")

    def create_channel(self, name: str, members: Sequence[str]) -> None:
        self._spawn(self._create_channel(name, members), f"creating {name}")

    async def _create_channel(self, name: str, members: Sequence[str]) -> None:
        channel_id = await channel_admin.create_channel(self.client, name, members)
        self._created.add(channel_id)
        self._affiliate_monitored()
        self.apply(Note("channel", f"{name} created with {len(members)} member(s)"))

    def change_member(self, channel_id: int, user_id: str, *, adding: bool) -> None:
        verb = "adding" if adding else "removing"
        self._spawn(self._change_member(channel_id, user_id, adding), f"{verb} {user_id}")

    async def _change_member(self, channel_id: int, user_id: str, adding: bool) -> None:
        change = channel_admin.add_member if adding else channel_admin.remove_member
        epoch = await change(self.client, channel_id, user_id)
        verb = "added to" if adding else "removed from"
        self.apply(
            Note(
                "keys",
                f"{user_id} {verb} {self.state.channel_name(channel_id)}: rekeyed to epoch {epoch}",
            )
        )

    def patch_channels(self, channel_id: int, other_name: str) -> None:
        other = next((c for c, n in self.client.channels.items() if n == other_name), None)
        if other is None:
            self.apply(Note("error", f"no channel named {other_name!r} on this console"))
            return
        self._spawn(self._patch(channel_id, other), "patching")

    async def _patch(self, a: int, b: int) -> None:
        self._created.add(await channel_admin.patch(self.client, [a, b]))  # the log says it

    def unpatch(self, channel_id: int) -> None:
        """End the patch the channel is in (its own channel or a linked one)."""
        patch = self.state.patch_of(channel_id)
        if patch is None:
            name = self.state.channel_name(channel_id)
            self.apply(Note("error", f"{name} is not patched: nothing to end"))
            return
        self._spawn(channel_admin.unpatch(self.client, patch), "ending the patch")

    def delete_channel(self, channel_id: int) -> None:
        self._spawn(channel_admin.delete_channel(self.client, channel_id), "deleting the channel")

    def recall(self, channel_id: int, *, save: bool = False) -> None:
        """r: replay the channel's last burst; ``save`` (w), or no speaker: write it as WAV."""
        save = save or self.audio_output is None
        self._spawn(self._recall(channel_id, save), "saving a recall" if save else "instant recall")

    async def _recall(self, channel_id: int, save: bool) -> None:
        name = self.state.channel_name(channel_id)
        opened = await listening.recall_latest(self.client, channel_id)
        if opened is None:
            self.apply(Note("recall", f"nothing recorded on {name}"))
            return
        self.last_recall, burst = opened, opened.burst
        self.apply(
            Note(
                "recall",
                f"{name}: {self.state.name_of(burst.talker)}, {burst.duration:.1f}s:"
                f" {len(opened.opus)} frames opened, {opened.refused} refused"
                + ("" if save else " (w saves it as WAV)"),
            )
        )
        if save and opened.opus:
            self.last_saved, seconds = await listening.save_recalled(opened, self.save_dir, name)
            self.apply(Note("recall", f"{name}: {seconds:.1f} s saved to {self.last_saved}"))
        elif save:
            self.apply(Note("recall", f"{name}: no frame this console can open, nothing saved"))
        elif self.audio_output is not None:
            await channel_admin.replay(opened, self.audio_output)

    def export_log(self) -> Path | None:
        """Write the event log as CSV into :attr:`export_dir`; returns the file."""
        try:
            path = write_log_csv(self.state, self.export_dir, self.clock())
        except OSError as exc:
            self.apply(Note("error", f"cannot write the event log to {self.export_dir}: {exc}"))
            return None
        self.last_export = path
        self.apply(Note("note", f"event log exported to {path}"))
        return path


# --- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptt-dispatch", description="Fieldradio dispatcher console"
    )
    parser.add_argument("--credential", required=True, type=Path, help="credential bundle file")
    parser.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="environment variable holding the bundle's passphrase (it must be set; without"
        " this flag PTT_PASSPHRASE is used if set)",
    )
    parser.add_argument("--server", help="wss://HOST:PORT (default: the bundle's server)")
    parser.add_argument("--monitor", help="comma-separated channel names to monitor (default all)")
    listening.add_audio_arguments(parser)
    parser.add_argument(
        "--answer",
        choices=("manual", "auto"),
        default="manual",
        help="manual (default): a private call rings until y answers or h refuses;"
        " auto: answered at once when the caller asks (an emergency call always is)",
    )
    parser.add_argument(
        "--export-dir",
        type=Path,
        default=None,
        help="where l writes the event log CSV (default $XDG_STATE_HOME/fieldradio,"
        " else ~/.local/state/fieldradio)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ptt-dispatch``."""
    args = _parser().parse_args(argv)
    from crypto.errors import CryptoError
    from ptt_client.bundle_file import BundleFileError, check_console_bundle, read_bundle_file
    from ptt_client.client import RadioClient
    from ptt_client.command_line import env_secret

    # A variable named on the command line must be set, as for ptt-radio and ptt-admin;
    # without the flag, none set means a plain bundle (open_keys says so if it is not).
    try:
        passphrase = (
            env_secret(args.passphrase_env, "--passphrase-env", BundleFileError, allow_empty=True)
            if args.passphrase_env
            else os.environ.get(DEFAULT_PASSPHRASE_ENV)
        )
        bundle = read_bundle_file(args.credential)
        check_console_bundle(bundle, args.credential, "ptt-dispatch")  # before the UI opens
        keys = bundle.open_keys(passphrase)
    except BundleFileError as exc:
        print(f"ptt-dispatch: {exc}", file=sys.stderr)
        return 2
    except CryptoError as exc:
        hint = "" if passphrase is not None else f" (set {DEFAULT_PASSPHRASE_ENV}?)"
        print(f"ptt-dispatch: cannot open {args.credential}: {exc}{hint}", file=sys.stderr)
        return 2
    if args.talk_file is not None and not args.talk_file.is_file():
        print(f"ptt-dispatch: no WAV file {args.talk_file}", file=sys.stderr)
        return 2
    try:
        audio = listening.console_audio(args.talk_file, args.listen_dir, args.no_audio)
    except AudioError as exc:
        print(f"ptt-dispatch: {exc}", file=sys.stderr)
        return 2
    app = DispatchApp(
        RadioClient(bundle, keys, server_url=args.server),
        talk_file=audio.talk_file,
        monitor=args.monitor.split(",") if args.monitor else None,
        audio_output=audio.output,
        listen_dir=audio.listen_dir,
        save_dir=audio.save_dir,
        export_dir=args.export_dir,
        notes=audio.notes,
        call_speaker=listening.call_speaker() if audio.output is not None else None,
        auto_answer=args.answer == "auto",
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            app.run()
    finally:
        if audio.output is not None:
            audio.output.close()
    return app.return_code or 0


if __name__ == "__main__":
    raise SystemExit(main())
