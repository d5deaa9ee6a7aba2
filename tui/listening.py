"""The console's audio with or without a sound card: what Space talks from, and where what the
console hears and recalls is written.

Without a sound card (a server, an SSH session, CI) the console still talks and hears: Space
transmits a speech sample, and every burst heard is written as its own WAV file into a listen
directory (named by :func:`ptt_client.recordings.burst_file_name`), with one event-log line per
file. :func:`plan_audio` decides this from what PortAudio sees and the command line (pure, so
it is tested without devices); :func:`console_audio` probes, plans and opens the speaker for
``ptt-dispatch``'s ``main()``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ptt_client import channel_admin
from ptt_client.audio import AudioError, AudioOutput
from ptt_client.recordings import burst_file_name, write_burst
from ptt_client.samples import sample_paths
from tui.log_export import default_log_dir
from tui.state import Note

if TYPE_CHECKING:
    from ptt_client.client import RadioClient
    from ptt_client.voice import Player, SavedBurst

DEFAULT_SAMPLE: Final = "all_clear.wav"
"""The sample a console without a microphone talks: "Dispatch to all units, area clear."."""

NOTE_KIND: Final = "audio"
"""Event-log kind of the console's audio lines (not an error: nothing is wrong)."""


def default_sample() -> Path:
    """The bundled speech sample Space transmits when there is no microphone."""
    return next(p for p in sample_paths() if p.name == DEFAULT_SAMPLE)


def default_listen_dir() -> Path:
    """Where a console without a speaker writes what it hears: ``heard`` in the console's
    state directory, beside the exported logs (``~/.local/state/fieldradio/heard``)."""
    return default_log_dir() / "heard"


@dataclass(frozen=True)
class AudioPlan:
    """Where the console's audio comes from and goes to."""

    talk_file: Path | None
    """The WAV file Space transmits; None: the microphone."""
    speaker: bool
    """Open the sound card to play live audio and recalls."""
    listen_dir: Path | None
    """Write each burst heard into this directory; None: the speaker only."""
    note: str | None
    """Said once in the event log at start (None: a sound card and no flags, nothing to say)."""


def plan_audio(
    *,
    talk_file: Path | None,
    listen_dir: Path | None,
    no_audio: bool,
    has_input: bool,
    has_output: bool,
    sample: Path,
    default_dir: Path,
) -> AudioPlan:
    """Decide the console's audio from the flags and the devices PortAudio sees.

    A flag always wins. Without one, a missing microphone (or ``--no-audio``) means talking
    from ``sample``, and a missing speaker (or ``--no-audio``) means writing what is heard
    into ``default_dir``. ``--listen-dir`` beside a speaker writes the files and plays too.
    """
    microphone = has_input and not no_audio
    speaker = has_output and not no_audio
    parts: list[str] = []
    talk = talk_file
    if talk_file is not None:
        parts.append(f"talking from {talk_file}")
    elif not microphone:
        talk = sample
        parts.append(f"talking from sample {sample}")
    listen = listen_dir
    if listen_dir is None and not speaker:
        listen = default_dir
    if listen is not None:
        parts.append(f"writing what you hear to {listen}" + (" as well" if speaker else ""))
    fell_back = (talk_file is None and not microphone) or (listen_dir is None and not speaker)
    if not fell_back:
        reason = ""
    elif no_audio:
        reason = "sound card off (--no-audio): "
    elif not has_input and not has_output:
        reason = "no sound card: "
    elif not has_input:
        reason = "no microphone: "
    else:
        reason = "no speaker: "
    note = reason + ", ".join(parts) if parts else None
    return AudioPlan(talk, speaker, listen, note)


def add_audio_arguments(parser: argparse.ArgumentParser) -> None:
    """``ptt-dispatch``'s audio flags: ``--talk-file``, ``--listen-dir``, ``--no-audio``."""
    parser.add_argument(
        "--talk-file",
        type=Path,
        metavar="WAV",
        help="Space transmits this WAV file instead of the microphone (with no microphone:"
        f" the bundled speech sample {DEFAULT_SAMPLE})",
    )
    parser.add_argument(
        "--listen-dir",
        type=Path,
        metavar="DIR",
        help="write every burst heard into DIR, one WAV file each, named"
        " TIME_CHANNEL_TALKER.wav (a speaker, if any, plays them too), and save recalls"
        f" there (w); with no speaker this is the default: {default_listen_dir()}",
    )
    parser.add_argument(
        "--no-audio",
        action="store_true",
        help="open no sound device: talk from --talk-file (or the sample), write what you hear"
        " to --listen-dir (or its default)",
    )


def probe_devices() -> tuple[bool, bool]:
    """Whether a microphone and a speaker are there; no PortAudio at all counts as neither."""
    from ptt_client.audio_devices import devices_present

    try:
        return devices_present()
    except (AudioError, OSError):
        return False, False


@dataclass
class ConsoleAudio:
    """What ``main()`` hands the app: the plan carried out (the speaker opened)."""

    talk_file: Path | None
    output: AudioOutput | None
    listen_dir: Path | None
    save_dir: Path
    """Where recalls are saved as WAV: the listen directory, else the default one."""
    notes: list[Note] = field(default_factory=list)


def console_audio(
    talk_file: Path | None,
    listen_dir: Path | None,
    no_audio: bool,
    *,
    devices: tuple[bool, bool] | None = None,
    default_dir: Path | None = None,
) -> ConsoleAudio:
    """Probe the sound card (unless ``devices`` says what is there), plan, open the speaker
    and create the listen directory (``default_dir``: instead of :func:`default_listen_dir`).

    Raises :class:`AudioError` (a one-line message naming the directory) when the listen
    directory cannot be created.
    """
    from ptt_client.audio_devices import DeviceOutput

    has_input, has_output = probe_devices() if devices is None else devices
    fallback_dir = default_listen_dir() if default_dir is None else default_dir

    def plan(has_output: bool) -> AudioPlan:
        return plan_audio(
            talk_file=talk_file,
            listen_dir=listen_dir,
            no_audio=no_audio,
            has_input=has_input,
            has_output=has_output,
            sample=default_sample(),
            default_dir=fallback_dir,
        )

    chosen, notes = plan(has_output), []
    output: AudioOutput | None = None
    if chosen.speaker:
        try:
            output = DeviceOutput()
        except (AudioError, OSError) as exc:
            notes.append(Note(NOTE_KIND, f"the speaker refused to open ({exc})"))
            chosen = plan(False)
    if chosen.note:
        notes.append(Note(NOTE_KIND, chosen.note))
    if chosen.listen_dir is not None:  # now, so a bad one is refused before the screen opens
        try:
            chosen.listen_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if output is not None:
                output.close()
            raise AudioError(
                f"cannot create {chosen.listen_dir} ({exc.strerror or exc}): give a writable"
                " directory with --listen-dir"
            ) from None
    # Recalls saved from a console with a speaker go to the default directory, made on use.
    save_dir = chosen.listen_dir or fallback_dir
    return ConsoleAudio(chosen.talk_file, output, chosen.listen_dir, save_dir, notes)


def call_speaker() -> Callable[[], AudioOutput]:
    """Opens the sound card afresh for each private call (its own stream beside live
    audio's), in 20 ms frames as calls carry them."""

    def open_speaker() -> AudioOutput:
        from ptt_client.audio_devices import DeviceOutput

        return DeviceOutput(None, 20)

    return open_speaker


def recorder(
    client: RadioClient, directory: Path, on_saved: Callable[[SavedBurst], None]
) -> Player:
    """Start writing every burst ``client`` hears into ``directory``, one WAV file each
    (a second :class:`Player` beside the speaker's, without tones). Raises
    :class:`AudioError` when the directory cannot be created."""
    from ptt_client.audio import WavDirectoryOutput
    from ptt_client.voice import Player

    player = Player(client, WavDirectoryOutput(directory), tones=False, on_saved=on_saved)
    player.start()
    return player


# --- recall -----------------------------------------------------------------------------------


async def recall_latest(client: RadioClient, channel_id: int) -> channel_admin.OpenedBurst | None:
    """The channel's last burst, fetched and opened with the console's keys (None: nothing)."""
    bursts = await channel_admin.recall(client, channel_id, 10)
    if not bursts:
        return None
    burst = bursts[0]
    frames = await channel_admin.recall_frames(client, channel_id, burst.burst_key)
    return channel_admin.open_recalled(client, channel_id, burst, frames)


async def save_recalled(
    opened: channel_admin.OpenedBurst, directory: Path, channel: str
) -> tuple[Path, float]:
    """Write an opened burst into ``directory`` as ``<start>_<channel>_<talker>_recall.wav``;
    returns the file and its seconds. Decoding runs in a thread: a long burst is thousands of
    frames, and the console keeps answering keys meanwhile."""
    name = burst_file_name(opened.burst.started_at, channel, opened.burst.talker, "recall")
    return await asyncio.to_thread(write_burst, opened.opus, directory, name)
