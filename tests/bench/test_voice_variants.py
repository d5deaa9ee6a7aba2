"""The bench's alternative protections do what they say (``bench/voice_variants.py``)."""

from __future__ import annotations

import pytest

from bench.voice_variants import PROTECTED_BITRATE, apply_variant
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_client.codec import DEFAULT_BITRATE
from ptt_client.voice import Transmitter
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org


def talker(org: Org, server: RelayServer) -> tuple[RadioClient, Transmitter]:
    bundle = org.bundle("alice", server)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))  # never started
    return client, Transmitter(client)


def lossy(channel: int = 1) -> control.LinkReport:
    return control.LinkReport(channel_id=channel, uplink_loss_pct=7.0, uplink_jitter_ms=1.0)


async def test_fec_sends_no_repeats_and_hints_the_reported_loss(
    org: Org, server: RelayServer
) -> None:
    client, transmitter = talker(org, server)
    apply_variant("fec", client, transmitter)
    client._emit(lossy())
    client._link_report(lossy())
    assert client.protection.for_channel(1, 0.0).distances == ()
    assert transmitter.encoder.expected_loss == 7
    assert client.loss.loss_pct == pytest.approx(7.0)  # where the next talk starts its hint


async def test_repeats_16k_lowers_the_bitrate_only_while_repeating(
    org: Org, server: RelayServer
) -> None:
    client, transmitter = talker(org, server)
    apply_variant("repeats-16k", client, transmitter)
    client._emit(events.ProtectionChanged(1, (1, 2), 7.0))
    assert transmitter.encoder.bitrate == PROTECTED_BITRATE
    client._emit(events.ProtectionChanged(1, (), 0.0))
    assert transmitter.encoder.bitrate == DEFAULT_BITRATE


async def test_an_unknown_variant_is_refused(org: Org, server: RelayServer) -> None:
    client, transmitter = talker(org, server)
    with pytest.raises(ValueError, match="unknown variant"):
        apply_variant("magic", client, transmitter)
