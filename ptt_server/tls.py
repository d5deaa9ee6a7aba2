"""The server's TLS identity: a configured pair, or a self-signed one made on first start.

Clients pin the certificate's SHA-256 fingerprint (it travels in every
credential bundle), so a self-signed certificate is as good as a CA-issued one
here and needs no outside service. The same pinning is why a pair is never
replaced behind the operator's back: a new pair over a kept key (or certificate)
would lock every radio out. ``check_pair`` refuses half a pair or a mismatched
one; ``ensure_self_signed`` makes a pair only where neither file exists.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ptt_server import datadir

_DIR_MODE = 0o700
_KEY_MODE = 0o600
_CERT_MODE = 0o644  # public: it is what every radio pins


class TLSFilesError(OSError):
    """The certificate and key on disk are not a usable pair; nothing was changed.

    An ``OSError`` so every caller that reports unreadable files (``ptt-admin``) prints the
    message as its one line.
    """


def _new_pair_advice(cert_path: Path, key_path: Path) -> str:
    return (
        f"Restore both {cert_path.name} and {key_path.name} from one backup; or move both away "
        f"to have a new pair made, after which every radio needs a new bundle (ptt-admin "
        f"enroll), as the certificate they pin changes"
    )


def check_pair(cert_path: Path, key_path: Path, *, self_signed: bool = False) -> bool:
    """Check the pair on disk, reading only; True if a self-signed pair is still to be made.

    ``self_signed``: the pair ``ensure_self_signed`` manages, which may be missing
    altogether (then True) and must belong to us; otherwise a configured pair, which
    must exist. Raises ``TLSFilesError`` when only one of the two exists (a new pair over
    a kept key, or a kept certificate, would change the pin every radio holds), when a
    file cannot be read or parsed, when the key is not the certificate's, or when a
    self-signed key or its directory belongs to another user.
    """
    if self_signed:
        for path in (key_path.parent, key_path):
            try:
                datadir.check_owner(path)
            except datadir.DataDirError as exc:
                raise TLSFilesError(str(exc)) from None
    # lexists: a dangling link counts as there; a pair is never made in its place.
    have_cert, have_key = os.path.lexists(cert_path), os.path.lexists(key_path)
    if not have_cert and not have_key and self_signed:
        return True
    if not have_cert or not have_key:
        missing, present = (key_path, cert_path) if have_cert else (cert_path, key_path)
        if not self_signed:
            raise TLSFilesError(
                f"TLS {'certificate' if missing == cert_path else 'key'} {missing} does not "
                f"exist: fix tls_cert and tls_key in the config, or remove both to use a "
                f"self-signed pair"
            )
        raise TLSFilesError(
            f"TLS {'certificate' if missing == cert_path else 'key'} {missing} is missing but "
            f"{present} is there; no new pair was made over it. "
            + _new_pair_advice(cert_path, key_path)
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSFilesError(
            f"cannot read the TLS certificate {cert_path} ({exc}). "
            + _new_pair_advice(cert_path, key_path)
        ) from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        # TypeError: the key is encrypted; the server has no way to ask for a passphrase.
        raise TLSFilesError(
            f"cannot read the TLS key {key_path} ({exc}); it must be an unencrypted PEM key. "
            + _new_pair_advice(cert_path, key_path)
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise TLSFilesError(
            f"the TLS key {key_path} does not belong to the certificate {cert_path}. "
            + _new_pair_advice(cert_path, key_path)
        )
    return False


def ensure_self_signed(cert_path: Path, key_path: Path, hosts: list[str]) -> bool:
    """Create a self-signed certificate for ``hosts`` unless one exists. Returns True if created.

    Never writes over an existing file: if only one of the two exists, or they do not
    match, raises ``TLSFilesError`` (see ``check_pair``). The directory is made 0700 and the
    key 0600, both created with ``O_EXCL``; an existing pair's key and directory are
    narrowed to those modes.
    """
    if not check_pair(cert_path, key_path, self_signed=True):
        # Narrow an existing pair: its directory 0700, the key 0600 (logged).
        datadir.tighten(key_path.parent, _DIR_MODE)
        datadir.tighten(key_path, _KEY_MODE)
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fieldradio relay")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(key, hashes.SHA256())
    )
    for directory in {cert_path.parent, key_path.parent}:
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a crash between the two leaves a key without a certificate, which the
    # next start refuses with advice, rather than a certificate radios might pin.
    _write_new(key_path, key_pem, _KEY_MODE)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE)
    return True


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` (synced) and exactly ``mode``; never replace a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise TLSFilesError(
            f"{path} appeared while a new TLS pair was being made (another process?); "
            f"nothing was overwritten. Check the files and start again"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask may have removed bits we want
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # ours (O_EXCL): never leave half a key behind
        raise


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the certificate's DER bytes, as lowercase hex: what clients pin."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_path, key_path)
    return context
