"""Enrolling and revoking devices, as the org authority does it over the control plane.

Keys are made here and the credential is issued here with the org root; the relay is
only sent the public credential (:class:`control.Enroll`) or the root-signed
revocation list. A lost or replaced device also loses its keys: every channel whose
roster pins it gets a new roster and a new epoch in the same command, so a copy of
the old device's keys opens nothing said after it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.identity import DEFAULT_SCRYPT_N, Credential, RevocationList, Role
from ptt_admin.authority import (
    PROG,
    AdminError,
    check_display_name,
    check_id,
    check_urls,
    write_new_file,
)
from ptt_admin.channels import ChannelChange, republish
from ptt_admin.ledger import Device, Ledger
from ptt_admin.session import AdminSession, Directory, UserEntry
from ptt_protocol import control

DEFAULT_VALID_DAYS = 365
MAX_VALID_DAYS = 3650


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What :func:`enroll` did."""

    bundle: CredentialBundle
    credential: Credential
    replaced_device: str
    """The device this enrolment cut off ("" for a new user)."""
    rekeyed: tuple[ChannelChange, ...] = field(default=())
    """Channels that pinned the previous device: new roster and epoch with the new one."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """What :func:`revoke` did."""

    revocations: RevocationList
    user_id: str
    device_id: str
    serial: int
    rekeyed: tuple[ChannelChange, ...]
    """Channels the device was on: it is off their rosters and every one has a new epoch."""


def _pinned_channels(directory: Directory, credential: Credential) -> list[str]:
    """Channels whose roster pins exactly this credential."""
    fingerprint = credential.fingerprint()
    return sorted(
        name
        for name, channel in directory.channels.items()
        if channel.roster is not None and channel.roster.pins(credential.user_id, fingerprint)
    )


def _check_out_path(out: Path) -> None:
    if out.exists():
        raise AdminError(f"{out} exists already: choose another --out, or move it away")
    if not out.parent.is_dir():
        raise AdminError(f"directory {out.parent} does not exist: create it or change --out")


async def enroll(
    session: AdminSession,
    user_id: str,
    *,
    role: Role | str,
    display_name: str,
    now: float,
    out: Path | None = None,
    device_id: str | None = None,
    valid_days: int = DEFAULT_VALID_DAYS,
    server_urls: Sequence[str] = (),
    bundle_passphrase: str | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Enrollment:
    """Make keys and a credential for a new device of ``user_id``; have the relay store it.

    The bundle (written to ``out``, 0600, never over an existing file) carries the device
    keys encrypted with ``bundle_passphrase`` (None = in the clear; the CLI refuses that
    unless asked) and ``server_urls``, the preferred first (default: the pinned relay's); the
    radio fails over from one to the next. Enrolling an existing user replaces their device:
    the old one is cut off by the relay, and every channel that pinned it is rekeyed with the
    new one.
    """
    authority = session.authority
    check_id("user id", user_id)
    check_display_name(display_name)
    try:
        role = Role(role)
    except ValueError:
        raise AdminError(
            f"role {role!r} is unknown: use one of {', '.join(r.value for r in Role)}"
        ) from None
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise AdminError(f"--valid-days {valid_days} is out of range: give 1-{MAX_VALID_DAYS}")
    if bundle_passphrase == "":
        raise AdminError("the bundle passphrase is empty: set the variable to a passphrase")
    if user_id == authority.admin_credential.user_id:
        raise AdminError(
            f"{user_id!r} is the org authority's own user id: enroll people under another one"
        )
    if out is not None:
        _check_out_path(out)
    relay = authority.require_relay()
    urls = check_urls(server_urls) if server_urls else [relay.url]
    device = (
        check_id("device id", device_id) if device_id else f"{user_id[:50]}-{secrets.token_hex(4)}"
    )
    directory = await session.directory(now)
    revoked = session.client.keyring.trust.revocations
    if revoked is not None and device in revoked.device_ids:
        raise AdminError(f"device {device!r} is revoked: give another --device")
    previous = directory.user(user_id)
    keys, credential = authority.issue(
        user_id, role=role, display_name=display_name, device_id=device,
        valid_days=valid_days, now=now,
    )  # fmt: skip
    bundle = CredentialBundle(
        device_keys=keys.export(bundle_passphrase, scrypt_n=scrypt_n),
        credential=credential.to_bytes(),
        root_public_key=authority.root.public_key_bytes(),
        server_url=urls[0],
        tls_fingerprint=relay.tls_fingerprint,
        alternate_urls=tuple(urls[1:]),
    )
    answer = await session.ask(
        lambda e: (
            e
            if isinstance(e, control.Enrolled) and e.user_id == user_id
            else (e if isinstance(e, control.Error) else None)
        ),
        [control.Enroll(credential=credential.to_bytes())],
        f"the enrolment of {user_id!r}",
    )
    assert isinstance(answer, control.Enrolled)
    if out is not None:
        write_new_file(out, bundle.to_bytes(), 0o600)
    ledger = Ledger.load(authority.files.directory)
    ledger.users[user_id] = credential.fingerprint().hex()
    ledger.devices[credential.device_id] = Device(
        user_id, credential.serial, credential.fingerprint().hex()
    )
    ledger.save()
    session.client.keyring.credentials[user_id] = credential
    rekeyed: list[ChannelChange] = []
    if previous is not None:
        for name in _pinned_channels(directory, previous.credential):
            channel = directory.channels[name]
            rekeyed.append(await republish(session, channel, channel.members))
    return Enrollment(bundle, credential, answer.replaced_device, tuple(rekeyed))


def _find(
    directory: Directory, ledger: Ledger, target: str
) -> tuple[str, str, int, UserEntry | None]:
    """(user id, device id, serial, current entry or None) of a user or device to revoke.

    A device this authority enrolled but has since replaced is still found (in its
    ledger): radios accept its credential until it is revoked.
    """
    entry = directory.user(target) or next(
        (u for u in directory.users.values() if u.credential.device_id == target), None
    )
    if entry is not None:
        c = entry.credential
        return c.user_id, c.device_id, c.serial, entry
    old = ledger.devices.get(target)
    if old is not None:
        return old.user_id, target, old.serial, None
    raise AdminError(f"no user or device {target!r}: `{PROG} users` lists the enrolled ones")


async def revoke(session: AdminSession, target: str, *, now: float) -> Revocation:
    """Revoke a user's (or device's) credential and take its keys away.

    Signs revocation list version + 1 (everything the newest list revokes - the relay's or
    the one this authority signed last, whichever is newer - plus this credential's serial
    and device id), has the relay apply it (the device is disconnected at once and refused
    from now on), then removes the device from every roster that pins it, with a new epoch
    on each of those channels. A channel that cannot be rekeyed does not stop the others;
    it is reported at the end.
    """
    authority = session.authority
    directory = await session.directory(now)
    ledger = Ledger.load(authority.files.directory)
    user_id, device_id, serial, entry = _find(directory, ledger, target)
    if (
        entry is not None
        and entry.credential.fingerprint() == authority.admin_credential.fingerprint()
    ):
        raise AdminError(
            f"{target!r} is the org authority's own credential: it cannot revoke itself"
        )
    current = session.client.keyring.trust.revocations
    if current is not None and (serial in current.serials or device_id in current.device_ids):
        raise AdminError(f"{user_id!r} (device {device_id!r}, serial {serial}) is revoked already")
    revocations = authority.root.sign_revocations(
        version=(current.version if current is not None else 0) + 1,
        issued_at=int(now),
        serials=sorted({*(current.serials if current else ()), serial}),
        device_ids=sorted({*(current.device_ids if current else ()), device_id}),
    )
    await session.send_checked(
        [control.RevocationUpdate(signed_list=revocations.to_bytes())],
        f"revocation list version {revocations.version}",
    )
    ledger.revocations = revocations.to_bytes()
    ledger.save()
    rekeyed: list[ChannelChange] = []
    failed: list[str] = []
    if entry is not None:
        session.client.keyring.credentials.pop(user_id, None)
        for name in _pinned_channels(directory, entry.credential):
            channel = directory.channels[name]
            members = [u for u in channel.members if u != user_id]
            try:
                rekeyed.append(await republish(session, channel, members))
            except AdminError as exc:
                failed.append(f"{name!r} ({exc})")
    if failed:
        raise AdminError(
            f"{user_id!r} is revoked, but these channels still give its device their key:"
            f" {', '.join(failed)}; run `{PROG} channel remove CHANNEL {user_id}` for each"
        )
    return Revocation(revocations, user_id, device_id, serial, tuple(rekeyed))


async def list_users(session: AdminSession, *, now: float) -> list[UserEntry]:
    """Every enrolled user, by user id."""
    directory = await session.directory(now)
    return [directory.users[u] for u in sorted(directory.users)]
