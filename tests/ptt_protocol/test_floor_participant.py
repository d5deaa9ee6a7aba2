"""TS 24.380 floor participant (ptt_protocol.floor_participant): every transition, and the
stories that went wrong when three hand-written floor views accepted anything."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ptt_protocol.floor_participant import (
    EndBurst,
    FloorParticipant,
    Ignored,
    ParticipantEffect,
    ParticipantState,
    SendFloorRelease,
    SendFloorRequest,
    StartBurst,
)

S = ParticipantState


Arrival = Callable[[FloorParticipant], list[ParticipantEffect]]
"""Something that happens to a participant (a message, a key), and what it does about it."""


def in_state(state: ParticipantState, *, ptt_down: bool) -> FloorParticipant:
    """A participant driven into ``state`` through its own inputs."""
    p = FloorParticipant()
    if state is S.NO_PERMISSION:
        if ptt_down:
            p.ptt_press(1)
            p.denied("Another MCPTT client has permission")
        return p
    p.ptt_press(1)
    if state is S.PENDING_REQUEST:
        pass
    elif state is S.QUEUED:
        p.queued(1)
    elif state is S.HAS_PERMISSION:
        p.granted(7, 30.0)
    elif state is S.PENDING_RELEASE:
        p.granted(7, 30.0)
        p.ptt_release()
    assert (p.state, p.ptt_down) == (state, ptt_down)
    return p


# --- no permission ----------------------------------------------------------------------------


def test_ptt_down_without_permission_requests_the_floor() -> None:
    p = FloorParticipant()
    assert p.ptt_press(2) == [SendFloorRequest(2)]
    assert p.state is S.PENDING_REQUEST and p.ptt_down


def test_a_second_press_while_held_does_nothing() -> None:
    p = FloorParticipant()
    p.ptt_press(1)
    assert p.ptt_press(1) == [Ignored("PTT press while held", S.PENDING_REQUEST)]
    assert p.state is S.PENDING_REQUEST


def test_release_while_up_does_nothing() -> None:
    p = FloorParticipant()
    assert isinstance(p.ptt_release()[0], Ignored)
    assert p.state is S.NO_PERMISSION


def test_unasked_grant_deny_queue_and_revoke_are_ignored() -> None:
    messages: tuple[Arrival, ...] = (
        lambda p: p.granted(3, 0.0),
        lambda p: p.denied("x"),
        lambda p: p.queued(2),
        lambda p: p.revoked("Media Burst pre-empted"),
    )
    for message in messages:
        p = FloorParticipant()
        effects = message(p)
        assert len(effects) == 1 and isinstance(effects[0], Ignored)
        assert p.state is S.NO_PERMISSION and p.burst_id is None


# --- pending request and queued ---------------------------------------------------------------


def test_granted_starts_the_burst() -> None:
    p = in_state(S.PENDING_REQUEST, ptt_down=True)
    assert p.granted(7, 30.0) == [StartBurst(7, 30.0)]
    assert p.state is S.HAS_PERMISSION and p.burst_id == 7 and p.talking


def test_denied_goes_back_without_retry_and_keeps_the_cause() -> None:
    p = in_state(S.PENDING_REQUEST, ptt_down=True)
    assert p.denied("Queue full") == []
    assert p.state is S.NO_PERMISSION and p.cause == "Queue full" and p.ptt_down
    assert p.ptt_release() == []  # nothing to cancel


def test_a_deny_while_queued_forgets_the_queue_position() -> None:
    p = in_state(S.QUEUED, ptt_down=True)
    p.queued(3)
    assert p.denied("Queue full") == []
    assert p.state is S.NO_PERMISSION and p.queue_position == 0


def test_queued_then_granted() -> None:
    p = in_state(S.PENDING_REQUEST, ptt_down=True)
    assert p.queued(2) == []
    assert p.state is S.QUEUED and p.queue_position == 2
    assert p.queued(1) == [] and p.queue_position == 1
    assert p.granted(9, 0.0) == [StartBurst(9, 0.0)]
    assert p.queue_position == 0


def test_ptt_up_while_pending_or_queued_cancels_the_request() -> None:
    for state in (S.PENDING_REQUEST, S.QUEUED):
        p = in_state(state, ptt_down=True)
        assert p.ptt_release() == [SendFloorRelease()]
        assert p.state is S.NO_PERMISSION and not p.ptt_down and p.queue_position == 0


def test_a_grant_that_crossed_the_cancel_is_given_back() -> None:
    p = in_state(S.QUEUED, ptt_down=True)
    p.ptt_release()
    # The server granted before it saw the cancel: the state is no permission again and
    # an unasked grant is ignored (the server already has our release).
    assert isinstance(p.granted(4, 0.0)[0], Ignored)
    assert p.state is S.NO_PERMISSION


def test_floor_taken_by_another_while_waiting_changes_nothing() -> None:
    for state in (S.PENDING_REQUEST, S.QUEUED):
        p = in_state(state, ptt_down=True)
        assert p.floor_taken(talker_is_me=False) == []
        assert p.state is state


# --- has permission ---------------------------------------------------------------------------


def test_ptt_up_while_talking_ends_the_burst_and_releases() -> None:
    p = in_state(S.HAS_PERMISSION, ptt_down=True)
    assert p.ptt_release() == [EndBurst(7, "released"), SendFloorRelease()]
    assert p.state is S.PENDING_RELEASE and p.burst_id is None


def test_the_same_grant_again_keeps_talking() -> None:
    p = in_state(S.HAS_PERMISSION, ptt_down=True)
    assert p.granted(7, 30.0) == []
    assert p.state is S.HAS_PERMISSION


def test_revoke_stops_releases_and_ptt_up_afterwards_does_nothing() -> None:
    p = in_state(S.HAS_PERMISSION, ptt_down=True)
    assert p.revoked("Media Burst pre-empted") == [
        EndBurst(7, "Media Burst pre-empted"),
        SendFloorRelease(),
    ]
    assert p.state is S.PENDING_RELEASE and p.ptt_down
    assert p.ptt_release() == []
    assert not p.ptt_down and p.state is S.PENDING_RELEASE


IDLE_OR_TAKEN: tuple[Arrival, ...] = (
    lambda p: p.floor_idle(),
    lambda p: p.floor_taken(talker_is_me=False),
)


def test_idle_or_taken_while_talking_ends_our_burst() -> None:
    for arrive in IDLE_OR_TAKEN:
        p = in_state(S.HAS_PERMISSION, ptt_down=True)
        effects = arrive(p)
        assert len(effects) == 1 and isinstance(effects[0], EndBurst) and effects[0].burst_id == 7
        assert p.state is S.NO_PERMISSION
        assert p.ptt_release() == []  # the key is let go later: nothing to send


def test_disconnect_ends_the_burst_and_forgets_the_request() -> None:
    p = in_state(S.HAS_PERMISSION, ptt_down=True)
    assert p.disconnected() == [EndBurst(7, "link lost")]
    assert p.state is S.NO_PERMISSION
    q = in_state(S.QUEUED, ptt_down=True)
    assert q.disconnected() == [] and q.state is S.NO_PERMISSION and q.queue_position == 0


# --- pending release --------------------------------------------------------------------------


def test_pending_release_ends_at_idle_or_taken() -> None:
    for arrive in IDLE_OR_TAKEN:
        p = in_state(S.PENDING_RELEASE, ptt_down=False)
        assert arrive(p) == []
        assert p.state is S.NO_PERMISSION


def test_pressing_again_while_the_release_is_pending_asks_again() -> None:
    p = in_state(S.PENDING_RELEASE, ptt_down=False)
    assert p.ptt_press(1) == [SendFloorRequest(1)]
    assert p.state is S.PENDING_REQUEST


# --- the story from issue 10 ------------------------------------------------------------------


def test_a_pre_empted_dispatcher_who_lets_go_stays_off_the_air() -> None:
    """The dispatcher talks, an emergency pre-empts it; it presses Space to stop (PTT up):
    no new request goes out, so it is not put back on air after the emergency."""
    dispatcher = FloorParticipant()
    sent = dispatcher.ptt_press(2)
    sent += dispatcher.granted(11, 60.0)
    sent += dispatcher.revoked("Media Burst pre-empted")
    sent += dispatcher.floor_taken(talker_is_me=False)  # the officer in emergency talks
    sent += dispatcher.ptt_release()  # Space: "stop"
    sent += dispatcher.floor_idle()  # the emergency burst ends
    requests = [e for e in sent if isinstance(e, SendFloorRequest)]
    assert requests == [SendFloorRequest(2)]  # only the first, real press
    assert dispatcher.state is S.NO_PERMISSION and not dispatcher.ptt_down


# --- any sequence of inputs keeps the invariants ----------------------------------------------


class ParticipantMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = FloorParticipant()
        self.requests = 0
        self.releases = 0
        self.starts: list[int] = []
        self.ends: list[int] = []

    def _run(self, effects: Sequence[ParticipantEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendFloorRequest):
                self.requests += 1
            elif isinstance(effect, SendFloorRelease):
                self.releases += 1
            elif isinstance(effect, StartBurst):
                self.starts.append(effect.burst_id)
            elif isinstance(effect, EndBurst):
                self.ends.append(effect.burst_id)

    @rule(priority=st.integers(1, 4))
    def press(self, priority: int) -> None:
        requests = self.requests
        was_down = self.p.ptt_down
        self._run(self.p.ptt_press(priority))
        assert self.p.ptt_down
        if was_down:
            assert self.requests == requests  # a held key never asks twice

    @rule()
    def release(self) -> None:
        self._run(self.p.ptt_release())
        assert not self.p.ptt_down

    @rule(burst=st.integers(0, 5), limit=st.floats(0, 60))
    def granted(self, burst: int, limit: float) -> None:
        self._run(self.p.granted(burst, limit))

    @rule()
    def denied(self) -> None:
        self._run(self.p.denied("x"))

    @rule(position=st.integers(1, 8))
    def queued(self, position: int) -> None:
        self._run(self.p.queued(position))

    @rule()
    def revoked(self) -> None:
        self._run(self.p.revoked("Media Burst pre-empted"))

    @rule()
    def idle(self) -> None:
        self._run(self.p.floor_idle())

    @rule()
    def taken(self) -> None:
        self._run(self.p.floor_taken(talker_is_me=False))

    @rule()
    def disconnected(self) -> None:
        self._run(self.p.disconnected())

    @invariant()
    def talking_only_with_the_key_down_and_a_burst(self) -> None:
        if self.p.state is S.HAS_PERMISSION:
            assert self.p.ptt_down and self.p.burst_id is not None
        else:
            assert self.p.burst_id is None

    @invariant()
    def every_started_burst_is_ended_once(self) -> None:
        open_bursts = len(self.starts) - len(self.ends)
        assert open_bursts == (1 if self.p.state is S.HAS_PERMISSION else 0)

    @invariant()
    def a_request_only_while_the_key_is_down(self) -> None:
        if self.p.state in (S.PENDING_REQUEST, S.QUEUED):
            assert self.p.ptt_down


TestParticipantMachine = ParticipantMachine.TestCase
