"""A real organisation, store and server for end-to-end tests (server, client and console).

``org`` builds a relay data directory as the relay would hold it after the org
authority (``ptt-admin``) set it up: the org root's public key, four enrolled users
(dispatcher ``disp``, officers ``alice``, ``bob``, ``carol``) with real device keys
and root-issued credentials, and a channel ``patrol`` whose roster (signed by the
dispatcher) lists all four, with the epoch key wrapped to each of them. The org
root and the authority's ``admin`` account stay in memory (never on the relay's
disk): tests publish what ``ptt-admin`` would over the control plane
(:meth:`Org.revoke`). ``server`` runs a :class:`RelayServer` on that directory with
real TLS, UDP and SQLite on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crypto.bundle import CredentialBundle
from crypto.epoch import EpochKey, new_epoch_key, wrap_epoch
from crypto.identity import Credential, DeviceKeys, OrgRoot, Role, TrustAnchor
from crypto.roster import Member, Roster, sign_roster
from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.config import DATABASE_NAME, ServerConfig, org_root_path
from ptt_server.server import RelayServer
from ptt_server.store import Store, User
from ptt_server.tls import fingerprint
from tests.credentials import bundle_for, issue

CHANNEL_NAME = "patrol"
USERS: Mapping[str, tuple[str, Role]] = {
    "disp": ("Dispatch One", Role.DISPATCHER),
    "alice": ("Alice Adams", Role.OFFICER),
    "bob": ("Bob Brown", Role.OFFICER),
    "carol": ("Carol Clark", Role.OFFICER),
}


@dataclass
class Account:
    """One enrolled device: its private keys and its root-issued credential."""

    user_id: str
    keys: DeviceKeys
    credential: Credential


@dataclass
class Org:
    """The organisation on disk in ``data_dir``, and the secrets the tests play with."""

    data_dir: Path
    root: OrgRoot
    accounts: dict[str, Account]
    channel_id: int
    roster: Roster
    signed_roster: bytes
    epoch_key: EpochKey
    admin: Account
    """The org authority's own credential (role admin): not enrolled, not on any roster."""
    next_serial: int = field(default=100)

    @property
    def db_path(self) -> Path:
        return self.data_dir / DATABASE_NAME

    @property
    def trust(self) -> TrustAnchor:
        return TrustAnchor(self.root.public_key_bytes())

    def bundle(self, user_id: str, server: RelayServer) -> CredentialBundle:
        """The credential bundle ``ptt-admin enroll`` would hand to ``user_id``'s device."""
        account = self.accounts[user_id]
        return bundle_for(
            self.root,
            (account.keys, account.credential),
            server_url=f"wss://127.0.0.1:{server.control_port}",
            tls_fingerprint=fingerprint(self.data_dir / "tls" / "cert.pem"),
        )

    def issue(
        self,
        user_id: str,
        role: Role = Role.OFFICER,
        *,
        root: OrgRoot | None = None,
        not_before: float | None = None,
        not_after: float | None = None,
    ) -> Account:
        """A fresh device and credential (not enrolled) for ``user_id``."""
        self.next_serial += 1
        keys, credential = issue(
            root or self.root,
            user_id,
            role,
            serial=self.next_serial,
            not_before=not_before,
            not_after=not_after,
        )
        return Account(user_id, keys, credential)

    async def enroll(self, account: Account) -> None:
        """Store ``account``'s credential in the relay's database (test set-up; ``ptt-admin
        enroll`` sends the credential over the control plane instead)."""
        async with await Store.open(self.db_path) as store:
            await store.put_user(user_record(account))

    async def revoke(self, server: RelayServer, version: int, *accounts: Account) -> None:
        """Publish a root-signed revocation list naming ``accounts`` (by serial), as
        ``ptt-admin revoke`` does: logged in as the org authority, over the control plane."""
        from tests.ptt_server.rawclient import connect

        signed = self.root.sign_revocations(
            version=version,
            issued_at=int(time.time()),
            serials=[a.credential.serial for a in accounts],
        )
        admin = await connect(server, self.admin)
        try:
            await admin.send(control.RevocationUpdate(signed_list=signed.to_bytes()))
            await admin.ping()
            refused = admin.received(control.Error)
            assert not refused, refused
        finally:
            await admin.close()


def user_record(account: Account) -> User:
    return User.from_credential(account.credential, time.time())


@pytest.fixture
async def org(tmp_path: Path) -> Org:
    root = OrgRoot.generate()
    root_file = org_root_path(tmp_path)
    root_file.parent.mkdir(parents=True)
    root_file.write_bytes(root.public_key_bytes())
    now = time.time()
    accounts: dict[str, Account] = {}
    for serial, (user_id, (name, role)) in enumerate(USERS.items(), start=1):
        keys, credential = issue(
            root,
            user_id,
            role,
            serial=serial,
            now=now,
            display_name=name,
            device_id=f"{user_id}-phone",
        )
        accounts[user_id] = Account(user_id, keys, credential)
    async with await Store.open(tmp_path / DATABASE_NAME) as store:
        channel_id, roster, signed, epoch_key = await fill_store(store, accounts, now)
    admin = Account(
        "admin",
        *issue(
            root,
            "admin",
            Role.ADMIN,
            serial=99,
            now=now,
            display_name="Administrator",
            device_id="admin-authority",
        ),
    )
    return Org(tmp_path, root, accounts, channel_id, roster, signed, epoch_key, admin)


async def fill_store(
    store: Store, accounts: Mapping[str, Account], now: float, epoch_key: EpochKey | None = None
) -> tuple[int, Roster, bytes, EpochKey]:
    """Enroll ``accounts`` and make channel patrol with all of them on its roster (signed by
    the dispatcher) and epoch 1's key wrapped to each: (channel id, roster, signed roster,
    epoch key). ``epoch_key``: the same key again (another store of the same org)."""
    for account in accounts.values():
        await store.put_user(user_record(account))
    channel_id = await store.create_channel(CHANNEL_NAME, now)
    roster = Roster(
        channel_id,
        1,
        tuple(Member.from_credential(a.credential) for a in accounts.values()),
    )
    disp = accounts["disp"]
    signed = sign_roster(roster, disp.keys, disp.credential)
    await store.put_roster(channel_id, 1, signed, list(accounts))
    epoch_key = epoch_key or new_epoch_key(channel_id, 1, 1)
    envelopes = wrap_epoch(
        epoch_key,
        roster,
        {u: a.credential for u, a in accounts.items()},
        disp.keys,
        disp.credential,
    )
    await store.put_envelopes(channel_id, 1, envelopes, now)
    return channel_id, roster, signed, epoch_key


def server_config(org: Org, **overrides: Any) -> ServerConfig:
    settings: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "media_port": 0,
        "data_dir": str(org.data_dir),
        "heartbeat_interval": 10.0,
        "idle_timeout": 30.0,
    }
    settings.update(overrides)
    return ServerConfig(**settings)


async def start_server(org: Org, **overrides: Any) -> RelayServer:
    """Open and start a server on ``org``'s data directory; the caller stops it."""
    server = await RelayServer.open(server_config(org, **overrides))
    await server.start()
    return server


async def joined_radio(org: Org, server: RelayServer, user: str, **options: object) -> RadioClient:
    """``user``'s real radio on ``server``: logged in, holding epoch 1, affiliated to patrol."""
    bundle = org.bundle(user, server)
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys), **options)  # type: ignore[arg-type]
    await client.start()
    await client.wait_connected()
    await client.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
    await client.affiliate(org.channel_id)
    await client.wait_for(control.Affiliated)
    return client


@pytest.fixture
async def server(org: Org) -> AsyncIterator[RelayServer]:
    relay = await start_server(org)
    try:
        yield relay
    finally:
        await relay.stop()
