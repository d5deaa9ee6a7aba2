"""The org authority's directory: the org root, the admin's own keys, the pinned relay.

Layout of the authority directory (``--admin-dir``; 0700)::

    root.key          the org root private key, 0600 (encrypted with the passphrase)
    root.pub          the org root public key: copy it to the relay (ptt-server --org-root)
    admin.keys        the admin device's private keys, 0600 (same passphrase)
    admin.credential  the admin's root-issued credential
    relay.json        the relay's URL and TLS certificate fingerprint (ptt-admin pin)

Nothing here is ever written to the relay's data directory. Times are passed in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from crypto.bundle import CredentialBundle, check_server_url, check_server_urls
from crypto.errors import CryptoError
from crypto.identity import DEFAULT_SCRYPT_N, Credential, DeviceKeys, OrgRoot, Role, TrustAnchor

PROG: Final = "ptt-admin"
CLOCK_SKEW_S: Final = 300
"""Credentials are valid from 5 minutes before issue, so a device whose clock is a little
behind can log in at once."""
ADMIN_VALID_DAYS: Final = 3650
SERIAL_LIMIT: Final = 2**63 - 1

_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}")


class AdminError(Exception):
    """Wrong input or state. The one-line message says what to do; nothing was changed."""


class RelayUnreachable(AdminError):
    """The relay could not be reached (not running, wrong URL, network): try again later."""


def check_id(kind: str, value: str) -> str:
    """A user or device id as credentials and the control protocol allow it."""
    if not _ID_RE.fullmatch(value):
        raise AdminError(
            f"{kind} {value!r} is not allowed: use 1-64 letters, digits and . _ @ -, starting"
            " with a letter or digit"
        )
    return value


def check_display_name(name: str) -> str:
    if not name.strip() or len(name) > 128 or not name.isprintable():
        raise AdminError(f"name {name!r} is not allowed: give 1-128 printable characters")
    return name


def check_url(url: str) -> str:
    try:
        check_server_url(url)
    except CryptoError as exc:
        raise AdminError(f"server URL: {exc}") from exc
    return url


def check_urls(urls: Sequence[str]) -> list[str]:
    """The servers of one bundle (``--server-url`` given once per node): each a wss:// URL,
    no server twice, not too many."""
    try:
        check_server_urls(urls)
    except CryptoError as exc:
        raise AdminError(f"--server-url: {exc}") from exc
    return list(urls)


def check_fingerprint(value: str) -> str:
    fingerprint = value.strip().lower().replace(":", "")
    if not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise AdminError(
            f"TLS fingerprint {value!r} is not a SHA-256 in hex: copy the 64 hex digits that"
            ' `ptt-server` prints at start ("certificate sha256 ...")'
        )
    return fingerprint


def new_serial() -> int:
    """63 random bits (CA/B Forum BR 7.1 asks for >= 64 bits of CSPRNG output; 63 is what a
    credential holds): a re-enrolment never reuses a serial a revocation list names."""
    return secrets.randbelow(SERIAL_LIMIT) + 1


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode``; never replace an existing file (key material)."""
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


@dataclass(frozen=True, slots=True)
class Relay:
    """The relay this authority administers: where it is and which certificate it pins."""

    url: str
    tls_fingerprint: str


class AuthorityFiles:
    """Paths of one authority directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root_key = directory / "root.key"
        self.root_pub = directory / "root.pub"
        self.admin_keys = directory / "admin.keys"
        self.admin_credential = directory / "admin.credential"
        self.relay = directory / "relay.json"

    def _read(self, path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not self.root_pub.exists():
                raise AdminError(
                    f"no organisation in {self.directory}: run `{PROG} --admin-dir"
                    f" {self.directory} init` first"
                ) from None
            raise AdminError(f"{what} {path} is missing: restore it from backup") from None


@dataclass(frozen=True)
class Authority:
    """An opened authority: the org root and the admin's keys, in memory."""

    files: AuthorityFiles
    root: OrgRoot
    admin_keys: DeviceKeys
    admin_credential: Credential
    relay: Relay | None

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor(self.root.public_key_bytes())

    def admin_bundle(self) -> CredentialBundle:
        """The admin's credential bundle for logging in to the pinned relay."""
        relay = self.require_relay()
        return CredentialBundle(
            device_keys=self.admin_keys.export(None),
            credential=self.admin_credential.to_bytes(),
            root_public_key=self.root.public_key_bytes(),
            server_url=relay.url,
            tls_fingerprint=relay.tls_fingerprint,
        )

    def require_relay(self) -> Relay:
        if self.relay is None:
            raise AdminError(
                f"no relay pinned in {self.files.directory}: start `ptt-server --org-root"
                f" {self.files.root_pub}` on the relay, then run `{PROG} pin wss://HOST:PORT"
                " --tls-fingerprint SHA256` with the fingerprint it prints"
            )
        return self.relay

    def issue(
        self,
        user_id: str,
        *,
        role: Role,
        display_name: str,
        device_id: str,
        valid_days: int,
        now: float,
    ) -> tuple[DeviceKeys, Credential]:
        """New device keys and their root-issued credential (made here, never on the relay)."""
        keys = DeviceKeys.generate()
        credential = self.root.issue_credential(
            user_id=user_id,
            display_name=display_name,
            role=role,
            device_id=device_id,
            signing_key=keys.signing_public_key,
            hpke_key=keys.hpke_public_key,
            not_before=int(now) - CLOCK_SKEW_S,
            not_after=int(now) + valid_days * 86_400,
            serial=new_serial(),
        )
        return keys, credential


def create_authority(
    directory: Path,
    *,
    now: float,
    passphrase: str | None,
    admin_user: str = "admin",
    admin_name: str = "Administrator",
    relay: Relay | None = None,
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> Authority:
    """Make a new organisation in ``directory``: the org root and the admin's credential.

    ``passphrase`` encrypts ``root.key`` and ``admin.keys`` (scrypt + AES-256-GCM); None
    writes them in the clear (the caller warns). Refuses an existing organisation.
    """
    files = AuthorityFiles(directory)
    for path in (files.root_key, files.root_pub, files.admin_keys, files.admin_credential):
        if path.exists():
            raise AdminError(
                f"already initialised: {path} exists. Use another --admin-dir, or move"
                f" {directory} away to start a new organisation (every device then needs a"
                " new bundle)"
            )
    check_id("admin user id", admin_user)
    check_display_name(admin_name)
    if passphrase == "":
        raise AdminError("the passphrase is empty: set the variable to a passphrase")
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
        serial=new_serial(),
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    write_new_file(files.root_key, root.to_bytes(passphrase, scrypt_n=scrypt_n), 0o600)
    write_new_file(files.root_pub, root.public_key_bytes(), 0o644)
    write_new_file(files.admin_keys, keys.export(passphrase, scrypt_n=scrypt_n), 0o600)
    write_new_file(files.admin_credential, credential.to_bytes(), 0o644)
    if relay is not None:
        pin_relay(directory, relay)
    return Authority(files, root, keys, credential, relay)


def pin_relay(directory: Path, relay: Relay) -> None:
    """Record (or replace) the relay the authority talks to."""
    files = AuthorityFiles(directory)
    files._read(files.root_pub, "org root public key")
    check_url(relay.url)
    check_fingerprint(relay.tls_fingerprint)
    data = json.dumps({"url": relay.url, "tls_fingerprint": relay.tls_fingerprint}, indent=2)
    temporary = files.relay.with_suffix(".tmp")
    temporary.write_text(data + "\n")
    temporary.replace(files.relay)


def _load_relay(files: AuthorityFiles) -> Relay | None:
    try:
        raw = json.loads(files.relay.read_text())
        relay = Relay(str(raw["url"]), str(raw["tls_fingerprint"]))
        check_url(relay.url)
        check_fingerprint(relay.tls_fingerprint)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AdminError) as exc:
        raise AdminError(
            f"{files.relay} is damaged ({exc}): run `{PROG} pin wss://HOST:PORT"
            " --tls-fingerprint SHA256` again"
        ) from None
    return relay


def _passphrase_error(exc: CryptoError, path: Path) -> AdminError:
    text = str(exc)
    if "protected by a passphrase" in text:
        return AdminError(
            f"{path} is protected by a passphrase: put it in an environment variable and pass"
            " --passphrase-env VAR"
        )
    return AdminError(f"{path}: {text}")


def open_authority(directory: Path, passphrase: str | None, now: float) -> Authority:
    """Load the org root and the admin's keys; check they belong together and are valid."""
    files = AuthorityFiles(directory)
    root_pub = files._read(files.root_pub, "org root public key")
    try:
        root = OrgRoot.from_bytes(files._read(files.root_key, "org root key"), passphrase)
    except CryptoError as exc:
        raise _passphrase_error(exc, files.root_key) from exc
    if root.public_key_bytes() != root_pub:
        raise AdminError(
            f"{files.root_key} and {files.root_pub} are not a pair: restore both from backup"
        )
    try:
        keys = DeviceKeys.import_(files._read(files.admin_keys, "admin keys"), passphrase)
        credential = Credential.from_bytes(files._read(files.admin_credential, "admin credential"))
    except CryptoError as exc:
        raise _passphrase_error(exc, files.admin_keys) from exc
    if not keys.matches(credential):
        raise AdminError(
            f"{files.admin_keys} and {files.admin_credential} are not a pair: restore both"
            " from backup"
        )
    try:
        TrustAnchor(root_pub).verify_credential(credential, now)
    except CryptoError as exc:
        raise AdminError(
            f"the admin credential in {files.admin_credential} is not valid for this"
            f" organisation ({exc}): restore {directory} from backup"
        ) from exc
    return Authority(files, root, keys, credential, _load_relay(files))
