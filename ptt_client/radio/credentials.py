"""The radio's credential: the bundle file from ``ptt-admin enroll`` and its passphrase."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client.bundle_file import read_bundle_file
from ptt_client.command_line import env_secret
from ptt_client.errors import BundleFileError
from ptt_client.radio.errors import RadioError


def load_credential(
    path: Path, passphrase_env: str | None, environ: Mapping[str, str] = os.environ
) -> tuple[CredentialBundle, DeviceKeys]:
    """Read and open the bundle; every failure is a :class:`RadioError` saying what to do."""
    # An empty passphrase is passed on: a plain bundle opens with any, and for a protected one
    # the bundle's own "wrong passphrase" says more than refusing here would.
    passphrase = env_secret(
        passphrase_env, "--passphrase-env", RadioError, allow_empty=True, environ=environ
    )
    try:
        bundle = read_bundle_file(path)
    except BundleFileError as exc:
        raise RadioError(str(exc)) from None
    try:
        keys = bundle.open_keys(passphrase)
        bundle.verify(time.time())
    except CryptoError as exc:
        hint = "" if passphrase_env else " (if it has a passphrase, use --passphrase-env VAR)"
        raise RadioError(f"{exc}{hint}") from None
    return bundle, keys
