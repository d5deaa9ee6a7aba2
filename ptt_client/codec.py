"""Opus voice codec: 48 kHz mono, VOIP mode, in-band FEC, packet-loss concealment.

PCM is always a 1-D ``numpy.int16`` array (:data:`Pcm`) of 48 kHz mono samples; packets are
``bytes``. One :class:`OpusEncoder` per outgoing burst stream, one :class:`OpusDecoder` per talker
(the decoder keeps history that PLC and FEC rely on, so streams must not share one).

Errors: :class:`CodecError` (a ``ValueError``) for bad arguments and for packets libopus rejects.
A packet from the network that fails to decode raises :class:`CodecError`; the caller drops it
and conceals instead, nothing else changes.

Why the low-level ctl calls: opuslib 3.0.1's ``Encoder.inband_fec`` setter calls the ctl without
its value (a ``TypeError``) and its ``dtx`` setter sends the *getter* request, and there is no
``dtx`` property at all. We therefore send ``OPUS_SET_INBAND_FEC`` / ``OPUS_SET_DTX`` through
``opuslib.api.encoder.encoder_ctl`` ourselves and read every setting back with its getter, so a
setting that silently did not take effect fails loudly at construction.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import opuslib
import opuslib.api
import opuslib.api.ctl as opus_ctl
import opuslib.api.decoder as opus_decoder
import opuslib.api.encoder as opus_encoder

Pcm = npt.NDArray[np.int16]
"""48 kHz mono signed 16-bit samples, one dimension."""

SAMPLE_RATE: Final = 48_000
CHANNELS: Final = 1
FRAME_MS_CHOICES: Final = (10, 20, 40, 60)
"""Frame durations we allow (RFC 6716 2.1.4 also has 2.5/5 ms, which cannot carry SILK FEC)."""
BITRATE_RANGE: Final = (6_000, 64_000)
"""Accepted bitrates in bit/s; voice on cellular links is meant to run at 16-24 kbit/s."""
DEFAULT_BITRATE: Final = 24_000
"""Opus bitrate of a radio (bit/s): the top of the 16-24 kbit/s voice range, where libopus
keeps in-band FEC on from a 1 % loss hint."""
MIN_LOSS_HINT_PCT: Final = 0.0
"""Floor of the Opus expected-loss hint. libopus spends bits on in-band FEC only above a
bitrate-dependent hint (at 24 kbit/s from about 1 %), and those bits come out of the voice.
Measured with bench/voice.py at 24 kbit/s: a 2 % floor gave clean speech PESQ-WB 3.29 against
4.02 without it, and 2.96 against 2.56 on a 5 %-loss, 40 ms-jitter uplink. FEC follows the
loss this radio measures, so a clean link keeps the quality and a lossy one gets FEC."""
MAX_FRAME_SAMPLES: Final = SAMPLE_RATE * 120 // 1000
"""Longest audio one Opus packet can carry (120 ms, RFC 6716 3.2.5)."""
MAX_PACKET_BYTES: Final = 4_000
"""Encoder output buffer; the libopus documentation recommends 4000 bytes."""


class CodecError(ValueError):
    """A codec argument or packet was rejected; the message says what to change."""


def frame_samples(frame_ms: int) -> int:
    """Return the number of 48 kHz samples in a frame of ``frame_ms`` milliseconds."""
    if frame_ms not in FRAME_MS_CHOICES:
        raise CodecError(
            f"frame_ms={frame_ms!r} is not an Opus voice frame size: use one of "
            f"{', '.join(map(str, FRAME_MS_CHOICES))} ms"
        )
    return SAMPLE_RATE * frame_ms // 1000


def _opus_call(what: str, call: Any, *args: Any) -> Any:
    """Run one opuslib call, turning libopus failures into :class:`CodecError`."""
    try:
        return call(*args)
    except opuslib.OpusError as exc:
        raise CodecError(f"{what} failed in libopus: {exc}") from exc


class OpusEncoder:
    """Encodes fixed-size 48 kHz mono frames for voice (``OPUS_APPLICATION_VOIP``).

    ``fec`` turns on SILK in-band forward error correction: each packet also carries a
    low-bitrate copy of the previous frame, which :meth:`OpusDecoder.decode_fec` uses when that
    previous packet is lost. libopus only spends bits on it when the expected loss is above
    zero, so feed :meth:`set_expected_loss` with the measured loss (it starts at
    ``expected_loss_pct``).

    libopus 1.3.1 also needs enough bitrate for the FEC copy, and the bar drops as the expected
    loss rises. Measured on the committed speech samples (FEC gain over concealment appears):
    at 16 kbit/s only from about 30 % loss, at 20 kbit/s from 8 %, at 24 kbit/s from 1 %.
    To keep FEC on a link that currently looks clean, run 24 kbit/s or keep the hint >= 10 %.
    """

    def __init__(
        self,
        frame_ms: int = 20,
        bitrate: int = 20_000,
        fec: bool = True,
        dtx: bool = False,
        expected_loss_pct: float = 10,
    ) -> None:
        self.frame_samples = frame_samples(frame_ms)
        self.frame_ms = frame_ms
        if not BITRATE_RANGE[0] <= bitrate <= BITRATE_RANGE[1]:
            raise CodecError(
                f"bitrate={bitrate} bit/s is outside {BITRATE_RANGE[0]}-"
                f"{BITRATE_RANGE[1]}: voice should use 16000-24000"
            )
        self._state = _opus_call(
            "creating the encoder",
            opus_encoder.create_state,
            SAMPLE_RATE,
            CHANNELS,
            opuslib.APPLICATION_VOIP,
        )
        self._set(opus_ctl.set_bitrate, opus_ctl.get_bitrate, bitrate, "bitrate")
        # OPUS_SIGNAL_VOICE biases mode decisions towards SILK, where in-band FEC lives.
        self._set(opus_ctl.set_signal, opus_ctl.get_signal, opuslib.SIGNAL_VOICE, "signal")
        self._set(opus_ctl.set_inband_fec, opus_ctl.get_inband_fec, int(fec), "inband FEC")
        self._set(opus_ctl.set_dtx, opus_ctl.get_dtx, int(dtx), "DTX")
        self.set_expected_loss(expected_loss_pct)

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            opus_encoder.destroy(state)

    def _set(self, setter: Any, getter: Any, value: int, name: str) -> None:
        _opus_call(f"setting {name}", opus_encoder.encoder_ctl, self._state, setter, value)
        actual = self._get(getter)
        if actual != value:
            raise CodecError(
                f"libopus did not accept {name}={value} (reads back {actual}): "
                "check the installed libopus0 version"
            )

    def _get(self, getter: Any) -> int:
        return int(_opus_call("reading a setting", opus_encoder.encoder_ctl, self._state, getter))

    @property
    def fec(self) -> bool:
        """Whether in-band FEC is on, as libopus reports it (``OPUS_GET_INBAND_FEC``)."""
        return self._get(opus_ctl.get_inband_fec) == 1

    @property
    def dtx(self) -> bool:
        """Whether discontinuous transmission is on, as libopus reports it (``OPUS_GET_DTX``)."""
        return self._get(opus_ctl.get_dtx) == 1

    @property
    def bitrate(self) -> int:
        """Target bitrate in bit/s, as libopus reports it (``OPUS_GET_BITRATE``)."""
        return self._get(opus_ctl.get_bitrate)

    @property
    def lookahead(self) -> int:
        """Samples of delay the codec adds (``OPUS_GET_LOOKAHEAD``): decoded audio lags the
        input by this much."""
        return self._get(opus_ctl.get_lookahead)

    @property
    def expected_loss(self) -> int:
        """Expected packet loss in percent (``OPUS_GET_PACKET_LOSS_PERC``)."""
        return self._get(opus_ctl.get_packet_loss_perc)

    def set_bitrate(self, bitrate: int) -> None:
        """Change the target bitrate (bit/s) from the next frame on."""
        if not BITRATE_RANGE[0] <= bitrate <= BITRATE_RANGE[1]:
            raise CodecError(
                f"bitrate={bitrate} bit/s is outside {BITRATE_RANGE[0]}-{BITRATE_RANGE[1]}"
            )
        self._set(opus_ctl.set_bitrate, opus_ctl.get_bitrate, bitrate, "bitrate")

    def set_expected_loss(self, pct: float) -> None:
        """Tell the encoder how much loss to protect against (``OPUS_SET_PACKET_LOSS_PERC``).

        ``pct`` is the measured loss in percent (0-100, rounded to a whole percent). More loss
        makes libopus spend more of the bitrate on the FEC copy; 0 turns FEC data off.
        """
        if not isinstance(pct, int | float) or math.isnan(pct) or not 0 <= pct <= 100:
            raise CodecError(f"expected loss {pct!r} is not a percentage between 0 and 100")
        self._set(
            opus_ctl.set_packet_loss_perc,
            opus_ctl.get_packet_loss_perc,
            round(pct),
            "expected packet loss",
        )

    def encode(self, pcm: Pcm) -> bytes:
        """Encode exactly one frame (``frame_samples`` int16 samples) into one Opus packet.

        With DTX on, a packet of 1-2 bytes marks silence that need not be sent.
        """
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise CodecError("encode() takes a 1-D numpy int16 array of 48 kHz mono samples")
        if pcm.shape[0] != self.frame_samples:
            raise CodecError(
                f"encode() got {pcm.shape[0]} samples; this encoder's "
                f"{self.frame_ms} ms frames are {self.frame_samples} samples"
            )
        data = np.ascontiguousarray(pcm).tobytes()
        packet = _opus_call(
            "encoding", opus_encoder.encode, self._state, data, self.frame_samples, MAX_PACKET_BYTES
        )
        return bytes(packet)


class OpusDecoder:
    """Decodes one talker's packets to 48 kHz mono, with FEC recovery and concealment.

    Feed it the talker's packets in order. For a lost packet call :meth:`decode_fec` with the
    packet that follows it (then :meth:`decode` that packet as usual), or :meth:`conceal` when
    the next packet is not there either.
    """

    def __init__(self) -> None:
        self._state = _opus_call(
            "creating the decoder", opus_decoder.create_state, SAMPLE_RATE, CHANNELS
        )
        self._buffer = np.zeros(MAX_FRAME_SAMPLES, dtype=np.int16)
        self._pointer = self._buffer.ctypes.data_as(opuslib.api.c_int16_pointer)
        # Frame size for concealment before any packet arrived: the default 20 ms.
        self.last_frame_samples = frame_samples(20)

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            opus_decoder.destroy(state)

    def _run(self, what: str, packet: bytes | None, frame: int, fec: int) -> Pcm:
        # Straight to opus_decode: opuslib's wrapper cannot pass a NULL packet (PLC) and copies
        # the output twice.
        length = 0 if packet is None else len(packet)
        n = opus_decoder.libopus_decode(self._state, packet, length, self._pointer, frame, fec)
        if n < 0:
            raise CodecError(
                f"{what}: libopus rejected the packet ({opuslib.OpusError(n)}); drop it and conceal"
            )
        return self._buffer[:n].copy()

    def _packet_samples(self, packet: bytes) -> int:
        n = opus_decoder.libopus_get_nb_samples(self._state, packet, len(packet))
        if n < 0 or n > MAX_FRAME_SAMPLES:
            raise CodecError(f"not an Opus packet ({len(packet)} bytes): drop it and conceal")
        return int(n)

    @staticmethod
    def _check_packet(packet: object) -> bytes:
        if not isinstance(packet, bytes) or not packet:
            raise CodecError("an Opus packet is non-empty bytes; use conceal() for a lost one")
        return packet

    def decode(self, packet: bytes) -> Pcm:
        """Decode one packet; returns as many samples as the packet carries."""
        packet = self._check_packet(packet)
        samples = self._packet_samples(packet)
        pcm = self._run("decode", packet, samples, 0)
        self.last_frame_samples = pcm.shape[0]
        return pcm

    def decode_fec(self, next_packet: bytes, frame_samples: int | None = None) -> Pcm:
        """Recover the lost frame that precedes ``next_packet`` from its in-band FEC data.

        ``frame_samples`` is the lost frame's length (default: as long as ``next_packet``).
        When ``next_packet`` carries no FEC data libopus falls back to concealment, so the
        result is never worse than :meth:`conceal`. Decode ``next_packet`` itself afterwards.
        """
        next_packet = self._check_packet(next_packet)
        frame = self._packet_samples(next_packet) if frame_samples is None else frame_samples
        self._check_frame(frame)
        pcm = self._run("decode_fec", next_packet, frame, 1)
        self.last_frame_samples = pcm.shape[0]
        return pcm

    def conceal(self, frame_samples: int | None = None) -> Pcm:
        """Invent a lost frame from the decoder's history (packet-loss concealment).

        ``frame_samples`` defaults to the length of the last decoded frame.
        """
        frame = self.last_frame_samples if frame_samples is None else frame_samples
        self._check_frame(frame)
        return self._run("conceal", None, frame, 0)

    @staticmethod
    def _check_frame(frame: int) -> None:
        # opus_decode needs a multiple of 2.5 ms (120 samples at 48 kHz) for PLC and FEC.
        if not isinstance(frame, int) or not 0 < frame <= MAX_FRAME_SAMPLES or frame % 120:
            raise CodecError(
                f"frame_samples={frame!r} must be a multiple of 120 (2.5 ms) "
                f"up to {MAX_FRAME_SAMPLES}"
            )
