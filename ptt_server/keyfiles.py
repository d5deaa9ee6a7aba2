"""The relay's data directory must hold nothing that signs or opens anything.

The org authority (``ptt-admin``) keeps the org root and its own keys on its own
machine. A relay that finds a private key in its data directory refuses to start:
its operator could sign a roster or an epoch with it and read every channel
(docs/security.md, "the relay cannot listen").
"""

from __future__ import annotations

import os
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import Credential, TrustAnchor, key_file_kind

MAX_KEY_FILE_BYTES = 16 * 1024
"""Key files and bundles are a few KB; larger files (the database) are not key material."""


class PrivateKeyFound(Exception):
    """A private key lies in the relay's data directory; the message says which and what to do."""


def refuse_private_keys(data_dir: Path) -> None:
    """Raise :class:`PrivateKeyFound` if any small file under ``data_dir`` is a private key
    file (org root or device keys, encrypted or not) or a credential bundle."""
    if not data_dir.is_dir():
        return
    for folder, _dirs, files in os.walk(data_dir):
        for name in files:
            path = Path(folder) / name
            what = _private_material(path)
            if what is not None:
                raise PrivateKeyFound(
                    f"{path} is {what}: the relay must hold no key that signs or opens"
                    " anything. Move it to the org authority's machine (where `ptt-admin`"
                    " runs), keep only org/root.pub, the TLS pair and the database here, then"
                    " start again"
                )


def _private_material(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_KEY_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
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
