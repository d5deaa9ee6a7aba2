"""Audio backends: WAV conversion to 48 kHz mono, burst files, null and device backends."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soxr  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client.audio import (
    AudioDeviceError,
    AudioError,
    AudioFormatError,
    NullInput,
    NullOutput,
    StreamResampler,
    WavDirectoryOutput,
    WavFileInput,
    WavFileOutput,
    load_wav,
)
from ptt_client.audio_devices import DeviceInput, DeviceKind, DeviceOutput, list_devices
from ptt_client.samples import sample_paths

RATE = 48_000
FRAME = 960


def write_wav(
    path: Path, rate: int, channels: list[npt.NDArray[np.float64]], width: int = 2
) -> Path:
    """Write float channels in [-1, 1) as a PCM WAV with ``width`` bytes per sample."""
    data = np.stack(channels, axis=1).reshape(-1)  # interleave
    if width == 1:
        raw = (np.clip(np.rint(data * 128 + 128), 0, 255)).astype(np.uint8).tobytes()
    elif width == 2:
        raw = np.clip(np.rint(data * 32768), -32768, 32767).astype("<i2").tobytes()
    elif width == 3:
        v = np.clip(np.rint(data * 2**23), -(2**23), 2**23 - 1).astype("<i4")
        raw = v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = np.clip(np.rint(data * 2**31), -(2**31), 2**31 - 1).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def tone(freq: float, rate: int, seconds: float, level: float = 0.5) -> npt.NDArray[np.float64]:
    return level * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def spectrum(pcm: npt.NDArray[np.generic], rate: int = RATE) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pcm, dtype=np.float64)
    mags = np.abs(np.fft.rfft(x * np.blackman(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate), mags


def peak_frequencies(pcm: npt.NDArray[np.generic], count: int, rate: int = RATE) -> list[float]:
    """The ``count`` strongest spectral peaks (local maxima), strongest first."""
    freqs, mags = spectrum(pcm, rate)
    local = np.flatnonzero((mags[1:-1] > mags[:-2]) & (mags[1:-1] >= mags[2:])) + 1
    best = local[np.argsort(mags[local])[::-1][:count]]
    return [float(freqs[i]) for i in best]


def band_level_db(pcm: npt.NDArray[np.generic], low: float, high: float) -> float:
    """Energy between ``low`` and ``high`` Hz relative to the whole signal, in dB."""
    freqs, mags = spectrum(pcm)
    band = (freqs >= low) & (freqs <= high)
    return float(10 * np.log10((mags[band] ** 2).sum() / (mags**2).sum() + 1e-30))


def bin_power(pcm: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Power per 1 Hz bin of the second of 48 kHz audio that starts 0.25 s in.

    A whole second holds a whole number of periods of any integer-Hz tone, so no window is
    needed and nothing leaks between bins: a tone's power is exactly its bin, and every other
    bin is something the resampler added (images, aliases) or rounding noise."""
    x = np.asarray(pcm[RATE // 4 : RATE // 4 + RATE], dtype=np.float64) / 32768
    assert len(x) == RATE
    power: npt.NDArray[np.float64] = 2 * np.abs(np.fft.rfft(x) / RATE) ** 2
    return power


def db(ratio: float) -> float:
    return float(10 * np.log10(max(ratio, 1e-30)))


def nearest_length(frames: int, rate: int) -> int:
    """frames * 48000 / rate, rounded half up: the output length StreamResampler promises."""
    return (2 * frames * RATE + rate) // (2 * rate)


# -------------------------------------------------------------------------- WavFileInput


def test_8khz_stereo_becomes_48khz_mono_with_duration_and_content(tmp_path: Path) -> None:
    seconds = 1.51
    left, right = tone(440, 8_000, seconds), tone(1_250, 8_000, seconds)
    path = write_wav(tmp_path / "in.wav", 8_000, [left, right])
    source = WavFileInput(path)
    assert (source.sample_rate, source.channels) == (8_000, 2)
    frames = list(source.frames())
    assert source.read_frame() is None
    assert all(f.dtype == np.int16 and f.shape == (FRAME,) for f in frames)
    expected = len(left) * RATE // 8_000  # 72,480 samples at 48 kHz
    assert len(frames) == -(-expected // FRAME)
    pcm = np.concatenate(frames)
    assert not pcm[expected:].any(), "the last frame is padded with silence"
    assert load_wav(path).shape == (expected,)
    # Mono mix keeps both tones, at half level each, and adds no images above 4 kHz.
    assert sorted(round(f) for f in peak_frequencies(pcm[:expected], 2)) == [440, 1_250]
    middle = pcm[RATE // 10 : expected - RATE // 10].astype(np.float64) / 32768
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(np.sqrt(2 * 0.25**2 / 2), rel=0.03)
    assert band_level_db(pcm[:expected], 4_100, 24_000) < -60


@pytest.mark.parametrize("rate", [8_000, 11_025, 16_000, 22_050, 44_100, 7_999])
def test_a_1khz_tone_comes_out_at_1khz_at_its_level_and_nothing_else(
    tmp_path: Path, rate: int
) -> None:
    frames = round(rate * 1.5)
    path = write_wav(tmp_path / "in.wav", rate, [tone(1_000, rate, 1.5)])
    pcm = load_wav(path)
    assert len(pcm) == nearest_length(frames, rate)
    assert abs(len(pcm) - frames * RATE / rate) <= 0.5  # as long as the file, to a sample
    power = bin_power(pcm)
    assert int(np.argmax(power)) == 1_000
    assert db(power[1_000] / (0.5**2 / 2)) == pytest.approx(0, abs=0.01)  # level kept
    # No images above the input's Nyquist frequency, nothing else anywhere: what is left is
    # the int16 rounding of the file and of the output (about -89 dB at this level).
    assert db(power[rate // 2 + 1 :].sum() / power[1_000]) < -85
    assert db((power.sum() - power[1_000]) / power[1_000]) < -80


@pytest.mark.parametrize(
    ("rate", "freq"),
    [(8_000, 3_400), (16_000, 6_800), (22_050, 9_370), (44_100, 18_740)],
)
def test_tones_at_the_band_edge_keep_their_level_without_images(
    tmp_path: Path, rate: int, freq: int
) -> None:
    """0.85 x the input's Nyquist frequency (3.4 kHz at 8 kHz: the top of the telephone band).
    The windowed sinc this project used before lost 1.9 dB there and left images at -75 dB."""
    pcm = load_wav(write_wav(tmp_path / "in.wav", rate, [tone(freq, rate, 1.5)]))
    power = bin_power(pcm)
    assert db(power[freq] / (0.5**2 / 2)) == pytest.approx(0, abs=0.05)
    assert db(power[rate // 2 + 1 :].sum() / power[freq]) < -85
    assert db((power.sum() - power[freq]) / power[freq]) < -80


def test_downsampling_keeps_the_band_and_removes_what_48khz_cannot_hold(tmp_path: Path) -> None:
    """From 96 kHz: 1 and 20 kHz keep their level; 30 kHz must vanish, not fold back to 18 kHz,
    and 27 kHz (just past the new Nyquist frequency) must not fold back to 21 kHz. (Odd
    frequencies, so the file's own int16 rounding does not pile up on a few bins.)"""
    kept, removed = (1_003, 20_011), (27_017, 30_029)
    signal = np.sum([tone(f, 96_000, 1.5, 0.2) for f in kept + removed], axis=0)
    pcm = load_wav(write_wav(tmp_path / "in.wav", 96_000, [signal]))
    assert len(pcm) == RATE * 3 // 2
    power = bin_power(pcm)
    tone_power = 0.2**2 / 2
    for f in kept:
        assert db(power[f] / tone_power) == pytest.approx(0, abs=0.05)
    for f in removed:
        assert db(power[RATE - f] / tone_power) < -90
    assert db((power.sum() - power[list(kept)].sum()) / tone_power) < -75


def test_wav_input_streams_exactly_what_libsoxr_makes_of_the_whole_file(tmp_path: Path) -> None:
    """Several 8192-frame reads, 20 ms frames, the flush at the end: the same samples as one
    call over the whole file, then silence to the end of the last frame."""
    rate = 22_050
    signal = np.random.default_rng(3).normal(0, 0.2, rate * 2 + 123)
    path = write_wav(tmp_path / "in.wav", rate, [signal])
    with wave.open(str(path), "rb") as w:
        stored = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
    whole = soxr.resample(stored, rate, RATE, quality=StreamResampler.QUALITY)
    expected = np.clip(np.rint(whole * 32768), -32768, 32767).astype(np.int16)
    frames = list(WavFileInput(path).frames())
    pcm = np.concatenate(frames)
    assert len(expected) == nearest_length(len(signal), rate)
    assert len(frames) == -(-len(expected) // FRAME)
    np.testing.assert_array_equal(pcm[: len(expected)], expected)
    assert not pcm[len(expected) :].any()
    np.testing.assert_array_equal(load_wav(path), expected)


def test_48khz_mono_16bit_passes_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    samples = rng.integers(-32768, 32767, RATE // 3, dtype=np.int16)
    path = tmp_path / "exact.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    assert np.array_equal(load_wav(path), samples)


@pytest.mark.parametrize(("width", "tolerance"), [(1, 260), (3, 1), (4, 1)])
def test_sample_widths_scale_like_16_bit(tmp_path: Path, width: int, tolerance: int) -> None:
    signal = tone(700, RATE, 0.2, 0.7)
    reference = load_wav(write_wav(tmp_path / "16.wav", RATE, [signal], 2))
    other = load_wav(write_wav(tmp_path / f"{width}.wav", RATE, [signal], width))
    assert np.abs(other.astype(np.int32) - reference).max() <= tolerance


@pytest.mark.parametrize("frame_ms", [10, 20, 60])
def test_frame_size_follows_frame_ms(tmp_path: Path, frame_ms: int) -> None:
    path = write_wav(tmp_path / "in.wav", 16_000, [tone(300, 16_000, 0.25)])
    frames = list(WavFileInput(path, frame_ms=frame_ms).frames())
    assert {len(f) for f in frames} == {RATE * frame_ms // 1000}


def test_unreadable_files_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="no such file"):
        WavFileInput(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not a wav file at all")
    with pytest.raises(AudioFormatError, match="sox"):
        WavFileInput(junk)
    # IEEE float WAV (format 3): valid, but not PCM.
    body = struct.pack("<4s4sI", b"RIFF", b"WAVE", 0)
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 3, 1, RATE, RATE * 4, 4, 32)
    data = struct.pack("<4sI", b"data", 8) + bytes(8)
    floats = tmp_path / "float.wav"
    floats.write_bytes(
        body[:4] + struct.pack("<I", 4 + len(fmt) + len(data)) + b"WAVE" + fmt + data
    )
    with pytest.raises(AudioFormatError, match="PCM WAV"):
        WavFileInput(floats)


def test_closed_input_returns_none(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "in.wav", RATE, [tone(300, RATE, 0.1)])
    with WavFileInput(path) as source:
        assert source.read_frame() is not None
    assert source.read_frame() is None


def test_committed_samples_load_as_speech_length_audio() -> None:
    for path in sample_paths():
        with WavFileInput(path) as source:
            assert (source.sample_rate, source.channels) == (16_000, 1)
            assert 2.0 <= source.duration_s <= 4.0
        pcm = load_wav(path)
        assert np.abs(pcm).max() > 10_000  # normalised speech, not silence


# ------------------------------------------------------------------------- resampler


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([(8_000, 48_000), (44_100, 48_000), (96_000, 48_000), (22_050, 48_000)]),
    st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=12),
)
def test_resampler_output_does_not_depend_on_chunking(
    rates: tuple[int, int], chunks: list[int]
) -> None:
    rng = np.random.default_rng(sum(chunks))
    signal = rng.normal(0, 0.3, sum(chunks))
    whole = StreamResampler(*rates)
    expected = np.concatenate([whole.process(signal), whole.flush()])
    pieces = StreamResampler(*rates)
    parts, start = [], 0
    for size in chunks:
        parts.append(pieces.process(signal[start : start + size]))
        start += size
    parts.append(pieces.flush())
    got = np.concatenate(parts)
    assert len(got) == len(expected) == nearest_length(len(signal), rates[0])
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # ... and the library's own one-shot call agrees.
    library = soxr.resample(signal, rates[0], rates[1], quality=StreamResampler.QUALITY)
    np.testing.assert_allclose(got, library, atol=1e-12)


@pytest.mark.parametrize("rate", [8_000, 44_100, 96_000])
def test_flush_emits_the_held_back_tail_once(rate: int) -> None:
    """A 440 Hz tone faded out over its last 10 ms: the stream is complete only with the tail
    flush() returns, and that tail is the tone and its fade, not silence or a click."""

    def faded(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        fade = np.clip((0.3 - t) / 0.01, 0, 1)
        out: npt.NDArray[np.float64] = (
            0.5 * np.sin(2 * np.pi * 440 * t) * (0.5 - 0.5 * np.cos(np.pi * fade))
        )
        return out

    signal = faded(np.arange(round(rate * 0.3)) / rate)
    resampler = StreamResampler(rate, RATE)
    body = resampler.process(signal)
    tail = resampler.flush()
    assert len(tail) > 0  # the filter held the end back until it knew the stream had ended
    assert len(body) + len(tail) == nearest_length(len(signal), rate)
    ideal = faded(np.arange(len(body) + len(tail)) / RATE)
    assert np.abs(tail - ideal[len(body) :]).max() < 1e-3
    assert np.abs(tail).max() > 0.01  # signal, well above that tolerance
    assert len(resampler.flush()) == 0
    with pytest.raises(AudioError, match="flushed"):
        resampler.process(signal)


def test_resampler_rejects_nonsense_rates() -> None:
    with pytest.raises(AudioFormatError):
        StreamResampler(0, 48_000)
    with pytest.raises(AudioFormatError):
        StreamResampler(48_000, -1)


# ---------------------------------------------------------------------------- outputs


def read_back(path: Path) -> tuple[tuple[int, int, int], npt.NDArray[np.int16]]:
    with wave.open(str(path), "rb") as w:
        params = (w.getnchannels(), w.getsampwidth(), w.getframerate())
        return params, np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def test_wav_file_output_writes_48khz_mono_16bit(tmp_path: Path) -> None:
    chunks = [np.arange(i, i + FRAME, dtype=np.int16) for i in range(0, 3 * FRAME, FRAME)]
    with WavFileOutput(tmp_path / "out.wav") as sink:
        for chunk in chunks:
            sink.write(chunk)
        sink.write(np.zeros(0, np.int16))
    assert sink.samples_written == 3 * FRAME
    params, data = read_back(tmp_path / "out.wav")
    assert params == (1, 2, RATE)
    assert np.array_equal(data, np.concatenate(chunks))
    with pytest.raises(AudioError, match="closed"):
        sink.write(chunks[0])


def test_wav_file_output_reports_unwritable_paths(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot write"):
        WavFileOutput(tmp_path / "no" / "such" / "dir" / "out.wav")


def test_directory_output_writes_one_file_per_burst(tmp_path: Path) -> None:
    sink = WavDirectoryOutput(tmp_path / "bursts")
    sink.write(np.full(FRAME, 5, np.int16))  # between bursts: nowhere
    first = sink.start_burst("alice-0001")
    assert sink.in_burst
    sink.write(np.full(FRAME, 1, np.int16))
    sink.write(np.full(FRAME, 2, np.int16))
    assert sink.end_burst() == first
    assert sink.end_burst() is None
    second = sink.start_burst("bob-0002.wav")
    sink.write(np.full(FRAME, 3, np.int16))
    sink.close()
    assert first.name == "alice-0001.wav" and second.name == "bob-0002.wav"
    assert sink.paths == [first, second]
    assert sorted(p.name for p in (tmp_path / "bursts").iterdir()) == [first.name, second.name]
    _, a = read_back(first)
    _, b = read_back(second)
    assert np.array_equal(a, np.repeat(np.array([1, 2], np.int16), FRAME))
    assert np.array_equal(b, np.full(FRAME, 3, np.int16))


def test_directory_output_rejects_misuse_without_changing_state(tmp_path: Path) -> None:
    sink = WavDirectoryOutput(tmp_path)
    for bad in ("", ".", "..", "../escape", "a/b", "a\\b", "nul\0byte"):
        with pytest.raises(AudioFormatError):
            sink.start_burst(bad)
    assert not sink.in_burst
    sink.start_burst("one")
    with pytest.raises(AudioError, match="end_burst"):
        sink.start_burst("two")
    sink.end_burst()
    assert [p.name for p in sink.paths] == ["one.wav"]
    assert not (tmp_path.parent / "escape.wav").exists()


@pytest.mark.parametrize(
    "bad", [np.zeros(FRAME, np.float32), np.zeros((2, FRAME), np.int16), b"\x00\x00"]
)
def test_outputs_reject_non_int16_mono(tmp_path: Path, bad: object) -> None:
    sinks = [NullOutput(), WavFileOutput(tmp_path / "x.wav"), WavDirectoryOutput(tmp_path)]
    for sink in sinks:
        with pytest.raises(AudioFormatError):
            sink.write(bad)  # type: ignore[arg-type]
        sink.close()


def test_null_backends() -> None:
    sink = NullOutput()
    sink.write(np.zeros(FRAME, np.int16))
    sink.write(np.zeros(10, np.int16))
    assert sink.samples_written == FRAME + 10
    source = NullInput(frames=2)
    frames = [source.read_frame(), source.read_frame(), source.read_frame()]
    assert frames[2] is None
    assert all(f is not None and f.shape == (FRAME,) and not f.any() for f in frames[:2])
    assert NullInput().read_frame() is None


# ---------------------------------------------------------------------------- devices


def test_list_devices_returns_descriptions_and_keeps_stderr_clean(
    capfd: pytest.CaptureFixture[str],
) -> None:
    everything = list_devices()
    inputs, outputs = list_devices("input"), list_devices("output")
    assert all(isinstance(d, str) and ": " in d for d in everything)
    assert set(inputs) <= set(everything) and set(outputs) <= set(everything)
    # PortAudio's ALSA/JACK probing would otherwise spray the terminal (and a TUI).
    assert "ALSA lib" not in capfd.readouterr().err


def test_unknown_devices_give_a_clear_error() -> None:
    cases: list[tuple[type[DeviceInput | DeviceOutput], DeviceKind]] = [
        (DeviceInput, "input"),
        (DeviceOutput, "output"),
    ]
    for make, kind in cases:
        with pytest.raises(AudioDeviceError, match=f"audio {kind} device") as caught:
            make("no-such-sound-card-anywhere")
        message = str(caught.value)
        if list_devices(kind):  # machines with sound: we list the choices
            assert "no-such-sound-card-anywhere" in message and "pick one" in message
        else:  # machines without (like CI): we say so and what to use instead
            assert "PortAudio sees none" in message and "WAV" in message
        with pytest.raises(AudioDeviceError):
            make(10_000)
