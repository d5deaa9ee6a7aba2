"""FIELDRADIO_ICE_HOSTS: which host candidates a call offers (an operator's pin, the tests' 127.0.0.1)."""

from __future__ import annotations

import aioice.ice
import pytest

from ptt_client.calls import CallMedia, CallMediaError, IceSettings
from ptt_client.calls.aiortc_patches import pin_host_addresses
from ptt_client.calls.ice import ICE_HOSTS_ENV, pinned_host_addresses


def test_unset_or_empty_pins_nothing() -> None:
    assert pinned_host_addresses({}) is None
    assert pinned_host_addresses({ICE_HOSTS_ENV: " "}) is None


def test_addresses_are_listed_once_in_order() -> None:
    environ = {ICE_HOSTS_ENV: " 192.0.2.10, ::1,192.0.2.10"}
    assert pinned_host_addresses(environ) == ("192.0.2.10", "::1")


def test_a_word_that_is_no_address_is_a_one_line_error() -> None:
    with pytest.raises(CallMediaError, match=r"'eth0' is not an IP address: list this machine's"):
        pinned_host_addresses({ICE_HOSTS_ENV: "127.0.0.1,eth0"})


async def test_a_call_offers_only_the_pinned_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice leaves 127.0.0.1 out by itself: with the pin, it is the only host candidate."""
    pin_host_addresses(None)  # whatever an earlier call pinned
    original = aioice.ice.get_host_addresses
    monkeypatch.setenv(ICE_HOSTS_ENV, "127.0.0.1")
    media = CallMedia(IceSettings(), None, None)
    try:
        candidates = [line for line in (await media.offer()).splitlines() if "candidate:" in line]
    finally:
        await media.close()
    assert candidates and all(" 127.0.0.1 " in line for line in candidates), candidates
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    pin_host_addresses(None)  # the setting is gone: aioice's own function is back
    assert aioice.ice.get_host_addresses is original


async def test_a_bad_setting_refuses_the_call_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ICE_HOSTS_ENV, "not-an-address")
    with pytest.raises(CallMediaError, match=ICE_HOSTS_ENV):
        CallMedia(IceSettings(), None, None)
