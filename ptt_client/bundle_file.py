"""A credential bundle file as a program that logs in with it reads it (``ptt-radio``,
``ptt-dispatch``): :func:`read_bundle_file`, and :func:`check_console_bundle` for the
dispatcher console, which needs a dispatcher's bundle.

Every failure is a :class:`~ptt_client.errors.BundleFileError` of one line naming the file,
what is wrong with it and which file to use instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from crypto.bundle import MAX_BUNDLE_BYTES, CredentialBundle, describe_non_bundle
from crypto.errors import CryptoError, NotABundleError
from ptt_client.errors import BundleFileError

__all__ = ["USE_INSTEAD", "BundleFileError", "check_console_bundle", "read_bundle_file"]

USE_INSTEAD: Final = "use the bundle `ptt-admin enroll` wrote for this device"
"""What to do about a file that is no bundle: the one fix every such message ends with."""


def read_bundle_file(path: Path) -> CredentialBundle:
    """Read and decode the bundle at ``path`` (no passphrase, no clock needed yet).

    Raises :class:`BundleFileError`: the file cannot be read, is no bundle at all ("FILE is
    not a Fieldradio device bundle (a WAV audio file): use the bundle ..."), is a bundle of
    a format this program does not read, or a bundle with a field that is wrong.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BUNDLE_BYTES + 1)  # bundles are a few KB: never read a big file
    except OSError as exc:
        raise BundleFileError(
            f"cannot read credential file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_BUNDLE_BYTES:
        what = describe_non_bundle(data, complete=False)
        raise BundleFileError(
            _not_a_bundle(path, what or f"too large: more than {MAX_BUNDLE_BYTES // 1024} KB")
        )
    try:
        return CredentialBundle.from_bytes(data)
    except NotABundleError as exc:
        raise BundleFileError(_not_a_bundle(path, exc.what)) from None
    except CryptoError as exc:
        raise BundleFileError(f"{str(path)!r} is not a usable credential bundle: {exc}") from None


def _not_a_bundle(path: Path, what: str) -> str:
    return f"{str(path)!r} is not a Fieldradio device bundle ({what}): {USE_INSTEAD}"


def check_console_bundle(bundle: CredentialBundle, path: Path, program: str) -> None:
    """Refuse an officer's bundle for the dispatcher console ``program``: it logs in, but
    cannot sign a roster or make a channel key, so the console would fail at its first job.

    Raises :class:`BundleFileError` saying whose bundle it is and which one to use.
    """
    credential = bundle.decoded_credential()
    if credential.is_key_manager():
        return
    user, role = credential.user_id, credential.role.value
    raise BundleFileError(
        f"{str(path)!r} is the bundle of {role} {user!r} ({credential.display_name}): {program}"
        " needs a dispatcher's bundle, from `ptt-admin enroll NAME --role dispatcher`"
        f" (give {user}'s bundle to ptt-radio)"
    )
