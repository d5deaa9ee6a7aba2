"""Tests for ptt_client.server_list: which server a radio tries next, and when it waits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptt_client.server_list import BACKOFF_INITIAL, BACKOFF_MAX, STABLE_SESSION, ServerList

A, B, C = "wss://a:1", "wss://b:1", "wss://c:1"
T0 = 1_000.0


def test_it_starts_on_the_preferred_server() -> None:
    assert ServerList([A, B, C]).current == A


def test_a_failure_moves_on_at_once_and_a_failed_round_waits() -> None:
    servers = ServerList([A, B, C])
    assert servers.failed(T0, 0.5) == 0.0 and servers.current == B
    assert servers.failed(T0, 0.5) == 0.0 and servers.current == C
    # Every server failed once: wait (jitter 0.5 is the delay itself), then A again.
    assert servers.failed(T0, 0.5) == BACKOFF_INITIAL and servers.current == A
    assert servers.backoffs == 1
    assert servers.failed(T0, 0.5) == 0.0 and servers.current == B


def test_the_wait_doubles_per_failed_round_up_to_the_cap_and_jitter_spreads_it() -> None:
    servers = ServerList([A])  # one server: every failure is a round, as before issue 12
    waits = [servers.failed(T0, 0.5) for _ in range(8)]
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    assert waits[-1] == BACKOFF_MAX
    assert ServerList([A]).failed(T0, 0.0) == BACKOFF_INITIAL * 0.5
    assert ServerList([A]).failed(T0, 0.999) == pytest.approx(BACKOFF_INITIAL * 1.499)


def test_after_a_working_session_the_next_server_is_the_one_after_where_it_failed() -> None:
    """Round robin from where it failed: radios that were on B go on to C, not back to A
    with everybody else."""
    servers = ServerList([A, B, C])
    servers.failed(T0, 0.5)
    servers.logged_in(T0)
    assert servers.current == B
    assert servers.failed(T0 + STABLE_SESSION, 0.5) == 0.0 and servers.current == C
    assert servers.failed(T0 + STABLE_SESSION, 0.5) == 0.0 and servers.current == A
    assert servers.failed(T0 + STABLE_SESSION, 0.5) == BACKOFF_INITIAL and servers.current == B


def test_a_session_that_lasted_starts_a_new_round_with_the_first_delay() -> None:
    servers = ServerList([A, B])
    for _ in range(6):
        servers.failed(T0, 0.5)  # three failed rounds: the delay grew to 0.8 s
    servers.logged_in(T0)
    assert servers.failed(T0 + STABLE_SESSION, 0.5) == 0.0
    assert servers.failed(T0 + STABLE_SESSION, 0.5) == BACKOFF_INITIAL


def test_nodes_that_drop_the_radio_after_each_login_still_get_the_backoff() -> None:
    """A login, then the link dropped within a second, on every node: a flapping cluster,
    not a tight loop of logins."""
    servers = ServerList([A, B])
    waits = []
    now = T0
    for _ in range(6):
        servers.logged_in(now)
        now += 1.0
        waits.append(servers.failed(now, 0.5))
    assert waits == [0.0, 0.1, 0.0, 0.2, 0.0, 0.4]


@given(
    st.integers(min_value=1, max_value=16),
    st.lists(st.floats(min_value=0, max_value=0.999), min_size=1, max_size=60),
)
def test_waits_only_after_every_server_failed_and_never_longer_than_the_cap(
    count: int, jitters: list[float]
) -> None:
    servers = ServerList([f"wss://node{i}:7300" for i in range(count)])
    since_wait: set[str] = set()
    for jitter in jitters:
        since_wait.add(servers.current)
        wait = servers.failed(T0, jitter)
        if wait:
            assert since_wait == set(servers.urls)  # a whole round failed
            since_wait = set()
        assert 0.0 <= wait < BACKOFF_MAX * 1.5


@pytest.mark.parametrize(
    ("urls", "message"),
    [([], "at least one"), (A, "a sequence"), ([A, B, A], "twice")],
)
def test_bad_lists_are_refused(urls: list[str] | str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerList(urls)


def test_jitter_outside_its_interval_is_refused() -> None:
    servers = ServerList([A, B])
    with pytest.raises(ValueError, match="jitter"):
        servers.failed(T0, 1.0)
    assert servers.current == A  # nothing changed
