"""The fixture every test that places a real private call needs: loopback-only ICE.

aioice leaves 127.0.0.1 out of its host candidates (RFC 8445 5.1.1.1), so two radios on one
machine with no other interface up could not reach each other, and on a machine with one
the test's packets would leave it. ``FIELDRADIO_ICE_HOSTS`` (``ptt_client/calls/ice.py``), the
operator's setting that pins the interface calls use, pins it to 127.0.0.1: in this process
and in every ``ptt-radio`` process a test starts (they inherit the environment).

Import it into a conftest (``from tests.calls_fixture import loopback_ice``): it is autouse.
"""

from __future__ import annotations

import pytest

from ptt_client.calls.ice import ICE_HOSTS_ENV

__all__ = ["loopback_ice"]


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls offer only 127.0.0.1 (here and in the radio processes started meanwhile)."""
    monkeypatch.setenv(ICE_HOSTS_ENV, "127.0.0.1")
