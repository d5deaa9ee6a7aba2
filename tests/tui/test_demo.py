"""The `make run` demo's organisation, made with the real ``ptt-admin`` against a real relay."""

from __future__ import annotations

import socket
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.identity import key_file_kind
from tui.demo import CHANNELS, OFFICERS, DemoDirs, _stop, populate, prepare_authority, start_relay


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_demo_org_is_made_once_and_reused_and_the_relay_holds_no_key(tmp_path: Path) -> None:
    dirs = DemoDirs(tmp_path / "demo")
    assert prepare_authority(dirs) is True
    port = _free_port()
    server = start_relay(dirs, port, _free_port(), tmp_path / "server.log")
    try:
        populate(dirs, f"wss://127.0.0.1:{port}")
    finally:
        _stop(server)
    bundle = CredentialBundle.from_bytes(dirs.dispatcher_bundle.read_bytes())
    assert bundle.user_id == "dispatch" and bundle.server_url == f"wss://127.0.0.1:{port}"
    officers = sorted(p.stem for p in (dirs.bundles / "officers").glob("*.bundle"))
    assert officers == sorted(user for user, _ in OFFICERS)
    # The relay's data directory holds the public root, its TLS pair and the database:
    # no private key of the organisation and no bundle.
    relay_files = [p for p in dirs.relay.rglob("*") if p.is_file()]
    assert {p.name for p in relay_files} >= {"root.pub", "cert.pem", "key.pem", "fieldradio.db"}
    for path in relay_files:
        data = path.read_bytes()
        assert key_file_kind(data) is None, path
        assert not path.name.endswith(".bundle"), path
    assert key_file_kind((dirs.authority / "root.key").read_bytes()) == "org-root"
    stamp = (dirs.authority / "root.key").stat().st_mtime_ns
    assert prepare_authority(dirs) is False  # second run: nothing made
    assert (dirs.authority / "root.key").stat().st_mtime_ns == stamp
    assert set(CHANNELS) == {"patrol", "traffic", "tactical"}
