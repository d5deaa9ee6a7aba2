"""Where voice comes from and goes to: WAV files, directories of bursts, sound devices, nothing.

Every backend speaks the codec's format: 48 kHz mono ``int16`` numpy arrays (:data:`Pcm`) in
frames of ``frame_ms`` (20 ms = 960 samples by default).

- :class:`AudioInput` - ``read_frame() -> Pcm | None`` (``None``: no more audio).
  :class:`WavFileInput` (any rate, any channel count, 8/16/24/32-bit PCM; resampled by
  libsoxr through :class:`StreamResampler` and mixed down), :class:`NullInput`; sound devices are in :mod:`ptt_client.audio_devices`.
- :class:`AudioOutput` - ``write(pcm)``. :class:`WavFileOutput`, :class:`WavDirectoryOutput`
  (one file per talk burst), :class:`NullOutput`.
- :func:`load_wav` reads a whole
  file at 48 kHz mono.

Errors: :class:`AudioError`, with :class:`AudioFormatError` for files we cannot read or bad PCM
arguments and :class:`AudioDeviceError` for missing or unusable sound devices.
"""

from __future__ import annotations

import os
import wave
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar, Final, Self

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # python-soxr ships no type information

from ptt_client.codec import SAMPLE_RATE, Pcm, frame_samples

__all__ = [
    "AudioDeviceError",
    "AudioError",
    "AudioFormatError",
    "AudioInput",
    "AudioOutput",
    "NullInput",
    "NullOutput",
    "StreamResampler",
    "WavDirectoryOutput",
    "WavFileInput",
    "WavFileOutput",
    "load_wav",
]

_READ_BLOCK: Final = 8_192
"""Input frames read from a WAV file at a time (bounded memory for long files)."""
_MAX_INPUT_RATE: Final = 768_000


class AudioError(Exception):
    """An audio source or sink could not be used; the message says what to do."""


class AudioFormatError(AudioError, ValueError):
    """A WAV file or a PCM argument is not in a format we handle."""


class AudioDeviceError(AudioError):
    """No sound device matches, or the device refused the stream."""


def _check_pcm(pcm: object) -> Pcm:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
        raise AudioFormatError("audio outputs take a 1-D numpy int16 array of 48 kHz mono")
    return pcm


class AudioInput(ABC):
    """A source of 48 kHz mono frames of ``frame_samples`` samples each."""

    frame_samples: int
    blocking: ClassVar[bool] = False
    """True when a read waits for the hardware: callers on an event loop read in a thread."""

    @abstractmethod
    def read_frame(self) -> Pcm | None:
        """Return the next frame, or ``None`` once the source has no more audio."""

    def close(self) -> None:  # noqa: B027 - sources without resources need not override it
        """Release the source; further reads return ``None`` or fail."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AudioOutput(ABC):
    """A sink for 48 kHz mono ``int16`` samples (any number per call)."""

    blocking: ClassVar[bool] = False
    """True when a write waits for the hardware: callers on an event loop write in a thread."""

    @abstractmethod
    def write(self, pcm: Pcm) -> None:
        """Play or store ``pcm``."""

    def close(self) -> None:  # noqa: B027 - sinks without resources need not override it
        """Flush and release the sink."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Resampling


class StreamResampler:
    """Band-limited sample-rate conversion of a stream, chunk by chunk: libsoxr, thinly wrapped.

    python-soxr's ``ResampleStream`` at quality ``HQ``, float64 in and out. Measured by
    ``python -m bench.resample`` from 8-96 kHz to 48 kHz: within 0.004 dB up to 85 % of the
    lower Nyquist frequency and within 0.1 dB up to 93 %, images and aliases at -130 dB or
    less, linear phase, no group delay; the hand-written windowed sinc it replaced lost 1.9 dB
    at 85 % and left images at -75 dB. The wrapper only pins that configuration, gives it types
    (python-soxr has none), turns bad rates into :class:`AudioFormatError` and refuses input
    after :meth:`flush`.

    libsoxr holds output back until its filter and internal blocks fill: fed 20 ms chunks, up
    to ~170 ms at 8 kHz and 20-40 ms at 16-96 kHz. :class:`WavFileInput` converts 8192-frame
    reads of a file that is all there, so that output comes out of the same read and its first
    frame waits only for the computation (well under 1 ms). A live 20 ms stream would wait the
    full hold-back: measure before using this on one.
    """

    QUALITY: ClassVar[str] = "HQ"

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise AudioFormatError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self._stream = soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float64", quality=self.QUALITY
        )
        self._ended = False

    def process(self, samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Feed input samples (floats); returns the output samples that are now complete."""
        if self._ended:
            raise AudioError("this stream was flushed: start a new StreamResampler")
        return self._run(samples, last=False)

    def flush(self) -> npt.NDArray[np.float64]:
        """End the stream: returns the rest. The whole output lasts ``in_samples * out_rate /
        in_rate`` samples rounded to the nearest (libsoxr's rule). A second flush returns
        nothing."""
        if self._ended:
            return np.zeros(0, dtype=np.float64)
        self._ended = True
        return self._run(np.zeros(0, dtype=np.float64), last=True)

    def _run(self, samples: npt.NDArray[np.float64], last: bool) -> npt.NDArray[np.float64]:
        chunk = np.ascontiguousarray(samples, dtype=np.float64).reshape(-1)
        out: npt.NDArray[np.float64] = self._stream.resample_chunk(chunk, last=last)
        return out


# --------------------------------------------------------------------------------------------
# WAV files


def _to_float(raw: bytes, width: int, channels: int) -> npt.NDArray[np.float64]:
    """Interleaved PCM bytes -> mono floats in [-1, 1) (channels averaged)."""
    if width == 1:  # 8-bit WAV is unsigned
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        data = v.astype(np.float64) / float(1 << 23)
    else:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    frames = data[: len(data) - len(data) % channels].reshape(-1, channels)
    mono: npt.NDArray[np.float64] = frames.mean(axis=1)
    return mono


def _to_int16(samples: npt.NDArray[np.float64]) -> Pcm:
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


class WavFileInput(AudioInput):
    """Reads a PCM WAV file (any rate and channel count) as 48 kHz mono frames.

    The last frame is padded with silence; after it :meth:`read_frame` returns ``None``.
    Files already at 48 kHz mono 16-bit pass through bit-exact.
    """

    def __init__(self, path: str | os.PathLike[str], frame_ms: int = 20) -> None:
        self.path = Path(path)
        self.frame_samples = frame_samples(frame_ms)
        try:
            self._wav = wave.open(str(self.path), "rb")
        except FileNotFoundError as exc:
            raise AudioFormatError(f"{self.path}: no such file") from exc
        except (wave.Error, EOFError) as exc:
            raise AudioFormatError(
                f"{self.path} is not a PCM WAV file we can read ({exc}): convert it with "
                f"`sox {self.path} -b 16 out.wav`"
            ) from exc
        self.channels = self._wav.getnchannels()
        self.sample_rate = self._wav.getframerate()
        self._width = self._wav.getsampwidth()
        if (
            not 1 <= self._width <= 4
            or self.channels < 1
            or not 0 < self.sample_rate <= _MAX_INPUT_RATE
        ):
            self._wav.close()
            raise AudioFormatError(
                f"{self.path}: {self._width * 8}-bit, {self.channels} channel(s) at "
                f"{self.sample_rate} Hz is not supported: use 8/16/24/32-bit PCM up to "
                f"{_MAX_INPUT_RATE} Hz"
            )
        self.input_frames = self._wav.getnframes()
        self._resampler = (
            None
            if self.sample_rate == SAMPLE_RATE
            else StreamResampler(self.sample_rate, SAMPLE_RATE)
        )
        self._pending = np.zeros(0, dtype=np.int16)
        self._eof = False
        self._closed = False

    @property
    def duration_s(self) -> float:
        """Length of the file's audio in seconds (before padding the last frame)."""
        return self.input_frames / self.sample_rate

    def _fill(self) -> None:
        raw = self._wav.readframes(_READ_BLOCK)
        if not raw:
            self._eof = True
            tail = self._resampler.flush() if self._resampler is not None else None
            if tail is not None and len(tail):
                self._pending = np.concatenate([self._pending, _to_int16(tail)])
            return
        if self._resampler is None and self._width == 2 and self.channels == 1:
            pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
        else:
            mono = _to_float(raw, self._width, self.channels)
            out = mono if self._resampler is None else self._resampler.process(mono)
            pcm = _to_int16(out)
        self._pending = np.concatenate([self._pending, pcm])

    def read_frame(self) -> Pcm | None:
        """Return the next 48 kHz mono frame, or ``None`` after the last one."""
        if self._closed:
            return None
        while len(self._pending) < self.frame_samples and not self._eof:
            self._fill()
        if len(self._pending) == 0:
            return None
        frame = self._pending[: self.frame_samples]
        self._pending = self._pending[self.frame_samples :]
        if len(frame) < self.frame_samples:
            frame = np.concatenate([frame, np.zeros(self.frame_samples - len(frame), np.int16)])
        return frame

    def frames(self) -> Iterator[Pcm]:
        """Iterate over the remaining frames."""
        while (frame := self.read_frame()) is not None:
            yield frame

    def close(self) -> None:
        """Close the file."""
        if not self._closed:
            self._closed = True
            self._wav.close()


def load_wav(path: str | os.PathLike[str]) -> Pcm:
    """Read a whole WAV file as 48 kHz mono, as long as the file to the nearest sample (no frame
    padding)."""
    with WavFileInput(path) as source:
        # input_frames * 48000 / rate, rounded half up: what StreamResampler emits.
        expected = (2 * source.input_frames * SAMPLE_RATE + source.sample_rate) // (
            2 * source.sample_rate
        )
        pcm = np.concatenate([np.zeros(0, np.int16), *source.frames()])
    return pcm[:expected]


class WavFileOutput(AudioOutput):
    """Writes everything to one 48 kHz mono 16-bit WAV file (finalised by :meth:`close`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            # Open the file ourselves: wave.open(name) leaks a half-built writer on failure.
            self._file: BinaryIO | None = open(self.path, "wb")
        except OSError as exc:
            raise AudioError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._wav = wave.open(self._file, "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self.samples_written = 0

    def write(self, pcm: Pcm) -> None:
        """Append ``pcm`` to the file."""
        pcm = _check_pcm(pcm)
        if self._file is None:
            raise AudioError(f"{self.path} is already closed: open a new WavFileOutput")
        self._wav.writeframes(pcm.astype("<i2", copy=False).tobytes())
        self.samples_written += len(pcm)

    def close(self) -> None:
        """Finish the WAV header and close the file."""
        if self._file is not None:
            self._wav.close()
            self._file.close()
            self._file = None


class WavDirectoryOutput(AudioOutput):
    """Writes each talk burst to its own WAV file in ``directory``.

    ``start_burst(name)`` opens ``directory/name`` (``.wav`` added when missing), ``write``
    appends to it, ``end_burst()`` closes it and returns its path. Writes between bursts
    (e.g. tones) go nowhere. A file already there is never overwritten: the new burst gets
    ``name-2.wav``, ``name-3.wav``...
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc
        self.paths: list[Path] = []
        self._current: WavFileOutput | None = None

    @property
    def in_burst(self) -> bool:
        """Whether a burst file is open."""
        return self._current is not None

    def start_burst(self, name: str) -> Path:
        """Open the file for a new burst; ``name`` must be a plain file name."""
        if self._current is not None:
            raise AudioError(
                f"burst {self._current.path.name} is still open: call end_burst() first"
            )
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise AudioFormatError(f"burst name {name!r} must be a plain file name")
        stem = name.removesuffix(".wav")
        path = self.directory / f"{stem}.wav"
        copy = 1
        while path.exists():  # a recording is evidence: another burst never replaces it
            copy += 1
            path = self.directory / f"{stem}-{copy}.wav"
        self._current = WavFileOutput(path)
        return self._current.path

    def write(self, pcm: Pcm) -> None:
        """Append to the open burst's file; dropped when no burst is open."""
        pcm = _check_pcm(pcm)
        if self._current is not None:
            self._current.write(pcm)

    def end_burst(self) -> Path | None:
        """Close the open burst's file and return its path (``None`` if no burst was open)."""
        current, self._current = self._current, None
        if current is None:
            return None
        current.close()
        self.paths.append(current.path)
        return current.path

    def close(self) -> None:
        """End any open burst."""
        self.end_burst()


class NullInput(AudioInput):
    """A microphone that hears silence: ``frames`` silent frames, then ``None``."""

    def __init__(self, frames: int = 0, frame_ms: int = 20) -> None:
        self.frame_samples = frame_samples(frame_ms)
        self._left = frames

    def read_frame(self) -> Pcm | None:
        """Return a silent frame while any are left, then ``None``."""
        if self._left <= 0:
            return None
        self._left -= 1
        return np.zeros(self.frame_samples, dtype=np.int16)


class NullOutput(AudioOutput):
    """A speaker that discards audio but counts it (for headless runs and tests)."""

    def __init__(self) -> None:
        self.samples_written = 0

    def write(self, pcm: Pcm) -> None:
        """Check and discard ``pcm``."""
        self.samples_written += len(_check_pcm(pcm))
