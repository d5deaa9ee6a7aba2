"""Simulated officers for demos and load tests: ``python -m ptt_client.sim``.

    python -m ptt_client.sim --bundles DIR --officers N --channel NAME [--server URL]
                             [--duration S] [--talk-every S] [--emergency USER AT] [--seed N]

N officers (the first N ``*.bundle`` files in DIR, by name: ``officer1.bundle`` ...) log in,
report a position, join the channel and talk from the speech samples
(:func:`ptt_client.samples.sample_paths`) on a seeded random schedule
(:func:`make_schedule`): the same seed gives the same calls at the same times. With
``--emergency USER AT`` that officer raises an emergency AT seconds in (alert with position,
then 10 s of emergency-priority talk), cancelled when the simulation ends.

Officers do not decode what they hear (a load test would spend its CPU on Opus): they count
the frames. :func:`run_simulation` returns a :class:`SimReport` of what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import AudioError, AudioInput, load_wav
from ptt_client.client import ClientError, RadioClient
from ptt_client.codec import FRAME_MS_CHOICES, SAMPLE_RATE, Pcm, frame_samples
from ptt_client.command_line import OneLineParser, UsageError, env_secret
from ptt_client.samples import sample_paths
from ptt_client.sim_schedule import (
    EMERGENCY_TALK_S,
    ScheduledEmergency,
    ScheduledEvent,
    make_schedule,
    positions_for,
)
from ptt_client.voice import Transmitter
from ptt_protocol import control

PROG: Final = "python -m ptt_client.sim"

JOIN_TIMEOUT: Final = 15.0
"""Seconds for one officer to log in, join the channel and receive its key."""

MAX_CONCURRENT_LOGINS: Final = 20
"""Logins in flight at once (each is a TLS handshake and a signature on both sides)."""


class SimError(Exception):
    """The simulation cannot start; the message says why and what to do."""


# --- officers -------------------------------------------------------------------------------------


class PcmInput(AudioInput):
    """Plays a PCM array already in memory as frames (the samples are decoded once, up front)."""

    def __init__(self, pcm: Pcm, frame_ms: int = 20) -> None:
        self._pcm = pcm
        self._size = frame_samples(frame_ms)
        self._at = 0

    def read_frame(self) -> Pcm | None:
        if self._at >= len(self._pcm):
            return None
        frame = self._pcm[self._at : self._at + self._size]
        self._at += self._size
        if len(frame) < self._size:
            frame = np.concatenate([frame, np.zeros(self._size - len(frame), dtype=np.int16)])
        return frame


@dataclass
class OfficerStats:
    """What one simulated officer did and heard."""

    user_id: str
    calls: int = 0
    """Scheduled calls started (the emergency talk included)."""
    skipped: int = 0
    """Scheduled calls not made because the officer was still in the previous one."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """Transmitter outcomes: granted, denied, queued-timeout, no-answer, revoked, error."""
    frames_sent: int = 0
    frames_heard: int = 0
    frames_rejected: int = 0
    access_times: list[float] = field(default_factory=list)
    """Seconds from PTT press to floor granted, per granted call."""
    emergencies_seen: int = 0
    reconnects: int = 0


class Officer:
    """One simulated radio: a client, a transmitter and counters."""

    def __init__(
        self,
        bundle: CredentialBundle,
        keys: DeviceKeys,
        *,
        server_url: str | None = None,
        use_udp: bool = True,
        frame_ms: int = 20,
    ) -> None:
        self.client = RadioClient(bundle, keys, server_url=server_url, use_udp=use_udp)
        self.transmitter = Transmitter(self.client, frame_ms=frame_ms)
        self.frame_ms = frame_ms
        self.stats = OfficerStats(self.client.user_id)
        self.channel_id: int | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False
        self.client.add_listener(self._count)

    @property
    def user_id(self) -> str:
        return self.client.user_id

    @property
    def busy(self) -> bool:
        """In a call (waiting for the floor or talking)."""
        return not self._idle.is_set()

    def _count(self, event: object) -> None:
        if isinstance(event, events.VoiceFrame):
            self.stats.frames_heard += 1
        elif isinstance(event, events.VoiceRejected):
            self.stats.frames_rejected += 1
        elif isinstance(event, control.EmergencyAlert) and event.user_id != self.user_id:
            self.stats.emergencies_seen += 1
        elif isinstance(event, events.Connected) and event.reconnect:
            self.stats.reconnects += 1

    async def join(self, channel: str, position: tuple[float, float]) -> None:
        """Log in, join ``channel`` and wait for its key; :class:`SimError` if any step fails."""
        client = self.client
        await client.start()
        first = await client.wait_for(
            object,
            lambda e: isinstance(e, events.Connected | events.LoginRefused),
            timeout=JOIN_TIMEOUT,
        )
        if isinstance(first, events.LoginRefused):
            raise SimError(f"{self.user_id}: login refused: {first.text or first.code}")
        if channel not in client.channels.values():
            with contextlib.suppress(TimeoutError):
                await client.wait_for(control.ChannelList, timeout=JOIN_TIMEOUT)
        matches = [cid for cid, name in sorted(client.channels.items()) if name == channel]
        if not matches:
            raise SimError(
                f"{self.user_id}: unknown channel {channel!r}"
                f" (may join: {', '.join(sorted(client.channels.values())) or 'none'})"
            )
        self.channel_id = matches[0]
        await client.affiliate(self.channel_id, select=True)
        answer = await client.wait_for(
            object,
            lambda e: (
                (isinstance(e, control.Affiliated) and e.channel_id == self.channel_id)
                or isinstance(e, control.Error)
            ),
            timeout=JOIN_TIMEOUT,
        )
        if isinstance(answer, control.Error):
            raise SimError(f"{self.user_id}: cannot join {channel!r}: {answer.text or answer.code}")
        async with asyncio.timeout(JOIN_TIMEOUT):
            while not self._has_key():
                await client.wait_for(events.KeysUpdated, timeout=JOIN_TIMEOUT)
        with contextlib.suppress(ClientError):
            await client.send_location(*position)
        self._drain = asyncio.create_task(self._drain_events())

    def _has_key(self) -> bool:
        keys = self.client.keyring.channels.get(self.channel_id or 0)
        return keys is not None and keys.sealer is not None

    async def _drain_events(self) -> None:
        # Listeners already counted each event; the client's queue must still be emptied.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await self.client.next_event(timeout=3600)

    async def talk(
        self, pcm: Pcm, *, duration: float | None = None, priority: int | None = None
    ) -> None:
        """Make one call with ``pcm``; a call while the previous one runs is skipped."""
        if self.busy:
            self.stats.skipped += 1
            return
        self._idle.clear()
        self.stats.calls += 1
        try:
            result = await self.transmitter.talk(
                PcmInput(pcm, self.frame_ms), duration=duration, priority=priority
            )
        except (ClientError, CryptoError, OSError) as exc:
            self.stats.outcomes[f"error: {type(exc).__name__}"] += 1
            return
        finally:
            self._idle.set()
        self.stats.outcomes[result.outcome] += 1
        self.stats.frames_sent += result.frames_sent
        if result.access_time_s is not None:
            self.stats.access_times.append(result.access_time_s)

    async def emergency(
        self, pcm: Pcm, position: tuple[float, float], talk_s: float = EMERGENCY_TALK_S
    ) -> None:
        """Raise an emergency with ``position``, then talk at emergency priority for ``talk_s``."""
        try:
            await self.client.raise_emergency(*position)
        except ClientError as exc:
            self.stats.outcomes[f"error: {type(exc).__name__}"] += 1
            return
        # Loop the sample to fill the time the mic stays open.
        repeats = math.ceil(talk_s * SAMPLE_RATE / max(1, len(pcm)))
        self.transmitter.stop()  # an ordinary call in progress gives way
        await self._idle.wait()
        await self.talk(np.tile(pcm, repeats), duration=talk_s, priority=control.PRIORITY_MAX)

    async def stop(self) -> None:
        self._stopping = True
        self.transmitter.stop()
        if self.client.emergency_alert is not None:
            with contextlib.suppress(ClientError, OSError):
                await self.client.cancel_emergency()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        await self.client.stop()


# --- the simulation ---------------------------------------------------------------------------


@dataclass
class SimReport:
    """The simulation's outcome, per officer and in total."""

    officers: dict[str, OfficerStats]
    schedule: list[ScheduledEvent]
    elapsed: float

    def access_time_percentile(self, fraction: float) -> float | None:
        times = sorted(t for s in self.officers.values() for t in s.access_times)
        if not times:
            return None
        return times[min(len(times) - 1, int(fraction * len(times)))]

    def summary(self) -> str:
        totals: Counter[str] = Counter()
        for stats in self.officers.values():
            totals.update(stats.outcomes)
        calls = sum(s.calls for s in self.officers.values())
        sent = sum(s.frames_sent for s in self.officers.values())
        heard = sum(s.frames_heard for s in self.officers.values())
        rejected = sum(s.frames_rejected for s in self.officers.values())
        p50 = self.access_time_percentile(0.5)
        p95 = self.access_time_percentile(0.95)
        access = (
            "no call granted"
            if p50 is None or p95 is None
            else f"access time p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none"
        return (
            f"{len(self.officers)} officers, {self.elapsed:.1f} s: {calls} calls ({outcomes});"
            f" {sent} frames sent, {heard} heard, {rejected} rejected; {access}"
        )


def load_samples() -> list[Pcm]:
    """The speech samples at 48 kHz, decoded once."""
    return [load_wav(path) for path in sample_paths()]


async def run_simulation(
    credentials: Sequence[tuple[CredentialBundle, DeviceKeys]],
    channel: str,
    *,
    server_url: str | None = None,
    duration: float = 60.0,
    talk_every: float = 20.0,
    emergency: tuple[str, float] | None = None,
    emergency_talk_s: float = EMERGENCY_TALK_S,
    seed: int = 0,
    use_udp: bool = True,
    frame_ms: int = 20,
    samples: Sequence[Pcm] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> SimReport:
    """Log the officers in, play the schedule for ``duration`` seconds, log them out.

    Raises :class:`SimError` when an officer cannot log in or join (the others are stopped).
    The schedule's clock starts once every officer has joined.
    """
    pcms = list(samples) if samples is not None else load_samples()
    officers = [
        Officer(bundle, keys, server_url=server_url, use_udp=use_udp, frame_ms=frame_ms)
        for bundle, keys in credentials
    ]
    names = [o.user_id for o in officers]
    schedule = make_schedule(
        names,
        duration=duration,
        talk_every=talk_every,
        sample_durations=[len(p) / SAMPLE_RATE for p in pcms],
        seed=seed,
        emergency=emergency,
        emergency_talk_s=emergency_talk_s,
    )
    by_name = {o.user_id: o for o in officers}
    positions = positions_for(names, seed)
    gate = asyncio.Semaphore(MAX_CONCURRENT_LOGINS)
    loop = asyncio.get_running_loop()

    async def join(officer: Officer) -> None:
        async with gate:
            await officer.join(channel, positions[officer.user_id])

    calls: list[asyncio.Task[None]] = []
    try:
        try:
            async with asyncio.TaskGroup() as group:
                for officer in officers:
                    group.create_task(join(officer))
        except* SimError as failed:
            raise failed.exceptions[0] from None
        if on_progress is not None:
            on_progress(f"{len(officers)} officers joined {channel!r}")
        start = loop.time()
        for event in schedule:
            delay = start + event.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            officer = by_name[event.officer]
            if isinstance(event, ScheduledEmergency):
                if on_progress is not None:
                    on_progress(f"{event.at:7.1f} s  EMERGENCY {event.officer}")
                coroutine = officer.emergency(pcms[0], positions[event.officer], emergency_talk_s)
            else:
                coroutine = officer.talk(pcms[event.sample])
            calls.append(asyncio.create_task(coroutine))
        remaining = start + duration - loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if calls:
            # Let calls in progress finish (a queued one may wait for the floor a while).
            await asyncio.wait(calls, timeout=emergency_talk_s + 5)
        elapsed = loop.time() - start
    finally:
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await asyncio.gather(*(o.stop() for o in officers), return_exceptions=True)
    return SimReport({o.user_id: o.stats for o in officers}, schedule, elapsed)


# --- command line ------------------------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Simulated Fieldradio officers.")
    parser.add_argument("--bundles", type=Path, required=True, help="directory of *.bundle files")
    parser.add_argument("--officers", type=int, required=True, help="how many officers")
    parser.add_argument("--channel", required=True, help="channel they all join")
    parser.add_argument("--server", help="override the bundles' server, wss://HOST:PORT")
    parser.add_argument("--duration", type=_positive, default=60.0, help="seconds (default 60)")
    parser.add_argument(
        "--talk-every", type=_positive, default=20.0, help="mean pause between calls, s (20)"
    )
    parser.add_argument(
        "--emergency", nargs=2, metavar=("USER", "AT"), help="USER raises an emergency AT s in"
    )
    parser.add_argument("--seed", type=int, default=0, help="schedule seed (default 0)")
    parser.add_argument("--passphrase-env", metavar="VAR", help="passphrase of the bundles")
    parser.add_argument("--no-udp", action="store_true", help="media over the WebSocket")
    parser.add_argument("--frame-ms", type=int, default=20, choices=FRAME_MS_CHOICES)
    return parser


@dataclass(frozen=True)
class SimOptions:
    """The command line, checked."""

    bundles: list[Path]
    channel: str
    server: str | None
    duration: float
    talk_every: float
    emergency: tuple[str, float] | None
    seed: int
    passphrase_env: str | None
    use_udp: bool
    frame_ms: int


def parse_args(argv: Sequence[str] | None = None) -> SimOptions:
    """Parse and check the flags; :class:`SimError` (one line) for anything wrong."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        raise SimError(str(exc)) from None
    if args.officers < 1:
        raise SimError(f"--officers {args.officers}: at least 1")
    if not args.bundles.is_dir():
        raise SimError(f"--bundles {str(args.bundles)!r} is not a directory")
    files = sorted(args.bundles.glob("*.bundle"), key=_natural)
    if len(files) < args.officers:
        raise SimError(
            f"--officers {args.officers}: only {len(files)} *.bundle files in"
            f" {str(args.bundles)!r} (enroll more with `ptt-admin enroll`)"
        )
    emergency = None
    if args.emergency is not None:
        who, at_text = args.emergency
        try:
            at = float(at_text)
        except ValueError:
            raise SimError(f"--emergency {who} {at_text}: AT must be seconds") from None
        if not 0 <= at < args.duration:
            raise SimError(
                f"--emergency {who} {at_text}: AT must be within the {args.duration:g} s run"
            )
        emergency = (who, at)
    return SimOptions(
        bundles=files[: args.officers],
        channel=args.channel,
        server=args.server,
        duration=args.duration,
        talk_every=args.talk_every,
        emergency=emergency,
        seed=args.seed,
        passphrase_env=args.passphrase_env,
        use_udp=not args.no_udp,
        frame_ms=args.frame_ms,
    )


def _natural(path: Path) -> tuple[str, int, str]:
    """officer2 before officer10."""
    stem = path.stem
    digits = len(stem) - len(stem.rstrip("0123456789"))
    head = stem[: len(stem) - digits]
    return (head, int(stem[len(head) :]) if digits else -1, stem)


def load_bundles(
    paths: Sequence[Path], passphrase: str | None
) -> list[tuple[CredentialBundle, DeviceKeys]]:
    """Open every bundle; :class:`SimError` naming the file that fails."""
    loaded = []
    for path in paths:
        try:
            bundle = CredentialBundle.from_bytes(path.read_bytes())
            loaded.append((bundle, bundle.open_keys(passphrase)))
        except (OSError, CryptoError) as exc:
            raise SimError(f"{path}: {exc}") from None
    users = [bundle.user_id for bundle, _ in loaded]
    if len(set(users)) != len(users):
        raise SimError("two bundles are for the same user: give one bundle per officer")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulation and print its summary; 2 and one line on stderr if it cannot start."""
    try:
        options = parse_args(argv)
        passphrase = env_secret(
            options.passphrase_env, "--passphrase-env", SimError, allow_empty=True
        )
        credentials = load_bundles(options.bundles, passphrase)
        users = [bundle.user_id for bundle, _ in credentials]
        if options.emergency is not None and options.emergency[0] not in users:
            raise SimError(
                f"--emergency {options.emergency[0]}: not one of the officers ({', '.join(users)})"
            )
        report = asyncio.run(
            run_simulation(
                credentials,
                options.channel,
                server_url=options.server,
                duration=options.duration,
                talk_every=options.talk_every,
                emergency=options.emergency,
                seed=options.seed,
                use_udp=options.use_udp,
                frame_ms=options.frame_ms,
                on_progress=print,
            )
        )
    except (SimError, AudioError) as exc:
        print(f"ptt-sim: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
