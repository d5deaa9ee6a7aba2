"""RadioClient's floor participant against a real server: a radio told to stop releases the
floor at once (TS 24.380 6.2.4.5.4), so whoever waits in line talks without waiting out T3."""

from __future__ import annotations

import asyncio

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.orgfixture import Org, start_server


async def test_a_burst_too_long_is_released_at_the_revoke_and_the_queue_moves_on(
    org: Org,
) -> None:
    """T2 (stop talking) is 1 s here and T3 (the grace after "Media burst too long") 30 s:
    without the radio's release, bob would wait until alice's media stopped long enough for
    T1 (4 s), or until T3."""
    server = await start_server(org, floor_t2_officer=1.0, floor_t3_grace=30.0)
    cid = org.channel_id
    radios: list[RadioClient] = []
    try:
        for user in ("alice", "bob"):
            bundle = org.bundle(user, server)
            client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
            radios.append(client)
            await client.start()
            await client.wait_connected()
            await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
            await client.affiliate(cid)
            await client.wait_for(control.Affiliated)
        alice, bob = radios
        await alice.press()
        await alice.wait_for(control.FloorGranted)
        await bob.wait_for(control.FloorTaken, lambda e: e.user_id == "alice")
        await bob.press()
        await bob.wait_for(control.FloorQueuePosition)
        frames = 0
        while await alice.send_voice(b"words %d" % frames):  # until the revoke stops her
            frames += 1
            await asyncio.sleep(0.02)  # 20 ms frames, as a radio sends them
        revoke = await alice.wait_for(control.FloorRevoke)
        assert revoke.cause == "Media burst too long" and frames > 10
        # Alice's radio handled the revoke before reporting it: it stopped and released.
        await alice.ping_server()
        assert server.channels[cid].floor.holder == "bob"
        await bob.wait_for(control.FloorGranted)
        assert alice.ptt_down(cid)  # her key is still down; letting go sends nothing
        await alice.release(cid)
        await alice.ping_server()
        assert server.channels[cid].floor.holder == "bob" and not alice.ptt_down(cid)
    finally:
        for client in radios:
            await client.stop()
        await server.stop()
