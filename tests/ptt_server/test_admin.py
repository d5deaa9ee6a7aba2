"""Tests for ptt-admin (ptt_server.admin) on real files, real SQLite and real crypto.

The command line is run in-process through ``main([...])``; the async functions are
called directly where a test needs the keys or a cheap scrypt cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crypto.bundle import CredentialBundle
from crypto.epoch import EpochKey, open_envelope, read_envelope_header, wrap_epoch
from crypto.errors import BundleError, CredentialError, EnvelopeError, KeyStoreError
from crypto.identity import Credential, DeviceKeys, OrgRoot, RevocationList, Role, TrustAnchor
from crypto.roster import RosterState, decode_signed_roster
from ptt_server import admin
from ptt_server.admin import AdminError, OrgFiles, main
from ptt_server.store import Store

CHEAP_SCRYPT = 2**10  # tests only: the default (2**17) costs ~0.3 s and 128 MiB per key
URL = "wss://127.0.0.1:7300"


# --- helpers -------------------------------------------------------------------------------


class Org:
    """An organisation made by ``ptt-admin init`` in a temporary data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files = OrgFiles.in_dir(data_dir)
        self.devices: dict[str, tuple[DeviceKeys, Credential]] = {}

    @property
    def trust(self) -> TrustAnchor:
        return TrustAnchor(self.files.root_pub.read_bytes())

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["--data-dir", str(self.data_dir), *args])
        out, err = capsys.readouterr()
        return code, out, err

    def enroll(self, user: str, role: Role = Role.OFFICER) -> tuple[DeviceKeys, Credential]:
        result = asyncio.run(
            admin.enroll(self.files, user, role=role, display_name=user.title(), now=time.time())
        )
        device = (result.bundle.open_keys(None), result.credential)
        self.devices[user] = device
        return device

    def open(self, user: str, envelope: bytes, *, keys: DeviceKeys | None = None) -> EpochKey:
        own_keys, credential = self.devices[user]
        return open_envelope(envelope, keys or own_keys, credential, self.trust, time.time())

    def dump(self) -> list[str] | None:
        """Every row of the database (None if there is no database file)."""
        if not self.files.database.exists():
            return None
        conn = sqlite3.connect(self.files.database)
        try:
            return [line for line in conn.iterdump() if "sqlite_stat" not in line]
        finally:
            conn.close()

    async def stored_revocations(self) -> RevocationList | None:
        async with await Store.open(self.files.database) as store:
            stored = await store.get_revocations()
        return None if stored is None else RevocationList.from_bytes(stored.signed)


@pytest.fixture
def org(tmp_path: Path) -> Org:
    made = Org(tmp_path / "data")
    asyncio.run(admin.init_org(made.files, now=time.time(), server_url=URL))
    return made


def assert_one_line_error(code: int, out: str, err: str, fragment: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ptt-admin: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init ----------------------------------------------------------------------------------


def test_init_creates_the_organisation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    org = Org(tmp_path / "data")
    code, out, err = org.cli(capsys, "init", "--admin-name", "Ops Desk", "--server-url", URL)
    assert code == 0, err
    assert "NOT encrypted" in err  # no passphrase: warned
    files = org.files
    assert mode(files.root_key) == 0o600
    assert mode(files.admin_bundle) == 0o600
    root = OrgRoot.from_bytes(files.root_key.read_bytes())
    assert root.public_key_bytes() == files.root_pub.read_bytes()
    assert files.database.exists()

    bundle = CredentialBundle.from_bytes(files.admin_bundle.read_bytes())
    assert bundle.root_public_key == files.root_pub.read_bytes()
    assert bundle.server_url == URL
    cert = x509.load_pem_x509_certificate(files.tls_cert.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert bundle.tls_fingerprint == hashlib.sha256(der).hexdigest()
    credential = org.trust.verify_credential(bundle.credential, time.time())
    assert (credential.user_id, credential.role, credential.display_name) == (
        "admin",
        Role.ADMIN,
        "Ops Desk",
    )
    assert bundle.open_keys(None).matches(credential)
    assert root.public_key_bytes().hex() not in out  # prints the key id, not the key
    assert org.trust.key_id.hex() in out


def test_init_twice_is_refused_and_changes_nothing(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in (org.files.root_key, org.files.admin_bundle)}
    dump = org.dump()
    code, out, err = org.cli(capsys, "init")
    assert_one_line_error(code, out, err, "already initialised")
    assert {p: p.read_bytes() for p in before} == before
    assert org.dump() == dump
    with pytest.raises(AdminError, match="already initialised"):
        asyncio.run(admin.init_org(org.files, now=time.time(), server_url=URL))


def test_init_refuses_a_database_of_an_earlier_organisation(tmp_path: Path) -> None:
    first = Org(tmp_path / "data")
    asyncio.run(admin.init_org(first.files, now=time.time(), server_url=URL))
    for path in (first.files.root_key, first.files.root_pub, first.files.admin_bundle):
        path.unlink()
    with pytest.raises(AdminError, match="earlier organisation"):
        asyncio.run(admin.init_org(first.files, now=time.time(), server_url=URL))
    assert not first.files.root_key.exists()


def test_init_takes_host_and_port_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "configured"
    config = tmp_path / "server.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data_dir}"\npublic_host = "radio.example.org"\n'
        "listen_port = 7443\n"
    )
    assert main(["--config", str(config), "init"]) == 0
    capsys.readouterr()
    bundle = CredentialBundle.from_bytes((data_dir / "org" / "admin.bundle").read_bytes())
    assert bundle.server_url == "wss://radio.example.org:7443"
    cert = x509.load_pem_x509_certificate((data_dir / "tls" / "cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "radio.example.org" in names.get_values_for_type(x509.DNSName)


def test_init_with_passphrase_encrypts_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = Org(tmp_path / "data")
    asyncio.run(
        admin.init_org(
            org.files, now=time.time(), server_url=URL, passphrase="s3cret", scrypt_n=CHEAP_SCRYPT
        )
    )
    with pytest.raises(KeyStoreError):
        OrgRoot.from_bytes(org.files.root_key.read_bytes())
    assert OrgRoot.from_bytes(org.files.root_key.read_bytes(), "s3cret")
    bundle = CredentialBundle.from_bytes(org.files.admin_bundle.read_bytes())
    with pytest.raises(BundleError):
        bundle.open_keys(None)
    bundle.open_keys("s3cret")

    dump = org.dump()
    bob = tmp_path / "bob.bundle"
    code, out, err = org.cli(
        capsys, "enroll", "bob", "--role", "officer", "--name", "B", "--out", str(bob)
    )
    assert_one_line_error(code, out, err, "--passphrase-env")
    monkeypatch.setenv("PTT_PASS", "wrong")
    code, out, err = org.cli(
        capsys, "enroll", "bob", "--role", "officer", "--name", "B", "--out", str(bob),
        "--passphrase-env", "PTT_PASS",
    )  # fmt: skip
    assert_one_line_error(code, out, err, "wrong passphrase")
    code, out, err = org.cli(capsys, "channel", "create", "ops", "--passphrase-env", "UNSET_VAR")
    assert_one_line_error(code, out, err, "UNSET_VAR")
    assert org.dump() == dump
    assert not bob.exists()

    monkeypatch.setenv("PTT_PASS", "s3cret")
    code, _, err = org.cli(
        capsys, "enroll", "bob", "--role", "officer", "--name", "B", "--out", str(bob),
        "--passphrase-env", "PTT_PASS",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = org.cli(capsys, "channel", "create", "ops", "--members", "bob")
    assert_one_line_error(code, out, err, "--passphrase-env")
    code, _, err = org.cli(
        capsys, "channel", "create", "ops", "--members", "bob", "--passphrase-env", "PTT_PASS"
    )
    assert code == 0, err


# --- enroll --------------------------------------------------------------------------------


def test_enroll_writes_a_bundle_that_opens_and_verifies(
    org: Org, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "alice.bundle"
    started = time.time()
    code, out, err = org.cli(
        capsys, "enroll", "alice", "--role", "dispatcher", "--name", "Alice Adams",
        "--out", str(out_file), "--device", "radio-17", "--valid-days", "30",
    )  # fmt: skip
    assert code == 0, err
    assert "alice" in out
    assert mode(out_file) == 0o600
    bundle = CredentialBundle.from_bytes(out_file.read_bytes())
    keys = bundle.open_keys(None)
    credential = org.trust.verify_credential(bundle.credential, time.time())
    assert keys.matches(credential)
    assert (credential.user_id, credential.display_name, credential.role) == (
        "alice",
        "Alice Adams",
        Role.DISPATCHER,
    )
    assert credential.device_id == "radio-17"
    assert started + 30 * 86_400 - 5 <= credential.not_after <= time.time() + 30 * 86_400
    assert bundle.root_public_key == org.files.root_pub.read_bytes()
    assert bundle.server_url == URL
    admin_bundle = CredentialBundle.from_bytes(org.files.admin_bundle.read_bytes())
    assert bundle.tls_fingerprint == admin_bundle.tls_fingerprint

    async def stored() -> tuple[str, bytes, bytes, int] | None:
        async with await Store.open(org.files.database) as store:
            user = await store.get_user("alice")
        if user is None:
            return None
        return user.role, user.credential, user.fingerprint, user.serial

    assert asyncio.run(stored()) == (
        "dispatcher",
        credential.to_bytes(),
        credential.fingerprint(),
        credential.serial,
    )


def test_enroll_with_a_bundle_passphrase(org: Org, tmp_path: Path) -> None:
    result = asyncio.run(
        admin.enroll(
            org.files, "carol", role="officer", display_name="Carol", now=time.time(),
            out=tmp_path / "carol.bundle", bundle_passphrase="radio pin", scrypt_n=CHEAP_SCRYPT,
        )
    )  # fmt: skip
    bundle = CredentialBundle.from_bytes((tmp_path / "carol.bundle").read_bytes())
    assert bundle == result.bundle
    with pytest.raises(BundleError):
        bundle.open_keys(None)
    assert bundle.open_keys("radio pin").matches(result.credential)


def test_enroll_gives_every_credential_its_own_serial(org: Org) -> None:
    serials = {org.enroll(f"user{i}")[1].serial for i in range(5)}
    admin_serial = CredentialBundle.from_bytes(
        org.files.admin_bundle.read_bytes()
    ).decoded_credential()
    assert len(serials | {admin_serial.serial}) == 6


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--role", "officer", "--name", "X", "--out", "{exists}"], "exists already"),
        (["--role", "officer", "--name", "X", "--out", "{tmp}/no/such/dir/b"], "does not exist"),
        (["--role", "officer", "--name", "X", "--out", "{tmp}/b", "--valid-days", "0"], "1-3650"),
        (["--role", "officer", "--name", "X", "--out", "{tmp}/b", "--device", "bad id"], "device"),
        (["--role", "chief", "--name", "X", "--out", "{tmp}/b"], "invalid choice"),
        (["--name", "X", "--out", "{tmp}/b"], "--role"),
        (["--role", "officer", "--name", "", "--out", "{tmp}/b"], "name"),
        (["--role", "officer", "--name", "X", "--out", "{tmp}/b", "--server-url", "http://h:1"],
         "wss://"),
    ],
)  # fmt: skip
def test_enroll_bad_input_is_one_line_and_changes_nothing(
    org: Org, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    exists = tmp_path / "exists.bundle"
    exists.write_bytes(b"keep me")
    dump = org.dump()
    argv = [a.format(exists=exists, tmp=tmp_path) for a in args]
    code, out, err = org.cli(capsys, "enroll", "dave", *argv)
    assert_one_line_error(code, out, err, fragment)
    assert org.dump() == dump
    assert exists.read_bytes() == b"keep me"
    assert not (tmp_path / "b").exists()


def test_enrolling_the_admin_user_is_refused(org: Org, tmp_path: Path) -> None:
    with pytest.raises(AdminError, match="admin credential"):
        asyncio.run(
            admin.enroll(org.files, "admin", role="admin", display_name="X", now=time.time())
        )


def test_re_enrolment_replaces_the_device_and_rekey_picks_it_up(org: Org) -> None:
    old_keys, old_credential = org.enroll("alice")
    asyncio.run(admin.create_channel(org.files, "patrol", ["alice"], now=time.time()))
    result = asyncio.run(
        admin.enroll(org.files, "alice", role="officer", display_name="Alice", now=time.time())
    )
    assert result.replaced
    assert result.stale_channels == ("patrol",)
    org.devices["alice"] = (result.bundle.open_keys(None), result.credential)

    change = asyncio.run(admin.rekey_channel(org.files, "patrol", now=time.time()))
    assert (change.roster.version, change.epoch) == (2, 2)
    assert change.roster.members[0].credential_fingerprint == result.credential.fingerprint()
    assert org.open("alice", change.envelopes["alice"]).epoch == 2
    with pytest.raises(EnvelopeError):  # the replaced device
        open_envelope(change.envelopes["alice"], old_keys, old_credential, org.trust, time.time())


# --- channels ------------------------------------------------------------------------------


def test_channel_create_add_remove_rekeys(org: Org, capsys: pytest.CaptureFixture[str]) -> None:
    for user in ("alice", "bob", "carol"):
        org.enroll(user)
    org.enroll("disp", Role.DISPATCHER)
    trust = org.trust

    created = asyncio.run(
        admin.create_channel(org.files, "patrol", ["alice", "bob"], now=time.time())
    )
    assert (created.roster.version, created.epoch, created.members) == (1, 1, ("alice", "bob"))
    first = {user: org.open(user, env) for user, env in created.envelopes.items()}
    assert first["alice"].secret == first["bob"].secret
    assert (first["alice"].epoch, first["alice"].channel_id) == (1, created.channel_id)

    code, out, err = org.cli(capsys, "channel", "add", "patrol", "carol", "disp")
    assert code == 0, err
    assert "roster version 2, epoch 2" in out
    code, out, err = org.cli(capsys, "channel", "remove", "patrol", "bob")
    assert code == 0, err
    assert "roster version 3, epoch 3" in out

    async def stored() -> tuple[int, bytes, dict[str, list[tuple[int, int, bytes]]]]:
        async with await Store.open(org.files.database) as store:
            roster = await store.get_roster(created.channel_id)
            assert roster is not None
            envelopes = {
                user: [(e.channel_id, e.epoch, e.envelope) for e in await store.envelopes_for(user)]
                for user in ("alice", "bob", "carol", "disp", "admin")
            }
        return roster.version, roster.signed, envelopes

    version, signed, envelopes = asyncio.run(stored())
    assert version == 3
    state = RosterState(created.channel_id)
    roster = state.accept(signed, trust, time.time())  # signed by the admin credential
    assert [m.user_id for m in roster.members] == ["alice", "carol", "disp"]
    _, signer, _ = decode_signed_roster(signed)
    assert signer.role == Role.ADMIN
    assert envelopes["bob"] == []  # the removed member's envelope is gone
    assert envelopes["admin"] == []  # the admin is not a member and holds no key
    third = {}
    for user in ("alice", "carol", "disp"):
        [(channel_id, epoch, envelope)] = envelopes[user]
        assert (channel_id, epoch) == (created.channel_id, 3)
        third[user] = open_envelope(envelope, *org.devices[user], trust, time.time(), roster=roster)
    assert len({key.secret for key in third.values()}) == 1
    assert third["alice"].secret != first["alice"].secret
    assert third["alice"].roster_version == 3

    bob_keys, bob_credential = org.devices["bob"]
    for user in ("alice", "carol", "disp"):
        [(_, _, envelope)] = envelopes[user]
        with pytest.raises(EnvelopeError):
            open_envelope(envelope, bob_keys, bob_credential, trust, time.time())
        # Even claiming to be the addressee, bob's keys do not decrypt it.
        with pytest.raises(EnvelopeError):
            open_envelope(envelope, bob_keys, org.devices[user][1], trust, time.time())


def test_epochs_keep_counting_after_an_empty_roster(org: Org) -> None:
    org.enroll("alice")
    asyncio.run(admin.create_channel(org.files, "tac", ["alice"], now=time.time()))
    emptied = asyncio.run(admin.change_members(org.files, "tac", remove=["alice"], now=time.time()))
    assert (emptied.roster.version, emptied.epoch, emptied.envelopes) == (2, 2, {})
    back = asyncio.run(admin.change_members(org.files, "tac", add=["alice"], now=time.time()))
    assert (back.roster.version, back.epoch) == (3, 3)
    assert org.open("alice", back.envelopes["alice"]).epoch == 3


def test_next_epoch_follows_a_newer_stored_epoch(org: Org) -> None:
    """A dispatcher may have rekeyed through the server: the admin continues from there."""
    org.enroll("alice")
    org.enroll("bob")
    disp_keys, disp_credential = org.enroll("disp", Role.DISPATCHER)
    change = asyncio.run(admin.create_channel(org.files, "tac", ["alice"], now=time.time()))
    newer = wrap_epoch(
        EpochKey(change.channel_id, 7, 1, bytes(range(32))),
        change.roster,
        {"alice": org.devices["alice"][1]},
        disp_keys,
        disp_credential,
    )

    async def store_newer() -> None:
        async with await Store.open(org.files.database) as store:
            await store.put_envelopes(change.channel_id, 7, newer, time.time())

    asyncio.run(store_newer())
    added = asyncio.run(admin.change_members(org.files, "tac", add=["bob"], now=time.time()))
    assert (added.roster.version, added.epoch) == (2, 8)
    assert read_envelope_header(added.envelopes["bob"]).epoch == 8


def test_channel_list_and_users(org: Org, capsys: pytest.CaptureFixture[str]) -> None:
    org.enroll("alice")
    org.enroll("bob")
    asyncio.run(admin.create_channel(org.files, "patrol", ["bob", "alice"], now=time.time()))
    code, out, err = org.cli(capsys, "channel", "list")
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split() == ["ID", "NAME", "ROSTER", "EPOCH", "MEMBERS"]
    assert row.split() == ["1", "patrol", "1", "1", "bob,alice"]

    assert org.cli(capsys, "revoke", "bob")[0] == 0
    code, out, err = org.cli(capsys, "users")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.strip().splitlines()[1:]}
    assert set(rows) == {"admin", "alice", "bob"}
    assert rows["bob"][-1] == "yes"
    assert rows["alice"][-1] == "no"
    assert rows["alice"][2] == "officer"
    assert rows["alice"][4] == str(org.devices["alice"][1].serial)


# --- revoke --------------------------------------------------------------------------------


def test_revoke_makes_the_credential_fail_verification(
    org: Org, capsys: pytest.CaptureFixture[str]
) -> None:
    _, bob = org.enroll("bob")
    _, alice = org.enroll("alice")
    _, carol = org.enroll("carol")
    code, out, err = org.cli(capsys, "revoke", "bob")
    assert "version 1" in out
    assert code == 0, err
    revocations = asyncio.run(org.stored_revocations())
    assert revocations is not None
    assert revocations.version == 1
    trust = org.trust
    trust.verify_revocations(revocations)  # signed by the org root
    with pytest.raises(CredentialError, match="revoked"):
        trust.verify_credential(bob, time.time(), revocations)
    trust.verify_credential(alice, time.time(), revocations)

    code, _, err = org.cli(capsys, "revoke", alice.device_id)  # by device id
    assert code == 0, err
    second = asyncio.run(org.stored_revocations())
    assert second is not None
    assert second.version == 2
    for credential in (bob, alice):
        with pytest.raises(CredentialError, match="revoked"):
            TrustAnchor(org.files.root_pub.read_bytes()).verify_credential(
                credential, time.time(), second
            )
    trust.verify_credential(carol, time.time(), second)

    async def revoked_users() -> frozenset[str]:
        async with await Store.open(org.files.database) as store:
            stored = await store.get_revocations()
        assert stored is not None
        return stored.user_ids

    assert asyncio.run(revoked_users()) == {"alice", "bob"}


def test_revoked_users_get_no_channel_key(org: Org, capsys: pytest.CaptureFixture[str]) -> None:
    org.enroll("alice")
    org.enroll("bob")
    asyncio.run(admin.create_channel(org.files, "patrol", ["alice", "bob"], now=time.time()))
    asyncio.run(admin.revoke(org.files, "bob", now=time.time()))
    dump = org.dump()
    code, out, err = org.cli(capsys, "channel", "rekey", "patrol")
    assert_one_line_error(code, out, err, "channel remove patrol bob")
    code, out, err = org.cli(capsys, "channel", "create", "other", "--members", "bob")
    assert_one_line_error(code, out, err, "revoked")
    assert org.dump() == dump
    code, out, err = org.cli(capsys, "channel", "remove", "patrol", "bob")
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["revoke", "nobody"], "no user or device 'nobody'"),
        (["revoke", "admin"], "admin credential"),
        (["revoke", "alice"], "revoked already"),
    ],
)
def test_revoke_bad_input_is_one_line_and_changes_nothing(
    org: Org, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    org.enroll("alice")
    asyncio.run(admin.revoke(org.files, "alice", now=time.time()))
    dump = org.dump()
    code, out, err = org.cli(capsys, *args)
    assert_one_line_error(code, out, err, fragment)
    assert org.dump() == dump


# --- wrong input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["channel", "create", "newchan", "--members", "alice,zed"],
         "no user 'zed': enroll it first with `ptt-admin enroll zed --role officer --name ...`"),
        (["channel", "create", "patrol"], "exists already"),
        (["channel", "create", " spaced"], "channel name"),
        (["channel", "add", "nowhere", "alice"], "no channel 'nowhere'"),
        (["channel", "add", "patrol", "zed"], "no user 'zed'"),
        (["channel", "add", "patrol", "alice"], "already"),
        (["channel", "remove", "patrol", "zed"], "'zed' is not on channel 'patrol'"),
        (["channel", "remove", "nowhere", "alice"], "no channel 'nowhere'"),
        (["channel", "rekey", "nowhere"], "no channel 'nowhere'"),
        (["channel", "add", "patrol"], "required"),
        (["channel"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)  # fmt: skip
def test_wrong_input_is_one_line_exit_2_and_changes_nothing(
    org: Org, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    org.enroll("alice")
    asyncio.run(admin.create_channel(org.files, "patrol", ["alice"], now=time.time()))
    dump = org.dump()
    code, out, err = org.cli(capsys, *args)
    assert_one_line_error(code, out, err, fragment)
    assert org.dump() == dump


@pytest.mark.parametrize(
    "args",
    [
        ["users"],
        ["channel", "list"],
        ["channel", "create", "patrol"],
        ["channel", "add", "patrol", "alice"],
        ["revoke", "alice"],
        ["enroll", "alice", "--role", "officer", "--name", "A", "--out", "{tmp}/a.bundle"],
    ],
)
def test_not_initialised_is_one_line_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    org = Org(tmp_path / "empty")
    code, out, err = org.cli(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(code, out, err, "run `ptt-admin --data-dir")
    assert "init` first" in err
    assert not org.data_dir.exists()
    assert not (tmp_path / "a.bundle").exists()


def test_help_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "enroll" in capsys.readouterr().out
