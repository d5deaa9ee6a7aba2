"""The `make run` demo's organisation, made with the real ``ptt-admin``."""

from __future__ import annotations

from pathlib import Path

from crypto.bundle import CredentialBundle
from tui.demo import CHANNELS, OFFICERS, prepare_org


def test_the_demo_org_is_made_once_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    bundle_path = prepare_org(data_dir, "wss://127.0.0.1:7300")
    bundle = CredentialBundle.from_bytes(bundle_path.read_bytes())
    assert bundle.user_id == "dispatch" and bundle.server_url == "wss://127.0.0.1:7300"
    officers = sorted(p.stem for p in (data_dir / "bundles" / "officers").glob("*.bundle"))
    assert officers == sorted(user for user, _ in OFFICERS)
    stamp = (data_dir / "fieldradio.db").stat().st_mtime_ns
    assert prepare_org(data_dir, "wss://127.0.0.1:7300") == bundle_path  # second run: nothing made
    assert (data_dir / "fieldradio.db").stat().st_mtime_ns == stamp
    assert set(CHANNELS) == {"patrol", "traffic", "tactical"}
