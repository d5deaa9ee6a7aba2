"""Private calls end to end, WAV in to WAV out: ``python -m bench.calls [--json] [--quick]``.

What runs: a real organisation (made as ``ptt-admin`` makes it, over the control plane), a
real ``ptt-server`` in its own process on 127.0.0.1 with a real ``coturn`` configured as its
TURN server, the caller (:class:`ptt_client.client.RadioClient`) in this process and the callee
(:mod:`bench.call_peer`) in its own, both speaking the committed speech samples into real
aiortc calls (full duplex, automatic commencement) and recording what they hear. ICE host
candidates are 127.0.0.1 only.

Figures (issue 13), percentiles over the calls:

- ``setup_p95_ms``: dial (``calls.dial``) to the first audio frame played at the callee, direct
  path (host candidates).
- ``setup_relay_p95_ms``: the same with both radios keeping to TURN relay candidates.
- ``mouth_to_ear_p95_ms``: a frame read from the caller's WAV input to the moment the callee
  wrote it to its output (matched by cross-correlation of the two streams; every frame of
  every direct call). Sound-device buffers are excluded.
- ``pesq_wb`` (ITU-T P.862.2, mean over direct calls) of the callee's received speech
  against the caller's, aligned, at 16 kHz (``stoi`` too).
- ``cpu_ms_per_call_s``: the callee process's CPU (every thread: asyncio, SRTP, Opus, aiortc)
  per second of connected call, mean over direct calls; ``caller_cpu_ms_per_call_s`` the same
  for the caller's process (which also runs this bench's bookkeeping).

Goals (:data:`GOALS`): setup p95 <= 500 ms direct and <= 800 ms through TURN, mouth-to-ear p95
<= 150 ms, PESQ-WB >= 3.5, at most 100 ms of CPU per call-second (10 % of a core).
Default: 10 calls each way per path; ``--quick``: 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import platform
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.call_peer import TimedRecording, loopback_only
from bench.processes import REPOSITORY, BenchError, RelayProcess, relay_process
from bench.speech_quality import align, speech_quality
from bench.turn import Coturn
from bench.voice import Goal, make_authority
from bench.voice_figures import mean
from crypto.bundle import CredentialBundle
from crypto.identity import Role
from ptt_admin import people
from ptt_admin.authority import Authority, Relay, pin_relay
from ptt_admin.session import connect
from ptt_client import events
from ptt_client.audio import AudioInput, WavFileInput, load_wav
from ptt_client.calls.manager import Call
from ptt_client.client import RadioClient
from ptt_client.codec import SAMPLE_RATE, Pcm
from ptt_client.samples import sample_paths

CALLER, CALLEE = "caller", "callee"
FRAME: Final = SAMPLE_RATE // 50
MAX_LAG_S: Final = 1.0


GOALS: Final = (
    Goal("", "setup_p95_ms", 500.0, True),
    Goal("", "setup_relay_p95_ms", 800.0, True),
    Goal("", "mouth_to_ear_p95_ms", 150.0, True),
    Goal("", "pesq_wb", 3.5, False),
    Goal("", "cpu_ms_per_call_s", 100.0, True),
)
"""Issue 13's goals (one condition: the machine's loopback)."""


class TimedInput(AudioInput):
    """A WAV file, with the ``time.monotonic()`` at which each 20 ms frame was read."""

    def __init__(self, path: Path) -> None:
        self._wav = WavFileInput(path)
        self.frame_samples = self._wav.frame_samples
        self.read_at: list[float] = []

    def read_frame(self) -> Pcm | None:
        frame = self._wav.read_frame()
        if frame is not None:
            self.read_at.append(time.monotonic())
        return frame

    def close(self) -> None:
        self._wav.close()


@dataclass
class CallFigures:
    setup_ms: float | None
    mouth_to_ear_ms: list[float]
    pesq_wb: float | None
    stoi: float | None
    callee_cpu_ms_per_s: float | None
    caller_cpu_ms_per_s: float | None
    relayed: bool


def mouth_to_ear(
    reference: Pcm,
    read_at: Sequence[float],
    received: Pcm,
    times: Sequence[float],
    offsets: Sequence[int],
) -> list[float]:
    """Per frame of ``reference`` read at ``read_at[k]``: when its first sample was played."""
    if len(received) == 0 or not read_at:
        return []
    lag, _ = align(reference, received, int(MAX_LAG_S * SAMPLE_RATE))
    delays = []
    starts = np.asarray(offsets)
    for k, read in enumerate(read_at):
        sample = lag + k * FRAME
        if sample < 0 or sample >= len(received):
            continue
        chunk = int(np.searchsorted(starts, sample, side="right")) - 1
        played = times[chunk] + (sample - starts[chunk]) / SAMPLE_RATE
        delays.append((played - read) * 1000.0)
    return delays


def percentile(values: Sequence[float], pct: float) -> float | None:
    return round(float(np.percentile(values, pct)), 1) if values else None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the organisation, the relay, the callee ---------------------------------------------------


async def make_org(authority: Authority, relay: RelayProcess) -> dict[str, CredentialBundle]:
    pinned = Relay(f"wss://127.0.0.1:{relay.control_port}", relay.fingerprint)
    pin_relay(authority.files.directory, pinned)
    bundles = {}
    async with connect(dataclasses.replace(authority, relay=pinned)) as session:
        for user in (CALLER, CALLEE):
            enrolled = await people.enroll(
                session, user, role=Role.OFFICER, display_name=user.title(), now=time.time()
            )
            bundles[user] = enrolled.bundle
    return bundles


class Callee:
    """The :mod:`bench.call_peer` process: one JSON line per ended call."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.process.stdout.readline()
        if not raw:
            raise BenchError("the callee process exited: see callee.log")
        result: dict[str, Any] = json.loads(raw)
        return result


@contextlib.asynccontextmanager
async def callee_process(
    bundle: Path, speak: Path, out_dir: Path, log: Path, relay_only: bool
) -> AsyncIterator[Callee]:
    with log.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.call_peer",
            str(bundle),
            str(speak),
            str(out_dir),
            *(["--relay-only"] if relay_only else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=REPOSITORY,
        )
        callee = Callee(process)
        try:
            ready = await callee.line()
            if not ready.get("ready"):
                raise BenchError(f"the callee said {ready}")
            yield callee
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


# --- one call ---------------------------------------------------------------------------------


async def one_call(caller: RadioClient, callee: Callee, sample: Path, out_dir: Path) -> CallFigures:
    source = TimedInput(sample)
    heard = TimedRecording()

    def audio(call: Call) -> tuple[TimedInput, TimedRecording]:
        return source, heard

    caller.calls.audio = audio
    caller.drain_events()
    dialled = time.monotonic()
    call = await caller.calls.dial(CALLEE)
    connected = await caller.wait_for(events.CallConnected, timeout=20)
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    reference = load_wav(sample)
    # The whole sample is said, and its tail played out, before the caller hangs up.
    await asyncio.sleep(len(reference) / SAMPLE_RATE + 0.5)
    caller_cpu = (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
    await caller.calls.hangup()
    report = await callee.line()
    if report["call_id"] != call.call_id.hex():
        raise BenchError(f"the callee reported another call: {report}")
    recording = np.load(out_dir / f"{report['call_id']}.npz")
    received = recording["pcm"]
    delays = mouth_to_ear(
        reference, source.read_at, received, recording["times"], recording["offsets"]
    )
    pesq, stoi = speech_quality(reference, received) if len(received) else (None, None)
    first = report["first_frame_at"]
    return CallFigures(
        setup_ms=None if first is None else (first - dialled) * 1000.0,
        mouth_to_ear_ms=delays,
        pesq_wb=pesq,
        stoi=stoi,
        callee_cpu_ms_per_s=1000.0 * report["cpu_s"] / report["call_s"]
        if report["call_s"]
        else None,
        caller_cpu_ms_per_s=1000.0 * caller_cpu,
        relayed=connected.relayed,
    )


async def run_path(
    bundles: dict[str, CredentialBundle],
    url: str,
    tmp: Path,
    samples: Sequence[Path],
    calls: int,
    relay_only: bool,
) -> list[CallFigures]:
    name = "relay" if relay_only else "direct"
    out_dir = tmp / f"heard-{name}"
    out_dir.mkdir()
    bundle_file = tmp / f"{CALLEE}.bundle"
    bundle_file.write_bytes(bundles[CALLEE].to_bytes())
    figures = []
    async with callee_process(
        bundle_file, samples[0], out_dir, tmp / f"callee-{name}.log", relay_only
    ) as callee:
        caller = RadioClient(bundles[CALLER], bundles[CALLER].open_keys(None), server_url=url)
        caller.calls.relay_only = relay_only
        await caller.start()
        try:
            await caller.wait_connected(15)
            for n in range(calls):
                figures.append(await one_call(caller, callee, samples[n % len(samples)], out_dir))
                if relay_only and not figures[-1].relayed:
                    raise BenchError("a relay-only call did not go through TURN")
        finally:
            await caller.stop()
    return figures


async def measure_async(samples: Sequence[Path], calls: int) -> dict[str, list[CallFigures]]:
    loopback_only()
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as name, Coturn(user_quota=64) as turn:
        tmp = Path(name)
        authority = make_authority(tmp / "authority", tmp / "relay")
        config = tmp / "server.toml"
        config.write_text(f'[server]\nturn_urls = ["{turn.url}"]\nturn_secret = "{turn.secret}"\n')
        async with relay_process(
            tmp / "relay", "server.log", extra_args=["--config", str(config)]
        ) as relay:
            bundles = await make_org(authority, relay)
            url = f"wss://127.0.0.1:{relay.control_port}"
            return {
                "direct": await run_path(bundles, url, tmp, samples, calls, relay_only=False),
                "relay": await run_path(bundles, url, tmp, samples, calls, relay_only=True),
            }


def summarise(paths: dict[str, list[CallFigures]]) -> dict[str, Any]:
    direct, relay = paths["direct"], paths["relay"]

    return {
        "setup_p95_ms": percentile([c.setup_ms for c in direct if c.setup_ms is not None], 95),
        "setup_relay_p95_ms": percentile([c.setup_ms for c in relay if c.setup_ms is not None], 95),
        "setup_median_ms": percentile([c.setup_ms for c in direct if c.setup_ms is not None], 50),
        "setup_relay_median_ms": percentile(
            [c.setup_ms for c in relay if c.setup_ms is not None], 50
        ),
        "mouth_to_ear_p95_ms": percentile([d for c in direct for d in c.mouth_to_ear_ms], 95),
        "mouth_to_ear_p50_ms": percentile([d for c in direct for d in c.mouth_to_ear_ms], 50),
        "mouth_to_ear_relay_p95_ms": percentile([d for c in relay for d in c.mouth_to_ear_ms], 95),
        "pesq_wb": mean([c.pesq_wb for c in direct]),
        "stoi": mean([c.stoi for c in direct]),
        "pesq_wb_relay": mean([c.pesq_wb for c in relay]),
        "cpu_ms_per_call_s": mean([c.callee_cpu_ms_per_s for c in direct]),
        "caller_cpu_ms_per_call_s": mean([c.caller_cpu_ms_per_s for c in direct]),
        "calls": {"direct": len(direct), "relay": len(relay)},
    }


def measure(*, quick: bool = False, calls: int | None = None) -> dict[str, Any]:
    """Place the calls and return the JSON object ``--json`` prints."""
    samples = sample_paths()
    count = calls if calls is not None else (3 if quick else 10)
    started = time.monotonic()
    figures = summarise(asyncio.run(measure_async(samples, count)))
    goals = {
        goal.key: {
            "goal": f"{'<=' if goal.at_most else '>='} {goal.limit:g}",
            "value": figures[goal.key],
            "met": goal.met(figures[goal.key]),
        }
        for goal in GOALS
    }
    return {
        **figures,
        "goals": goals,
        "settings": {
            "samples": [p.name for p in samples],
            "calls_per_path": count,
            "relay": "ptt-server in its own process, coturn, 127.0.0.1",
            "callee": "bench.call_peer in its own process",
            "duration_s": round(time.monotonic() - started, 1),
            "python": platform.python_version(),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.calls", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="three calls per path")
    parser.add_argument("--calls", type=int, help="calls per path (direct, through TURN)")
    args = parser.parse_args(argv)
    if args.calls is not None and args.calls < 1:
        parser.error("--calls must be at least 1")
    result = measure(quick=args.quick, calls=args.calls)
    if args.json:
        print(json.dumps(result))
        return
    for key, goal in result["goals"].items():
        print(f"{key} {goal['goal']}: {goal['value']} {'met' if goal['met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
