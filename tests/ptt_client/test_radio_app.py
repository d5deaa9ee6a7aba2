"""ptt-radio's :class:`~ptt_client.radio.Radio` against a real server: the PTT key after the
floor was taken away, and read receipts for the texts it prints."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import NullOutput, WavFileInput
from ptt_client.client import RadioClient
from ptt_client.radio import Console, Radio
from ptt_client.radio.app import input_opener
from ptt_client.radio.keys import TogglePtt
from ptt_client.voice import Transmitter
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org
from tests.ptt_client.speech import long_recording


def client_of(org: Org, server: RelayServer, user: str) -> RadioClient:
    bundle = org.bundle(user, server)
    return RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return long_recording(tmp_path / "long.wav", 12.0)


@pytest.fixture
async def radio(org: Org, server: RelayServer, recording: Path) -> AsyncIterator[Radio]:
    """Alice's ptt-radio on patrol, talking from a long recording, printing into a buffer."""
    running = Radio(
        client_of(org, server, "alice"),
        open_input=input_opener(str(recording), 20),
        output=NullOutput(),
        console=Console(io.StringIO(), live=False),
    )
    await running.start("patrol")
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def bob(org: Org, server: RelayServer) -> AsyncIterator[RadioClient]:
    client = client_of(org, server, "bob")
    await client.start()
    try:
        await client.wait_connected()
        await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
        await client.affiliate(org.channel_id)
        await client.wait_for(control.Affiliated)
        yield client
    finally:
        await client.stop()


def printed(radio: Radio) -> str:
    out = radio.console.out
    assert isinstance(out, io.StringIO)
    return out.getvalue()


async def test_ptt_after_an_emergency_pre_empted_the_radio_sends_nothing(
    org: Org, server: RelayServer, radio: Radio, bob: RadioClient, recording: Path
) -> None:
    """Alice talks; bob raises an emergency and takes the floor. Alice's space (PTT off) only
    lets go of the key: no Floor Request, no second burst after the emergency."""
    cid = org.channel_id
    grants: list[control.FloorGranted] = []
    radio.client.add_listener(
        lambda e: grants.append(e) if isinstance(e, control.FloorGranted) else None
    )
    await radio.handle(TogglePtt())  # PTT on
    await bob.wait_for(control.FloorTaken, lambda e: e.user_id == "alice")
    await bob.raise_emergency()
    emergency = Transmitter(bob)
    talk = asyncio.create_task(
        emergency.talk(WavFileInput(recording), channel_id=cid, priority=control.PRIORITY_MAX)
    )
    await bob.wait_for(control.FloorGranted, lambda e: e.channel_id == cid)
    assert await radio._wait(
        lambda: not radio.transmitting and "floor revoked on patrol" in printed(radio), 5
    ), "alice kept transmitting"

    await radio.handle(TogglePtt())  # PTT off: "stop"
    assert await radio._wait(
        lambda: not radio.transmitting or radio.client.floors[cid].state == "queued", 5
    )
    await radio.client.ping_server()  # the server has handled all the radio sent
    floor = server.channels[cid].floor
    assert floor.holder == "bob"
    assert "alice" not in [user for user, _ in floor.queue], "PTT off asked for the floor again"

    emergency.stop()
    assert (await talk).outcome == "granted"
    await bob.wait_for(control.FloorIdle, lambda e: e.channel_id == cid)
    await radio.client.ping_server()
    assert len(grants) == 1, "the server put alice back on air"
    assert server.channels[cid].floor.holder is None
    assert not radio.transmitting


async def test_a_printed_text_is_read(org: Org, radio: Radio, bob: RadioClient) -> None:
    """A headless radio prints a text: printed is read, and the sender hears so."""
    message_id = await bob.send_text("meet at the north gate", to_user="alice")
    await bob.send_text("all units: road closed", to_channel=org.channel_id)
    reads = []
    for _ in range(2):
        reads.append(
            await bob.wait_for(
                control.TextReceipt, lambda r: r.kind == control.RECEIPT_READ, timeout=10
            )
        )
    assert all(r.by_user == "alice" for r in reads)
    assert message_id in {r.message_id for r in reads}
    assert "text from bob (direct): meet at the north gate" in printed(radio)
