"""Voice end to end, WAV in to WAV out, through a real relay and an impaired network:
``python -m bench.voice [--json] [--quick]``.

What runs: a real organisation (made with ``ptt_admin``, as ``ptt-admin`` does) and a
real ``ptt-server`` in its own process on 127.0.0.1; three radios in this process
(:class:`ptt_client.client.RadioClient`): the talker sends the committed speech samples with
:class:`ptt_client.voice.Transmitter`, the listener plays them with
:class:`ptt_client.voice.Player` into memory, and a third radio joins mid-burst (late entry).
Each radio's UDP goes through its own :class:`bench.impairment.ImpairmentProxy`.

Conditions (issue 14). The impairment sits on the talker's uplink (radio -> relay), on the
listeners' downlinks (relay -> radio), or on both; the control plane (TLS WebSocket) is never
impaired. Radios log in on clean links (so their UDP probe gets through), then the impairment
starts. Each condition starts with fresh radios: its first burst has no loss history.

- ``clean``: no impairment (the proxies still forward, adding a loopback hop).
- ``up_loss5_jitter40``: uplink 20 ms base delay + 0-40 ms uniform jitter (datagrams may
  overtake each other), 5 % random loss.
- ``both_loss5_jitter40``: the same on the uplink and on every listener's downlink.
- ``up_loss10``: uplink 10 % random loss, no delay.
- ``up_bursty5``: uplink Gilbert-Elliott loss, mean 5 %, mean run 3 datagrams.

Figures per condition (percentiles over every burst, or every frame for mouth-to-ear):

- ``access_time_p95_ms``: PTT press to FloorGranted at the talker (TS 22.179 KPI 1).
- ``mouth_to_ear_p95_ms``: a frame's capture at the talker (when the Transmitter read it) to
  the moment the listener's Player wrote that frame (same sequence number, played, FEC-rebuilt
  or concealed) to its output. Sound-device buffers are excluded: on a real device add the
  capture frame (20 ms) and the output buffer.
- ``late_entry_p95_ms``: a radio that affiliates mid-burst, from its Affiliate to its first
  played frame (TS 22.179 late-entry KPI).
- ``pesq_wb`` (ITU-T P.862.2, mean over bursts) and ``stoi`` (Taal et al. 2011, mean) of the
  received speech against the sent speech, after cross-correlation alignment, at 16 kHz.
- ``wire_kbps_mean`` / ``_p95`` over bursts: every UDP payload byte the talker sent during a
  burst (hop header and tag, inner header, SFrame header and tag, statements, repeats), per
  second of the burst, as its proxy counted it.
- Diagnostics: frame fates (``frames_played``, ``frames_rescued_by_repeats`` (played from a
  repeat in a later datagram), ``_fec``, ``_concealed``, and ``_missing``: never played at
  all), the talker's protection changes and the listener's repeat counters (``repeats``),
  ``extra_frames`` (frames played for sequence numbers that carried no voice; none since
  burst statements are numbered apart from voice),
  ``pesq_wb_without_extra_frames``/``stoi_without_extra_frames`` (the same scores with
  those frames cut out), measured network loss and reordering, the listener's jitter-buffer
  counters, and ``codec_only`` (the samples through the
  Transmitter's Opus settings, no network: the ceiling for PESQ and STOI).

Goals (:data:`GOALS`, issue 14's table): per condition PESQ-WB, STOI, mouth-to-ear p95 and
wire kbit/s mean; on ``clean`` also access time <= 50 ms and late entry <= 100 ms.
``--variant`` measures other protections than the radio's (:mod:`bench.voice_variants`).

Defaults: the 4 samples x 3 repeats per condition (about 2-3 minutes); ``--quick``: one
sample x 2 repeats (under a minute). Needs ``pesq`` and ``pystoi`` (dev extras).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import platform
import random
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.impairment import CLEAN, Impairment, ImpairmentProxy
from bench.processes import RelayProcess, relay_process
from bench.speech_quality import speech_quality
from bench.voice_figures import FRAME_MS, Burst, frames_of, loss_pct, mean, sent_audio, summarise
from bench.voice_variants import VARIANTS, apply_variant
from crypto.bundle import CredentialBundle
from crypto.identity import Role
from ptt_admin import channels, people
from ptt_admin.authority import Authority, Relay, create_authority, pin_relay
from ptt_admin.session import connect
from ptt_client import events
from ptt_client.audio import AudioInput, AudioOutput, WavFileInput
from ptt_client.client import RadioClient
from ptt_client.codec import DEFAULT_BITRATE, MIN_LOSS_HINT_PCT, OpusDecoder, OpusEncoder, Pcm
from ptt_client.samples import sample_paths
from ptt_client.voice import Played, Player, Transmitter
from ptt_protocol import control
from ptt_server.config import org_root_path
from ptt_server.keyfiles import install_org_root

BITRATE: Final = DEFAULT_BITRATE
"""The Transmitter's default Opus bitrate (bit/s)."""
BURST_GAP_S: Final = 0.6
"""Pause between two transmissions (the listener's tail of concealment and FloorIdle pass)."""

TALKER, LISTENER, LATE = "alice", "bob", "carol"
CHANNEL_NAME = "bench"
REPOSITORY: Final = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """The bench could not run as designed (the message says what went wrong)."""


@dataclass(frozen=True)
class Condition:
    """A network condition: the talker's uplink impairment and the listeners' downlink one."""

    name: str
    talker_uplink: Impairment = CLEAN
    listener_downlink: Impairment = CLEAN


_LOSS5_JITTER40: Final = Impairment(delay_ms=20, jitter_ms=40, loss_pct=5)
CONDITIONS: Final = (
    Condition("clean"),
    Condition("up_loss5_jitter40", talker_uplink=_LOSS5_JITTER40),
    Condition(
        "both_loss5_jitter40", talker_uplink=_LOSS5_JITTER40, listener_downlink=_LOSS5_JITTER40
    ),
    Condition("up_loss10", talker_uplink=Impairment(loss_pct=10)),
    Condition("up_bursty5", talker_uplink=Impairment(loss_pct=5, loss_burst=3)),
)


@dataclass(frozen=True)
class Goal:
    """A target for one figure of one condition."""

    condition: str
    key: str
    limit: float
    at_most: bool
    """True: the value must be <= limit; False: >= limit."""

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value <= self.limit if self.at_most else value >= self.limit


def _goals(
    condition: str, pesq_wb: float, stoi: float, mouth_to_ear_ms: float, wire_kbps: float
) -> tuple[Goal, ...]:
    return (
        Goal(condition, "pesq_wb", pesq_wb, False),
        Goal(condition, "stoi", stoi, False),
        Goal(condition, "mouth_to_ear_p95_ms", mouth_to_ear_ms, True),
        Goal(condition, "wire_kbps_mean", wire_kbps, True),
    )


GOALS: Final = (
    Goal("clean", "access_time_p95_ms", 50.0, True),
    Goal("clean", "late_entry_p95_ms", 100.0, True),
    *_goals("clean", 3.9, 0.99, 80.0, 60.0),
    *_goals("up_loss5_jitter40", 3.5, 0.97, 150.0, 130.0),
    *_goals("both_loss5_jitter40", 3.3, 0.96, 160.0, 130.0),
    *_goals("up_loss10", 3.2, 0.95, 120.0, 140.0),
    *_goals("up_bursty5", 3.0, 0.93, 150.0, 140.0),
)


class MemoryInput(AudioInput):
    """Frames decoded beforehand, handed out at once: a microphone whose frame is ready when
    asked. (Reading the WAV file on the fly would stall the first frame by the decoder's and
    resampler's first block, ~8 ms, and shift the listener's whole playout by as much.)"""

    def __init__(self, frames: Sequence[Pcm]) -> None:
        self.frame_samples = len(frames[0]) if frames else 0
        self._frames = list(frames)
        self._next = 0

    def read_frame(self) -> Pcm | None:
        if self._next >= len(self._frames):
            return None
        self._next += 1
        return self._frames[self._next - 1]


def codec_only(paths: Sequence[Path]) -> dict[str, float | None]:
    """PESQ-WB and STOI of the samples through the Transmitter's Opus settings, no network."""
    scores = []
    for path in paths:
        encoder = OpusEncoder(
            frame_ms=FRAME_MS, bitrate=BITRATE, expected_loss_pct=MIN_LOSS_HINT_PCT
        )
        decoder = OpusDecoder()
        with WavFileInput(path, FRAME_MS) as source:
            decoded = [decoder.decode(encoder.encode(frame)) for frame in source.frames()]
        scores.append(speech_quality(sent_audio(path), np.concatenate(decoded)))
    return {"pesq_wb": mean([s[0] for s in scores]), "stoi": mean([s[1] for s in scores])}


# --- the organisation and the relay ----------------------------------------------------------


def make_authority(directory: Path, relay_dir: Path) -> Authority:
    """A new org authority, and its root.pub installed in the relay's data directory."""
    authority = create_authority(directory, now=time.time(), passphrase=None)
    install_org_root(org_root_path(relay_dir), authority.files.root_pub)
    return authority


async def make_org(
    authority: Authority, relay: RelayProcess
) -> tuple[dict[str, CredentialBundle], int]:
    """Three officers on one channel, made as ``ptt-admin`` makes them: over the control plane."""
    pinned = Relay(f"wss://127.0.0.1:{relay.control_port}", relay.fingerprint)
    pin_relay(authority.files.directory, pinned)
    now = time.time()
    bundles = {}
    async with connect(dataclasses.replace(authority, relay=pinned)) as session:
        for user in (TALKER, LISTENER, LATE):
            enrolled = await people.enroll(
                session, user, role=Role.OFFICER, display_name=user.title(), now=now
            )
            bundles[user] = enrolled.bundle
        change = await channels.create(session, CHANNEL_NAME, [TALKER, LISTENER, LATE], now=now)
    return bundles, change.channel_id


# --- the ears --------------------------------------------------------------------------------


class Ear(AudioOutput):
    """A Player's output and ``on_played`` callback: what was played, when, and the audio."""

    def __init__(self) -> None:
        self.played: list[Played] = []
        self.chunks: list[Pcm] = []
        self._changed = asyncio.Event()

    def write(self, pcm: Pcm) -> None:
        self.chunks.append(pcm.copy())

    def on_played(self, frame: Played) -> None:
        self.played.append(frame)
        self._changed.set()

    def reset(self) -> None:
        self.played, self.chunks = [], []

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (checking after every played frame) until ``condition()``; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True


@dataclass
class Radios:
    """One condition's talker, listener and late entrant, with their proxies and audio."""

    talker: RadioClient
    listener: RadioClient
    late: RadioClient
    proxies: list[ImpairmentProxy]
    transmitter: Transmitter
    player: Player
    late_player: Player
    ear: Ear
    late_ear: Ear
    protection_log: list[str] = dataclasses.field(default_factory=list)
    """Each protection change the talker made (distances at effective loss %)."""


async def _radio(bundle: CredentialBundle, url: str, proxy: ImpairmentProxy) -> RadioClient:
    client = RadioClient(
        bundle, bundle.open_keys(None), server_url=url, media_address=proxy.address
    )
    await client.start()
    await client.wait_connected(10)
    if client.media_path != "udp":
        raise BenchError(f"{client.user_id} fell back to the tunnel: the proxy is not in the path")
    await client.wait_for(events.KeysUpdated, timeout=10)
    return client


@contextlib.asynccontextmanager
async def radios_for(
    condition: Condition,
    bundles: dict[str, CredentialBundle],
    channel_id: int,
    ports: tuple[int, int],
    seed: int,
    variant: str = "repeats",
) -> AsyncIterator[Radios]:
    """Log three radios in through their own clean proxies, affiliate two, then impair."""
    url = f"wss://127.0.0.1:{ports[0]}"
    relay_media = ("127.0.0.1", ports[1])
    proxies = [
        ImpairmentProxy(relay_media, seed=f"{seed}:{user}") for user in (TALKER, LISTENER, LATE)
    ]
    clients: list[RadioClient] = []
    players: list[Player] = []
    try:
        for proxy in proxies:
            await proxy.start()
        for user, proxy in zip((TALKER, LISTENER, LATE), proxies, strict=True):
            clients.append(await _radio(bundles[user], url, proxy))
        talker, listener, late = clients
        for client in (talker, listener):
            await client.affiliate(channel_id)
            await client.wait_for(control.Affiliated, timeout=5)
        ear, late_ear = Ear(), Ear()
        player = Player(listener, ear, frame_ms=FRAME_MS, tones=False, on_played=ear.on_played)
        late_player = Player(
            late, late_ear, frame_ms=FRAME_MS, tones=False, on_played=late_ear.on_played
        )
        players = [player, late_player]
        for p in players:
            p.start()
        proxies[0].set_impairment(uplink=condition.talker_uplink)
        for proxy in proxies[1:]:
            proxy.set_impairment(downlink=condition.listener_downlink)
        radios = Radios(
            talker,
            listener,
            late,
            proxies,
            Transmitter(talker, frame_ms=FRAME_MS, bitrate=BITRATE),
            player,
            late_player,
            ear,
            late_ear,
        )
        apply_variant(variant, talker, radios.transmitter)
        talker.add_listener(
            lambda e: (
                radios.protection_log.append(f"{e.distances} at {e.loss_pct:.1f} %")
                if isinstance(e, events.ProtectionChanged)
                else None
            )
        )
        yield radios
    finally:
        for p in players:
            await p.stop()
        for client in clients:
            await client.stop()
        for proxy in proxies:
            await proxy.close()


async def _late_entry(radios: Radios, channel_id: int, after_s: float) -> float | None:
    await asyncio.sleep(after_s)  # the scenario: someone tunes in this far into the burst
    joined = time.monotonic()
    await radios.late.affiliate(channel_id)
    ear = radios.late_ear
    if not await ear.wait_until(lambda: bool(ear.played), timeout=3):
        return None
    return ear.played[0].at - joined


async def one_burst(radios: Radios, sample: Path, channel_id: int, rng: random.Random) -> Burst:
    """Send ``sample`` once; measure the listener and a late entrant."""
    radios.ear.reset()
    radios.late_ear.reset()
    radios.listener.drain_events()
    radios.late.drain_events()
    frames = frames_of(sample)
    duration_s = len(frames) * FRAME_MS / 1000
    join_after = rng.uniform(0.3, max(0.4, duration_s - 1.0))
    late = asyncio.create_task(_late_entry(radios, channel_id, join_after))
    uplink = radios.proxies[0]
    bytes_before = uplink.stats()["up"].bytes_received
    result = await radios.transmitter.talk(MemoryInput(frames))
    wire_bytes = uplink.stats()["up"].bytes_received - bytes_before
    if result.outcome != "granted" or result.access_time_s is None:
        late.cancel()
        raise BenchError(f"the talker was not granted the floor: {result.outcome} {result.cause}")
    if len(result.sequences) != len(result.capture_times):
        raise BenchError("the Transmitter did not record a sequence number for every frame")
    ear = radios.ear
    last = result.sequences[-1]
    # The last frame is played, rebuilt or concealed within the jitter buffer's delay (200 ms
    # at most) - unless it never comes: the relay drops a holder's media that arrives after
    # its FloorRelease, which a delayed uplink makes happen to the last frames of a burst.
    await ear.wait_until(lambda: any(p.sequence == last for p in ear.played), timeout=1)
    late_entry = await late
    await asyncio.sleep(BURST_GAP_S)  # the pause before the next call; the tail plays out
    await radios.late.deaffiliate(channel_id)
    await radios.late.wait_for(control.Deaffiliated, timeout=5)
    first: dict[int, Played] = {}
    for frame in ear.played:
        first.setdefault(frame.sequence, frame)
    fates = {"play": 0, "repeat": 0, "fec": 0, "plc": 0, "missing": 0}
    mouth_to_ear = []
    for sequence, captured in zip(result.sequences, result.capture_times, strict=True):
        played = first.get(sequence)
        if played is None:
            fates["missing"] += 1
            continue
        fates[played.kind] += 1
        mouth_to_ear.append(played.at - captured)
    sent = set(result.sequences)
    extra = sum(1 for frame in ear.played if frame.sequence not in sent)
    nothing = np.zeros(0, np.int16)
    received = np.concatenate(ear.chunks) if ear.chunks else nothing
    # Tones are off, so the Player wrote exactly one chunk per Played.
    kept = [c for c, p in zip(ear.chunks, ear.played, strict=False) if p.sequence in sent]
    return Burst(
        sample,
        result.access_time_s,
        mouth_to_ear,
        fates,
        extra,
        late_entry,
        received,
        np.concatenate(kept) if kept else nothing,
        wire_bytes,
        duration_s,
    )


def _jitter_counters(player: Player, seen: set[Any], into: dict[str, float]) -> None:
    """Add the counters of every finished stream not counted yet."""
    for key in player.mixer.talkers():
        buffer = player.mixer.buffer(key)
        if key in seen or buffer is None or buffer.active:
            continue
        seen.add(key)
        for name in (
            "received",
            "late",
            "rescued",
            "recovered",
            "concealed",
            "skipped",
            "discarded",
        ):
            into[name] = into.get(name, 0) + getattr(buffer.stats, name)
        into["target_delay_ms_max"] = max(
            into.get("target_delay_ms_max", 0.0), buffer.stats.target_delay_ms
        )


async def run_condition(
    condition: Condition,
    bundles: dict[str, CredentialBundle],
    channel_id: int,
    ports: tuple[int, int],
    samples: Sequence[Path],
    repeats: int,
    seed: int,
    variant: str = "repeats",
) -> tuple[list[Burst], dict[str, Any]]:
    """Every burst of one condition, and the network and jitter-buffer counters."""
    rng = random.Random(f"{seed}:{condition.name}")
    bursts = []
    counters: dict[str, float] = {}
    seen: set[Any] = set()
    async with radios_for(condition, bundles, channel_id, ports, seed, variant) as radios:
        for _ in range(repeats):
            for sample in samples:
                bursts.append(await one_burst(radios, sample, channel_id, rng))
                _jitter_counters(radios.player, seen, counters)
        uplink = radios.proxies[0].stats()["up"]
        downlink = radios.proxies[1].stats()["down"]
        rejected = radios.player.rejected
        late_rejected = radios.late_player.rejected
        reception = radios.listener.reception
        redundancy = {
            "listener_frames_from_repeats": reception.rescued,
            "listener_duplicates_dropped": reception.duplicates,
            "talker_protection": radios.protection_log,
        }
    network = {
        "talker_uplink": condition.talker_uplink.describe(),
        "listener_downlink": condition.listener_downlink.describe(),
        "uplink_loss_measured_pct": loss_pct(uplink),
        "uplink_loss_run_measured": round(uplink.dropped / uplink.loss_runs, 2)
        if uplink.loss_runs
        else None,
        "uplink_reordered": uplink.reordered,
        "downlink_loss_measured_pct": loss_pct(downlink),
    }
    return bursts, {
        "network": network,
        "jitter_buffer": counters,
        "repeats": redundancy,
        "listener_rejected_frames": rejected,
        "late_entry_rejected_frames": late_rejected,
    }


async def measure_async(
    samples: Sequence[Path],
    repeats: int,
    seed: int,
    conditions: Sequence[Condition],
    variant: str = "repeats",
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-voice-") as tmp:
        authority = make_authority(Path(tmp) / "authority", Path(tmp) / "relay")
        # Its own process, as in production: the relay shares no event loop (or GIL)
        # with the radios being measured.
        async with relay_process(Path(tmp) / "relay", "server.log") as relay:
            bundles, channel_id = await make_org(authority, relay)
            ports = (relay.control_port, relay.media_port)
            raw = {
                c.name: await run_condition(
                    c, bundles, channel_id, ports, samples, repeats, seed, variant
                )
                for c in conditions
            }
    # Scoring is CPU-heavy: only once nothing is being timed any more.
    for name, (bursts, extra) in raw.items():
        results[name] = summarise(bursts, extra)
    return results


def measure(
    *, quick: bool = False, repeats: int | None = None, seed: int = 1, variant: str = "repeats"
) -> dict[str, Any]:
    """Run every condition and return the JSON object ``--json`` prints."""
    paths = sample_paths()
    samples = paths[:1] if quick else paths
    repeats = repeats if repeats is not None else (2 if quick else 3)
    started = time.monotonic()
    conditions = asyncio.run(measure_async(samples, repeats, seed, CONDITIONS, variant))
    goals = {}
    for goal in GOALS:
        value = conditions.get(goal.condition, {}).get(goal.key)
        goals[f"{goal.condition}.{goal.key}"] = {
            "goal": f"{'<=' if goal.at_most else '>='} {goal.limit:g}",
            "value": value,
            "met": goal.met(value),
        }
    return {
        "conditions": conditions,
        "goals": goals,
        "codec_only": codec_only(samples),
        "settings": {
            "samples": [p.name for p in samples],
            "repeats": repeats,
            "seed": seed,
            "variant": variant,
            "frame_ms": FRAME_MS,
            "bitrate": BITRATE,
            "relay": "ptt-server in its own process, 127.0.0.1",
            "duration_s": round(time.monotonic() - started, 1),
            "python": platform.python_version(),
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Run the bench and print the figures (one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.voice", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="one sample, two repeats")
    parser.add_argument("--repeats", type=int, help="bursts per sample and condition")
    parser.add_argument("--seed", type=int, default=1, help="network and timing seed")
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="repeats",
        help="loss protection to measure (bench/voice_variants.py); the radio uses repeats",
    )
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = measure(quick=args.quick, repeats=args.repeats, seed=args.seed, variant=args.variant)
    if args.json:
        print(json.dumps(result))
        return
    for name, figures in result["conditions"].items():
        print(
            f"{name:15} access p95 {figures['access_time_p95_ms']} ms, mouth-to-ear p95"
            f" {figures['mouth_to_ear_p95_ms']} ms, late entry p95"
            f" {figures['late_entry_p95_ms']} ms, PESQ-WB {figures['pesq_wb']},"
            f" STOI {figures['stoi']}"
        )
    for key, goal in result["goals"].items():
        print(f"goal {key} {goal['goal']}: {goal['value']} {'met' if goal['met'] else 'MISSED'}")
    codec = result["codec_only"]
    print(f"codec alone: PESQ-WB {codec['pesq_wb']}, STOI {codec['stoi']}")


if __name__ == "__main__":
    main()
