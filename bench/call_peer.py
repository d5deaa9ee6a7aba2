"""The callee of ``bench.calls``, in its own process so its CPU is its own:
``python -m bench.call_peer BUNDLE SPEAK_WAV OUT_DIR``.

A real radio (:class:`ptt_client.client.RadioClient`) that answers every private call at
once, speaks ``SPEAK_WAV`` into it, and records what it hears with the monotonic time of
every write (``OUT_DIR/<call id>.npz``: ``pcm``, ``times``, ``offsets``). It prints one JSON
line when it is logged in (``{"ready": true}``) and one per ended call (its id, the process
CPU seconds and wall seconds between connected and ended, the first frame's time), and
exits when its stdin closes. Host candidates are 127.0.0.1 only: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ptt_client import events
from ptt_client.audio import AudioOutput, WavFileInput
from ptt_client.bundle_file import read_bundle_file
from ptt_client.calls.ice import ICE_HOSTS_ENV
from ptt_client.calls.manager import Call
from ptt_client.client import RadioClient
from ptt_client.codec import Pcm


def loopback_only() -> None:
    """Calls offer 127.0.0.1 only (the radio's own ``FIELDRADIO_ICE_HOSTS`` setting), here and
    in the processes started from here: nothing leaves the machine."""
    os.environ[ICE_HOSTS_ENV] = "127.0.0.1"


class TimedRecording(AudioOutput):
    """Every write, with its ``time.monotonic()`` and its offset in the stream."""

    def __init__(self) -> None:
        self.chunks: list[Pcm] = []
        self.times: list[float] = []
        self.offsets: list[int] = []
        self._samples = 0

    def write(self, pcm: Pcm) -> None:
        self.times.append(time.monotonic())
        self.offsets.append(self._samples)
        self.chunks.append(pcm.copy())
        self._samples += len(pcm)

    def save(self, path: Path) -> None:
        pcm = np.concatenate([np.zeros(0, np.int16), *self.chunks])
        np.savez(path, pcm=pcm, times=np.array(self.times), offsets=np.array(self.offsets))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(bundle_path: Path, speak: Path, out_dir: Path) -> None:
    loopback_only()
    bundle = read_bundle_file(bundle_path)
    radio = RadioClient(bundle, bundle.open_keys(None))
    recordings: dict[bytes, TimedRecording] = {}
    started: dict[bytes, tuple[float, float]] = {}

    def audio(call: Call) -> tuple[WavFileInput, TimedRecording]:
        recordings[call.call_id] = TimedRecording()
        return WavFileInput(speak), recordings[call.call_id]

    def on_event(event: object) -> None:
        if isinstance(event, events.CallConnected):
            started[event.call_id] = (cpu_seconds(), time.monotonic())
        elif isinstance(event, events.CallEnded) and event.call_id in recordings:
            cpu0, wall0 = started.pop(event.call_id, (cpu_seconds(), time.monotonic()))
            recording = recordings.pop(event.call_id)
            recording.save(out_dir / f"{event.call_id.hex()}.npz")
            line = {
                "call_id": event.call_id.hex(),
                "cpu_s": cpu_seconds() - cpu0,
                "call_s": time.monotonic() - wall0,
                "first_frame_at": recording.times[0] if recording.times else None,
                "reason": event.reason,
            }
            print(json.dumps(line), flush=True)

    radio.calls.audio = audio
    radio.calls.relay_only = "--relay-only" in sys.argv
    radio.add_listener(on_event)
    await radio.start()
    await radio.wait_connected(15)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin
    await radio.stop()


def main() -> None:
    bundle, speak, out_dir = (Path(arg) for arg in sys.argv[1:4])
    asyncio.run(run(bundle, speak, out_dir))


if __name__ == "__main__":
    main()
