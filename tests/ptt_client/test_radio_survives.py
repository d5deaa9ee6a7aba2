"""A radio must never die from what the network sends it (issue 10, item 5).

Each test runs a real relay (TLS, UDP, SQLite) that says something a radio cannot use
and checks that the radio's connection task is still alive afterwards: it reports what
went wrong and carries on, rather than ending for good with no reconnect and no event.
"""

from __future__ import annotations

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from tests.orgfixture import Org, start_server


async def test_a_media_host_the_radio_cannot_resolve_falls_back_to_the_tunnel(org: Org) -> None:
    """The relay tells radios a UDP host no resolver accepts ("a..b": an empty DNS label,
    so ``create_datagram_endpoint`` raises ``UnicodeError``, not ``OSError``). The radio
    logs in, uses the WebSocket tunnel for media, and its connection task is still
    running."""
    server = await start_server(org, public_host="a..b")
    try:
        bundle = org.bundle("alice", server)
        radio = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
        await radio.start()
        try:
            path = await radio.wait_for(events.MediaPath)
            assert path.path == "tunnel"
            await radio.wait_connected()
            assert radio._task is not None and not radio._task.done()
        finally:
            await radio.stop()
    finally:
        await server.stop()
