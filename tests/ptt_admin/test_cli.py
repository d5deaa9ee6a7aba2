"""``ptt-admin`` and ``ptt-server`` as an operator runs them: real processes, two directories.

The org authority's directory and the relay's data directory are kept apart, as on two
machines; only ``root.pub`` travels from one to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys, OrgRoot, key_file_kind
from ptt_server.config import org_root_path

REPOSITORY = Path(__file__).resolve().parents[2]
PASSPHRASE_ENV = {"ORG_PASS": "correct horse battery staple", "BUNDLE_PASS": "tow truck 42"}
READY = re.compile(rb"control wss://[^:]+:(\d+)\s+media udp/(\d+)\s+certificate sha256 ([0-9a-f]+)")


def admin(
    authority: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ptt_admin.cli", "--admin-dir", str(authority), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPOSITORY,
        env={**os.environ, **PASSPHRASE_ENV, **(env or {})},
        timeout=60,
    )


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


class Relay:
    def __init__(self, process: asyncio.subprocess.Process, match: re.Match[bytes]) -> None:
        self.process = process
        self.url = f"wss://127.0.0.1:{int(match.group(1))}"
        self.fingerprint = match.group(3).decode()


async def start_relay(data_dir: Path, *extra: str) -> Relay:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ptt_server.cli", "--data-dir", str(data_dir),
        "--listen", "127.0.0.1:0", "--media-port", "0", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPOSITORY,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while not (match := READY.search(line := await process.stdout.readline())):
            if not line:
                assert process.stderr is not None
                raise AssertionError((await process.stderr.read()).decode())
    return Relay(process, match)


async def stop_relay(relay: Relay) -> None:
    relay.process.terminate()
    async with asyncio.timeout(30):
        await relay.process.wait()


@pytest.fixture
async def operator(tmp_path: Path) -> AsyncIterator[tuple[Path, Path, Relay]]:
    """An initialised authority (encrypted), a relay started with its root.pub, pinned."""
    authority, relay_dir = tmp_path / "authority", tmp_path / "relay"
    done = admin(authority, "--passphrase-env", "ORG_PASS", "init")
    assert done.returncode == 0, done.stderr
    relay = await start_relay(relay_dir, "--org-root", str(authority / "root.pub"))
    try:
        pin = admin(authority, "pin", relay.url, "--tls-fingerprint", relay.fingerprint)
        assert pin.returncode == 0, pin.stderr
        yield authority, relay_dir, relay
    finally:
        await stop_relay(relay)


def test_init_refuses_an_unencrypted_root_unless_asked_and_warns(tmp_path: Path) -> None:
    error = one_line_error(admin(tmp_path / "a", "init"))
    assert "--passphrase-env" in error and "--plain-key" in error
    assert not (tmp_path / "a" / "root.key").exists()
    plain = admin(tmp_path / "b", "init", "--plain-key")
    assert plain.returncode == 0 and "NOT encrypted" in plain.stderr
    root = OrgRoot.from_bytes((tmp_path / "b" / "root.key").read_bytes(), None)
    assert root.public_key_bytes() == (tmp_path / "b" / "root.pub").read_bytes()


def test_init_encrypts_the_root_and_the_admin_keys(tmp_path: Path) -> None:
    done = admin(tmp_path / "a", "--passphrase-env", "ORG_PASS", "init")
    assert done.returncode == 0, done.stderr
    assert "root.pub" in done.stdout and "ptt-server --org-root" in done.stdout
    directory = tmp_path / "a"
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("root.key", "admin.keys"):
        path = directory / name
        assert path.stat().st_mode & 0o777 == 0o600
        with pytest.raises(CryptoError, match="passphrase"):
            (OrgRoot.from_bytes if name == "root.key" else DeviceKeys.import_)(path.read_bytes())
    again = one_line_error(admin(directory, "--passphrase-env", "ORG_PASS", "init"))
    assert "already initialised" in again


def test_online_commands_need_a_pinned_relay_and_the_passphrase(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    assert admin(directory, "--passphrase-env", "ORG_PASS", "init").returncode == 0
    assert "passphrase" in one_line_error(admin(directory, "users"))
    assert "pin" in one_line_error(admin(directory, "--passphrase-env", "ORG_PASS", "users"))
    bad = admin(directory, "pin", "wss://127.0.0.1:9", "--tls-fingerprint", "abc")
    assert "64 hex digits" in one_line_error(bad)


def test_the_relay_refuses_to_start_with_a_private_key_in_its_data_directory(
    tmp_path: Path,
) -> None:
    authority = tmp_path / "authority"
    assert admin(authority, "--passphrase-env", "ORG_PASS", "init").returncode == 0
    for name in ("root.key", "admin.keys"):
        relay_dir = tmp_path / f"relay-{name}"
        (relay_dir / "org").mkdir(parents=True)
        org_root_path(relay_dir).write_bytes((authority / "root.pub").read_bytes())
        (relay_dir / "backup").mkdir()
        (relay_dir / "backup" / name).write_bytes((authority / name).read_bytes())
        done = subprocess.run(
            [sys.executable, "-m", "ptt_server.cli", "--data-dir", str(relay_dir),
             "--listen", "127.0.0.1:0", "--media-port", "0"],
            capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False,
        )  # fmt: skip
        error = one_line_error(done, code=1)
        assert str(relay_dir / "backup" / name) in error and "private" in error
        assert not (relay_dir / "fieldradio.db").exists()  # refused before anything was made
    # Handing the relay the private root as --org-root is refused too, and says why.
    done = subprocess.run(
        [sys.executable, "-m", "ptt_server.cli", "--data-dir", str(tmp_path / "r2"),
         "--org-root", str(authority / "root.key")],
        capture_output=True, text=True, timeout=60, cwd=REPOSITORY, check=False,
    )  # fmt: skip
    assert "PRIVATE" in one_line_error(done, code=2)
    assert not org_root_path(tmp_path / "r2").exists()


async def test_the_operator_workflow_end_to_end(
    operator: tuple[Path, Path, Relay], tmp_path: Path
) -> None:
    authority, relay_dir, relay = operator
    pw = ("--passphrase-env", "ORG_PASS")
    out = tmp_path / "alice.bundle"
    # A bundle made here must be encrypted unless asked otherwise.
    refused = admin(authority, *pw, "enroll", "alice", "--role", "officer", "--name", "Alice",
                    "--out", str(out))  # fmt: skip
    assert "--bundle-passphrase-env" in one_line_error(refused)
    assert not out.exists()
    done = admin(authority, *pw, "enroll", "alice", "--role", "officer", "--name", "Alice",
                 "--out", str(out), "--bundle-passphrase-env", "BUNDLE_PASS")  # fmt: skip
    assert done.returncode == 0, done.stderr
    bundle = CredentialBundle.from_bytes(out.read_bytes())
    assert bundle.server_url == relay.url and bundle.tls_fingerprint == relay.fingerprint
    with pytest.raises(CryptoError, match="passphrase"):
        bundle.open_keys(None)
    assert bundle.open_keys(PASSPHRASE_ENV["BUNDLE_PASS"]).matches(bundle.decoded_credential())
    assert out.stat().st_mode & 0o777 == 0o600
    bob = admin(authority, *pw, "enroll", "bob", "--role", "officer", "--name", "Bob",
                "--out", str(tmp_path / "bob.bundle"), "--plain-bundle")  # fmt: skip
    assert bob.returncode == 0 and "not encrypted" in bob.stderr
    # A cluster: --server-url once per node, the preferred first; the pin covers them all.
    node2 = "wss://node2.example.org:7300"
    carol = admin(authority, *pw, "enroll", "carol", "--role", "officer", "--name", "Carol",
                  "--out", str(tmp_path / "carol.bundle"), "--plain-bundle",
                  "--server-url", node2, "--server-url", relay.url)  # fmt: skip
    assert carol.returncode == 0, carol.stderr
    clustered = CredentialBundle.from_bytes((tmp_path / "carol.bundle").read_bytes())
    assert clustered.server_urls == (node2, relay.url)
    assert clustered.tls_fingerprint == relay.fingerprint
    created = admin(authority, *pw, "channel", "create", "patrol", "--members", "alice,bob")
    assert created.returncode == 0 and "epoch 1" in created.stdout, created.stderr
    listed = admin(authority, *pw, "channel", "list")
    assert re.search(r"patrol\s+1\s+alice,bob", listed.stdout), listed.stdout
    users = admin(authority, *pw, "users")
    assert re.search(r"alice\s+Alice\s+officer", users.stdout), users.stdout
    revoked = admin(authority, *pw, "revoke", "bob")
    assert revoked.returncode == 0, revoked.stderr
    assert "removed and rekeyed: channel 'patrol'" in revoked.stdout
    assert "epoch 2, members: alice" in revoked.stdout
    assert "already" in one_line_error(admin(authority, *pw, "revoke", "bob"))
    unknown = admin(authority, *pw, "channel", "add", "patrol", "zed")
    assert "enroll it first" in one_line_error(unknown)
    spare = admin(authority, *pw, "channel", "create", "spare", "--members", "alice")
    assert spare.returncode == 0, spare.stderr
    deleted = admin(authority, *pw, "channel", "delete", "spare")
    assert deleted.returncode == 0 and "deleted channel 'spare'" in deleted.stdout, deleted.stderr
    assert "spare" not in admin(authority, *pw, "channel", "list").stdout
    again = admin(authority, *pw, "channel", "create", "spare", "--members", "alice")
    assert again.returncode == 0, again.stderr  # the name is free, and the ledger agrees
    # Nothing the authority holds privately reached the relay's directory.
    for path in relay_dir.rglob("*"):
        if path.is_file():
            assert key_file_kind(path.read_bytes()) is None, path
    assert sorted(p.name for p in relay_dir.iterdir() if p.is_dir()) == ["org", "tls"]


async def test_an_unreachable_relay_is_exit_1_in_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "a"
    assert admin(directory, "init", "--plain-key").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pinned = admin(directory, "pin", f"wss://127.0.0.1:{port}", "--tls-fingerprint", "0" * 64)
    assert pinned.returncode == 0
    error = one_line_error(admin(directory, "users"), code=1)
    assert "cannot reach the relay" in error


def relay_state(relay_dir: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the relay's database but presence (logins touch it), read-only."""
    uri = f"file:{relay_dir / 'fieldradio.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in tables
            if t != "presence"
        }


BAD_INPUT = [
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{exists}", "--plain-bundle"],
     "exists already"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/no/dir/b",
      "--plain-bundle"], "does not exist"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--valid-days",
      "0", "--plain-bundle"], "1-3650"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--device",
      "bad id", "--plain-bundle"], "device"),
    (["enroll", "dave", "--role", "chief", "--name", "X", "--out", "{tmp}/b"], "invalid choice"),
    (["enroll", "dave", "--role", "officer", "--name", "", "--out", "{tmp}/b", "--plain-bundle"],
     "name"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--server-url",
      "http://h:1", "--plain-bundle"], "wss://"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--server-url",
      "wss://h:1", "--server-url", "wss://H:1/", "--plain-bundle"], "'wss://H:1/' is given twice"),
    (["enroll", "admin", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--plain-bundle"],
     "org authority's own user id"),
    (["enroll", "dave", "--role", "officer", "--name", "X", "--out", "{tmp}/b", "--device",
      "alice-1", "--plain-bundle"], "belongs to 'alice'"),
    (["channel", "create", "newchan", "--members", "alice,zed"],
     "no user 'zed': enroll it first with `ptt-admin enroll zed --role officer --name ...`"),
    (["channel", "create", "patrol"], "exists already"),
    (["channel", "create", " spaced"], "channel name"),
    (["channel", "add", "nowhere", "alice"], "no channel 'nowhere'"),
    (["channel", "add", "patrol", "alice"], "already"),
    (["channel", "add", "patrol", "alice", "--", "alice"], "already"),
    (["channel", "remove", "patrol", "zed"], "'zed' is not on channel 'patrol'"),
    (["channel", "rekey", "nowhere"], "no channel 'nowhere'"),
    (["channel", "delete", "nowhere"], "no channel 'nowhere'"),
    (["channel", "add", "patrol"], "required"),
    (["revoke", "zed"], "no user or device 'zed'"),
    (["revoke", "admin"], "cannot revoke itself"),
    (["frobnicate"], "invalid choice"),
]  # fmt: skip


async def test_wrong_input_is_one_line_exit_2_and_changes_nothing_on_the_relay(
    operator: tuple[Path, Path, Relay], tmp_path: Path
) -> None:
    authority, relay_dir, _relay = operator
    pw = ("--passphrase-env", "ORG_PASS")
    enrolled = admin(authority, *pw, "enroll", "alice", "--role", "officer", "--name", "Alice",
                     "--device", "alice-1", "--out", str(tmp_path / "a.bundle"), "--plain-bundle")  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    assert (
        admin(authority, *pw, "channel", "create", "patrol", "--members", "alice").returncode == 0
    )
    exists = tmp_path / "exists.bundle"
    exists.write_bytes(b"keep me")
    before = relay_state(relay_dir)
    for args, fragment in BAD_INPUT:
        argv = [a.format(exists=exists, tmp=tmp_path) for a in args]
        error = one_line_error(admin(authority, *pw, *argv))
        assert fragment in error, (argv, error)
    assert relay_state(relay_dir) == before
    assert exists.read_bytes() == b"keep me"
    assert not (tmp_path / "b").exists()


def test_help_returns_zero_and_explains_the_workflow() -> None:
    done = admin(Path("/nonexistent"), "--help")
    assert done.returncode == 0 and "ptt-server --org-root" in done.stdout
