"""Tests for crypto.bundle: a bundle opens to the keys its credential certifies, and
every malformed, foreign or tampered file is refused with a BundleError."""

from __future__ import annotations

import io
import re
import wave

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.bundle import (
    BUNDLE_VERSION,
    MAX_BUNDLE_BYTES,
    MAX_SERVER_URLS,
    CredentialBundle,
    check_server_url,
    check_server_urls,
    describe_non_bundle,
)
from crypto.errors import BundleError, CredentialError, NotABundleError
from crypto.identity import Credential, DeviceKeys, Role
from tests.credentials import CHEAP_SCRYPT, DAY, bundle_for
from tests.crypto.test_identity import NOW, Org

URL = "wss://relay.example.org:7300"
FINGERPRINT = "0123456789abcdef" * 4


class Device:
    """One enrolled device of a test organisation."""

    def __init__(self, org: Org | None = None, user: str = "alice") -> None:
        self.org = org or Org()
        self.keys, self.credential = self.org.enroll(user, Role.OFFICER)

    def bundle(self, passphrase: str | None = None, **overrides: object) -> CredentialBundle:
        fields: dict[str, object] = {
            "device_keys": self.keys.export(passphrase, scrypt_n=CHEAP_SCRYPT),
            "credential": self.credential.to_bytes(),
            "root_public_key": self.org.root.public_key_bytes(),
            "server_url": URL,
            "tls_fingerprint": FINGERPRINT,
        }
        fields.update(overrides)
        return CredentialBundle(**fields)  # type: ignore[arg-type]


def _raw(bundle: CredentialBundle, **overrides: object) -> bytes:
    """A bundle file with fields swapped in, encoded without the constructor's checks."""
    fields: list[object] = [
        bundle.device_keys,
        bundle.credential,
        bundle.root_public_key,
        bundle.server_url,
        bundle.tls_fingerprint,
    ]
    names = ["device_keys", "credential", "root_public_key", "server_url", "tls_fingerprint"]
    for name, value in overrides.items():
        fields[names.index(name)] = value
    return bytes((BUNDLE_VERSION,)) + msgspec.msgpack.encode(fields)


@pytest.fixture(scope="module")
def device() -> Device:
    return Device()


def test_round_trip_opens_the_certified_keys(device: Device) -> None:
    bundle = device.bundle()
    data = bundle.to_bytes()
    assert data[0] == BUNDLE_VERSION
    decoded = CredentialBundle.from_bytes(data)
    assert decoded == bundle
    assert decoded.to_bytes() == data
    keys = decoded.open_keys(None)
    assert keys.signing_public_key == device.keys.signing_public_key
    assert keys.hpke_public_key == device.keys.hpke_public_key
    assert decoded.user_id == "alice"
    assert decoded.decoded_credential() == device.credential
    assert decoded.trust_anchor().key_id == device.org.trust.key_id
    assert decoded.verify(NOW) == device.credential


def test_opened_keys_sign_for_the_credential(device: Device) -> None:
    keys = CredentialBundle.from_bytes(device.bundle().to_bytes()).open_keys(None)
    statement = b"test statement\x00login"
    device.credential.verify_signature(statement, keys.sign(statement))


def test_passphrase_protected_keys(device: Device) -> None:
    bundle = CredentialBundle.from_bytes(device.bundle("correct horse").to_bytes())
    assert bundle.open_keys("correct horse").matches(device.credential)
    with pytest.raises(BundleError, match="wrong passphrase"):
        bundle.open_keys("battery staple")
    with pytest.raises(BundleError, match="protected by a passphrase"):
        bundle.open_keys(None)


def test_keys_of_another_device_are_refused(device: Device) -> None:
    other = DeviceKeys.generate()
    bundle = device.bundle(device_keys=other.export(None))
    with pytest.raises(BundleError, match="not the ones its credential certifies"):
        bundle.open_keys(None)


def test_damaged_keys_are_refused(device: Device) -> None:
    with pytest.raises(BundleError, match="cannot open the device keys"):
        device.bundle(device_keys=b"\x01garbage").open_keys(None)


def test_credential_of_another_org_is_refused(device: Device) -> None:
    stranger = Device(Org(), "mallory")
    with pytest.raises(BundleError, match="another organisation's root"):
        device.bundle(credential=stranger.credential.to_bytes())
    with pytest.raises(BundleError, match="another organisation's root"):
        CredentialBundle.from_bytes(
            _raw(device.bundle(), credential=stranger.credential.to_bytes())
        )


def test_verify_reports_an_expired_credential() -> None:
    org = Org()
    old = org.enroll("old", not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    bundle = bundle_for(org.root, old, server_url=URL, tls_fingerprint=FINGERPRINT)
    with pytest.raises(CredentialError, match="expired"):
        bundle.verify(NOW)


@pytest.mark.parametrize(
    "url",
    [
        "ws://relay:7300",
        "https://relay:7300",
        "wss://relay",
        "wss://relay:0",
        "wss://relay:65536",
        "wss://relay:port",
        "wss://user@relay:7300",
        "wss://relay:7300/path",
        "wss://relay:7300/?q=1",
        "wss://relay:7300#frag",
        "wss://:7300",
        "wss://re lay:7300",
        "",
        "wss://" + "a" * 300 + ":7300",
    ],
)
def test_bad_server_urls_are_refused(device: Device, url: str) -> None:
    with pytest.raises(BundleError):
        check_server_url(url)
    with pytest.raises(BundleError):
        device.bundle(server_url=url)
    if url:
        with pytest.raises(BundleError):
            CredentialBundle.from_bytes(_raw(device.bundle(), server_url=url))


@pytest.mark.parametrize(
    "url", ["wss://relay.example.org:7300", "wss://127.0.0.1:1", "wss://[::1]:7300", "wss://h:1/"]
)
def test_good_server_urls_are_accepted(device: Device, url: str) -> None:
    check_server_url(url)
    assert CredentialBundle.from_bytes(device.bundle(server_url=url).to_bytes()).server_url == url


@pytest.mark.parametrize(
    "fingerprint", ["", "ab" * 31, "ab" * 33, "AB" * 32, "g" * 64, " " + "a" * 63]
)
def test_bad_fingerprints_are_refused(device: Device, fingerprint: str) -> None:
    with pytest.raises(BundleError, match="fingerprint"):
        device.bundle(tls_fingerprint=fingerprint)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("root_public_key", b"\x00" * 31),
        ("root_public_key", b"\x00" * 33),
        ("device_keys", b""),
        ("device_keys", b"\x00" * 4097),
        ("credential", b""),
        ("credential", b"\x01not a credential"),
    ],
)
def test_bad_fields_are_refused(device: Device, field: str, value: bytes) -> None:
    with pytest.raises(BundleError):
        device.bundle(None, **{field: value})
    with pytest.raises(BundleError):
        CredentialBundle.from_bytes(_raw(device.bundle(), **{field: value}))


def test_framing_is_refused(device: Device) -> None:
    data = device.bundle().to_bytes()
    with pytest.raises(BundleError, match="version 2"):
        CredentialBundle.from_bytes(b"\x02" + data[1:])
    with pytest.raises(BundleError, match="more than"):
        CredentialBundle.from_bytes(b"\x01" + b"\x00" * MAX_BUNDLE_BYTES)


def test_a_newer_format_version_says_the_version_is_not_supported(device: Device) -> None:
    """A future bundle (a small version byte, then a msgpack array of any shape) is a
    bundle this program cannot read, not some other file."""
    future = b"\x03" + msgspec.msgpack.encode(["new", "fields", 7, b"\x00" * 32])
    assert describe_non_bundle(future) is None
    with pytest.raises(BundleError, match="format version 3 is not supported") as refused:
        CredentialBundle.from_bytes(future)
    assert not isinstance(refused.value, NotABundleError)


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(b"\x00\x00" * 1600)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "the file is empty"),
        (b"server = wss://relay:7300\npassword = x\n", "a text file: 'server = wss://relay:7300'"),
        (b"\n\n  \n", "a text file of blank lines"),
        (_wav(), "a WAV audio file"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "a PEM file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data of an unknown kind (starts with 89504e47)"),
        # Below 0x20 like a version byte, but no msgpack array follows: not a newer bundle.
        (b"\x07" + b"x" * 100, "binary data of an unknown kind (starts with 07787878)"),
        (b"\x01garbage", "truncated or damaged"),
        (b"\x01" + msgspec.msgpack.encode([1, 2, 3]), "another kind of Fieldradio file"),
    ],
    ids=["empty", "text", "blank", "wav", "pem", "png", "small-byte", "damaged", "wrong-shape"],
)
def test_what_is_not_a_bundle_says_what_it_looks_like(data: bytes, what: str) -> None:
    with pytest.raises(NotABundleError, match="not a Fieldradio device bundle") as refused:
        CredentialBundle.from_bytes(data)
    assert refused.value.what.startswith(what), refused.value.what


def test_other_fieldradio_files_are_named(device: Device) -> None:
    with pytest.raises(NotABundleError) as refused:
        CredentialBundle.from_bytes(device.credential.to_bytes())
    assert refused.value.what == "the credential of 'alice' alone, without its device keys"
    with pytest.raises(NotABundleError) as refused:
        CredentialBundle.from_bytes(device.keys.export(None))
    assert refused.value.what == "a device's private key file, not a bundle"


def test_a_truncated_bundle_is_no_bundle(device: Device) -> None:
    data = device.bundle().to_bytes()
    for length in (1, 2, len(data) // 2, len(data) - 1):
        with pytest.raises(NotABundleError) as refused:
            CredentialBundle.from_bytes(data[:length])
        assert refused.value.what.startswith("truncated or damaged"), refused.value.what
    with pytest.raises(NotABundleError, match="truncated or damaged"):
        CredentialBundle.from_bytes(data + b"\x00")


def test_the_start_of_a_large_file_is_told_apart_only_by_its_kind() -> None:
    assert describe_non_bundle(_wav()[:64], complete=False) == "a WAV audio file"
    assert describe_non_bundle(b"\x01\x95\xc5", complete=False) is None  # may be huge junk
    # A text cut in the middle of a character is still text.
    assert describe_non_bundle("caf\u00e9".encode()[:4], complete=False) == "a text file: 'caf'"


def test_non_canonical_encoding_is_refused(device: Device) -> None:
    bundle = device.bundle()
    parts = [
        msgspec.msgpack.encode(value)
        for value in (bundle.device_keys, bundle.credential, bundle.root_public_key)
    ]
    url = bundle.server_url.encode()
    long_form = b"\xda" + len(url).to_bytes(2, "big") + url  # str16 where fixstr suffices
    data = (
        bytes((BUNDLE_VERSION, 0x95))
        + b"".join(parts)
        + long_form
        + msgspec.msgpack.encode(bundle.tls_fingerprint)
    )
    with pytest.raises(BundleError, match="canonically"):
        CredentialBundle.from_bytes(data)


def test_every_truncation_is_refused(device: Device) -> None:
    data = device.bundle().to_bytes()
    for length in range(len(data)):
        with pytest.raises(BundleError):
            CredentialBundle.from_bytes(data[:length])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        CredentialBundle.from_bytes(data)
    except BundleError:
        pass


_MUTATION_DEVICE = Device()
_MUTATION_DATA = _MUTATION_DEVICE.bundle().to_bytes()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(_MUTATION_DATA) - 1), st.integers(1, 255))
def test_flipped_bytes_are_refused_or_change_the_bundle(position: int, mask: int) -> None:
    data = bytearray(_MUTATION_DATA)
    data[position] ^= mask
    try:
        bundle = CredentialBundle.from_bytes(bytes(data))
    except BundleError:
        return
    # A flip inside an opaque field can still decode: then it is a different, canonical
    # bundle, and it never yields the original credential with other keys.
    assert bundle.to_bytes() == bytes(data)
    assert bundle != CredentialBundle.from_bytes(_MUTATION_DATA)
    try:
        keys = bundle.open_keys(None)
    except BundleError:
        return
    assert keys.matches(Credential.from_bytes(bundle.credential))


# --- several servers: the nodes of a cluster (issue 12) --------------------------------------

NODES = ("wss://node2.example.org:7300", "wss://10.0.0.3:7300", "wss://[fd00::4]:7300")


def test_alternate_urls_round_trip_in_order(device: Device) -> None:
    bundle = device.bundle(alternate_urls=NODES)
    data = bundle.to_bytes()
    decoded = CredentialBundle.from_bytes(data)
    assert decoded == bundle and decoded.to_bytes() == data
    assert decoded.server_urls == (URL, *NODES)
    assert describe_non_bundle(data) is None  # six fields: a bundle, not "another file"


def test_a_bundle_of_one_server_is_the_file_earlier_programs_wrote(device: Device) -> None:
    """Old bundles (five fields) still open, and a one-server bundle is written as they
    were, byte for byte, so radios not yet updated read it too."""
    old = _raw(device.bundle())  # the five-field array, as before the field existed
    decoded = CredentialBundle.from_bytes(old)
    assert decoded.alternate_urls == () and decoded.server_urls == (URL,)
    assert decoded.to_bytes() == old == device.bundle().to_bytes()


def test_an_empty_alternates_field_is_not_canonical(device: Device) -> None:
    """One encoding per bundle: no servers besides the first is written by leaving the
    field out, so a sixth element that is empty is another encoding of the same bundle."""
    six = bytes((BUNDLE_VERSION,)) + msgspec.msgpack.encode(
        [*msgspec.msgpack.decode(_raw(device.bundle())[1:]), []]
    )
    with pytest.raises(BundleError, match="canonically"):
        CredentialBundle.from_bytes(six)


def _raw_with(device: Device, alternates: object) -> bytes:
    fields = msgspec.msgpack.decode(_raw(device.bundle())[1:])
    return bytes((BUNDLE_VERSION,)) + msgspec.msgpack.encode([*fields, alternates])


@pytest.mark.parametrize(
    ("alternates", "message"),
    [
        (("https://node2:7300",), "'https://node2:7300' is not a wss:// URL"),
        (("wss://node2:7300/path",), "is not of the form wss://HOST:PORT"),
        (("wss://node2",), "is not of the form wss://HOST:PORT"),
        ((NODES[0], NODES[0]), f"{NODES[0]!r} is given twice"),
        ((URL,), f"{URL!r} is given twice"),  # the preferred server again
        ((URL.upper().replace("WSS", "wss") + "/",), "is given twice"),  # same host and port
        (tuple(f"wss://node{i}:7300" for i in range(16)), "at most 16 of the cluster's nodes"),
    ],
    ids=["not-wss", "path", "no-port", "twice", "preferred-again", "same-server", "too-many"],
)
def test_bad_alternate_urls_are_refused_saying_which(
    device: Device, alternates: tuple[str, ...], message: str
) -> None:
    with pytest.raises(BundleError, match=re.escape(message)):
        device.bundle(alternate_urls=alternates)
    with pytest.raises(BundleError, match=re.escape(message)):
        CredentialBundle.from_bytes(_raw_with(device, list(alternates)))


def test_sixteen_servers_is_the_most(device: Device) -> None:
    alternates = tuple(f"wss://node{i}:7300" for i in range(MAX_SERVER_URLS - 1))
    data = device.bundle(alternate_urls=alternates).to_bytes()
    assert len(CredentialBundle.from_bytes(data).server_urls) == MAX_SERVER_URLS == 16
    assert len(data) < MAX_BUNDLE_BYTES


@pytest.mark.parametrize("alternates", [["wss://node2:7300"], "wss://node2:7300", (7300,)])
def test_alternates_of_the_wrong_type_are_refused(device: Device, alternates: object) -> None:
    with pytest.raises(BundleError):
        device.bundle(alternate_urls=alternates)


def test_check_server_urls_takes_the_whole_list() -> None:
    check_server_urls([URL, *NODES])
    with pytest.raises(BundleError, match="1 to 16 servers, not 0"):
        check_server_urls([])
