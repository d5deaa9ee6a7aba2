"""Root-issued credentials for tests, made one way.

:func:`issue` makes what ``ptt-admin enroll`` makes for a device (fresh device keys and the
org root's credential for them, :meth:`crypto.identity.OrgRoot.issue_credential`), with the
defaults tests want; :func:`bundle_for` puts them into the :class:`CredentialBundle` file a
device is handed. Enrolling on a relay is the caller's business (``tests/orgfixture.py``).
"""

from __future__ import annotations

import time

from crypto.bundle import CredentialBundle
from crypto.identity import Credential, DeviceKeys, OrgRoot, Role

HOUR = 3600
DAY = 86_400
CHEAP_SCRYPT = 2**10
"""scrypt cost for key files in tests: the default (2**17) takes ~0.3 s per call."""
TEST_URL = "wss://127.0.0.1:7300"
"""A server address for bundles that never connect."""
NO_FINGERPRINT = "0" * 64
"""A certificate pin for bundles that never connect."""

Issued = tuple[DeviceKeys, Credential]
"""A device's private keys and its root-issued credential."""


def issue(
    root: OrgRoot,
    user_id: str,
    role: Role = Role.OFFICER,
    *,
    serial: int,
    now: float | None = None,
    not_before: float | None = None,
    not_after: float | None = None,
    display_name: str | None = None,
    device_id: str | None = None,
    keys: DeviceKeys | None = None,
) -> Issued:
    """Device keys (fresh unless ``keys``) and the credential ``root`` issues for them.

    Valid from an hour before ``now`` (the wall clock when None) to a day after it unless
    ``not_before`` / ``not_after`` say otherwise; the name is ``user_id.title()`` and the
    device ``{user_id}-dev-{serial}`` unless given.
    """
    keys = keys or DeviceKeys.generate()
    now = time.time() if now is None else now
    credential = root.issue_credential(
        user_id=user_id,
        display_name=user_id.title() if display_name is None else display_name,
        role=role,
        device_id=f"{user_id}-dev-{serial}" if device_id is None else device_id,
        signing_key=keys.signing_public_key,
        hpke_key=keys.hpke_public_key,
        not_before=int(now - HOUR if not_before is None else not_before),
        not_after=int(now + DAY if not_after is None else not_after),
        serial=serial,
    )
    return keys, credential


def bundle_for(
    root: OrgRoot,
    issued: Issued,
    *,
    server_url: str = TEST_URL,
    tls_fingerprint: str = NO_FINGERPRINT,
    passphrase: str | None = None,
) -> CredentialBundle:
    """The bundle for the device ``issued`` (its keys encrypted when ``passphrase`` is given,
    at the cheap test cost)."""
    keys, credential = issued
    return CredentialBundle(
        device_keys=keys.export(passphrase, scrypt_n=CHEAP_SCRYPT),
        credential=credential.to_bytes(),
        root_public_key=root.public_key_bytes(),
        server_url=server_url,
        tls_fingerprint=tls_fingerprint,
    )
