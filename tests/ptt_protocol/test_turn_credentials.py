"""TURN REST credentials (ptt_protocol.turn_credentials); coturn accepting them is tested
through a real call in tests/ptt_client/calls/test_call_turn.py."""

import base64
import hashlib
import hmac

import pytest

from ptt_protocol.turn_credentials import rest_credentials


def test_username_carries_the_expiry_and_the_user() -> None:
    username, _ = rest_credentials(b"s3cret", "alice", now=1_700_000_000.7, ttl=600)
    assert username == "1700000600:alice"


def test_password_is_base64_hmac_sha1_of_the_username() -> None:
    username, password = rest_credentials(b"s3cret", "bob", now=1_000.0, ttl=60)
    expected = hmac.new(b"s3cret", b"1060:bob", hashlib.sha1).digest()
    assert username == "1060:bob"
    assert base64.b64decode(password) == expected


def test_known_vector() -> None:
    # Computed once with `printf '1060:bob' | openssl dgst -sha1 -hmac s3cret -binary | base64`.
    assert rest_credentials(b"s3cret", "bob", 1_000.0, 60)[1] == "dJGd+BpblJgVL1I888gwEZ6ysHs="


def test_another_secret_gives_another_password() -> None:
    assert (
        rest_credentials(b"one", "carol", 0.0, 10)[1]
        != rest_credentials(b"two", "carol", 0.0, 10)[1]
    )


@pytest.mark.parametrize(
    ("secret", "user", "now", "ttl"),
    [
        (b"", "alice", 0.0, 10.0),
        (b"s", "", 0.0, 10.0),
        (b"s", "a:b", 0.0, 10.0),
        (b"s", "a\nb", 0.0, 10.0),
        (b"s", "alice", float("nan"), 10.0),
        (b"s", "alice", 0.0, 0.0),
        (b"s", "alice", 0.0, float("inf")),
    ],
)
def test_refuses_what_cannot_make_a_valid_username(
    secret: bytes, user: str, now: float, ttl: float
) -> None:
    with pytest.raises(ValueError):
        rest_credentials(secret, user, now, ttl)
