"""The failover part of :mod:`bench.cluster`: real radios, node 0 killed under them.

One channel (``ops``) of real :class:`~ptt_client.client.RadioClient` radios whose bundles
name every node (their own first):

- on node 0: ``owner`` (takes the floor first, so node 0 owns its lease, and keeps talking),
  ``listener`` (bundle: node 0, node 1, node 2), ``raiseN`` (each raises an emergency and waits
  for the server's answer to a ping behind it: the alert is handled) and ``sender`` (texts to
  ``recipient``, each waited for until ``RECEIPT_STORED``);
- on node 2: ``taker``, who presses PTT the moment node 0 is killed and, once granted, talks.

Then ``kill -9`` node 0 and measure from the kill: ``floor_takeover_s`` (``taker`` granted),
``failover_s`` (``listener``, now on a survivor, gets ``taker``'s first VoiceFrame), then
``emergencies_lost`` (alerts missing from the survivors' store's active alerts) and
``texts_lost`` (``recipient`` logs in on node 1: texts not shown exactly once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from bench.processes import BenchError
from bench.relay import Plan
from crypto.bundle import CredentialBundle
from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import Credential, DeviceKeys, Role
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.store import Store, User
from tests.credentials import bundle_for, issue

if TYPE_CHECKING:
    from bench.cluster import ClusterRun, Params

VOICE_PERIOD_S: Final = 0.02
OPUS: Final = b"\xf8\xff\xfe"
"""Any bytes do: the relay never opens a frame and the listener only decrypts it."""
WAIT_S: Final = 15.0
"""Longest wait for one failover event (the goals are seconds; this only ends a hung run)."""
SERIAL_BASE: Final = 1 << 40
"""Serials of the radios' credentials: above every one :func:`bench.relay.make_org` issues."""


@dataclass
class Radios:
    """The radios' accounts and channel, made in the org before the nodes start."""

    root_public_key: bytes
    channel_id: int
    accounts: dict[str, tuple[DeviceKeys, Credential]]
    raisers: list[str]
    texts: int
    plan: Plan
    clients: list[RadioClient] = field(default_factory=list)


async def make_radios(plan: Plan, params: Params, store_url: str) -> Radios:
    """Enroll the radios and make their channel (roster and epoch 1 wrapped to each)."""
    now = time.time()
    disp_keys, disp = plan.dispatcher
    raisers = [f"raise{i}" for i in range(params.emergencies)]
    names = ["owner", "listener", "taker", "sender", "recipient", *raisers]
    accounts = {
        name: issue(plan.root, name, Role.OFFICER, serial=SERIAL_BASE + i, now=now)
        for i, name in enumerate(names)
    }
    async with await Store.open(store_url) as store:
        for _, credential in accounts.values():
            await store.put_user(User.from_credential(credential, now))
        channel_id = await store.create_channel("ops", now)
        members = {"dispatch": disp} | {n: c for n, (_, c) in accounts.items()}
        roster = Roster(channel_id, 1, tuple(Member.from_credential(c) for c in members.values()))
        await store.put_roster(channel_id, 1, sign_roster(roster, disp_keys, disp), list(members))
        key = new_epoch_key(channel_id, 1, 1)
        await store.put_envelopes(
            channel_id, 1, wrap_epoch(key, roster, members, disp_keys, disp), now
        )
    return Radios(plan.root.public_key_bytes(), channel_id, accounts, raisers, params.texts, plan)


def _bundle(radios: Radios, run: ClusterRun, user: str, node: int) -> CredentialBundle:
    keys, credential = radios.accounts[user]
    bundle = bundle_for(
        radios.plan.root,
        (keys, credential),
        server_url=run.url(node),
        tls_fingerprint=run.nodes[node].fingerprint,
    )
    others = tuple(run.url(i) for i in range(len(run.nodes)) if i != node)
    # The other nodes, in order: where the radio goes when its node dies (client failover).
    return msgspec.structs.replace(bundle, alternate_urls=others)


async def _radio(radios: Radios, run: ClusterRun, user: str, node: int) -> RadioClient:
    bundle = _bundle(radios, run, user, node)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
    radios.clients.append(client)
    await client.start()
    await client.wait_connected(timeout=WAIT_S)
    await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1, timeout=WAIT_S)
    await client.affiliate(radios.channel_id)
    await client.wait_for(control.Affiliated, timeout=WAIT_S)
    return client


@contextlib.asynccontextmanager
async def _talking(client: RadioClient) -> AsyncIterator[None]:
    """``client`` sends a voice frame every 20 ms until the block ends."""

    async def talk() -> None:
        while True:
            await client.send_voice(OPUS)
            await asyncio.sleep(VOICE_PERIOD_S)

    task = asyncio.create_task(talk())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _granted(client: RadioClient, deadline: float) -> None:
    """Press until granted: a press may be denied while the dead owner's lease runs out."""
    loop = asyncio.get_running_loop()
    while True:
        await client.press()
        left = deadline - loop.time()
        if left <= 0:
            raise BenchError("taker: never granted the floor after the kill")
        answer = await client.wait_for(
            object, lambda e: isinstance(e, control.FloorGranted | control.FloorDeny), left
        )
        if isinstance(answer, control.FloorGranted):
            return
        await client.release()


def _stored(message_id: bytes) -> Callable[[control.TextReceipt], bool]:
    return lambda r: r.message_id == message_id and r.kind == control.RECEIPT_STORED


async def _survivors_alerts(run: ClusterRun, store_url: str) -> set[bytes]:
    async with await Store.open(store_url) as store:  # the store the survivors share
        return {e.alert_id for e in await store.active_emergencies()}


async def failover_part(run: ClusterRun, radios: Radios, store_url: str) -> dict[str, Any]:
    try:
        return await _failover(run, radios, store_url)
    except (TimeoutError, OSError) as exc:
        raise BenchError(f"failover part: {type(exc).__name__}: {exc}") from None
    finally:
        for client in radios.clients:
            await client.stop()


async def _failover(run: ClusterRun, radios: Radios, store_url: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    owner = await _radio(radios, run, "owner", 0)
    listener = await _radio(radios, run, "listener", 0)
    taker = await _radio(radios, run, "taker", 2)
    sender = await _radio(radios, run, "sender", 0)
    alerts = []
    for name in radios.raisers:
        raiser = await _radio(radios, run, name, 0)
        alerts.append(await raiser.raise_emergency())
        await raiser.ping_server()  # answered after the alert: node 0 handled (stored) it
    stored = []
    for n in range(radios.texts):
        message_id = await sender.send_text(f"text {n}", to_user="recipient")
        await sender.wait_for(control.TextReceipt, _stored(message_id), timeout=WAIT_S)
        stored.append(message_id)
    await owner.press()
    await owner.wait_for(control.FloorGranted, timeout=WAIT_S)  # node 0 owns the floor now
    async with _talking(owner):
        await listener.wait_for(events.VoiceFrame, lambda f: f.talker == "owner", timeout=WAIT_S)
        killed = loop.time()
        await run.kill(0)
    await _granted(taker, killed + WAIT_S)
    floor_takeover_s = loop.time() - killed
    async with _talking(taker):
        await listener.wait_for(events.VoiceFrame, lambda f: f.talker == "taker", timeout=WAIT_S)
        failover_s = loop.time() - killed
    await taker.release()

    present = await _survivors_alerts(run, store_url)
    shown: Counter[bytes] = Counter()
    bundle = _bundle(radios, run, "recipient", 1)
    recipient = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
    recipient.add_listener(
        lambda e: shown.update([e.message_id]) if isinstance(e, events.TextReceived) else None
    )
    radios.clients.append(recipient)
    await recipient.start()
    await recipient.wait_connected(timeout=WAIT_S)
    deadline = loop.time() + WAIT_S
    while not all(shown[m] for m in stored) and loop.time() < deadline:
        await recipient.ping_server()  # the server has sent what it had before the answer
        await asyncio.sleep(0.1)
    await recipient.ping_server()
    return {
        "failover_s": failover_s,
        "floor_takeover_s": floor_takeover_s,
        "emergencies_raised": len(alerts),
        "emergencies_lost": sum(1 for a in alerts if a not in present),
        "texts_stored": len(stored),
        "texts_lost": sum(1 for m in stored if shown[m] != 1),
        "texts_shown_twice": sum(1 for m in stored if shown[m] > 1),
        "listener_server_after": listener.server_url,
    }
