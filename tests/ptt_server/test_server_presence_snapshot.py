"""The presence snapshot lists every enrolled user, with when each was last heard (issue 11).

A dispatcher must see (and be able to text) officers who never logged in, and the console
shows when each officer last talked, not when their presence last changed.
"""

from __future__ import annotations

import time

from crypto.identity import DeviceKeys
from ptt_protocol import control
from ptt_server.handlers.presence import enrolled_parts
from ptt_server.server import RelayServer
from ptt_server.sessions import OUTBOUND_QUEUE_LIMIT
from ptt_server.store import Presence, Store
from tests.credentials import issue
from tests.orgfixture import Account, Org, user_record
from tests.ptt_server.rawclient import RawClient, logged_in


def long_id(n: int) -> str:
    """A 64-character id (the longest the protocol allows), two bytes a character."""
    return "é" * 56 + f"{n:08d}"


async def enrolled(client: RawClient) -> list[control.EnrolledUsers]:
    parts = [await client.wait_for(control.EnrolledUsers)]
    while not parts[-1].last:
        parts.append(await client.wait_for(control.EnrolledUsers))
    return parts


def test_a_huge_org_is_sent_in_parts_that_each_fit_a_frame() -> None:
    users = [control.EnrolledUser(user_id=long_id(n), last_heard=1e10 + n) for n in range(5000)]
    parts = list(enrolled_parts(users))
    assert len(parts) > 1
    for part in parts:
        frame = control.encode(part)  # raises past MAX_MESSAGE_SIZE
        assert len(frame) <= control.MAX_MESSAGE_SIZE
        assert len(part.users) <= control.MAX_LIST_LENGTH
        assert control.decode(frame) == part
    assert [p.last for p in parts] == [False] * (len(parts) - 1) + [True]
    assert [u for p in parts for u in p.users] == users
    # An org of nobody still ends the list.
    assert list(enrolled_parts([])) == [control.EnrolledUsers(users=(), last=True)]


async def test_snapshot_lists_who_never_logged_in_and_when_each_was_last_heard(
    org: Org, server: RelayServer
) -> None:
    heard_at = time.time() - 600
    key = await server.store.start_burst(org.channel_id, 1, "alice", 1, heard_at)
    await server.store.end_burst(key, 3.0, "released")
    async with logged_in(server, org, "disp") as c:
        disp = c["disp"]
        await disp.send(control.PresenceSubscribe())
        parts = await enrolled(disp)
        listed = {u.user_id: u.last_heard for p in parts for u in p.users}
        # bob and carol never logged in; the console itself is not listed.
        assert {"alice", "bob", "carol"} <= set(listed)
        assert "disp" not in listed
        assert listed["alice"] == heard_at + 3.0
        assert listed["bob"] is None
        # Only users who logged in have a presence record; the others are in the list only.
        await disp.send(control.PresenceSubscribe(user_ids=("bob",)))
        (only,) = await enrolled(disp)
        assert [u.user_id for u in only.users] == ["bob"]


async def test_a_huge_org_reaches_the_dispatcher_whole(org: Org, server: RelayServer) -> None:
    keys = DeviceKeys.generate()
    ids = [long_id(n) for n in range(2500)]
    async with await Store.open(org.db_path) as store:
        for n, user_id in enumerate(ids):
            _, credential = issue(
                org.root, user_id, serial=20_000 + n, keys=keys, device_id=f"d{n}"
            )
            await store.put_user(user_record(Account(user_id, keys, credential)))
    async with logged_in(server, org, "disp") as c:
        disp = c["disp"]
        await disp.send(control.PresenceSubscribe())
        parts = await enrolled(disp)
        assert len(parts) > 1
        assert set(ids) <= {u.user_id for p in parts for u in p.users}
        await disp.ping()  # still connected: the snapshot did not overrun its queue
        assert "disp" in server.sessions.by_user


async def test_thousands_of_presence_records_reach_the_dispatcher_without_dropping_it(
    org: Org, server: RelayServer
) -> None:
    """One PresenceUpdate per stored record: more records than a client's outbound queue
    holds (OUTBOUND_QUEUE_LIMIT) used to drop the dispatcher as "too slow" mid-snapshot."""
    count = OUTBOUND_QUEUE_LIMIT + 1000
    async with await Store.open(org.db_path) as store:
        for n in range(count):
            await store.put_presence(Presence(f"officer-{n}", "available", False, 1e9 + n))
    async with logged_in(server, org, "disp") as c:
        disp = c["disp"]
        await disp.send(control.PresenceSubscribe())
        seen: set[str] = set()
        while len(seen) < count:
            update = await disp.wait_for(
                control.PresenceUpdate, lambda m: m.user_id.startswith("officer-")
            )
            seen.add(update.user_id)
        await disp.ping()
        assert "disp" in server.sessions.by_user
