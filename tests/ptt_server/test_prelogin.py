"""The pre-login admission rule (pure) and how sources are counted."""

from __future__ import annotations

import pytest

from ptt_server.prelogin import PendingLogins, source_of


def test_admits_up_to_the_limit_then_refuses_the_same_source() -> None:
    pending: PendingLogins[int] = PendingLogins(3)
    assert [pending.admit(n, "a") for n in range(3)] == [(True, None)] * 3
    assert pending.admit(3, "a") == (False, None)
    assert len(pending) == 3 and 3 not in pending


def test_newcomer_displaces_the_oldest_of_the_heaviest_source() -> None:
    pending: PendingLogins[str] = PendingLogins(4)
    for key in ("a1", "a2", "a3", "b1"):
        pending.admit(key, key[0])
    assert pending.admit("c1", "c") == (True, "a1")  # a held 3, c none: fairer with c in
    assert "a1" not in pending and "c1" in pending
    assert pending.held_by("a") == 2
    # Now a: 2, b: 1, c: 1. Swapping one of a's for another c would leave a 1 and c 2:
    # no fairer, so c is refused; d, with none, still displaces a's oldest.
    assert pending.admit("c2", "c") == (False, None)
    assert pending.admit("d1", "d") == (True, "a2")
    assert len(pending) == 4
    # Everyone holds one: a source holding none takes the oldest place (as many sources as
    # the cap, one place each, must not lock radios out); one already holding a place does not.
    assert pending.admit("e1", "e") == (True, "a3")
    assert pending.admit("e2", "e") == (False, None)
    assert pending.admit("b2", "b") == (False, None)
    assert pending.admit("f1", "f") == (True, "b1")
    assert pending.keys() == ["c1", "d1", "e1", "f1"]


def test_remove_frees_a_place() -> None:
    pending: PendingLogins[int] = PendingLogins(1)
    pending.admit(1, "a")
    assert pending.remove(1)
    assert not pending.remove(1)
    assert pending.admit(2, "a") == (True, None)
    assert pending.held_by("a") == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PendingLogins(0)
    pending: PendingLogins[int] = PendingLogins(2)
    pending.admit(1, "a")
    with pytest.raises(ValueError, match="already pending"):
        pending.admit(1, "a")


@pytest.mark.parametrize(
    ("peername", "source"),
    [
        (("203.0.113.5", 4000), "203.0.113.5"),
        (("2001:db8:1:2:aaaa::1", 4000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::9", 1, 0, 0), "2001:db8:1:2::/64"),  # same /64: same source
        (("::ffff:198.51.100.7", 4000, 0, 0), "198.51.100.7"),  # IPv4 on a dual-stack socket
        (None, "?"),
        (("not an address", 1), "?"),
    ],
)
def test_source_of(peername: object, source: str) -> None:
    assert source_of(peername) == source
