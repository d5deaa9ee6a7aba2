"""The emergency broadcast policy (pure): what goes out at once, what is held, nothing dropped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptt_server.emergencies import ALIASES_PER_USER, EmergencyBroadcasts


def test_presses_within_the_burst_go_out_then_one_held_press_per_token() -> None:
    policy = EmergencyBroadcasts(rate_per_s=1.0, burst=3)
    # 300 presses in 0.27 s (issue 9), all merged into alert A by the store.
    sent = [
        policy.raised("alice", b"A", bytes([i % 256, i // 256]), i * 0.0009, new=i == 0)
        for i in range(300)
    ]
    assert sent[:3] == [True, True, True] and not any(sent[3:])
    assert policy.held_presses == 297
    due = policy.next_due()
    assert due is not None and due == pytest.approx(1.0, abs=0.01)
    assert policy.due(due - 0.01) == []
    # The held press is one alert, released once, with the next token.
    assert policy.due(due) == [("alice", b"A")]
    assert policy.next_due() is None and policy.due(due + 10) == []


def test_a_new_alert_past_the_limit_is_held_not_dropped_and_its_cancel_is_no_news() -> None:
    policy = EmergencyBroadcasts(rate_per_s=1.0, burst=2)
    assert policy.raised("alice", b"A1", b"A1", 0.0, new=True)
    assert policy.cancelled("alice", b"A1")  # A1 went out: its cancel is news
    assert policy.raised("alice", b"A2", b"A2", 0.1, new=True)
    assert policy.cancelled("alice", b"A2")
    assert not policy.raised("alice", b"A3", b"A3", 0.2, new=True)  # held
    assert not policy.cancelled("alice", b"A3")  # never sent out: nobody to tell
    assert policy.next_due() is None
    assert not policy.raised("alice", b"A4", b"A4", 0.3, new=True)
    due = policy.next_due()
    assert due is not None
    assert policy.due(due) == [("alice", b"A4")]  # the genuine alert still goes out
    assert policy.cancelled("alice", b"A4")  # and now its cancel is news


def test_users_have_their_own_limits() -> None:
    policy = EmergencyBroadcasts(rate_per_s=1.0, burst=1)
    assert policy.raised("alice", b"A", b"A", 0.0, new=True)
    assert not policy.raised("alice", b"A", b"x", 0.1, new=False)
    assert policy.raised("bob", b"B", b"B", 0.1, new=True)  # bob's first press is not held


def test_a_cancel_naming_a_merged_press_finds_the_alert() -> None:
    policy = EmergencyBroadcasts(rate_per_s=1.0, burst=3)
    policy.raised("alice", b"A", b"A", 0.0, new=True)
    policy.raised("alice", b"A", b"fresh", 0.1, new=False)
    assert policy.resolve("alice", b"fresh") == b"A"
    assert policy.resolve("bob", b"fresh") == b"fresh"  # only the raiser's own ids
    assert policy.resolve("alice", b"other") == b"other"
    policy.cancelled("alice", b"A")
    assert policy.resolve("alice", b"fresh") == b"fresh"  # over: no alias any more
    for i in range(ALIASES_PER_USER + 5):
        policy.raised("alice", b"B", bytes([i]), 10.0 + i, new=i == 0)
    assert policy.resolve("alice", bytes([ALIASES_PER_USER + 4])) == b"B"
    assert policy.resolve("alice", bytes([1])) == bytes([1])  # bounded: the oldest forgotten


def test_users_with_nothing_left_are_forgotten() -> None:
    policy = EmergencyBroadcasts(rate_per_s=1.0, burst=3)
    for i in range(100):
        user = f"user-{i}"
        policy.raised(user, b"A" + bytes([i]), b"A" + bytes([i]), i * 10.0, new=True)
        policy.cancelled(user, b"A" + bytes([i]))
    assert len(policy) <= 3
    # Someone still in an emergency is kept, however old.
    policy.raised("alice", b"K", b"K", 2000.0, new=True)
    for i in range(50):
        policy.raised(f"late-{i}", b"L" + bytes([i]), b"L" + bytes([i]), 3000.0 + i * 10, new=True)
        policy.cancelled(f"late-{i}", b"L" + bytes([i]))
    assert policy.resolve("alice", b"K") == b"K" and len(policy) <= 4
    policy.raised("alice", b"K", b"k2", 9000.0, new=False)
    assert policy.resolve("alice", b"k2") == b"K"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        EmergencyBroadcasts(rate_per_s=0.0, burst=3)
    with pytest.raises(ValueError, match="burst"):
        EmergencyBroadcasts(rate_per_s=1.0, burst=0)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(["raise", "raise", "raise", "cancel", "tick"]),
            st.floats(min_value=0.0, max_value=2.0),
        ),
        max_size=80,
    )
)
def test_every_press_is_sent_or_released_and_broadcasts_stay_within_the_rate(
    steps: list[tuple[str, str, float]],
) -> None:
    """Whatever the presses: broadcasts per user <= burst + rate * elapsed, and an alert
    still active at the end has had its newest press sent by the time its token is due."""
    rate, burst = 1.0, 3
    policy = EmergencyBroadcasts(rate_per_s=rate, burst=burst)
    now = 0.0
    active: dict[str, bytes] = {}
    counter = 0
    sent: dict[str, int] = {"alice": 0, "bob": 0}
    pending: dict[str, bool] = {"alice": False, "bob": False}
    for user, action, gap in steps:
        now += gap
        for released_user, alert in policy.due(now):
            assert active.get(released_user) == alert
            sent[released_user] += 1
            pending[released_user] = False
        if action == "raise":
            counter += 1
            new = user not in active
            alert = active.setdefault(user, f"{user}-{counter}".encode())
            if policy.raised(user, alert, f"press-{counter}".encode(), now, new=new):
                sent[user] += 1
                pending[user] = False
            else:
                pending[user] = True
        elif action == "cancel" and user in active:
            policy.cancelled(user, active.pop(user))
            pending[user] = False
        assert sent[user] <= burst + rate * now + 1e-9
    due = policy.next_due()
    if due is not None:
        for released_user, _ in policy.due(due):
            pending[released_user] = False
    assert not any(pending.values())
