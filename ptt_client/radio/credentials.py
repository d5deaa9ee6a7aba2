"""The radio's credential: the bundle file from ``ptt-admin enroll`` and its passphrase."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from crypto.bundle import CredentialBundle
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client.command_line import env_secret
from ptt_client.radio.errors import RadioError

MAX_CREDENTIAL_FILE: Final = 64 * 1024
"""Bundles are a few KB; refuse to read a huge file by mistake."""


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
        with open(path, "rb") as file:
            data = file.read(MAX_CREDENTIAL_FILE + 1)
    except OSError as exc:
        raise RadioError(
            f"cannot read credential file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_CREDENTIAL_FILE:
        raise RadioError(f"{str(path)!r} is too large to be a credential bundle")
    try:
        bundle = CredentialBundle.from_bytes(data)
    except CryptoError as exc:
        raise RadioError(f"{str(path)!r} is not a usable credential bundle: {exc}") from None
    try:
        keys = bundle.open_keys(passphrase)
        bundle.verify(time.time())
    except CryptoError as exc:
        hint = "" if passphrase_env else " (if it has a passphrase, use --passphrase-env VAR)"
        raise RadioError(f"{exc}{hint}") from None
    return bundle, keys
