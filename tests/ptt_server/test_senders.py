"""ptt_server.senders: the sender indexes the relay checks KIDs against, per epoch (pure)."""

from __future__ import annotations

import os

from crypto.identity import Role
from crypto.keyring import DEFAULT_GRACE
from crypto.roster import Member, Roster
from ptt_server.senders import SenderIndexes

T0 = 100.0
CHANNEL = 3


def roster(version: int, *names: str) -> Roster:
    return Roster(CHANNEL, version, tuple(Member(n, Role.OFFICER, os.urandom(32)) for n in names))


def test_a_rosters_order_is_its_epochs_sender_indexes() -> None:
    senders = SenderIndexes()
    senders.install(roster(1, "disp", "alice", "bob"))
    assert senders.by_bits == {1: {"disp": 0, "alice": 1, "bob": 2}}


def test_the_previous_epoch_stays_until_the_grace_after_the_new_key_went_out() -> None:
    senders = SenderIndexes()
    senders.install(roster(1, "disp", "alice", "bob"))
    senders.install(roster(2, "alice", "bob"))  # disp removed: indexes shift
    assert senders.by_bits == {1: {"disp": 0, "alice": 1, "bob": 2}, 2: {"alice": 0, "bob": 1}}
    # No key of epoch 2 exists yet: everyone still seals under epoch 1, however long.
    senders.expire(T0 + 3600)
    assert senders.versions == (1, 2) and senders.next_expiry() is None
    senders.key_delivered(2, T0)
    assert senders.next_expiry() == T0 + DEFAULT_GRACE
    senders.key_delivered(2, T0 + 4)  # more envelopes of it: the grace is not extended
    assert senders.next_expiry() == T0 + DEFAULT_GRACE
    senders.expire(T0 + DEFAULT_GRACE - 0.001)
    assert senders.versions == (1, 2)
    senders.expire(T0 + DEFAULT_GRACE)
    assert senders.by_bits == {2: {"alice": 0, "bob": 1}} and senders.next_expiry() is None


def test_an_envelope_of_an_epoch_whose_roster_is_not_held_ends_no_grace() -> None:
    """Epoch number == roster version: an envelope of epoch 9 while roster 2 is in use
    must not start the end of epoch 2's indexes (nothing would be forwarded after it)."""
    senders = SenderIndexes()
    senders.install(roster(1, "alice"))
    senders.install(roster(2, "alice", "bob"))
    senders.key_delivered(9, T0)
    senders.expire(T0 + 3600)
    assert senders.versions == (1, 2)


def test_a_roster_sixteen_versions_later_replaces_the_one_sharing_its_bits() -> None:
    senders = SenderIndexes()
    senders.install(roster(1, "alice", "bob"))
    senders.install(roster(17, "bob", "alice"))
    assert senders.by_bits == {1: {"bob": 0, "alice": 1}} and senders.versions == (17,)
