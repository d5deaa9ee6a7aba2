"""A real organisation and server for the console's tests (used by the fixtures in conftest.py).

``offline_client`` is a :class:`RadioClient` with a real root-issued dispatcher
credential that is never started: the app under test gets its events through
the same :class:`tui.app.ClientEvent` path the client task uses, so the screen
can be fed a fixed, deterministic story.

``field`` builds an organisation with ``ptt_admin`` (as ``ptt-admin`` would: init
the authority, start a :class:`RelayServer` on 127.0.0.1 with its root.pub, then
over the control plane enroll a dispatcher and three officers and create channels
``patrol`` and ``traffic``); the clients are left to the test (usually the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.identity import OrgRoot, Role
from ptt_admin import channels, people
from ptt_admin.authority import Authority, Relay, create_authority, pin_relay
from ptt_admin.session import connect
from ptt_client import channel_admin, events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.config import ServerConfig, org_root_path
from ptt_server.keyfiles import install_org_root
from ptt_server.server import RelayServer
from tests.credentials import bundle_for, issue

OFFICERS = {"alice": "Alice Adams", "bob": "Bob Brown", "carol": "Carol Clark"}


def make_bundle(user_id: str, name: str, role: Role = Role.DISPATCHER) -> CredentialBundle:
    """A real bundle for a device of a throwaway organisation (no server needed)."""
    root = OrgRoot.generate()
    device = issue(root, user_id, role, serial=1, display_name=name, device_id=f"{user_id}-console")
    return bundle_for(root, device, server_url="wss://127.0.0.1:1")


@dataclass
class Field:
    """A running server, its organisation, and the enrolled users' bundles."""

    server: RelayServer
    authority: Authority
    bundles: dict[str, CredentialBundle]
    channels: dict[str, int]

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.server.control_port}"

    def client(self, user_id: str, **kw: object) -> RadioClient:
        bundle = self.bundles[user_id]
        return RadioClient(bundle, bundle.open_keys(None), server_url=self.url, **kw)  # type: ignore[arg-type]


async def start_relay(tmp_path: Path) -> tuple[Authority, RelayServer]:
    """A new org authority in ``tmp_path/authority`` and a relay on ``tmp_path/relay`` that
    holds only its root.pub, as an operator sets them up (docs/operations.md)."""
    now = time.time()
    authority = create_authority(tmp_path / "authority", now=now, passphrase=None)
    relay_dir = tmp_path / "relay"
    install_org_root(org_root_path(relay_dir), authority.files.root_pub)
    config = ServerConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        media_port=0,
        data_dir=str(relay_dir),
        heartbeat_interval=10.0,
        idle_timeout=30.0,
    )
    server = await RelayServer.open(config)
    await server.start()
    relay = Relay(f"wss://127.0.0.1:{server.control_port}", server.tls_fingerprint)
    pin_relay(authority.files.directory, relay)
    return dataclasses.replace(authority, relay=relay), server


@contextlib.asynccontextmanager
async def open_field(tmp_path: Path) -> AsyncIterator[Field]:
    """An org authority and relay, disp/alice/bob/carol enrolled, patrol and traffic made."""
    authority, server = await start_relay(tmp_path)
    try:
        now = time.time()
        bundles = {}
        users = {"disp": ("Dispatch One", Role.DISPATCHER)} | {
            u: (n, Role.OFFICER) for u, n in OFFICERS.items()
        }
        channel_ids = {}
        async with connect(authority) as session:
            for user_id, (name, role) in users.items():
                enrolled = await people.enroll(
                    session, user_id, role=role, display_name=name, now=now
                )
                bundles[user_id] = enrolled.bundle
            for name in ("patrol", "traffic"):
                members = ["disp", "alice", "bob"] if name == "patrol" else ["disp", "carol"]
                change = await channels.create(session, name, members, now=now)
                channel_ids[name] = change.channel_id
        yield Field(server, authority, bundles, channel_ids)
    finally:
        await server.stop()


# --- helpers for tests on a field ----------------------------------------------------------


async def online(field: Field, *users: str) -> list[RadioClient]:
    clients = [field.client(user) for user in users]
    for client in clients:
        await client.start()
    for client in clients:
        await client.wait_connected()
    return clients


async def stop(*clients: RadioClient) -> None:
    for client in clients:
        await client.stop()


async def keys_for(client: RadioClient, channel_id: int, epoch: int) -> None:
    """Wait until ``client`` holds ``epoch`` of ``channel_id``."""
    keys = client.keyring.channels.get(channel_id)
    if keys is not None and keys.current_epoch >= epoch:
        return
    await client.wait_for(
        events.KeysUpdated, lambda e: e.channel_id == channel_id and e.epoch >= epoch
    )


class _BurstsStored(logging.Handler):
    """Sets ``stored`` on each "talk burst" record of the relay: ``ptt_server.channels`` logs
    one once a burst's last frames and its end are in the store (the store's one thread runs
    the writes in order), so a recall after it finds the burst in full."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.stored = asyncio.Event()
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "talk burst":
            self._loop.call_soon_threadsafe(self.stored.set)


@contextlib.contextmanager
def bursts_stored() -> Iterator[_BurstsStored]:
    logger = logging.getLogger("ptt_server.channels")
    handler = _BurstsStored(asyncio.get_running_loop())
    level = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)  # the record must be made for the handler to see it
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def recorded(
    client: RadioClient, channel_id: int, talker: str, frames: int, after: int = -1
) -> control.BurstInfo:
    """The newest burst of ``talker`` once the server stored all its ``frames``.

    The server writes recordings in batches, behind the burst; rather than poll its store,
    this waits for the relay's own "talk burst" log record (the field's server runs in this
    process), checking the store once before and once after each such record.
    """
    bursts: list[control.BurstInfo] = []
    with bursts_stored() as log:
        try:
            async with asyncio.timeout(10):  # a guard against a hang, not a timing goal
                while True:
                    log.stored.clear()  # before the look: a burst stored during it counts
                    bursts = await channel_admin.recall(client, channel_id, 5)
                    for burst in bursts:
                        if (
                            burst.talker == talker
                            and burst.burst_key > after
                            and burst.frame_count >= frames
                        ):
                            return burst
                    await log.stored.wait()
        except TimeoutError:
            raise AssertionError(f"burst never recorded: {bursts}") from None
