"""The `make run` demo's organisation, made with the real ``ptt-admin`` against a real relay."""

from __future__ import annotations

import socket
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.identity import key_file_kind
from tui.app import _parser
from tui.demo import (
    CHANNELS,
    OFFICERS,
    DemoDirs,
    _stop,
    audio_summary,
    console_arguments,
    populate,
    prepare_authority,
    start_relay,
)
from tui.listening import default_sample


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


def test_the_demo_console_writes_what_it_hears_into_demo_data(tmp_path: Path) -> None:
    dirs = DemoDirs(tmp_path / "demo")
    url = "wss://127.0.0.1:7300"
    args = _parser().parse_args(console_arguments(dirs, url, no_audio=False))
    assert (args.credential, args.server) == (dirs.dispatcher_bundle, url)
    assert args.listen_dir == tmp_path / "demo" / "heard" and not args.no_audio
    assert args.talk_file is None  # the console falls back to its sample by itself
    assert _parser().parse_args(console_arguments(dirs, url, no_audio=True)).no_audio
    # The start-up line says what Space talks from and where the audio goes.
    headless = audio_summary(dirs, False, (False, False))
    assert headless == (
        f"demo: Space talks from the speech sample {default_sample()}; the console writes"
        f" what it hears and recalls (w) to {dirs.heard}/"
    )
    with_card = audio_summary(dirs, False, (True, True))
    assert "talks from the microphone" in with_card and with_card.endswith(", and plays it")
    assert str(default_sample()) in audio_summary(dirs, True, (True, True))
