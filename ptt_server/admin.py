"""``ptt-admin``: set up an organisation, enroll and revoke devices, manage channels.

    ptt-admin [--data-dir DIR] [--config FILE] init [--admin-user admin] [--admin-name NAME]
              [--server-url wss://HOST:PORT] [--passphrase-env VAR]
    ptt-admin ... enroll USER --role officer|dispatcher|admin --name NAME --out FILE
              [--device ID] [--valid-days 365] [--server-url URL] [--bundle-passphrase-env VAR]
    ptt-admin ... revoke USER|DEVICE
    ptt-admin ... channel create NAME [--members u1,u2,...]
    ptt-admin ... channel add NAME USER...  |  channel remove NAME USER...
    ptt-admin ... channel rekey NAME  |  channel list
    ptt-admin ... users

``--data-dir`` and ``--config`` mean what they mean for ``ptt-server``. The data
directory holds ``fieldradio.db``, ``tls/cert.pem`` + ``tls/key.pem`` (unless the
config names a certificate), and the organisation: ``org/root.key`` (the org root
private key, 0600, encrypted when a passphrase was given), ``org/root.pub`` (what
the server pins) and ``org/admin.bundle`` (the admin credential that signs rosters
and channel epochs, 0600). Commands that use a private key take
``--passphrase-env VAR``: the passphrase is read from the environment variable
``VAR``, never from the command line (which other local users can read in ps).

Decisions:

* A roster lists exactly the members named; the admin is **not** added. The admin
  signs rosters and wraps epoch keys but gets no envelope, so the operator's files
  hold no channel key (DESIGN.md: the operator must not be able to listen in).
  Dispatchers who must hear a channel are added like anyone else.
* Every roster change (create, add, remove, rekey) signs roster version + 1 and makes a
  new epoch key wrapped for every member, from each member's *stored* credential
  (so a re-enrolled device is picked up). A removed member gets no envelope for the
  new epoch. Epoch numbers go up by one from the highest epoch stored for the channel,
  or from the old roster version if that is higher (a channel whose members were all
  removed keeps no envelopes); the first epoch is 1. Epoch >= roster version always.
* Credential serials are 63 random bits (cf. CA/Browser Forum Baseline Requirements
  7.1: at least 64 bits of CSPRNG output; 63 is what :class:`Credential` holds), so a
  re-enrolment never reuses a serial that a revocation list names.
* ``revoke USER`` revokes the user's current credential by serial *and* device id;
  re-enrol them with a new device id. A running server polls the store and disconnects
  the revoked session. Revoking does not rekey channels: run ``channel remove``.

Exit codes: 0 done; 2 wrong input or state (one line on stderr saying what to do,
nothing changed); 1 the environment failed (database locked or damaged, disk full,
unreadable file).

The async functions (:func:`init_org`, :func:`enroll`, :func:`revoke`,
:func:`create_channel`, :func:`change_members`, ...) do the work without argparse, for
demos and tests; times are passed in (``now``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import msgspec

from crypto.bundle import CredentialBundle, check_server_url
from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.errors import CryptoError
from crypto.identity import (
    DEFAULT_SCRYPT_N,
    Credential,
    DeviceKeys,
    OrgRoot,
    RevocationList,
    Role,
    TrustAnchor,
)
from crypto.roster import MAX_MEMBERS, Member, Roster, decode_signed_roster, sign_roster
from ptt_server import tls
from ptt_server.config import DATABASE_NAME, ConfigError, ServerConfig, load_config, org_root_path
from ptt_server.store import Store, StoreError, User

__all__ = [
    "AdminError",
    "ChannelChange",
    "ChannelRow",
    "Enrollment",
    "OrgFiles",
    "UserRow",
    "change_members",
    "create_channel",
    "enroll",
    "init_org",
    "list_channels",
    "list_users",
    "main",
    "rekey_channel",
    "revoke",
]

PROG = "ptt-admin"
DEFAULT_VALID_DAYS = 365
MAX_VALID_DAYS = 3650
ADMIN_VALID_DAYS = 3650
"""The admin credential lives as long as the self-signed TLS certificate (10 years)."""
CLOCK_SKEW_S = 300
"""Credentials are valid from 5 minutes before issue, so a device whose clock is a little
behind can still log in right away (the TLS certificate does the same)."""
MAX_CHANNEL_NAME = 64
"""Same cap as an id in the control protocol."""

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SERIAL_LIMIT = 2**63 - 1


class AdminError(Exception):
    """Wrong input or state. The one-line message says what to do; nothing was changed."""


# --- files ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgFiles:
    """Where one server's organisation, database and TLS identity live."""

    data_dir: Path
    tls_cert: Path
    tls_key: Path
    self_signed: bool = True
    """True when the TLS pair is ours to create (the config names no certificate)."""

    @classmethod
    def in_dir(cls, data_dir: Path) -> OrgFiles:
        """The default layout under ``data_dir`` (self-signed certificate in ``tls/``)."""
        return cls(data_dir, data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem")

    @classmethod
    def from_config(cls, config: ServerConfig) -> OrgFiles:
        """The layout ``ptt-server`` uses for ``config``."""
        data_dir = config.resolved_data_dir()
        if config.tls_cert:
            return cls(data_dir, Path(config.tls_cert), Path(config.tls_key), self_signed=False)
        return cls.in_dir(data_dir)

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_NAME

    @property
    def org_dir(self) -> Path:
        return self.root_pub.parent

    @property
    def root_pub(self) -> Path:
        return org_root_path(self.data_dir)

    @property
    def root_key(self) -> Path:
        return self.org_dir / "root.key"

    @property
    def admin_bundle(self) -> Path:
        return self.org_dir / "admin.bundle"


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode``; refuse to replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise AdminError(f"{path} exists already: move it away or choose another path") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want (or kept ones we do not)
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def _not_initialised(files: OrgFiles) -> AdminError:
    return AdminError(
        f"no organisation in {files.data_dir}: run `{PROG} --data-dir {files.data_dir} init` first"
    )


def _require_org(files: OrgFiles) -> None:
    if not files.root_pub.exists():
        raise _not_initialised(files)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AdminError(f"{what} {path} is missing: restore it from backup") from None


def _root_anchor(files: OrgFiles) -> TrustAnchor:
    try:
        return TrustAnchor(_read(files.root_pub, "org root public key"))
    except CryptoError as exc:
        raise AdminError(f"{files.root_pub} is damaged ({exc}): restore it from backup") from exc


def _passphrase_hint(exc: CryptoError, path: Path) -> AdminError:
    text = str(exc)
    if "protected by a passphrase" in text:
        return AdminError(
            f"{path} is protected by a passphrase: put it in an environment variable and pass"
            " --passphrase-env VAR"
        )
    return AdminError(f"{path}: {text}")


def _load_root(files: OrgFiles, passphrase: str | None) -> OrgRoot:
    data = _read(files.root_key, "org root key")
    try:
        root = OrgRoot.from_bytes(data, passphrase)
    except CryptoError as exc:
        raise _passphrase_hint(exc, files.root_key) from exc
    if root.public_key_bytes() != _read(files.root_pub, "org root public key"):
        raise AdminError(
            f"{files.root_key} and {files.root_pub} are not a pair: restore both from backup"
        )
    return root


def _read_admin_bundle(files: OrgFiles) -> CredentialBundle:
    try:
        return CredentialBundle.from_bytes(_read(files.admin_bundle, "admin credential"))
    except CryptoError as exc:
        raise AdminError(f"{files.admin_bundle}: {exc}") from exc


def _load_admin(
    files: OrgFiles, passphrase: str | None, anchor: TrustAnchor, now: float
) -> tuple[DeviceKeys, Credential]:
    bundle = _read_admin_bundle(files)
    try:
        keys = bundle.open_keys(passphrase)
    except CryptoError as exc:
        raise _passphrase_hint(exc, files.admin_bundle) from exc
    credential = bundle.decoded_credential()
    if now >= credential.not_after:
        raise AdminError(
            f"the admin credential in {files.admin_bundle} expired on"
            f" {_date(credential.not_after)}: start a new organisation with `{PROG} init` in"
            " another data dir"
        )
    try:
        anchor.verify_credential(credential, now)
    except CryptoError as exc:
        # Its own message suggests `ptt-admin enroll`, which cannot replace the admin.
        raise AdminError(
            f"the admin credential in {files.admin_bundle} is not valid for the organisation in"
            f" {files.org_dir} (other root, altered, or not yet valid): restore the org"
            " directory from backup"
        ) from exc
    return keys, credential


async def _anchor_with_revocations(store: Store, files: OrgFiles) -> TrustAnchor:
    anchor = _root_anchor(files)
    stored = await store.get_revocations()
    if stored is not None:
        try:
            anchor.verify_revocations(stored.signed)
        except CryptoError as exc:
            raise AdminError(
                f"the stored revocation list is refused ({exc}): restore the database from backup"
            ) from exc
    return anchor


# --- input checks ---------------------------------------------------------------------------


def _check_id(kind: str, value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise AdminError(
            f"{kind} {value!r} is not allowed: use 1-64 letters, digits and . _ @ -, starting"
            " with a letter or digit"
        )
    return value


def _check_display_name(name: str) -> str:
    if not name.strip() or len(name) > 128 or not name.isprintable():
        raise AdminError(f"name {name!r} is not allowed: give 1-128 printable characters")
    return name


def _check_channel_name(name: str) -> str:
    if not name or len(name) > MAX_CHANNEL_NAME or not name.isprintable() or name != name.strip():
        raise AdminError(
            f"channel name {name!r} is not allowed: give 1-{MAX_CHANNEL_NAME} printable"
            " characters without leading or trailing spaces"
        )
    return name


def _check_url(url: str) -> str:
    try:
        check_server_url(url)
    except CryptoError as exc:
        raise AdminError(f"--server-url: {exc}") from exc
    return url


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _new_serial(taken: set[int]) -> int:
    while True:
        serial = secrets.randbelow(_SERIAL_LIMIT) + 1
        if serial not in taken:
            return serial


def _decode_stored(user: User) -> Credential:
    try:
        return Credential.from_bytes(user.credential)
    except CryptoError as exc:
        raise AdminError(
            f"the stored credential of {user.user_id!r} is damaged ({exc}): re-enroll with"
            f" `{PROG} enroll {user.user_id}`"
        ) from exc


def _enroll_hint(user_id: str) -> str:
    return f"enroll it first with `{PROG} enroll {user_id} --role officer --name ...`"


# --- init ----------------------------------------------------------------------------------


async def init_org(
    files: OrgFiles,
    *,
    now: float,
    server_url: str,
    admin_user: str = "admin",
    admin_name: str = "Administrator",
    passphrase: str | None = None,
    tls_hosts: Sequence[str] = (),
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> CredentialBundle:
    """Create a new organisation in ``files.data_dir``; return the admin's bundle.

    Writes the org root (``root.key`` 0600, encrypted when ``passphrase`` is given, and
    ``root.pub``), the self-signed TLS pair for ``tls_hosts`` plus the URL's host (unless
    it exists or the config names one), the database with the admin enrolled, and
    ``admin.bundle`` (0600, keys encrypted with the same passphrase). Raises
    :class:`AdminError` if an organisation exists there already.
    """
    for path in (files.root_key, files.root_pub, files.admin_bundle):
        if path.exists():
            raise AdminError(
                f"already initialised: {path} exists. Use another --data-dir, or move"
                f" {files.org_dir} away to start a new organisation (every device then needs a"
                " new bundle)"
            )
    _check_id("admin user id", admin_user)
    _check_display_name(admin_name)
    _check_url(server_url)
    if passphrase == "":
        raise AdminError("the passphrase is empty: set the variable, or drop --passphrase-env")
    if not files.self_signed and not files.tls_cert.exists():
        raise AdminError(
            f"TLS certificate {files.tls_cert} (tls_cert in the config) does not exist: fix the"
            " path, or remove tls_cert and tls_key to use a self-signed certificate"
        )
    async with await Store.open(files.database) as store:
        earlier = await store.list_users()
        if earlier:
            raise AdminError(
                f"the database {files.database} holds {len(earlier)} users of an earlier"
                " organisation: move it away too, or use another --data-dir"
            )
        if files.self_signed:
            url_host = urlsplit(server_url).hostname or ""
            # ensure_self_signed always names "localhost" itself.
            hosts = [h for h in _unique([*tls_hosts, url_host]) if h and h != "localhost"]
            tls.ensure_self_signed(files.tls_cert, files.tls_key, hosts)
        fingerprint = tls.fingerprint(files.tls_cert)
        root = OrgRoot.generate()
        keys = DeviceKeys.generate()
        credential = root.issue_credential(
            user_id=admin_user,
            display_name=admin_name,
            role=Role.ADMIN,
            device_id=f"{admin_user[:50]}-{secrets.token_hex(4)}",
            signing_key=keys.signing_public_key,
            hpke_key=keys.hpke_public_key,
            not_before=int(now) - CLOCK_SKEW_S,
            not_after=int(now) + ADMIN_VALID_DAYS * 86_400,
            serial=_new_serial(set()),
        )
        bundle = CredentialBundle(
            device_keys=keys.export(passphrase, scrypt_n=scrypt_n),
            credential=credential.to_bytes(),
            root_public_key=root.public_key_bytes(),
            server_url=server_url,
            tls_fingerprint=fingerprint,
        )
        root_key = root.to_bytes(passphrase, scrypt_n=scrypt_n)
        files.org_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new_file(files.root_key, root_key, 0o600)
        _write_new_file(files.root_pub, root.public_key_bytes(), 0o644)
        _write_new_file(files.admin_bundle, bundle.to_bytes(), 0o600)
        await store.put_user(_user_record(credential, now))
    return bundle


def _check_out_path(out: Path) -> None:
    if out.exists():
        raise AdminError(f"{out} exists already: choose another --out, or move it away")
    if not out.parent.is_dir():
        raise AdminError(f"directory {out.parent} does not exist: create it or change --out")


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _user_record(credential: Credential, now: float) -> User:
    return User(
        user_id=credential.user_id,
        display_name=credential.display_name,
        role=credential.role.value,
        device_id=credential.device_id,
        credential=credential.to_bytes(),
        fingerprint=credential.fingerprint(),
        serial=credential.serial,
        enrolled_at=now,
    )


# --- enroll --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What :func:`enroll` did."""

    bundle: CredentialBundle
    credential: Credential
    replaced: bool
    """True if the user was enrolled before (their old device can no longer log in)."""
    stale_channels: tuple[str, ...]
    """Channels whose roster still pins the user's previous device: rekey them."""


async def enroll(
    files: OrgFiles,
    user_id: str,
    *,
    role: Role | str,
    display_name: str,
    now: float,
    out: Path | None = None,
    device_id: str | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
    server_url: str | None = None,
    passphrase: str | None = None,
    bundle_passphrase: str | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Enrollment:
    """Issue a credential for a new device of ``user_id``, store it, write its bundle.

    ``passphrase`` opens the org root key; ``bundle_passphrase`` (if given) encrypts the
    device keys inside the bundle. The bundle is written to ``out`` (created 0600, never
    overwritten) when given. ``server_url`` defaults to the one ``init`` recorded in the
    admin bundle. Enrolling an existing user replaces their device. Raises
    :class:`AdminError` and changes nothing on bad input.
    """
    _require_org(files)
    _check_id("user id", user_id)
    _check_display_name(display_name)
    try:
        role = Role(role)
    except ValueError:
        raise AdminError(
            f"role {role!r} is unknown: use one of {', '.join(r.value for r in Role)}"
        ) from None
    device = _check_id("device id", device_id) if device_id else None
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise AdminError(f"--valid-days {valid_days} is out of range: give 1-{MAX_VALID_DAYS}")
    if bundle_passphrase == "":
        raise AdminError("the bundle passphrase is empty: set the variable or drop the option")
    if out is not None:
        _check_out_path(out)
    admin_bundle = _read_admin_bundle(files)
    if user_id == admin_bundle.user_id:
        raise AdminError(
            f"{user_id!r} is the admin credential in {files.admin_bundle}: enroll people under"
            " another user id"
        )
    url = _check_url(server_url) if server_url else admin_bundle.server_url
    root = _load_root(files, passphrase)
    fingerprint = tls.fingerprint(files.tls_cert)
    async with await Store.open(files.database) as store:
        anchor = await _anchor_with_revocations(store, files)
        revoked = anchor.revocations
        users = await store.list_users()
        previous = next((u for u in users if u.user_id == user_id), None)
        if device is None:
            device = f"{user_id[:50]}-{secrets.token_hex(4)}"
        owner = next((u for u in users if u.device_id == device and u.user_id != user_id), None)
        if owner is not None:
            raise AdminError(
                f"device {device!r} belongs to {owner.user_id!r}: give another --device"
            )
        if revoked is not None and device in revoked.device_ids:
            raise AdminError(f"device {device!r} is revoked: give another --device")
        taken = {u.serial for u in users} | set(revoked.serials if revoked else ())
        keys = DeviceKeys.generate()
        credential = root.issue_credential(
            user_id=user_id,
            display_name=display_name,
            role=role,
            device_id=device,
            signing_key=keys.signing_public_key,
            hpke_key=keys.hpke_public_key,
            not_before=int(now) - CLOCK_SKEW_S,
            not_after=int(now) + valid_days * 86_400,
            serial=_new_serial(taken),
        )
        bundle = CredentialBundle(
            device_keys=keys.export(bundle_passphrase, scrypt_n=scrypt_n),
            credential=credential.to_bytes(),
            root_public_key=root.public_key_bytes(),
            server_url=url,
            tls_fingerprint=fingerprint,
        )
        stale: tuple[str, ...] = ()
        if previous is not None:
            names = {c.channel_id: c.name for c in await store.list_channels()}
            stale = tuple(names[c] for c in await store.channels_of(user_id) if c in names)
        if out is not None:
            _write_new_file(out, bundle.to_bytes(), 0o600)
        try:
            await store.put_user(_user_record(credential, now))
        except BaseException:
            if out is not None:
                _discard(out)  # a bundle for a credential nobody stored is useless
            raise
    return Enrollment(bundle, credential, previous is not None, stale)


# --- revoke --------------------------------------------------------------------------------


async def revoke(
    files: OrgFiles, target: str, *, now: float, passphrase: str | None = None
) -> RevocationList:
    """Revoke the current credential of a user (by user id) or of a device (by device id).

    Signs and stores revocation list version + 1 with everything the previous list
    revoked plus this credential's serial and device id. Returns the new list. Raises
    :class:`AdminError` for an unknown target, the admin itself, or one already revoked.
    """
    _require_org(files)
    root = _load_root(files, passphrase)
    async with await Store.open(files.database) as store:
        anchor = await _anchor_with_revocations(store, files)
        users = await store.list_users()
        match = next((u for u in users if u.user_id == target), None) or next(
            (u for u in users if u.device_id == target), None
        )
        if match is None:
            raise AdminError(
                f"no user or device {target!r}: `{PROG} users` lists the enrolled ones"
            )
        credential = _decode_stored(match)
        admin_bundle = _read_admin_bundle(files)
        if credential.fingerprint() == admin_bundle.decoded_credential().fingerprint():
            raise AdminError(
                f"{target!r} is the admin credential this tool signs rosters with: it cannot be"
                " revoked here"
            )
        current = anchor.revocations
        if current is not None and current.revokes(credential):
            raise AdminError(
                f"{match.user_id!r} (device {credential.device_id!r}, serial"
                f" {credential.serial}) is revoked already"
            )
        revocations = root.sign_revocations(
            version=(current.version if current is not None else 0) + 1,
            issued_at=int(now),
            serials=[*(current.serials if current else ()), credential.serial],
            device_ids=[*(current.device_ids if current else ()), credential.device_id],
        )
        # The store's revoked-user set names the users whose *current* credential is revoked.
        revoked_users = [u.user_id for u in users if revocations.revokes(_decode_stored(u))]
        await store.put_revocations(
            revocations.version, revocations.to_bytes(), revoked_users, revocations.serials
        )
    return revocations


# --- channels ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelChange:
    """One signed roster change and the epoch made for it."""

    channel_id: int
    name: str
    roster: Roster
    signed_roster: bytes
    epoch: int
    envelopes: dict[str, bytes]
    """The new epoch key wrapped for each member (user id -> envelope)."""

    @property
    def members(self) -> tuple[str, ...]:
        """Member user ids in roster order (= SFrame sender index)."""
        return tuple(m.user_id for m in self.roster.members)


async def create_channel(
    files: OrgFiles,
    name: str,
    members: Sequence[str] = (),
    *,
    now: float,
    passphrase: str | None = None,
) -> ChannelChange:
    """Create channel ``name`` with roster version 1 and epoch 1 for ``members``.

    Every member must be enrolled with a valid, unrevoked credential. Raises
    :class:`AdminError` (nothing created) otherwise, or if the name is taken.
    """
    _require_org(files)
    _check_channel_name(name)
    wanted = _unique(_check_id("user id", m) for m in members)
    async with await Store.open(files.database) as store:
        if await store.channel_by_name(name) is not None:
            raise AdminError(
                f"channel {name!r} exists already: change its members with `{PROG} channel add"
                f" {name} USER...`"
            )
        anchor = await _anchor_with_revocations(store, files)
        credentials = await _member_credentials(store, anchor, name, wanted, now, set())
        signer = _load_admin(files, passphrase, anchor, now)
        channel_id = await store.create_channel(name, now)
        return await _publish(store, anchor, signer, channel_id, name, wanted, credentials, 1, now)


async def change_members(
    files: OrgFiles,
    name: str,
    *,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    now: float,
    passphrase: str | None = None,
) -> ChannelChange:
    """Add and/or remove members of channel ``name``: roster version + 1 and a new epoch.

    Added users must be enrolled, valid and unrevoked and not yet members; removed users
    must be members. Removed members get no envelope for the new epoch. With nothing to
    add or remove this is a plain rekey. Raises :class:`AdminError` (nothing changed).
    """
    _require_org(files)
    _check_channel_name(name)
    adding = _unique(_check_id("user id", u) for u in add)
    removing = _unique(remove)
    both = set(adding) & set(removing)
    if both:
        raise AdminError(f"{sorted(both)[0]!r} is both added and removed: give it once")
    async with await Store.open(files.database) as store:
        channel = await store.channel_by_name(name)
        if channel is None:
            raise AdminError(
                f"no channel {name!r}: create it with `{PROG} channel create {name} --members"
                " USER,...` (`channel list` shows the existing ones)"
            )
        stored = await store.get_roster(channel.channel_id)
        old: list[str] = []
        old_version = 0
        if stored is not None:
            try:
                roster, _, _ = decode_signed_roster(stored.signed)
            except CryptoError as exc:
                raise AdminError(
                    f"the stored roster of channel {name!r} is damaged ({exc}): restore the"
                    " database from backup"
                ) from exc
            old = [m.user_id for m in roster.members]
            old_version = stored.version
        for user in adding:
            if user in old:
                raise AdminError(
                    f"{user!r} is on channel {name!r} already (to pick up a re-enrolled device"
                    f" run `{PROG} channel rekey {name}`)"
                )
        for user in removing:
            if user not in old:
                raise AdminError(
                    f"{user!r} is not on channel {name!r}: `{PROG} channel list` shows members"
                )
        wanted = [u for u in old if u not in removing] + adding
        anchor = await _anchor_with_revocations(store, files)
        credentials = await _member_credentials(store, anchor, name, wanted, now, set(old))
        signer = _load_admin(files, passphrase, anchor, now)
        previous_epoch = max(old_version, await _current_epoch(store, channel.channel_id, old))
        return await _publish(
            store,
            anchor,
            signer,
            channel.channel_id,
            name,
            wanted,
            credentials,
            old_version + 1,
            now,
            epoch=previous_epoch + 1,
        )


async def rekey_channel(
    files: OrgFiles, name: str, *, now: float, passphrase: str | None = None
) -> ChannelChange:
    """Re-sign channel ``name``'s roster with its members' current credentials and a new epoch."""
    return await change_members(files, name, now=now, passphrase=passphrase)


async def _current_epoch(store: Store, channel_id: int, members: Iterable[str]) -> int:
    highest = 0
    for user in members:
        for envelope in await store.envelopes_for(user):
            if envelope.channel_id == channel_id:
                highest = max(highest, envelope.epoch)
    return highest


async def _member_credentials(
    store: Store,
    anchor: TrustAnchor,
    channel: str,
    wanted: Sequence[str],
    now: float,
    current_members: set[str],
) -> dict[str, Credential]:
    if len(wanted) > MAX_MEMBERS:
        raise AdminError(f"a channel holds at most {MAX_MEMBERS} members, not {len(wanted)}")
    credentials: dict[str, Credential] = {}
    for user_id in wanted:
        user = await store.get_user(user_id)
        if user is None:
            raise AdminError(f"no user {user_id!r}: {_enroll_hint(user_id)}")
        try:
            credentials[user_id] = anchor.verify_credential(_decode_stored(user), now)
        except CryptoError as exc:
            fix = (
                f"; or drop them with `{PROG} channel remove {channel} {user_id}`"
                if user_id in current_members
                else ""
            )
            raise AdminError(f"cannot give {user_id!r} the channel key: {exc}{fix}") from exc
    return credentials


async def _publish(
    store: Store,
    anchor: TrustAnchor,
    signer: tuple[DeviceKeys, Credential],
    channel_id: int,
    name: str,
    members: Sequence[str],
    credentials: dict[str, Credential],
    version: int,
    now: float,
    *,
    epoch: int = 1,
) -> ChannelChange:
    keys, credential = signer
    roster = Roster(
        channel_id, version, tuple(Member.from_credential(credentials[u]) for u in members)
    )
    try:
        signed = sign_roster(roster, keys, credential)
        envelopes = wrap_epoch(
            new_epoch_key(channel_id, epoch, version),
            roster,
            credentials,
            keys,
            credential,
            trust=anchor,
            now=now,
        )
    except CryptoError as exc:
        raise AdminError(f"cannot rekey channel {name!r}: {exc}") from exc
    # Roster first: it deletes the envelopes of removed members in the same transaction,
    # so a removed member loses access before the new epoch is handed out.
    await store.put_roster(channel_id, version, signed, members)
    await store.put_envelopes(channel_id, epoch, envelopes, now)
    return ChannelChange(channel_id, name, roster, signed, epoch, envelopes)


# --- listings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    """One line of ``ptt-admin users``."""

    user_id: str
    display_name: str
    role: str
    device_id: str
    serial: int
    not_after: int
    revoked: bool


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One line of ``ptt-admin channel list``."""

    channel_id: int
    name: str
    roster_version: int
    epoch: int
    members: tuple[str, ...]


async def list_users(files: OrgFiles) -> list[UserRow]:
    """Every enrolled user with its credential's validity and revocation state."""
    _require_org(files)
    async with await Store.open(files.database) as store:
        anchor = await _anchor_with_revocations(store, files)
        rows = []
        for user in await store.list_users():
            credential = _decode_stored(user)
            revoked = anchor.revocations is not None and anchor.revocations.revokes(credential)
            rows.append(
                UserRow(
                    user.user_id,
                    user.display_name,
                    user.role,
                    user.device_id,
                    user.serial,
                    credential.not_after,
                    revoked,
                )
            )
        return rows


async def list_channels(files: OrgFiles) -> list[ChannelRow]:
    """Every channel with its roster version, current epoch and members in roster order."""
    _require_org(files)
    async with await Store.open(files.database) as store:
        rows = []
        for channel in await store.list_channels():
            stored = await store.get_roster(channel.channel_id)
            members: tuple[str, ...] = ()
            version = 0
            if stored is not None:
                version = stored.version
                try:
                    roster, _, _ = decode_signed_roster(stored.signed)
                    members = tuple(m.user_id for m in roster.members)
                except CryptoError:
                    members = tuple(sorted(stored.members))
            epoch = await _current_epoch(store, channel.channel_id, members)
            rows.append(ChannelRow(channel.channel_id, channel.name, version, epoch, members))
        return rows


# --- command line --------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and a return code, not a SystemExit."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _parse_members(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The ``ptt-admin`` argument parser."""
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, help="TOML config file, as for ptt-server")
    parser.add_argument("--data-dir", help="database, TLS and organisation files")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    secret = _Parser(add_help=False)
    secret.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="environment variable holding the passphrase of org/root.key and org/admin.bundle",
    )

    init = sub.add_parser("init", parents=[secret], help="create the organisation")
    init.add_argument("--admin-user", default="admin")
    init.add_argument("--admin-name", default="Administrator")
    init.add_argument("--server-url", help="wss://HOST:PORT put in bundles (default: from config)")
    init.set_defaults(run=_cmd_init)

    enroll_p = sub.add_parser("enroll", parents=[secret], help="issue a device credential bundle")
    enroll_p.add_argument("user")
    enroll_p.add_argument("--role", required=True, choices=[r.value for r in Role])
    enroll_p.add_argument("--name", required=True, help="display name")
    enroll_p.add_argument("--out", required=True, type=Path, help="bundle file to write (0600)")
    enroll_p.add_argument("--device", help="device id (default: USER-<random>)")
    enroll_p.add_argument("--valid-days", type=int, default=DEFAULT_VALID_DAYS)
    enroll_p.add_argument("--server-url", help="default: the URL given to init")
    enroll_p.add_argument(
        "--bundle-passphrase-env",
        metavar="VAR",
        help="environment variable holding a passphrase to encrypt the device keys in the bundle",
    )
    enroll_p.set_defaults(run=_cmd_enroll)

    revoke_p = sub.add_parser("revoke", parents=[secret], help="revoke a user's or device's key")
    revoke_p.add_argument("target", metavar="USER|DEVICE")
    revoke_p.set_defaults(run=_cmd_revoke)

    channel = sub.add_parser("channel", help="create channels and change their members")
    channel_sub = channel.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = channel_sub.add_parser("create", parents=[secret], help="create a channel")
    create.add_argument("name")
    create.add_argument("--members", type=_parse_members, default=[], metavar="u1,u2,...")
    create.set_defaults(run=_cmd_channel_create)
    add = channel_sub.add_parser("add", parents=[secret], help="add members (rekeys)")
    add.add_argument("name")
    add.add_argument("users", nargs="+", metavar="USER")
    add.set_defaults(run=_cmd_channel_add)
    remove = channel_sub.add_parser("remove", parents=[secret], help="remove members (rekeys)")
    remove.add_argument("name")
    remove.add_argument("users", nargs="+", metavar="USER")
    remove.set_defaults(run=_cmd_channel_remove)
    rekey = channel_sub.add_parser("rekey", parents=[secret], help="new epoch, same members")
    rekey.add_argument("name")
    rekey.set_defaults(run=_cmd_channel_rekey)
    channel_list = channel_sub.add_parser("list", help="list channels and members")
    channel_list.set_defaults(run=_cmd_channel_list)

    users = sub.add_parser("users", help="list enrolled users")
    users.set_defaults(run=_cmd_users)
    return parser


def _env_secret(var: str | None, option: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise AdminError(f"{option} {var}: the environment variable {var} is not set or empty")
    return value


def _passphrase(args: argparse.Namespace) -> str | None:
    return _env_secret(args.passphrase_env, "--passphrase-env")


def _default_url(config: ServerConfig) -> str:
    host = config.client_host()
    if ":" in host:  # IPv6 literal (RFC 3986 3.2.2)
        host = f"[{host}]"
    return f"wss://{host}:{config.listen_port}"


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)


async def _cmd_init(args: argparse.Namespace, files: OrgFiles, config: ServerConfig) -> None:
    passphrase = _passphrase(args)
    bundle = await init_org(
        files,
        now=time.time(),
        server_url=args.server_url or _default_url(config),
        admin_user=args.admin_user,
        admin_name=args.admin_name,
        passphrase=passphrase,
        tls_hosts=[config.client_host()],
    )
    if passphrase is None:
        _warn(
            f"{files.root_key} and {files.admin_bundle} are NOT encrypted (no --passphrase-env):"
            " keep them offline or on an encrypted disk"
        )
    anchor = bundle.trust_anchor()
    _say(f"organisation created in {files.data_dir}")
    _say(f"  org root key id  {anchor.key_id.hex()}  ({files.root_pub})")
    _say(f"  admin            {bundle.user_id}  ({files.admin_bundle})")
    _say(f"  server URL       {bundle.server_url}")
    _say(f"  TLS certificate  sha256 {bundle.tls_fingerprint}  ({files.tls_cert})")


async def _cmd_enroll(args: argparse.Namespace, files: OrgFiles, config: ServerConfig) -> None:
    bundle_passphrase = _env_secret(args.bundle_passphrase_env, "--bundle-passphrase-env")
    result = await enroll(
        files,
        args.user,
        role=args.role,
        display_name=args.name,
        now=time.time(),
        out=args.out,
        device_id=args.device,
        valid_days=args.valid_days,
        server_url=args.server_url,
        passphrase=_passphrase(args),
        bundle_passphrase=bundle_passphrase,
    )
    cred = result.credential
    _say(
        f"enrolled {cred.user_id} ({cred.role.value}, device {cred.device_id}, serial"
        f" {cred.serial}, valid until {_date(cred.not_after)}) -> {args.out}"
    )
    if bundle_passphrase is None:
        _warn(
            f"the device keys in {args.out} are not encrypted: hand the file over on a trusted"
            " path and delete it, or use --bundle-passphrase-env VAR"
        )
    if result.replaced:
        _warn(f"{cred.user_id}'s previous device can no longer log in")
    for channel in result.stale_channels:
        _warn(
            f"channel {channel!r} still pins the previous device: run"
            f" `{PROG} channel rekey {channel}`"
        )


async def _cmd_revoke(args: argparse.Namespace, files: OrgFiles, config: ServerConfig) -> None:
    revocations = await revoke(files, args.target, now=time.time(), passphrase=_passphrase(args))
    _say(
        f"revoked {args.target} (revocation list version {revocations.version}); a running"
        f" server disconnects it within {config.admin_poll_interval:g} s"
    )


def _print_change(change: ChannelChange) -> None:
    _say(
        f"channel {change.name!r} (id {change.channel_id}): roster version"
        f" {change.roster.version}, epoch {change.epoch}, members:"
        f" {', '.join(change.members) or '(none)'}"
    )


async def _cmd_channel_create(
    args: argparse.Namespace, files: OrgFiles, config: ServerConfig
) -> None:
    _print_change(
        await create_channel(
            files, args.name, args.members, now=time.time(), passphrase=_passphrase(args)
        )
    )


async def _cmd_channel_add(args: argparse.Namespace, files: OrgFiles, config: ServerConfig) -> None:
    _print_change(
        await change_members(
            files, args.name, add=args.users, now=time.time(), passphrase=_passphrase(args)
        )
    )


async def _cmd_channel_remove(
    args: argparse.Namespace, files: OrgFiles, config: ServerConfig
) -> None:
    _print_change(
        await change_members(
            files, args.name, remove=args.users, now=time.time(), passphrase=_passphrase(args)
        )
    )


async def _cmd_channel_rekey(
    args: argparse.Namespace, files: OrgFiles, config: ServerConfig
) -> None:
    _print_change(
        await rekey_channel(files, args.name, now=time.time(), passphrase=_passphrase(args))
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        _say("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


async def _cmd_channel_list(
    args: argparse.Namespace, files: OrgFiles, config: ServerConfig
) -> None:
    rows = await list_channels(files)
    _table(
        ("ID", "NAME", "ROSTER", "EPOCH", "MEMBERS"),
        [
            (str(r.channel_id), r.name, str(r.roster_version), str(r.epoch), ",".join(r.members))
            for r in rows
        ],
    )


async def _cmd_users(args: argparse.Namespace, files: OrgFiles, config: ServerConfig) -> None:
    now = time.time()
    rows = await list_users(files)
    _table(
        ("USER", "NAME", "ROLE", "DEVICE", "SERIAL", "VALID UNTIL", "REVOKED"),
        [
            (
                r.user_id,
                r.display_name,
                r.role,
                r.device_id,
                str(r.serial),
                _date(r.not_after) + (" (expired)" if r.not_after <= now else ""),
                "yes" if r.revoked else "no",
            )
            for r in rows
        ],
    )


_Command = Callable[[argparse.Namespace, OrgFiles, ServerConfig], Coroutine[Any, Any, None]]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run ``ptt-admin`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        config = load_config(args.config)
        if args.data_dir:
            config = msgspec.structs.replace(config, data_dir=args.data_dir)
        files = OrgFiles.from_config(config)
        command: _Command = args.run
        asyncio.run(command(args, files, config))
    except (AdminError, ConfigError, CryptoError) as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
