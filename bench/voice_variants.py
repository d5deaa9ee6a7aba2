"""Alternatives to the radio's loss protection, for ``python -m bench.voice --variant NAME``.

The radio repeats earlier sealed frames (``ptt_client.protection``) and leaves Opus in-band
FEC to its own downlink's loss. These variants measure what the other choices would give,
on the same network conditions (docs/design.md keeps the table):

- ``repeats`` - the radio as built;
- ``fec`` - no repeats; the Opus expected-loss hint follows the reported loss instead
  (libopus 1.3 then spends bits on in-band FEC, taken out of the voice);
- ``repeats+fec`` - both;
- ``repeats-16k`` - repeats, and Opus at 16 kbit/s while they are sent (fewer bytes per
  repeat, coarser voice).
"""

from __future__ import annotations

from typing import Final

from ptt_client import events
from ptt_client.client import RadioClient
from ptt_client.codec import DEFAULT_BITRATE
from ptt_client.protection import NONE, Protection, ProtectionState, effective_loss
from ptt_client.voice import Transmitter
from ptt_protocol import control

__all__ = ["VARIANTS", "apply_variant"]

VARIANTS: Final = ("repeats", "fec", "repeats+fec", "repeats-16k")
PROTECTED_BITRATE: Final = 16_000


class _NoRepeats(ProtectionState):
    """The reported loss is kept (for the FEC hint), but no repeat is ever sent."""

    def for_channel(self, channel_id: int, now: float) -> Protection:
        held = super().for_channel(channel_id, now)
        return NONE if not held.distances else Protection((), held.loss_pct)


class _ReportedLoss:
    """Stands in for the talker's downlink loss meter: the worse of it and the reports."""

    def __init__(self, client: RadioClient) -> None:
        self._meter = client.loss
        self.reported = 0.0

    @property
    def loss_pct(self) -> float:
        return max(self._meter.loss_pct, self.reported)


def apply_variant(name: str, talker: RadioClient, transmitter: Transmitter) -> None:
    """Make ``talker`` protect its voice the way variant ``name`` says."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}: use one of {', '.join(VARIANTS)}")
    if name == "fec":
        talker.protection = _NoRepeats()
    if name in ("fec", "repeats+fec"):
        loss = _ReportedLoss(talker)
        talker.loss = loss  # type: ignore[assignment]

        def follow(event: object) -> None:
            if isinstance(event, control.LinkReport):
                loss.reported = min(100.0, effective_loss(event)[0])
                transmitter.encoder.set_expected_loss(loss.loss_pct)

        talker.add_listener(follow)
    if name == "repeats-16k":

        def rate(event: object) -> None:
            if isinstance(event, events.ProtectionChanged):
                protected = bool(event.distances)
                transmitter.encoder.set_bitrate(PROTECTED_BITRATE if protected else DEFAULT_BITRATE)

        talker.add_listener(rate)
