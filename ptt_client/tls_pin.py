"""The relay's TLS certificate, pinned by fingerprint (from the credential bundle), not by a CA.

A radio trusts exactly the certificate its bundle names (SHA-256 of the DER), so neither a
public CA nor a compromised one can stand in for the relay; the login statement is bound to
the same fingerprint (``ptt_protocol.login``), so a login relayed through another
certificate is useless. :func:`tls_failure` says in words why a handshake failed.
"""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

from ptt_client.errors import PinnedCertificateError

__all__ = ["check_pin", "client_ssl_context", "tls_failure"]


def client_ssl_context() -> ssl.SSLContext:
    """TLS 1.3, no CA or host name check: :func:`check_pin` is the check."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def check_pin(ssl_object: Any, pinned_hex: str) -> bytes:
    """The fingerprint of the certificate on ``ssl_object`` if it is the pinned one, else
    :class:`PinnedCertificateError`."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der is None:
        raise PinnedCertificateError("the server presented no TLS certificate")
    fingerprint = hashlib.sha256(der).digest()
    if fingerprint.hex() != pinned_hex.lower():
        raise PinnedCertificateError(
            f"the server's certificate {fingerprint.hex()[:16]}... is not the pinned"
            f" {pinned_hex[:16]}...: wrong server, or it was re-installed"
            " (get a new credential bundle)"
        )
    return fingerprint


def tls_failure(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, in words; None if ``exc`` is no TLS error. (An
    ``ssl.SSLError`` is an ``OSError`` whose errno is OpenSSL's: ``os.strerror`` would call a
    server that speaks no TLS "Operation not permitted".)"""
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}): is that address a Fieldradio relay?"
    return None
