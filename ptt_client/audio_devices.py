"""Sound devices through PyAudio (PortAudio): listing, picking and the blocking streams,
read and written in a thread so the event loop never waits on the sound card.

The device-free sources and sinks (WAV files, null devices) are in :mod:`ptt_client.audio`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from ptt_client.audio import AudioDeviceError, AudioError, AudioInput, AudioOutput, _check_pcm
from ptt_client.codec import SAMPLE_RATE, Pcm, frame_samples

DeviceKind = Literal["input", "output"]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr while PortAudio probes ALSA/JACK.

    Probing prints dozens of lines about absent cards and JACK servers straight to file
    descriptor 2, which would garble a terminal UI; they carry nothing we report.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _open_pyaudio() -> Any:
    try:
        import pyaudio  # only device users need PortAudio loaded
    except ImportError as exc:  # pragma: no cover - pyaudio is a declared dependency
        raise AudioDeviceError(
            "PyAudio is not installed: `pip install pyaudio` (needs portaudio19-dev)"
        ) from exc
    with _quiet_stderr():
        return pyaudio.PyAudio()


def _devices(pa: Any) -> list[dict[str, Any]]:
    return [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]


def _describe(info: dict[str, Any]) -> str:
    return (
        f"{info['index']}: {info['name']} "
        f"({info['maxInputChannels']} in, {info['maxOutputChannels']} out)"
    )


def list_devices(kind: DeviceKind | None = None) -> list[str]:
    """Describe the sound devices, e.g. ``"3: USB Audio (1 in, 2 out)"``.

    ``kind`` keeps only devices that can record (``"input"``) or play (``"output"``).
    An empty list means PortAudio sees no device of that kind.
    """
    pa = _open_pyaudio()
    try:
        return [_describe(info) for info in _devices(pa) if _can(info, kind)]
    finally:
        pa.terminate()


def devices_present() -> tuple[bool, bool]:
    """Whether PortAudio sees a device that can record, and one that can play.

    Raises :class:`AudioDeviceError` when PyAudio is not installed.
    """
    pa = _open_pyaudio()
    try:
        devices = _devices(pa)
    finally:
        pa.terminate()
    return any(_can(i, "input") for i in devices), any(_can(i, "output") for i in devices)


def _can(info: dict[str, Any], kind: DeviceKind | None) -> bool:
    if kind == "input":
        return int(info["maxInputChannels"]) > 0
    if kind == "output":
        return int(info["maxOutputChannels"]) > 0
    return True


def _pick_device(pa: Any, device: str | int | None, kind: DeviceKind) -> dict[str, Any]:
    """Find the device by index, by case-insensitive name substring, or the default one."""
    usable = [info for info in _devices(pa) if _can(info, kind)]
    flag = "--input-device" if kind == "input" else "--output-device"
    if not usable:
        raise AudioDeviceError(
            f"no audio {kind} device found (PortAudio sees none): connect a sound card, or "
            f"use WAV files instead of a device"
        )
    available = "; ".join(_describe(info) for info in usable)
    if device is None:
        try:
            with _quiet_stderr():
                info = (
                    pa.get_default_input_device_info()
                    if kind == "input"
                    else pa.get_default_output_device_info()
                )
        except OSError:
            info = usable[0]
        return dict(info)
    if isinstance(device, int):
        matches = [info for info in usable if info["index"] == device]
    else:
        matches = [info for info in usable if device.lower() in str(info["name"]).lower()]
    if not matches:
        raise AudioDeviceError(
            f"no audio {kind} device matches {device!r}; pick one with {flag} from: {available}"
        )
    return matches[0]


class _DeviceStream:
    """A PortAudio stream at 48 kHz mono 16-bit on a chosen device."""

    def __init__(self, device: str | int | None, kind: DeviceKind, frame_ms: int) -> None:
        self.frame_samples = frame_samples(frame_ms)
        self._pa = _open_pyaudio()
        try:
            info = _pick_device(self._pa, device, kind)
            self.device_name = str(info["name"])
            with _quiet_stderr():
                self._stream = self._pa.open(
                    format=8,  # paInt16
                    channels=1,
                    rate=SAMPLE_RATE,
                    input=kind == "input",
                    output=kind == "output",
                    input_device_index=info["index"] if kind == "input" else None,
                    output_device_index=info["index"] if kind == "output" else None,
                    frames_per_buffer=self.frame_samples,
                )
        except OSError as exc:
            self._pa.terminate()
            raise AudioDeviceError(
                f"audio {kind} device {device!r} refused 48 kHz mono 16-bit ({exc}): "
                f"pick another one (see list_devices())"
            ) from exc
        except BaseException:
            self._pa.terminate()
            raise
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.stop_stream()
            self._stream.close()
            self._pa.terminate()


class DeviceInput(AudioInput):
    """Records 48 kHz mono frames from a sound device (blocking reads).

    ``device``: index, name substring (case-insensitive) or ``None`` for the default input.
    """

    blocking = True

    def __init__(self, device: str | int | None = None, frame_ms: int = 20) -> None:
        self._dev = _DeviceStream(device, "input", frame_ms)
        self.frame_samples = self._dev.frame_samples
        self.device_name = self._dev.device_name

    def read_frame(self) -> Pcm | None:
        """Block until the next frame is recorded; ``None`` after :meth:`close`."""
        if self._dev._closed:
            return None
        # An overflow means we read too late; losing those samples beats stopping the radio.
        raw = self._dev._stream.read(self.frame_samples, exception_on_overflow=False)
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)

    def close(self) -> None:
        """Stop recording and release the device."""
        self._dev.close()


class DeviceOutput(AudioOutput):
    """Plays 48 kHz mono audio on a sound device (blocking writes).

    ``device``: index, name substring (case-insensitive) or ``None`` for the default output.
    """

    blocking = True

    def __init__(self, device: str | int | None = None, frame_ms: int = 20) -> None:
        self._dev = _DeviceStream(device, "output", frame_ms)
        self.device_name = self._dev.device_name

    def write(self, pcm: Pcm) -> None:
        """Queue ``pcm`` for playback, blocking while the device buffer is full."""
        pcm = _check_pcm(pcm)
        if self._dev._closed:
            raise AudioError(f"output device {self.device_name!r} is closed")
        self._dev._stream.write(pcm.astype("<i2", copy=False).tobytes())

    def close(self) -> None:
        """Stop playback and release the device."""
        self._dev.close()
