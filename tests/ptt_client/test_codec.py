"""Opus codec wrapper: settings really reach libopus, FEC really recovers lost speech."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import opuslib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client.audio import load_wav
from ptt_client.codec import (
    FRAME_MS_CHOICES,
    SAMPLE_RATE,
    CodecError,
    OpusDecoder,
    OpusEncoder,
    Pcm,
    frame_samples,
)
from ptt_client.samples import sample_paths
from tests.ptt_client.speech import align, similarity, snr_db

FRAME = frame_samples(20)


@cache
def speech_frames(index: int) -> tuple[Pcm, ...]:
    """A committed speech sample at 48 kHz, cut into 20 ms frames."""
    pcm = load_wav(sample_paths()[index])
    count = len(pcm) // FRAME
    return tuple(pcm[i * FRAME : (i + 1) * FRAME] for i in range(count))


def sine(freq_hz: float, samples: int, level: float = 0.3) -> Pcm:
    t = np.arange(samples) / SAMPLE_RATE
    return np.rint(level * 32767 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("fec", [True, False])
@pytest.mark.parametrize("dtx", [True, False])
def test_fec_and_dtx_read_back_from_libopus(fec: bool, dtx: bool) -> None:
    encoder = OpusEncoder(fec=fec, dtx=dtx, bitrate=24_000, expected_loss_pct=15)
    assert encoder.fec is fec
    assert encoder.dtx is dtx
    assert encoder.bitrate == 24_000
    assert encoder.expected_loss == 15


def test_opuslib_high_level_fec_setter_is_broken_so_we_bypass_it() -> None:
    """The premise of codec.py: opuslib 3.0.1's own setter cannot turn FEC on.

    If this fails, opuslib fixed its setter; our low-level calls keep working either way.
    """
    encoder = opuslib.Encoder(SAMPLE_RATE, 1, opuslib.APPLICATION_VOIP)
    with pytest.raises(TypeError):
        encoder.inband_fec = 1
    assert encoder.inband_fec == 0
    assert not hasattr(opuslib.Encoder, "dtx")


def test_set_expected_loss_reads_back_and_rejects_bad_values() -> None:
    encoder = OpusEncoder(expected_loss_pct=0)
    encoder.set_expected_loss(12.4)
    assert encoder.expected_loss == 12
    for bad in (-1, 101, math.nan, math.inf, "10"):
        with pytest.raises(CodecError):
            encoder.set_expected_loss(bad)  # type: ignore[arg-type]
        assert encoder.expected_loss == 12


@pytest.mark.parametrize("frame_ms", [0, 5, 25, 120, -20])
def test_unsupported_frame_sizes_are_rejected(frame_ms: int) -> None:
    with pytest.raises(CodecError, match="frame_ms"):
        OpusEncoder(frame_ms=frame_ms)


@pytest.mark.parametrize("bitrate", [0, 5_999, 64_001])
def test_out_of_range_bitrates_are_rejected(bitrate: int) -> None:
    with pytest.raises(CodecError, match="bitrate"):
        OpusEncoder(bitrate=bitrate)


def test_encode_rejects_wrong_pcm() -> None:
    encoder = OpusEncoder()
    for bad in (
        np.zeros(FRAME - 1, np.int16),
        np.zeros(FRAME, np.float32),
        np.zeros((FRAME, 1), np.int16),
        bytes(FRAME * 2),
    ):
        with pytest.raises(CodecError):
            encoder.encode(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("frame_ms", FRAME_MS_CHOICES)
def test_every_frame_size_round_trips_a_tone(frame_ms: int) -> None:
    encoder, decoder = OpusEncoder(frame_ms=frame_ms), OpusDecoder()
    size = encoder.frame_samples
    assert size == SAMPLE_RATE * frame_ms // 1000
    tone = sine(1_000, SAMPLE_RATE // 2 // size * size)
    decoded = [
        decoder.decode(encoder.encode(tone[i : i + size])) for i in range(0, len(tone), size)
    ]
    assert all(len(d) == size for d in decoded)
    out = np.concatenate(decoded).astype(np.float64)[SAMPLE_RATE // 10 :]  # skip the start-up
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(out)
    assert abs(peak_hz - 1_000) < 20


def test_bitrate_of_speech_stays_near_the_target() -> None:
    frames = speech_frames(0)
    # VBR: allow 50 % either way of the target.
    for target in (16_000, 24_000):
        encoder = OpusEncoder(bitrate=target)
        sent = sum(len(encoder.encode(f)) for f in frames) * 8
        seconds = len(frames) * FRAME / SAMPLE_RATE
        assert 0.5 * target < sent / seconds < 1.5 * target


def test_decoded_speech_lags_by_the_codec_lookahead() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    frames = speech_frames(1)
    decoded = np.concatenate([decoder.decode(encoder.encode(f)) for f in frames])
    offset, aligned = align(np.concatenate(frames), decoded, max_lag=SAMPLE_RATE // 10)
    assert abs(offset - encoder.lookahead) <= 5
    # Opus keeps the waveform, not only the spectrum: aligned, it is clearly above 0 dB.
    assert snr_db(np.concatenate(frames), aligned) > 6


def test_dtx_sends_tiny_packets_for_silence_only_when_on() -> None:
    silence = np.zeros(FRAME, np.int16)
    with_dtx, without = OpusEncoder(dtx=True), OpusEncoder(dtx=False)
    # libopus: a DTX frame is at most 2 bytes (TOC only); it starts after ~200 ms of silence.
    assert min(len(with_dtx.encode(silence)) for _ in range(30)) <= 2
    assert min(len(without.encode(silence)) for _ in range(30)) > 2


# ----------------------------------------------------------------------------- loss, FEC


@cache
def loss_outcomes(fec: bool, loss_pct: int, sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Lose each voiced frame of a sample in turn and rebuild it with decode_fec (from the next
    packet) and with conceal. Returns both per-frame SNRs (dB) against the frame the decoder
    produces when nothing is lost."""
    frames = speech_frames(sample)
    encoder = OpusEncoder(fec=fec, expected_loss_pct=loss_pct)
    packets = [encoder.encode(f) for f in frames]
    clean = OpusDecoder()
    reference = [clean.decode(p) for p in packets]
    rms = np.array([np.sqrt(np.mean(r.astype(np.float64) ** 2)) for r in reference])
    # Voiced: the frame and both neighbours loud (the FEC copy is of a frame inside speech).
    voiced = [k for k in range(2, len(frames) - 2) if rms[k - 1 : k + 2].min() > 0.3 * rms.max()]
    assert len(voiced) >= 5, "the sample should hold several voiced frames"
    recovered, concealed = [], []
    for k in voiced:
        fec_decoder, plc_decoder = OpusDecoder(), OpusDecoder()
        for p in packets[:k]:
            fec_decoder.decode(p)
            plc_decoder.decode(p)
        # Packet k is lost; packet k+1 arrived.
        recovered.append(snr_db(reference[k], fec_decoder.decode_fec(packets[k + 1])))
        concealed.append(snr_db(reference[k], plc_decoder.conceal()))
    return np.array(recovered), np.array(concealed)


def fec_gain(fec: bool, loss_pct: int, samples: range) -> float:
    """Median over voiced frames of how many dB closer FEC gets than concealment."""
    gains = [r - c for s in samples for r, c in zip(*loss_outcomes(fec, loss_pct, s), strict=True)]
    return float(np.median(gains))


ALL_SAMPLES = range(len(sample_paths()))
# Thresholds: silence scores 0 dB; 6 dB closer = a quarter of the error energy ("much closer"),
# 3 dB = half of it (per sample, where a few frames decide the median).


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_fec_rebuilds_a_lost_voiced_frame_from_the_next_packet(sample: int) -> None:
    recovered, _ = loss_outcomes(fec=True, loss_pct=20, sample=sample)
    assert np.median(recovered) > 6.0  # much closer than silence
    assert fec_gain(True, 20, range(sample, sample + 1)) > 3.0


def test_fec_is_much_closer_than_concealment_over_all_samples() -> None:
    recovered = np.concatenate([loss_outcomes(True, 20, s)[0] for s in ALL_SAMPLES])
    concealed = np.concatenate([loss_outcomes(True, 20, s)[1] for s in ALL_SAMPLES])
    assert np.median(recovered) > np.median(concealed) + 6.0
    assert fec_gain(True, 20, ALL_SAMPLES) > 6.0


def test_without_fec_the_next_packet_cannot_rebuild_the_frame() -> None:
    # No FEC data in the packet: libopus falls back to concealment, so no gain over it.
    without = fec_gain(False, 20, ALL_SAMPLES)
    assert abs(without) < 1.0
    assert fec_gain(True, 20, ALL_SAMPLES) > without + 6.0


def test_fec_needs_a_nonzero_expected_loss() -> None:
    """libopus only adds the FEC copy when told to expect loss: set_expected_loss matters."""
    no_loss = fec_gain(True, 0, ALL_SAMPLES)
    assert abs(no_loss) < 1.0
    assert fec_gain(True, 20, ALL_SAMPLES) > no_loss + 6.0


# ------------------------------------------------------------------------ decoder inputs


def test_conceal_before_any_packet_gives_a_silent_default_frame() -> None:
    pcm = OpusDecoder().conceal()
    assert pcm.dtype == np.int16
    assert len(pcm) == FRAME
    assert not pcm.any()


def test_conceal_follows_the_last_frame_size() -> None:
    encoder, decoder = OpusEncoder(frame_ms=40), OpusDecoder()
    decoder.decode(encoder.encode(sine(500, encoder.frame_samples)))
    assert len(decoder.conceal()) == encoder.frame_samples
    assert len(decoder.conceal(frame_samples=480)) == 480


@pytest.mark.parametrize("frames", [0, 100, 7_000, 960.0])
def test_bad_concealment_sizes_are_rejected(frames: int) -> None:
    with pytest.raises(CodecError, match="multiple of 120"):
        OpusDecoder().conceal(frames)


def test_empty_and_non_bytes_packets_are_rejected() -> None:
    decoder = OpusDecoder()
    for bad in (b"", None, bytearray(b"\x00\x01"), "abc"):
        with pytest.raises(CodecError):
            decoder.decode(bad)  # type: ignore[arg-type]
        with pytest.raises(CodecError):
            decoder.decode_fec(bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=1_500))
def test_garbage_from_the_network_never_crashes_the_decoder(packet: bytes) -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    frame = sine(700, FRAME)
    decoder.decode(encoder.encode(frame))
    for call in (decoder.decode, decoder.decode_fec):
        try:
            pcm = call(packet)
        except CodecError:
            pass
        else:
            assert pcm.dtype == np.int16
            assert 0 < len(pcm) <= SAMPLE_RATE * 120 // 1000
    # Still usable afterwards.
    assert len(decoder.decode(encoder.encode(frame))) == FRAME


# ------------------------------------------- speech comparison helpers (tests/.../speech.py)
# Tested here because they exist to judge Opus output; the end-to-end voice tests use them.


def opus_round_trip(pcm: Pcm, loss_every: int = 0) -> Pcm:
    """Encode and decode ``pcm``; with ``loss_every`` = n, lose every n-th packet (recovered
    by FEC from the next packet, as the jitter buffer's Recover instruction does)."""
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME + FRAME, np.int16)])
    encoder, decoder = OpusEncoder(expected_loss_pct=20), OpusDecoder()
    packets = [encoder.encode(padded[i : i + FRAME]) for i in range(0, len(padded), FRAME)]
    out = []
    for i, packet in enumerate(packets):
        lost = loss_every and i % loss_every == loss_every - 1 and i + 1 < len(packets)
        out.append(decoder.decode_fec(packets[i + 1]) if lost else decoder.decode(packet))
    return np.concatenate(out)


def test_align_finds_a_known_shift_in_either_direction() -> None:
    reference = np.concatenate(speech_frames(2))
    delayed = np.concatenate([np.zeros(1_234, np.int16), reference])
    offset, aligned = align(reference, delayed)
    assert offset == 1_234
    assert np.array_equal(aligned, reference)
    offset, aligned = align(reference, reference[500:])
    assert offset == -500
    assert np.array_equal(aligned[500:], reference[500:]) and not aligned[:500].any()
    offset, _ = align(reference, delayed, max_lag=1_000)
    assert abs(offset) <= 1_000


def test_similarity_tells_the_same_speech_from_different_speech() -> None:
    originals = [np.concatenate(speech_frames(i)) for i in ALL_SAMPLES]
    decoded = [opus_round_trip(pcm) for pcm in originals]
    for i, reference in enumerate(originals):
        same = similarity(reference, decoded[i])
        lossy = similarity(reference, opus_round_trip(reference, loss_every=5))
        others = [similarity(reference, decoded[j]) for j in ALL_SAMPLES if j != i]
        noise = np.random.default_rng(i).normal(0, 3_000, len(reference))
        assert same > 0.8
        assert lossy > 0.8  # 20 % loss, rebuilt by FEC, is still the same speech
        assert max(others) < same - 0.4
        assert similarity(reference, noise) < same - 0.4
        assert similarity(reference, reference) == pytest.approx(1.0)
