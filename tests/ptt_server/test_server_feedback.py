"""Loss feedback and redundant datagrams through a real relay (issue 14).

The relay measures the talker's uplink from the hop counters it authenticates and tells the
talker (LinkReport); listeners report their downlink (ReceiverReport), and bad reports are
refused and change nothing. A redundant datagram's repeats pass the same sender check as any
frame and reach the recording once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from crypto.sframe import encode_header
from ptt_protocol import control, media, repeats
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_server.rawclient import RawClient, kid_of, logged_in
from tests.tui.org import bursts_stored


def voice(client: RawClient, sequence: int, payload: bytes) -> bytes:
    """An SFrame-shaped voice frame under ``client``'s KID (the relay never opens it)."""
    assert client.kid is not None
    return encode_header(client.kid, sequence) + payload


async def send_with_gaps(
    client: RawClient, cid: int, burst: int, count: int, lost: set[int]
) -> None:
    """``count`` voice frames, each sealed (so it takes its hop counter) but those in ``lost``
    never sent: exactly what a lossy uplink does."""
    for sequence in range(count):
        inner = media.pack_inner(cid, burst, sequence, 0, voice(client, sequence, b"v" * 40))
        datagram = client.hop.seal(inner)
        if sequence not in lost:
            await client.send_datagram(datagram)


async def test_the_talker_is_told_its_uplink_loss(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        granted = await alice.take_floor(cid)
        lost = {5, 6, 7, 20, 33}  # a run of three and two alone: 5 of 40, in 3 runs
        await send_with_gaps(alice, cid, granted.burst_id, 40, lost)
        last = (39).to_bytes(4, "big")
        await bob.wait_datagram(lambda d: d.inner is not None and d.inner[8:12] == last)
        # The first loss made the relay report at once; the timer's report covers the rest.
        report = await alice.wait_for(
            control.LinkReport, lambda r: r.uplink_loss_pct == 100.0 * 5 / 40, timeout=5
        )
        assert report.channel_id == cid
        assert report.uplink_loss_run == 5 / 3
        assert report.audience_loss_pct == 0.0  # nobody reported a lossy downlink
        # The first report came at once, on the datagram that showed the first gap (frame 8
        # after 5, 6, 7 were lost: 3 of 9), not with the timer when all 40 were in.
        early = alice.received(control.LinkReport)[0]
        assert early.uplink_loss_pct == 100.0 * 3 / 9
        assert not bob.received(control.LinkReport)  # only the holder is told


async def test_one_listener_cannot_set_the_talkers_figure(org: Org, server: RelayServer) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob", "carol") as c:
        alice, bob, carol = c["alice"], c["bob"], c["carol"]
        await bob.send(control.ReceiverReport(channel_id=cid, loss_pct=4.0, jitter_ms=12.0))
        await carol.send(
            control.ReceiverReport(channel_id=cid, loss_pct=60.0, jitter_ms=30.0, loss_run=3.0)
        )
        await bob.ping()
        await carol.ping()
        granted = await alice.take_floor(cid)
        await send_with_gaps(alice, cid, granted.burst_id, 30, set())
        report = await alice.wait_for(control.LinkReport, timeout=5)
        # Two listeners: never the single worst report, so carol (in a basement, or lying)
        # cannot make alice send a flood, nor learn that someone reported 60 %.
        assert report.audience_loss_pct == 4.0
        assert report.audience_jitter_ms == 12.0
        assert report.audience_loss_run == 1.0
        assert report.uplink_loss_pct == 0.0
        assert not bob.received(control.Error) and not carol.received(control.Error)


async def test_bad_receiver_reports_are_refused_and_change_nothing(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with (
        logged_in(server, org, "alice", "bob") as c,
        logged_in(server, org, "carol", affiliate=False) as outsider,
    ):
        alice, bob, carol = c["alice"], c["bob"], outsider["carol"]
        await bob.send(control.ReceiverReport(channel_id=cid, loss_pct=3.0, jitter_ms=5.0))
        await bob.ping()
        # Too soon after the last one.
        await bob.send(control.ReceiverReport(channel_id=cid, loss_pct=19.0, jitter_ms=5.0))
        refused = await bob.wait_for(control.Error)
        assert refused.code == control.ERROR_RATE_LIMITED and "slow down" in refused.text
        # Absurd figures do not even decode (negative, over 100 %, not a number).
        for loss in (-1.0, 150.0, float("nan")):
            await bob.send(control.ReceiverReport(channel_id=cid, loss_pct=loss, jitter_ms=1.0))
            error = await bob.wait_for(control.Error)
            assert error.code == control.ERROR_BAD_MESSAGE and "loss_pct" in error.text
        # Not listening to the channel.
        await carol.send(control.ReceiverReport(channel_id=cid, loss_pct=50.0, jitter_ms=5.0))
        error = await carol.wait_for(control.Error)
        assert error.code == control.ERROR_FORBIDDEN
        granted = await alice.take_floor(cid)
        await send_with_gaps(alice, cid, granted.burst_id, 30, set())
        report = await alice.wait_for(control.LinkReport, timeout=5)
        assert report.audience_loss_pct == 3.0  # only bob's first, accepted report counts


async def test_repeats_pass_the_sender_check_and_are_recorded_once(
    org: Org, server: RelayServer
) -> None:
    cid = org.channel_id
    async with logged_in(server, org, "alice", "bob") as c:
        alice, bob = c["alice"], c["bob"]
        written: list[int] = []
        store_write = server.store.record_frames

        async def record_frames(burst_key: int, batch: Iterable[tuple[int, int, bytes]]) -> int:
            rows = list(batch)
            written.extend(seq for seq, _, _ in rows)
            return await store_write(burst_key, rows)

        server.store.record_frames = record_frames  # type: ignore[method-assign,assignment]
        granted = await alice.take_floor(cid)
        burst = granted.burst_id
        frames = [voice(alice, n, os.urandom(30)) for n in range(12)]
        for n, frame in enumerate(frames):
            carried = [repeats.Repeat(d, 0, frames[n - d]) for d in (1, 2) if n >= d]
            inner = repeats.pack_redundant(cid, burst, n, 0, frame, carried, reach=2)
            await alice.send_datagram(alice.hop.seal(inner))
        # A repeat under another member's KID: the whole datagram is dropped.
        before = server.metrics.relay.drops["wrong_sender"]
        bobs = encode_header(kid_of(org, "bob"), 11) + b"bob speaks as alice"
        forged = repeats.pack_redundant(
            cid, burst, 12, 0, voice(alice, 12, b"x" * 30), [repeats.Repeat(1, 0, bobs)], 1
        )
        await alice.send_datagram(alice.hop.seal(forged))
        await alice.keepalive()
        assert server.metrics.relay.drops["wrong_sender"] == before + 1
        got = [await bob.wait_datagram() for _ in frames]
        assert all(d.inner is not None and d.inner[12] & media.REDUNDANT for d in got)
        forwarded = {d.inner for d in got}
        assert len(forwarded) == len(frames)  # forwarded as they were, none of them opened
        with bursts_stored() as log:
            await alice.send(control.FloorRelease(channel_id=cid))
            async with asyncio.timeout(10):  # a guard against a hang, not a timing goal
                await log.stored.wait()  # the relay's own "talk burst" record: all is stored
        recorded = await server.store.recent_bursts(cid, 1)
        stored = await server.store.burst_frames(recorded[0].burst_key)
        assert [f.seq for f in stored] == list(range(12))  # each frame once
        assert sorted(written) == list(range(12))  # and written once, not once per copy
        assert [f.frame for f in stored] == frames
