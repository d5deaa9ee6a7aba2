"""A real organisation and server for the console's tests (used by the fixtures in conftest.py).

``offline_client`` is a :class:`RadioClient` with a real root-issued dispatcher
credential that is never started: the app under test gets its events through
the same :class:`tui.app.ClientEvent` path the client task uses, so the screen
can be fed a fixed, deterministic story.

``field`` builds an organisation with ``ptt_server.admin`` (as ``ptt-admin``
would: init, enroll a dispatcher and three officers, create channels ``patrol``
and ``traffic``), starts a :class:`RelayServer` on 127.0.0.1 and logs the
officers in; the dispatcher's client is left to the test (usually the app).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.identity import DeviceKeys, OrgRoot, Role
from ptt_client.client import RadioClient
from ptt_server import admin
from ptt_server.config import ServerConfig
from ptt_server.server import RelayServer

OFFICERS = {"alice": "Alice Adams", "bob": "Bob Brown", "carol": "Carol Clark"}


def make_bundle(user_id: str, name: str, role: Role = Role.DISPATCHER) -> CredentialBundle:
    """A real bundle for a device of a throwaway organisation (no server needed)."""
    root = OrgRoot.generate()
    keys = DeviceKeys.generate()
    now = int(time.time())
    credential = root.issue_credential(
        user_id=user_id,
        display_name=name,
        role=role,
        device_id=f"{user_id}-console",
        signing_key=keys.signing_public_key,
        hpke_key=keys.hpke_public_key,
        not_before=now - 3600,
        not_after=now + 86400,
        serial=1,
    )
    return CredentialBundle(
        device_keys=keys.export(None),
        credential=credential.to_bytes(),
        root_public_key=root.public_key_bytes(),
        server_url="wss://127.0.0.1:1",
        tls_fingerprint="0" * 64,
    )


@dataclass
class Field:
    """A running server, its organisation, and the enrolled users' bundles."""

    server: RelayServer
    files: admin.OrgFiles
    bundles: dict[str, CredentialBundle]
    channels: dict[str, int]

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.server.control_port}"

    def client(self, user_id: str, **kw: object) -> RadioClient:
        bundle = self.bundles[user_id]
        return RadioClient(bundle, bundle.open_keys(None), server_url=self.url, **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def open_field(tmp_path: Path) -> AsyncIterator[Field]:
    """Init an org in ``tmp_path``, enroll disp/alice/bob/carol, make patrol and traffic, serve."""
    files = admin.OrgFiles.in_dir(tmp_path)
    now = time.time()
    await admin.init_org(files, now=now, server_url="wss://127.0.0.1:1")
    bundles = {}
    users = {"disp": ("Dispatch One", Role.DISPATCHER)} | {
        u: (n, Role.OFFICER) for u, n in OFFICERS.items()
    }
    for user_id, (name, role) in users.items():
        enrollment = await admin.enroll(files, user_id, role=role, display_name=name, now=now)
        bundles[user_id] = enrollment.bundle
    channels = {}
    for name in ("patrol", "traffic"):
        members = ["disp", "alice", "bob"] if name == "patrol" else ["disp", "carol"]
        change = await admin.create_channel(files, name, members, now=now)
        channels[name] = change.channel_id
    config = ServerConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        media_port=0,
        data_dir=str(tmp_path),
        heartbeat_interval=10.0,
        idle_timeout=30.0,
        admin_poll_interval=0.2,
    )
    server = await RelayServer.open(config)
    await server.start()
    try:
        yield Field(server, files, bundles, channels)
    finally:
        await server.stop()
