"""The relay's data directory must hold nothing that signs or opens anything.

The org authority (``ptt-admin``) keeps the org root and its own keys on its own
machine. A relay that finds a private key in its data directory refuses to start:
its operator could sign a roster or an epoch with it and read every channel
(docs/security.md, "the relay cannot listen").
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
    load_ssh_private_key,
)

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import Credential, TrustAnchor, key_file_kind
from ptt_server.config import org_root_path

MAX_KEY_FILE_BYTES = 16 * 1024
"""Key files and bundles are a few KB; larger files (the database) are not key material."""


class PrivateKeyFound(Exception):
    """A private key lies in the relay's data directory; the message says which and what to do."""


def refuse_private_keys(data_dir: Path) -> None:
    """Raise :class:`PrivateKeyFound` if any small file under ``data_dir`` holds a private
    key the relay must not have: a Fieldradio key file (org root or device keys, encrypted
    or not) or bundle, also base64-encoded or with whitespace around it; an Ed25519 or
    X25519 key in PEM, DER or OpenSSH form (the relay's TLS key is ECDSA); any encrypted
    private key (the relay can use none); or the org root's raw 32-byte seed (raw, hex or
    base64), recognised against ``org/root.pub``. Symbolic links are followed, directories
    once each."""
    if not data_dir.is_dir():
        return
    root_public = _read_small(org_root_path(data_dir))
    seen: set[Path] = set()
    for folder, dirs, files in os.walk(data_dir, followlinks=True):
        real = Path(folder).resolve()
        if real in seen:
            dirs[:] = []  # a link back to a directory already searched
            continue
        seen.add(real)
        for name in files:
            path = Path(folder) / name
            data = _read_small(path)
            what = None if data is None else _private_material(data, root_public)
            if what is not None:
                raise PrivateKeyFound(
                    f"{path} is {what}: the relay must hold no key that signs or opens"
                    " anything. Move it to the org authority's machine (where `ptt-admin`"
                    " runs), keep only org/root.pub, the TLS pair and the database here, then"
                    " start again"
                )


def _read_small(path: Path) -> bytes | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_KEY_FILE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _private_material(data: bytes, root_public: bytes | None) -> str | None:
    stripped = data.strip()
    for candidate in (data, stripped, _base64(stripped)):
        if not candidate:
            continue
        found = _fieldradio_material(candidate)
        if found is not None:
            return found
    if root_public is not None and _is_root_seed(stripped, root_public):
        return "the organisation's root private key (its raw seed)"
    return _foreign_private_key(stripped)


def _fieldradio_material(data: bytes) -> str | None:
    kind = key_file_kind(data)
    if kind == "org-root":
        return "the organisation's root private key"
    if kind == "device":
        return "a device's private keys"
    try:
        CredentialBundle.from_bytes(data)
    except CryptoError:
        return None
    return "a credential bundle (a device's private keys)"


def _base64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _is_root_seed(data: bytes, root_public: bytes) -> bool:
    seeds = [data]
    try:
        seeds.append(bytes.fromhex(data.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        pass
    decoded = _base64(data)
    if decoded is not None:
        seeds.append(decoded)
    for seed in seeds:
        if len(seed) != 32:
            continue
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        if public.public_bytes(Encoding.Raw, PublicFormat.Raw) == root_public:
            return True
    return False


_ENCRYPTED_MARKERS = (b"ENCRYPTED PRIVATE KEY", b"Proc-Type: 4,ENCRYPTED")


def _foreign_private_key(data: bytes) -> str | None:
    if any(marker in data for marker in _ENCRYPTED_MARKERS):
        return "an encrypted private key (the relay uses none; it may be the organisation's)"
    loaders = (load_pem_private_key, load_der_private_key, load_ssh_private_key)
    for load in loaders:
        try:
            key = load(data, None)
        except TypeError:  # a passphrase-protected OpenSSH key: the relay uses none
            return "an encrypted private key (the relay uses none; it may be the organisation's)"
        except (ValueError, UnsupportedAlgorithm):
            continue
        if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
            return "an Ed25519 or X25519 private key (the organisation's or a device's)"
        return None  # another kind of key (the relay's own TLS key is ECDSA)
    return None


def install_org_root(root_file: Path, source: Path) -> bool:
    """Copy the org root public key from ``source`` to ``root_file`` (first start).

    Returns True if it was installed, False if the same key is there already. Raises
    :class:`OrgRootError` for a file that is not a root public key (a private key is
    refused with a warning of its own) or when another organisation's root is installed.
    """
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise OrgRootError(f"--org-root {source}: {exc.strerror or exc}") from None
    if key_file_kind(data) is not None:
        raise OrgRootError(
            f"--org-root {source} is a PRIVATE key: give the relay only root.pub, and keep"
            " root.key on the org authority's machine"
        )
    try:
        TrustAnchor(data)
    except (CryptoError, ValueError) as exc:
        raise OrgRootError(
            f"--org-root {source} is not an org root public key ({exc}): give the root.pub"
            " that `ptt-admin init` wrote"
        ) from None
    if root_file.exists():
        if root_file.read_bytes() == data:
            return False
        raise OrgRootError(
            f"{root_file} holds another organisation's root: a relay serves one organisation;"
            " use another --data-dir, or move the old one away (every device then needs a new"
            " bundle)"
        )
    root_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(root_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


class OrgRootError(Exception):
    """The org root public key cannot be installed or used; the message says what to do."""


def _reinstall_advice(root_file: Path, data_dir: Path) -> str:
    return (
        f"copy root.pub again from the org authority's machine (the one `ptt-admin init`"
        f" wrote): move {root_file} away, then start once with `ptt-server --data-dir"
        f" {data_dir} --org-root PATH/TO/root.pub`; nothing was changed"
    )


def load_org_root(root_file: Path, data_dir: Path) -> bytes:
    """The installed org root public key, or :class:`OrgRootError` saying how to reinstall it."""
    try:
        data = root_file.read_bytes()
        TrustAnchor(data)
        return data
    except (OSError, CryptoError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OrgRootError(
            f"the org root key {root_file} is unreadable or damaged ({why}): "
            + _reinstall_advice(root_file, data_dir)
        ) from None


def check_root_signed(
    trust: TrustAnchor, credentials: list[bytes], root_file: Path, data_dir: Path
) -> None:
    """Refuse an org root that signed none of the stored ``credentials`` (a sample).

    A root.pub damaged in a way that still decodes (any 32 bytes are a key) or another
    organisation's would otherwise start a relay that refuses every login with "issued by
    another organisation's root: enroll it here", and an operator would re-enroll every
    device. Signatures only: an expired or revoked credential was still signed by the root.
    """
    if not credentials:
        return  # nobody enrolled yet: nothing to tell the root by
    for data in credentials:
        try:
            credential = Credential.from_bytes(data)
            trust.verify_credential(credential, credential.not_before)
        except (CryptoError, ValueError):
            continue
        return
    raise OrgRootError(
        f"the org root key {root_file} signed none of the {len(credentials)} stored"
        f" credentials checked: it is damaged or another organisation's; "
        + _reinstall_advice(root_file, data_dir)
    )
