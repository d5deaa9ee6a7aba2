"""Adversarial tests for crypto.identity: every promise of credentials, revocations, key files.

``Org`` (a root plus an enrolment helper) is reused by the roster, epoch and text tests.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import CredentialError, CryptoError, KeyStoreError, SignatureError
from crypto.identity import (
    DEFAULT_SCRYPT_N,
    HPKE_PUBLIC_KEY_SIZE,
    Credential,
    DeviceKeys,
    OrgRoot,
    RevocationList,
    Role,
    TrustAnchor,
    hpke_seal,
)
from tests.credentials import CHEAP_SCRYPT, DAY, issue

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class Org:
    """An organisation for tests: a root, its trust anchor, and an enrolment helper."""

    def __init__(self) -> None:
        self.root = OrgRoot.generate()
        self.trust = TrustAnchor(self.root.public_key_bytes())
        self._serial = 100

    def enroll(
        self,
        user_id: str,
        role: Role = Role.OFFICER,
        *,
        keys: DeviceKeys | None = None,
        not_before: float = NOW - DAY,
        not_after: float = NOW + 365 * DAY,
        device_id: str | None = None,
    ) -> tuple[DeviceKeys, Credential]:
        self._serial += 1
        return issue(
            self.root,
            user_id,
            role,
            serial=self._serial,
            not_before=not_before,
            not_after=not_after,
            device_id=device_id,
            keys=keys,
        )


@pytest.fixture(scope="module")
def org() -> Org:
    return Org()


@pytest.fixture(scope="module")
def alice(org: Org) -> tuple[DeviceKeys, Credential]:
    return org.enroll("alice")


# --- credentials -----------------------------------------------------------------------------


def test_valid_credential_round_trips_and_verifies(
    org: Org, alice: tuple[DeviceKeys, Credential]
) -> None:
    keys, credential = alice
    data = credential.to_bytes()
    decoded = Credential.from_bytes(data)
    assert decoded == credential
    assert org.trust.verify_credential(data, NOW) == credential
    assert credential.signing_key == keys.signing_public_key
    assert len(credential.hpke_key) == 1184 + 32
    assert len(credential.fingerprint()) == 32
    assert keys.matches(credential)


def test_expired_credential_is_refused_with_user_reason_and_fix(org: Org) -> None:
    _, credential = org.enroll("alice", not_before=NOW - 10 * DAY, not_after=NOW)
    with pytest.raises(CredentialError) as error:
        org.trust.verify_credential(credential, NOW)
    message = str(error.value)
    assert "'alice'" in message
    assert "expired on 2027-01-15" in message
    assert "ptt-admin enroll alice" in message
    # One second earlier it was still valid: the boundary is not_after itself.
    assert org.trust.verify_credential(credential, NOW - 1) == credential


def test_not_yet_valid_credential_is_refused(org: Org) -> None:
    _, credential = org.enroll("bob", not_before=NOW + 60, not_after=NOW + DAY)
    with pytest.raises(CredentialError, match="'bob' is not valid before"):
        org.trust.verify_credential(credential, NOW)
    assert org.trust.verify_credential(credential, NOW + 60) == credential


def test_credential_from_a_foreign_root_is_refused(org: Org) -> None:
    other = Org()
    _, foreign = other.enroll("mallory", Role.ADMIN)
    with pytest.raises(CredentialError, match="another organisation's root"):
        org.trust.verify_credential(foreign, NOW)


def test_foreign_root_cannot_pass_by_copying_our_issuer_id(org: Org) -> None:
    # A foreign root that writes our key id into the credential still fails the signature.
    other = Org()
    _, foreign = other.enroll("mallory", Role.ADMIN)
    unsigned = msgspec.structs.replace(foreign, issuer=org.trust.key_id)
    forged = msgspec.structs.replace(
        unsigned, root_signature=other.root._key.sign(unsigned.signed_part())
    )
    with pytest.raises(CredentialError, match="not signed by the organisation root"):
        org.trust.verify_credential(forged, NOW)


TAMPERS = {
    "role": Role.ADMIN,
    "user_id": "dispatch-chief",
    "display_name": "Chief",
    "device_id": "other-device",
    "signing_key": bytes(32),
    "hpke_key": bytes(HPKE_PUBLIC_KEY_SIZE),
    "not_after": int(NOW + 100 * 365 * DAY),
    "not_before": 0,
    "serial": 1,
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_tampered_credential_field_is_refused(
    org: Org, alice: tuple[DeviceKeys, Credential], field: str
) -> None:
    _, credential = alice
    tampered = msgspec.structs.replace(credential, **{field: TAMPERS[field]})
    assert tampered != credential
    with pytest.raises(CredentialError, match="altered or forged"):
        org.trust.verify_credential(tampered.to_bytes(), NOW)


_SHARED_ORG = Org()
_SHARED_CREDENTIAL = _SHARED_ORG.enroll("carol")[1]


@settings(max_examples=200, deadline=None)
@given(bit=st.integers(min_value=0))
def test_any_bit_flip_in_a_credential_is_refused(bit: int) -> None:
    org, credential = _SHARED_ORG, _SHARED_CREDENTIAL
    data = bytearray(credential.to_bytes())
    bit %= len(data) * 8
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CredentialError):
        org.trust.verify_credential(bytes(data), NOW)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_escape_the_error_tree(data: bytes) -> None:
    for decode in (Credential.from_bytes, RevocationList.from_bytes):
        try:
            decode(data)
        except CredentialError:
            pass
    try:
        _SHARED_ORG.trust.verify_revocations(data)
    except CredentialError:
        pass


def test_non_canonical_encoding_is_refused(alice: tuple[DeviceKeys, Credential]) -> None:
    _, credential = alice
    data = credential.to_bytes()
    # version byte, fixarray header, issuer as bin8 (2 + 8 bytes), then the serial, which
    # msgpack encodes in its shortest form; re-encode the same value as a uint64 (0xcf).
    serial_at = 1 + 1 + 2 + 8
    assert credential.serial < 128 and data[serial_at] == credential.serial
    wider = data[:serial_at] + b"\xcf" + credential.serial.to_bytes(8, "big")
    wider += data[serial_at + 1 :]
    assert msgspec.msgpack.decode(wider[1:])[1] == credential.serial  # same value
    with pytest.raises(CredentialError, match="not canonically encoded"):
        Credential.from_bytes(wider)


def test_malformed_credentials_get_typed_errors(alice: tuple[DeviceKeys, Credential]) -> None:
    _, credential = alice
    data = credential.to_bytes()
    with pytest.raises(CredentialError, match="format version"):
        Credential.from_bytes(b"")
    with pytest.raises(CredentialError, match="format version 9"):
        Credential.from_bytes(b"\x09" + data[1:])
    with pytest.raises(CredentialError, match="more than the 4096 allowed"):
        Credential.from_bytes(data + bytes(4096))
    with pytest.raises(CredentialError, match="malformed"):
        Credential.from_bytes(data[:-5])
    short_key = msgspec.structs.replace(credential, signing_key=b"short")
    with pytest.raises(CredentialError, match="malformed"):
        Credential.from_bytes(short_key.to_bytes())


def test_issue_refuses_bad_validity_and_bad_keys(org: Org) -> None:
    keys = DeviceKeys.generate()
    base = {
        "user_id": "dave",
        "display_name": "Dave",
        "role": Role.OFFICER,
        "device_id": "dave-1",
        "signing_key": keys.signing_public_key,
        "hpke_key": keys.hpke_public_key,
        "serial": 7,
    }
    with pytest.raises(CredentialError, match="valid for no time"):
        org.root.issue_credential(**base, not_before=10, not_after=10)  # type: ignore[arg-type]
    bad_hpke = {**base, "hpke_key": keys.hpke_public_key[:100]}
    with pytest.raises(CredentialError):
        org.root.issue_credential(**bad_hpke, not_before=0, not_after=10)  # type: ignore[arg-type]
    long_user = {**base, "user_id": "x" * 65}
    with pytest.raises(CredentialError, match="malformed"):
        org.root.issue_credential(**long_user, not_before=0, not_after=10)  # type: ignore[arg-type]


def test_verify_signature_is_bound_to_the_device_and_the_data(org: Org) -> None:
    keys, credential = org.enroll("erin")
    other_keys, _ = org.enroll("frank")
    signature = keys.sign(b"statement")
    credential.verify_signature(b"statement", signature)
    with pytest.raises(SignatureError, match="'erin'"):
        credential.verify_signature(b"statement!", signature)
    with pytest.raises(SignatureError):
        credential.verify_signature(b"statement", other_keys.sign(b"statement"))
    with pytest.raises(SignatureError):
        credential.verify_signature(b"statement", b"short")


def test_hpke_seal_refuses_an_invalid_key() -> None:
    with pytest.raises(CredentialError):
        hpke_seal(b"\x00" * 10, b"x", b"info")
    with pytest.raises(CredentialError, match="invalid"):
        hpke_seal(b"\xff" * HPKE_PUBLIC_KEY_SIZE, b"x", b"info")


def test_hpke_open_fails_for_other_keys_and_other_info() -> None:
    keys, other = DeviceKeys.generate(), DeviceKeys.generate()
    sealed = hpke_seal(keys.hpke_public_key, b"secret", b"info")
    assert keys.hpke_open(sealed, b"info") == b"secret"
    with pytest.raises(CryptoError):
        other.hpke_open(sealed, b"info")
    with pytest.raises(CryptoError):
        keys.hpke_open(sealed, b"info2")


# --- revocation lists ------------------------------------------------------------------------


def test_revoked_by_serial_and_by_device_are_refused() -> None:
    org = Org()
    _, alice = org.enroll("alice")
    _, bob = org.enroll("bob", device_id="bob-radio")
    _, carol = org.enroll("carol")
    revocations = org.root.sign_revocations(
        version=1, issued_at=int(NOW), serials=[alice.serial], device_ids=["bob-radio"]
    )
    assert org.trust.verify_revocations(revocations.to_bytes()) == revocations
    with pytest.raises(CredentialError) as error:
        org.trust.verify_credential(alice, NOW)
    assert "'alice'" in str(error.value) and "revoked" in str(error.value)
    assert "ptt-admin enroll alice" in str(error.value)
    with pytest.raises(CredentialError, match=r"'bob-radio'.*revoked"):
        org.trust.verify_credential(bob, NOW)
    assert org.trust.verify_credential(carol, NOW) == carol


def test_explicit_revocation_list_overrides_the_installed_one() -> None:
    org = Org()
    _, alice = org.enroll("alice")
    revocations = org.root.sign_revocations(version=1, issued_at=0, serials=[alice.serial])
    assert org.trust.revocations is None
    with pytest.raises(CredentialError, match="revoked"):
        org.trust.verify_credential(alice, NOW, revocations)
    assert org.trust.verify_credential(alice, NOW) == alice


def test_revocation_list_from_a_non_root_is_refused() -> None:
    org, other = Org(), Org()
    foreign = other.root.sign_revocations(version=5, issued_at=0, serials=[1])
    with pytest.raises(CredentialError, match="another organisation's root"):
        org.trust.verify_revocations(foreign.to_bytes())
    # Same, but pretending to be ours: a dispatcher key (or any key) is not the root.
    dispatcher_keys, _ = org.enroll("dispatch", Role.DISPATCHER)
    unsigned = msgspec.structs.replace(foreign, issuer=org.trust.key_id)
    forged = msgspec.structs.replace(
        unsigned, root_signature=dispatcher_keys.sign(unsigned.signed_part())
    )
    with pytest.raises(CredentialError, match="not signed by the organisation root"):
        org.trust.verify_revocations(forged.to_bytes())
    assert org.trust.revocations is None


def test_rolled_back_revocation_list_is_refused_and_changes_nothing() -> None:
    org = Org()
    _, alice = org.enroll("alice")
    old = org.root.sign_revocations(version=1, issued_at=0, serials=[alice.serial])
    new = org.root.sign_revocations(version=2, issued_at=10, serials=[alice.serial, 999])
    org.trust.verify_revocations(new.to_bytes())
    with pytest.raises(CredentialError, match="rollback"):
        org.trust.verify_revocations(old.to_bytes())
    # Un-revoking by a list with the same version but fewer entries is a rollback too.
    same_version = org.root.sign_revocations(version=2, issued_at=11, serials=[])
    with pytest.raises(CredentialError, match="not newer"):
        org.trust.verify_revocations(same_version)
    assert org.trust.revocations == new
    # The exact same list again (resent on every login) is accepted as a no-op.
    assert org.trust.verify_revocations(new.to_bytes()) == new
    with pytest.raises(CredentialError, match="revoked"):
        org.trust.verify_credential(alice, NOW)


def test_tampered_revocation_list_is_refused() -> None:
    org = Org()
    revocations = org.root.sign_revocations(version=3, issued_at=0, serials=[5, 6])
    fewer = msgspec.structs.replace(revocations, serials=(5,))
    with pytest.raises(CredentialError, match="not signed by the organisation root"):
        org.trust.verify_revocations(fewer.to_bytes())
    unsorted = msgspec.structs.replace(revocations, serials=(6, 5))
    with pytest.raises(CredentialError, match="sorted"):
        org.trust.verify_revocations(unsorted.to_bytes())


def test_trust_anchor_refuses_a_wrong_size_root_key() -> None:
    with pytest.raises(CredentialError, match="32 bytes"):
        TrustAnchor(b"\x01" * 31)


# --- key files -------------------------------------------------------------------------------


def _secrets_in_plain_export(keys: DeviceKeys) -> list[bytes]:
    key_file = msgspec.msgpack.decode(keys.export(None)[1:])
    secrets: list[bytes] = msgspec.msgpack.decode(key_file[-1])
    return secrets


def test_device_keys_export_import_with_passphrase() -> None:
    keys = DeviceKeys.generate()
    exported = keys.export("correct horse battery staple", scrypt_n=CHEAP_SCRYPT)
    for secret in _secrets_in_plain_export(keys):
        assert secret not in exported
    restored = DeviceKeys.import_(exported, "correct horse battery staple")
    assert restored.signing_public_key == keys.signing_public_key
    assert restored.hpke_public_key == keys.hpke_public_key
    sealed = hpke_seal(keys.hpke_public_key, b"hello", b"ctx")
    assert restored.hpke_open(sealed, b"ctx") == b"hello"
    org = Org()
    _, credential = org.enroll("gina", keys=keys)
    credential.verify_signature(b"m", restored.sign(b"m"))


def test_device_keys_wrong_passphrase_gives_a_clear_error() -> None:
    keys = DeviceKeys.generate()
    exported = keys.export("right", scrypt_n=CHEAP_SCRYPT)
    with pytest.raises(KeyStoreError, match="wrong passphrase for the device key file"):
        DeviceKeys.import_(exported, "wrong")
    with pytest.raises(KeyStoreError, match="give the passphrase"):
        DeviceKeys.import_(exported, None)


def test_device_keys_export_import_without_passphrase() -> None:
    keys = DeviceKeys.generate()
    restored = DeviceKeys.import_(keys.export(None))
    assert restored.signing_public_key == keys.signing_public_key
    assert restored.hpke_public_key == keys.hpke_public_key


def test_key_file_header_tampering_is_detected() -> None:
    keys = DeviceKeys.generate()
    exported = keys.export("pw", scrypt_n=CHEAP_SCRYPT)
    fields = msgspec.msgpack.decode(exported[1:])
    fields[5] = bytes(16)  # another salt: the derived key and the AAD both change
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        DeviceKeys.import_(exported[:1] + msgspec.msgpack.encode(fields), "pw")
    fields = msgspec.msgpack.decode(exported[1:])
    fields[2] = 2**30  # a crafted cost must not make us allocate gigabytes
    with pytest.raises(KeyStoreError, match="unsupported scrypt parameters"):
        DeviceKeys.import_(exported[:1] + msgspec.msgpack.encode(fields), "pw")
    with pytest.raises(KeyStoreError, match="not a Fieldradio device key file"):
        DeviceKeys.import_(b"\x07junk", "pw")
    with pytest.raises(KeyStoreError, match="damaged"):
        DeviceKeys.import_(exported[:-3], "pw")


def test_export_refuses_weak_or_absurd_scrypt_costs() -> None:
    keys = DeviceKeys.generate()
    for n in (2**4, 3000, 2**21):
        with pytest.raises(KeyStoreError, match="power of two"):
            keys.export("pw", scrypt_n=n)
    with pytest.raises(KeyStoreError, match="empty passphrase"):
        keys.export("", scrypt_n=CHEAP_SCRYPT)


def test_default_scrypt_cost_is_strong() -> None:
    assert DEFAULT_SCRYPT_N >= 2**17
    root = OrgRoot.generate()
    exported = root.to_bytes("pw")  # default cost: one real run (~0.3 s)
    assert msgspec.msgpack.decode(exported[1:])[2] == DEFAULT_SCRYPT_N


def test_org_root_export_import_and_kind_check() -> None:
    root = OrgRoot.generate()
    exported = root.to_bytes("root pass", scrypt_n=CHEAP_SCRYPT)
    restored = OrgRoot.from_bytes(exported, "root pass")
    assert restored.public_key_bytes() == root.public_key_bytes()
    with pytest.raises(KeyStoreError, match="wrong passphrase for the org-root key file"):
        OrgRoot.from_bytes(exported, "nope")
    with pytest.raises(KeyStoreError, match="not a 'device' key file"):
        DeviceKeys.import_(exported, "root pass")
    assert OrgRoot.from_bytes(root.to_bytes(None)).key_id == root.key_id


def test_passphrase_is_unicode_normalised() -> None:
    keys = DeviceKeys.generate()
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    exported = keys.export(composed, scrypt_n=CHEAP_SCRYPT)
    assert DeviceKeys.import_(exported, decomposed).signing_public_key == keys.signing_public_key


def test_reprs_do_not_leak_secrets() -> None:
    keys = DeviceKeys.generate()
    text = repr(keys) + repr(OrgRoot.generate())
    for secret in _secrets_in_plain_export(keys):
        assert secret.hex() not in text
