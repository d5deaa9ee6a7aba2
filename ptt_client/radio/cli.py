"""The ``ptt-radio`` program: its flags (:func:`build_parser`, :func:`parse_options`), running
the radio as a process (:func:`run_radio`: the terminal, signals, the exit status) and
:func:`main`. What the flags mean is in :mod:`ptt_client.radio`'s docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from crypto.bundle import CredentialBundle, check_server_url
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client.audio import AudioError, WavFileInput
from ptt_client.audio_devices import list_devices
from ptt_client.calls.errors import CallMediaError
from ptt_client.calls.ice import pinned_host_addresses
from ptt_client.client import RadioClient
from ptt_client.codec import FRAME_MS_CHOICES
from ptt_client.command_line import OneLineParser, UsageError
from ptt_client.gps import GpsError, open_source
from ptt_client.radio import own_notes
from ptt_client.radio.app import Radio, input_opener, open_output
from ptt_client.radio.calling import call_output_for
from ptt_client.radio.console import Console, JsonConsole
from ptt_client.radio.credentials import load_credential
from ptt_client.radio.errors import (
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_STARTUP,
    EXIT_UNREACHABLE,
    RadioError,
)
from ptt_client.radio.help_text import epilog
from ptt_client.radio.keys import cbreak_terminal
from ptt_client.script import QuitStep, ScriptError, Step, parse_script

PROG: Final = "ptt-radio"


def build_parser() -> argparse.ArgumentParser:
    """The ``ptt-radio`` flags (errors raise instead of exiting; :func:`main` prints them)."""
    parser = OneLineParser(
        prog=PROG,
        description="Fieldradio push-to-talk radio: keys on a terminal, or headless from a"
        " --script.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--credential", type=Path, help="credential bundle file from ptt-admin")
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable holding the passphrase"
    )
    parser.add_argument("--server", help="override the bundle's server, wss://HOST:PORT")
    parser.add_argument("--channel", help="channel to join and talk on (by name)")
    parser.add_argument("--input", default="mic", help="'mic' (default) or a WAV file to talk from")
    parser.add_argument(
        "--output",
        default="speaker",
        help="'speaker' (default), a FILE.wav, or a directory (one WAV per received burst)",
    )
    parser.add_argument(
        "--script",
        metavar="STEPS",
        help="run these timed steps instead of reading keys, e.g. 'talk 0.5 4; quit 10'"
        " (the steps are listed below)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per event on stdout instead of lines (see below)",
    )
    parser.add_argument(
        "--list-devices", action="store_true", help="print the sound devices and exit"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gps", metavar="HOST:PORT", help="follow gpsd for the position")
    where.add_argument("--position", metavar="LAT,LON", help="a fixed position")
    parser.add_argument("--scan", default="", help="also listen to these channels: NAME,NAME")
    parser.add_argument("--no-udp", action="store_true", help="send media over the WebSocket")
    parser.add_argument(
        "--frame-ms", type=int, default=20, help="Opus frame size in ms (10, 20, 40, 60)"
    )
    # Private calls. In the options section, not a group of their own: the guides' checker
    # (tests/program_help.py) and a reader both look for every flag there.
    parser.add_argument(
        "--answer",
        choices=("auto", "manual"),
        default="auto",
        help="auto (default): answer a call at once when the caller asks (MCPTT automatic"
        " commencement); manual: every call rings until a answers or r refuses",
    )
    parser.add_argument(
        "--call-input",
        metavar="mic|FILE.wav",
        help="what calls speak from (default: --input; a WAV file plays from the call's start)",
    )
    parser.add_argument(
        "--call-output",
        metavar="speaker|FILE.wav|DIR",
        help="what calls play to (default: --output; a directory, or a FILE.wav's directory,"
        " gets one WAV per call: DATE-TIME_call_PEER.wav)",
    )
    parser.add_argument(
        "--call-relay-only",
        action="store_true",
        help="call media only through the relay's TURN server: the other radio never learns"
        " this radio's address",
    )
    return parser


@dataclass(frozen=True)
class RadioOptions:
    """The command line, checked: everything needed before touching the network."""

    credential: Path
    passphrase_env: str | None
    server: str | None
    channel: str
    input: str
    output: str
    script: list[Step] | None
    json: bool
    scan: tuple[str, ...]
    use_udp: bool
    frame_ms: int
    gps: str | None
    position: str | None
    call_input: str = "mic"
    call_output: str = "speaker"
    auto_answer: bool = True
    call_relay_only: bool = False


def parse_options(args: argparse.Namespace) -> RadioOptions:
    """Check the parsed flags; raises :class:`RadioError` with the flag and the expected form."""
    if args.credential is None:
        raise RadioError("--credential FILE is required (the bundle from `ptt-admin enroll`)")
    if not args.channel:
        raise RadioError("--channel NAME is required")
    if args.frame_ms not in FRAME_MS_CHOICES:
        raise RadioError(
            f"--frame-ms {args.frame_ms}: use one of {', '.join(map(str, FRAME_MS_CHOICES))}"
        )
    if args.server is not None:
        try:
            check_server_url(args.server)
        except CryptoError:
            raise RadioError(
                f"--server {args.server!r}: expected wss://HOST:PORT, e.g. wss://relay.example.org:7300"
            ) from None
    script = None
    if args.script is not None:
        try:
            script = parse_script(args.script)
        except ScriptError as exc:
            raise RadioError(f"--script: {exc}") from None
    scan = tuple(name.strip() for name in args.scan.split(",") if name.strip())
    try:
        open_source(args.gps, args.position)  # checks the syntax; connects later
    except GpsError as exc:
        raise RadioError(str(exc)) from None
    _check_input("--input", args.input, args.frame_ms)
    call_input = args.call_input or args.input
    _check_input("--call-input", call_input, 20)
    try:
        pinned_host_addresses()  # now, not at the first call
    except CallMediaError as exc:
        raise RadioError(str(exc)) from None
    return RadioOptions(
        credential=args.credential,
        passphrase_env=args.passphrase_env,
        server=args.server,
        channel=args.channel,
        input=args.input,
        output=args.output,
        script=script,
        json=args.json,
        scan=scan,
        use_udp=not args.no_udp,
        frame_ms=args.frame_ms,
        gps=args.gps,
        position=args.position,
        call_input=call_input,
        call_output=args.call_output or call_output_for(args.output),
        auto_answer=args.answer == "auto",
        call_relay_only=args.call_relay_only,
    )


def _check_input(flag: str, spec: str, frame_ms: int) -> None:
    if spec == "mic":
        return
    if not Path(spec).is_file():
        raise RadioError(f"{flag} {spec!r}: no such file (give 'mic' or a WAV file)")
    try:  # now, not at the first press of the key
        with WavFileInput(spec, frame_ms):
            pass
    except (AudioError, OSError) as exc:
        raise RadioError(f"{flag}: {exc}") from None


async def run_radio(options: RadioOptions, bundle: CredentialBundle, keys: DeviceKeys) -> int:
    """Run the radio until the script ends, ``q``, SIGINT or SIGTERM; return the exit status."""
    interactive = options.script is None
    fd = -1
    if interactive:
        with contextlib.suppress(OSError, ValueError):  # stdin closed or replaced
            fd = sys.stdin.fileno()
    if interactive and (fd < 0 or not os.isatty(fd)):
        raise RadioError(
            "interactive mode needs a terminal on stdin: use --script for headless use"
        )
    output = open_output(options.output, options.frame_ms)
    console = (
        JsonConsole(sys.stdout)
        if options.json
        else Console(sys.stdout, live=interactive and sys.stdout.isatty())
    )
    try:
        client = RadioClient(bundle, keys, server_url=options.server, use_udp=options.use_udp)
        radio = Radio(
            client,
            open_input=input_opener(options.input, options.frame_ms),
            output=output,
            console=console,
            frame_ms=options.frame_ms,
            position_source=open_source(options.gps, options.position),
            # Tones belong in the officer's ear, not in a recording of what was received.
            tones=options.output == "speaker",
            call_input=options.call_input,
            call_output=options.call_output,
            auto_answer=options.auto_answer,
            call_relay_only=options.call_relay_only,
        )
        loop = asyncio.get_running_loop()
        # Signal handlers can only be set from the main thread (tests run main() in a worker).
        in_main_thread = threading.current_thread() is threading.main_thread()
        stop_signals = (signal.SIGINT, signal.SIGTERM) if in_main_thread else ()
        for sig in stop_signals:
            loop.add_signal_handler(sig, radio.quit.set)
        try:
            starting = asyncio.create_task(radio.start(options.channel, options.scan))
            why = await _until_joined(radio, starting, _quit_time(options.script))
            if why is not None:
                text = f"stopped before joining the channel ({why})"
                code = EXIT_RUNTIME
                if not radio.logged_in:
                    text += f": the server at {client.server_url} never answered"
                    code = EXIT_UNREACHABLE
                console.note(own_notes.stopped(text, code))
                return code
            if options.script is not None:
                await radio.run_script(options.script)
            else:
                with cbreak_terminal(fd):
                    await radio.run_interactive(fd)
        finally:
            for sig in stop_signals:
                loop.remove_signal_handler(sig)
            await radio.stop()
            console.finish()
        console.note(own_notes.stopped(f"stopped (exit status {radio.exit_code})", radio.exit_code))
        return radio.exit_code
    finally:
        output.close()


def _quit_time(script: list[Step] | None) -> float | None:
    return next((step.at for step in script or () if isinstance(step, QuitStep)), None)


async def _until_joined(
    radio: Radio, starting: asyncio.Task[None], quit_at: float | None
) -> str | None:
    """Wait for ``starting`` (login and join); ``None`` once joined, else why the radio
    stops first: a signal, or the script's quit time passing while the server is not
    reached yet (the client retries for ever). Raises what ``starting`` raised."""
    quitting = asyncio.create_task(radio.quit.wait())
    deadline = asyncio.create_task(asyncio.sleep(quit_at)) if quit_at is not None else None
    waiting: set[asyncio.Task[Any]] = {starting, quitting}
    if deadline is not None:
        waiting.add(deadline)
    try:
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if starting in done:
                starting.result()  # RadioError: refused login, unknown channel, ...
                return None
            if quitting in done:
                reason = "a signal"
                break
            waiting.discard(deadline)
            if not radio.logged_in:
                reason = f"the script's quit at {quit_at:g} s"
                break
            # The server answered: joining takes bounded time, and the script's clock
            # starts once the channel is joined.
    finally:
        quitting.cancel()
        if deadline is not None:
            deadline.cancel()
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return reason


def _list_devices() -> int:
    try:
        devices = list_devices()
    except AudioError as exc:
        raise RadioError(str(exc)) from None
    if not devices:
        print("no sound devices found (PortAudio sees none): use --input FILE.wav and --output")
    for line in devices:
        print(line)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The ``ptt-radio`` entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.list_devices:
            return _list_devices()
        options = parse_options(args)
        bundle, keys = load_credential(options.credential, options.passphrase_env)
        return asyncio.run(run_radio(options, bundle, keys))
    except UsageError as exc:
        print(f"{PROG}: {exc} (see {PROG} --help)", file=sys.stderr)
        return EXIT_STARTUP
    except RadioError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:  # before the event loop's own SIGINT handling is in place
        return 130
