"""Credential bundles: everything one radio or console needs to log in, in one file.

``ptt-admin enroll`` writes a bundle per device and the operator carries it to
the device (USB stick, MDM push). It holds:

* the device's private keys, exported by :meth:`DeviceKeys.export` (encrypted with
  scrypt + AES-256-GCM when the operator gave a passphrase);
* the device's :class:`~crypto.identity.Credential` (root-signed, public);
* the org root public key the device pins (its :class:`~crypto.identity.TrustAnchor`);
* the server's control URL (``wss://HOST:PORT``) and the SHA-256 fingerprint of the
  server's TLS certificate, which the client pins instead of trusting a CA;
* for a cluster, the other nodes' URLs (:attr:`CredentialBundle.alternate_urls`), where the
  radio goes when its server fails. Every node of a cluster serves the same certificate, so
  the one fingerprint pins them all.

The bundle itself is not signed: the credential inside carries the root's
signature, and whoever can alter the file could as well replace it. Decoding
still checks what can be checked without a clock: sizes, the format version,
a canonical encoding (one encoding per bundle, as for credentials), that the
credential was issued by the root in the same bundle, and the URL and
fingerprint shapes. :meth:`CredentialBundle.verify` adds the time-dependent
checks and :meth:`CredentialBundle.open_keys` that the keys match the credential.

Wire format: one version byte (1), then the msgpack array of the fields in
declaration order (``msgspec`` ``array_like``). ``alternate_urls`` is left out when empty,
so a one-server bundle is byte for byte what earlier programs wrote, and they still read it;
an empty sixth element is not canonical and is refused. Programs older than the field refuse
a bundle that has it ("not canonically encoded"): update the radios before handing them one.

Bytes that are no bundle of any version (an empty, text, audio or key file, a bundle cut
short) raise :class:`~crypto.errors.NotABundleError` saying what they look like
(:func:`describe_non_bundle`), not "format version 82 is not supported": that is kept for a
bundle of a newer format, a small version byte followed by a msgpack array.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Final
from urllib.parse import urlsplit

import msgspec

from crypto.errors import BundleError, CryptoError, KeyStoreError, NotABundleError
from crypto.identity import SIGNING_KEY_SIZE, Credential, DeviceKeys, TrustAnchor
from crypto.keyfile import key_file_kind
from crypto.wire import decode_versioned

__all__ = [
    "BUNDLE_VERSION",
    "MAX_BUNDLE_BYTES",
    "MAX_SERVER_URLS",
    "CredentialBundle",
    "check_server_url",
    "check_server_urls",
    "describe_non_bundle",
]

BUNDLE_VERSION: Final = 1
"""Format version byte at the start of :meth:`CredentialBundle.to_bytes`."""
MAX_BUNDLE_BYTES: Final = 16 * 1024
"""Largest bundle accepted. A real one is about 1.8 KB (1.4 KB of it the credential)."""
_NEWER_VERSIONS: Final = range(BUNDLE_VERSION + 1, 0x20)
"""Version bytes a future bundle format may have: below every printable character, so a text
file never passes for a newer bundle."""
MAX_SERVER_URLS: Final = 16
"""Most servers one bundle names (``server_url`` and its alternates): bounds the bundle's size
and how long one failover round can take."""
_FIELD_COUNTS: Final = (5, 6)
"""Fields of a bundle without and with ``alternate_urls``."""
_MAX_KEYS_BYTES: Final = 4096  # crypto.identity refuses larger key files too
_MAX_CREDENTIAL_BYTES: Final = 4096
_MAX_URL_LENGTH: Final = 300  # "wss://" + a 255-byte host name (RFC 1035 2.3.4) + ":65535"
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]")


class CredentialBundle(msgspec.Struct, array_like=True, frozen=True):
    """A device's keys, credential, pinned root and server, as one file.

    Construction and :meth:`from_bytes` both validate every field (raising
    :class:`~crypto.errors.BundleError`), so a bundle object is always well formed.
    """

    device_keys: Annotated[bytes, msgspec.Meta(min_length=1, max_length=_MAX_KEYS_BYTES)]
    """The device's private keys as written by :meth:`DeviceKeys.export`; open with
    :meth:`open_keys`."""
    credential: Annotated[bytes, msgspec.Meta(min_length=1, max_length=_MAX_CREDENTIAL_BYTES)]
    """The device's root-signed credential (:meth:`Credential.to_bytes`)."""
    root_public_key: Annotated[
        bytes, msgspec.Meta(min_length=SIGNING_KEY_SIZE, max_length=SIGNING_KEY_SIZE)
    ]
    """Raw Ed25519 public key of the org root: what the device pins."""
    server_url: Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_URL_LENGTH)]
    """Control plane URL, ``wss://HOST:PORT``."""
    tls_fingerprint: Annotated[str, msgspec.Meta(min_length=64, max_length=64)]
    """SHA-256 of the server certificate's DER bytes, 64 lowercase hex digits."""
    alternate_urls: tuple[
        Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_URL_LENGTH)], ...
    ] = ()  # their count is capped by __post_init__, to say so (the file is capped too)
    """The other nodes of ``server_url``'s cluster in the operator's order (``wss://HOST:PORT``
    each, no server twice): where the radio goes when its server fails
    (:mod:`ptt_client.server_list`)."""

    def __post_init__(self) -> None:
        # msgspec enforces the Meta constraints only when decoding; a bundle built in
        # code gets the same checks here. BundleError is not a ValueError, so msgspec
        # lets it through unchanged when raised during decoding.
        if not isinstance(self.device_keys, bytes) or not 0 < len(self.device_keys) <= (
            _MAX_KEYS_BYTES
        ):
            raise BundleError(f"bundle device keys must be 1..{_MAX_KEYS_BYTES} bytes")
        if not isinstance(self.credential, bytes) or not 0 < len(self.credential) <= (
            _MAX_CREDENTIAL_BYTES
        ):
            raise BundleError(f"bundle credential must be 1..{_MAX_CREDENTIAL_BYTES} bytes")
        if not isinstance(self.root_public_key, bytes) or (
            len(self.root_public_key) != SIGNING_KEY_SIZE
        ):
            raise BundleError(f"bundle org root key must be {SIGNING_KEY_SIZE} bytes")
        if not isinstance(self.alternate_urls, tuple):
            raise BundleError("bundle alternate server URLs must be a tuple of wss:// URLs")
        check_server_urls(self.server_urls)
        if not isinstance(self.tls_fingerprint, str) or not _FINGERPRINT_RE.fullmatch(
            self.tls_fingerprint
        ):
            raise BundleError(
                "bundle TLS fingerprint must be the certificate's SHA-256 as 64 lowercase hex"
                " digits (as `ptt-server` prints it)"
            )
        try:
            credential = Credential.from_bytes(self.credential)
            anchor = TrustAnchor(self.root_public_key)
        except (CryptoError, ValueError) as exc:
            raise BundleError(f"bundle holds an unusable credential or root key: {exc}") from exc
        if credential.issuer != anchor.key_id:
            raise BundleError(
                f"the credential for {credential.user_id!r} in this bundle was issued by another"
                " organisation's root than the one the bundle pins: re-enroll with"
                f" `ptt-admin enroll {credential.user_id}`"
            )

    # --- wire form ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Canonical file form: the version byte, then the msgpack array."""
        return bytes((BUNDLE_VERSION,)) + self._body()

    def _body(self) -> bytes:
        """The msgpack array, without ``alternate_urls`` when it is empty (module docstring)."""
        fields = msgspec.structs.astuple(self)
        return _ENCODER.encode(fields if self.alternate_urls else fields[: _FIELD_COUNTS[0]])

    @classmethod
    def from_bytes(cls, data: bytes) -> CredentialBundle:
        """Decode and check a bundle file (no clock needed; see :meth:`verify` for that).

        Raises :class:`~crypto.errors.NotABundleError` for bytes that are no bundle at all
        (:func:`describe_non_bundle`), :class:`~crypto.errors.BundleError` for oversize, a
        newer format version, non-canonical input, or any field :meth:`__post_init__` refuses.
        """
        if len(data) <= MAX_BUNDLE_BYTES:
            what = describe_non_bundle(data)
            if what is not None:
                raise NotABundleError(what)
        return decode_versioned(
            data,
            version=BUNDLE_VERSION,
            decoder=_DECODER,
            max_size=MAX_BUNDLE_BYTES,
            what="credential bundle",
            error=BundleError,
            fix="is it a Fieldradio credential bundle? Ask the operator for a new one",
            canonical=CredentialBundle._body,
        )

    # --- contents ----------------------------------------------------------------------------

    def decoded_credential(self) -> Credential:
        """The credential inside, decoded (structure checked, not yet verified)."""
        return Credential.from_bytes(self.credential)

    @property
    def server_urls(self) -> tuple[str, ...]:
        """Every server the bundle names, the preferred one (:attr:`server_url`) first."""
        return (self.server_url, *self.alternate_urls)

    @property
    def user_id(self) -> str:
        """Whose bundle this is."""
        return self.decoded_credential().user_id

    def trust_anchor(self) -> TrustAnchor:
        """A fresh :class:`TrustAnchor` pinning the bundle's org root."""
        return TrustAnchor(self.root_public_key)

    def verify(self, now: float) -> Credential:
        """Check the credential against the bundle's own root at ``now`` and return it.

        Raises :class:`~crypto.errors.CredentialError` (not yet valid, expired, forged),
        whose message says what to do. Revocation is checked by the server at login.
        """
        return self.trust_anchor().verify_credential(self.credential, now)

    def open_keys(self, passphrase: str | None) -> DeviceKeys:
        """Decrypt the device keys and check that they are the ones the credential certifies.

        Raises :class:`~crypto.errors.BundleError` for a wrong or missing passphrase, a
        damaged key blob, or keys that do not match the credential.
        """
        user = self.user_id
        try:
            keys = DeviceKeys.import_(self.device_keys, passphrase)
        except KeyStoreError as exc:
            raise BundleError(f"cannot open the device keys of {user!r}'s bundle: {exc}") from exc
        if not keys.matches(self.decoded_credential()):
            raise BundleError(
                f"the device keys in {user!r}'s bundle are not the ones its credential"
                f" certifies: re-enroll with `ptt-admin enroll {user}`"
            )
        return keys


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(CredentialBundle)


def describe_non_bundle(data: bytes, *, complete: bool = True) -> str | None:
    """What ``data`` looks like if it cannot be a bundle of any format version, e.g. ``"a WAV
    audio file"``; ``None`` if it may be one (this version, or a newer format: a small
    version byte, then one msgpack array). ``complete=False``: ``data`` is only the start of
    a file (too large to be a bundle), so only what a file starts with is told apart."""
    if not data:
        return "the file is empty"
    if not complete and (data[0] == BUNDLE_VERSION or data[0] in _NEWER_VERSIONS):
        return None
    if data[0] == BUNDLE_VERSION:
        return _not_this_format(data)
    if data[0] in _NEWER_VERSIONS:
        try:
            if isinstance(msgspec.msgpack.decode(data[1:]), list):
                return None
        except msgspec.DecodeError:
            pass
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "a WAV audio file"
    if data.startswith(b"-----BEGIN"):
        return "a PEM file: a TLS certificate or key"
    return _text_or_binary(data)


def _not_this_format(data: bytes) -> str | None:
    """Why version-1 bytes are not a bundle (another Fieldradio file, cut short), or None."""
    kind = key_file_kind(data)
    if kind is not None:
        owner = "the organisation root's" if kind == "org-root" else "a device's"
        return f"{owner} private key file, not a bundle"
    try:
        value = msgspec.msgpack.decode(data[1:])
    except msgspec.DecodeError as exc:
        return f"truncated or damaged: {exc}"
    if isinstance(value, list) and len(value) in _FIELD_COUNTS:
        return None
    try:
        credential = Credential.from_bytes(data)
    except (CryptoError, ValueError):
        return "another kind of Fieldradio file, or a damaged one"
    return f"the credential of {credential.user_id!r} alone, without its device keys"


def _text_or_binary(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 3:  # not merely a character cut by a prefix read
            return f"binary data of an unknown kind (starts with {data[:4].hex()})"
        text = data[: exc.start].decode("utf-8")
    if not all(c.isprintable() or c in "\t\r\n" for c in text):
        return f"binary data of an unknown kind (starts with {data[:4].hex()})"
    first = text.strip().splitlines()[0] if text.strip() else ""
    shown = first if len(first) <= 40 else first[:37] + "..."
    return f"a text file: {shown!r}" if shown else "a text file of blank lines"


def check_server_urls(urls: Sequence[object]) -> None:
    """Accept 1 to :data:`MAX_SERVER_URLS` URLs, each as :func:`check_server_url` wants it,
    no server twice; else raise :class:`~crypto.errors.BundleError` saying what to change."""
    if not 0 < len(urls) <= MAX_SERVER_URLS:
        raise BundleError(
            f"a bundle names 1 to {MAX_SERVER_URLS} servers, not {len(urls)}: give each radio"
            f" at most {MAX_SERVER_URLS} of the cluster's nodes"
        )
    seen: set[str] = set()
    for given in urls:
        url = check_server_url(given)
        if _server_key(url) in seen:
            raise BundleError(
                f"bundle server URL {url!r} is given twice: name each server of the cluster once"
            )
        seen.add(_server_key(url))


def _server_key(url: str) -> str:
    # Host names are case-insensitive (RFC 4343), and "wss://h:1/" is "wss://h:1".
    return url.removesuffix("/").lower()


def check_server_url(url: object) -> str:
    """Accept exactly ``wss://HOST:PORT`` (optionally a trailing ``/``) and return it; else
    raise :class:`~crypto.errors.BundleError` saying what form is expected."""
    if not isinstance(url, str) or not 0 < len(url) <= _MAX_URL_LENGTH:
        raise BundleError(f"bundle server URL must be 1..{_MAX_URL_LENGTH} characters")
    hint = "wss://HOST:PORT (e.g. wss://relay.example.org:7300)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BundleError(f"bundle server URL {url!r} is invalid ({exc}): give {hint}") from exc
    # TLS is not optional: the client pins the certificate (RFC 6455 11.1.2 "wss").
    if parts.scheme != "wss":
        raise BundleError(f"bundle server URL {url!r} is not a wss:// URL: give {hint}")
    host = parts.netloc.rpartition(":")[0]
    if (
        port is None
        or port == 0
        or not _HOST_RE.fullmatch(host)
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise BundleError(f"bundle server URL {url!r} is not of the form {hint}")
    return url
