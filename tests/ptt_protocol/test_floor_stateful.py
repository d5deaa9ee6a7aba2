"""Floor control under random use: requests, releases, cancels, disconnects, media and
timer ticks at monotonically advancing times, with the floor's invariants checked after
every step and every emitted message checked against what the channel was told before.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ptt_protocol.floor import (
    FloorConfig,
    FloorControl,
    FloorDeny,
    FloorEvent,
    FloorGranted,
    FloorIdle,
    FloorQueuePositionInfo,
    FloorRevoke,
    FloorState,
    FloorTaken,
    Priority,
    RevokeCause,
)

USERS = ("amy", "bob", "cat", "dan", "eve")
users = st.sampled_from(USERS)
priorities = st.sampled_from(list(Priority))
# Time steps between inputs: mostly short (so queues fill while someone talks) or on
# the timer edges (T1 4 s, T2 5/8 s, T3 3 s). Long silences come from the tick rule.
steps = st.one_of(
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    st.sampled_from([0.0, 0.001, 0.5, 2.999, 3.0, 3.001, 3.999, 4.0, 4.001, 5.0]),
)
long_steps = st.floats(min_value=0.0, max_value=40.0, allow_nan=False)
talk_steps = st.floats(min_value=0.0, max_value=3.9, allow_nan=False)


class FloorMachine(RuleBasedStateMachine):
    """Drives one FloorControl and keeps a listener's view of what it announced."""

    fc: FloorControl

    @initialize(
        capacity=st.integers(min_value=0, max_value=2),
        t2_short=st.booleans(),
        t3=st.sampled_from([3.0, 0.0]),
    )
    def setup(self, capacity: int, t2_short: bool, t3: float) -> None:
        # Short T2 limits make "Media burst too long" common within 50 steps.
        if t2_short:
            self.config = FloorConfig(
                queue_capacity=capacity,
                t2_officer=5.0,
                t2_dispatcher=8.0,
                t2_imminent_peril=8.0,
                t3_grace=t3,
            )
        else:
            self.config = FloorConfig(queue_capacity=capacity, t3_grace=t3)
        self.fc = FloorControl(self.config)
        self.now = 0.0
        # Users whose latest Floor Request has not been answered by a grant, a
        # deny or a revoke, nor withdrawn.
        self.pending: set[str] = set()
        # What the channel was told: the talker of the last Floor Taken, or
        # None after Floor Idle; and the last burst id announced.
        self.view: str | None = None
        self.view_priority: Priority | None = None
        self.view_burst = 0
        # When the current burst was granted, its holder last sent media, and
        # it was told "Media burst too long" (None when not being revoked).
        self.granted_at = 0.0
        self.last_media = 0.0
        self.revoked_at: float | None = None
        # The queue position each queued user was last told.
        self.told_position: dict[str, int] = {}

    # -- checking a step's messages ---------------------------------------------

    def _lost_floor(self, leaving: str | None, pre_empted: Priority | None) -> None:
        """The talker in view lost the floor: check it had a reason to."""
        cfg = self.config
        reasons = (
            pre_empted is not None,
            leaving is not None and leaving == self.view,
            self.now >= self.last_media + cfg.t1_end_of_media,
            self.revoked_at is not None and self.now >= self.revoked_at + cfg.t3_grace,
        )
        assert any(reasons), f"floor taken from {self.view} at {self.now} for no reason"

    def _apply(
        self,
        events: list[FloorEvent],
        requester: str | None = None,
        leaving: str | None = None,
    ) -> None:
        """Check a step's messages in order.

        ``requester`` made this step's request; ``leaving`` released, cancelled
        or disconnected in this step.
        """
        answerable = self.pending | ({requester} if requester else set())
        previous: FloorEvent | None = None
        pre_empted: Priority | None = None  # priority of a talker just pre-empted
        for ev in events:
            assert ev.to is None or ev.to in USERS
            if isinstance(ev, FloorGranted):
                # Every Floor Granted answers an outstanding request of that user.
                assert ev.user in answerable, f"{ev} answers no request"
                self.pending.discard(ev.user)
            elif isinstance(ev, FloorTaken):
                assert ev.exclude == ev.talker and ev.to is None
                if ev.burst_id != self.view_burst:
                    # A new burst: announced right after its grant, numbered +1,
                    # with T2 as the Duration of the grant.
                    assert ev.burst_id == self.view_burst + 1
                    assert previous == FloorGranted(
                        ev.talker,
                        ev.burst_id,
                        self.config.t2_stop_talking(ev.priority),
                        ev.priority,
                    )
                    if pre_empted is not None:
                        # Only a strictly higher priority pre-empts.
                        assert ev.priority > pre_empted
                    if self.view is not None:
                        self._lost_floor(leaving, pre_empted)
                    self.granted_at = self.last_media = self.now
                    self.revoked_at = None
                else:
                    # Same burst announced again: its talker raised the priority,
                    # and a Floor Granted at that priority (unless still revoked)
                    # came just before.
                    assert ev.talker == self.view
                    assert self.view_priority is not None and ev.priority > self.view_priority
                    if isinstance(previous, FloorGranted):
                        assert previous.user == ev.talker and previous.priority == ev.priority
                    if self.revoked_at is not None and isinstance(previous, FloorGranted):
                        self.revoked_at = None  # the raise lifted the revoke
                pre_empted = None
                self.view = ev.talker
                self.view_priority = ev.priority
                self.view_burst = ev.burst_id
            elif isinstance(ev, FloorIdle):
                assert ev.to is None and ev.exclude is None
                assert pre_empted is None
                assert self.view is not None, "Floor Idle while idle"
                self._lost_floor(leaving, pre_empted)
                self.view = self.view_priority = self.revoked_at = None
            elif isinstance(ev, FloorRevoke):
                # Only the talker the channel knows can be revoked.
                assert ev.user == self.view, f"{ev} while {self.view} talks"
                self.pending.discard(ev.user)
                if ev.cause is RevokeCause.MEDIA_BURST_PRE_EMPTED:
                    assert ev.grace == 0.0
                    pre_empted = self.view_priority
                else:
                    assert ev.cause is RevokeCause.MEDIA_BURST_TOO_LONG
                    if self.revoked_at is None:
                        # T2 ran out for this priority.
                        assert self.view_priority is not None
                        t2 = self.config.t2_stop_talking(self.view_priority)
                        assert t2 is not None and self.now >= self.granted_at + t2
                        assert ev.grace == self.config.t3_grace
                        self.revoked_at = self.now
            elif isinstance(ev, FloorDeny):
                assert ev.user in answerable, f"{ev} answers no request"
                self.pending.discard(ev.user)
            elif isinstance(ev, FloorQueuePositionInfo):
                assert ev.user in answerable and ev.position >= 1
                self.told_position[ev.user] = ev.position
            else:  # pragma: no cover - a new event type must be checked here
                raise AssertionError(f"unexpected event {ev!r}")
            previous = ev
        if leaving is not None:
            self.pending.discard(leaving)  # a withdrawn request needs no answer
        if requester is not None:
            # Every request is answered, and the last answer says where it
            # stands: queued, holding (granted, or still being revoked), or gone.
            answers = [ev for ev in events if ev.to == requester]
            assert answers, f"request from {requester} got no answer"
            last = answers[-1]
            if requester in (u for u, _ in self.fc.queue):
                assert isinstance(last, FloorQueuePositionInfo)
                self.pending.add(requester)
            elif requester == self.fc.holder:
                assert isinstance(last, FloorGranted | FloorRevoke)
            else:
                assert isinstance(last, FloorDeny)
        # Idle only when there is no holder; Taken names the holder.
        assert self.view == self.fc.holder
        # Every queued user was told its current place.
        queued = [u for u, _ in self.fc.queue]
        for pos, user in enumerate(queued, start=1):
            assert self.told_position.get(user) == pos, f"{user} not told it is #{pos}"
        self.told_position = {u: p for u, p in self.told_position.items() if u in queued}
        # Rules like talk_burst make many inputs: check after each one.
        self.at_most_one_holder()
        self.queue_is_consistent()
        self.timers_match_the_state()

    def _advance(self, dt: float) -> float:
        self.now += dt
        return self.now

    # -- rules -----------------------------------------------------------------------

    @rule(user=users, priority=priorities, dt=steps)
    def request(self, user: str, priority: Priority, dt: float) -> None:
        self._apply(self.fc.request(user, priority, self._advance(dt)), requester=user)

    @rule(how=st.sampled_from(["release", "cancel", "disconnect"]), user=users, dt=steps)
    def leave(self, how: str, user: str, dt: float) -> None:
        self._leave(how, user, dt)

    # Random users rarely hit the holder or a queued user; these rules do.
    @precondition(lambda self: self.fc.holder is not None)
    @rule(how=st.sampled_from(["release", "cancel", "disconnect"]), dt=steps)
    def holder_leaves(self, how: str, dt: float) -> None:
        holder = self.fc.holder
        assert holder is not None
        self._leave(how, holder, dt)

    @precondition(lambda self: bool(self.fc.queue))
    @rule(
        how=st.sampled_from(["release", "cancel", "disconnect"]), index=st.integers(0, 2), dt=steps
    )
    def queued_user_leaves(self, how: str, index: int, dt: float) -> None:
        queue = self.fc.queue
        self._leave(how, queue[index % len(queue)][0], dt)

    @precondition(lambda self: len(self.fc.queue) + 1 < len(USERS))
    @rule(index=st.integers(0, len(USERS) - 1), priority=priorities, dt=steps)
    def newcomer_requests(self, index: int, priority: Priority, dt: float) -> None:
        busy = {self.fc.holder, *(u for u, _ in self.fc.queue)}
        idle_users = [u for u in USERS if u not in busy]
        self.request(idle_users[index % len(idle_users)], priority, dt)

    @precondition(lambda self: bool(self.fc.queue))
    @rule(index=st.integers(0, 2), priority=priorities, dt=steps)
    def queued_user_requests_again(self, index: int, priority: Priority, dt: float) -> None:
        queue = self.fc.queue
        self.request(queue[index % len(queue)][0], priority, dt)

    def _leave(self, how: str, user: str, dt: float) -> None:
        method = {
            "release": self.fc.release,
            "cancel": self.fc.cancel,
            "disconnect": self.fc.disconnect,
        }[how]
        self._apply(method(user, self._advance(dt)), leaving=user)

    @rule(user=users, dt=steps)
    def media(self, user: str, dt: float) -> None:
        self._media(user, dt)

    @rule(dt=talk_steps)
    def holder_talks(self, dt: float) -> None:
        holder = self.fc.holder
        if holder is not None:
            self._media(holder, dt)

    @rule(seconds=st.floats(min_value=0.0, max_value=70.0), gap=st.floats(0.05, 3.9))
    def talk_burst(self, seconds: float, gap: float) -> None:
        """The holder talks for a while, a packet every ``gap`` s, until it loses the floor."""
        holder = self.fc.holder
        end = self.now + seconds
        while holder is not None and self.fc.holder == holder and self.now + gap <= end:
            self._media(holder, gap)

    def _media(self, user: str, dt: float) -> None:
        self._apply(self.fc.media_received(user, self._advance(dt)))
        if self.fc.holder == user:
            self.last_media = self.now

    @rule(dt=st.one_of(steps, long_steps))
    def tick(self, dt: float) -> None:
        self._apply(self.fc.tick(self._advance(dt)))

    @rule()
    def tick_at_deadline(self) -> None:
        deadline = self.fc.next_deadline()
        if deadline is None:
            return
        # Just before the deadline nothing fires; at it, something does.
        before = max(self.now, deadline - 0.001)
        if before < deadline:
            self.now = before
            early = self.fc.tick(before)
            assert early == [], f"timer fired before next_deadline(): {early}"
            self._apply(early)
        self.now = deadline
        events = self.fc.tick(deadline)
        assert events, "a timer deadline passed without effect"
        self._apply(events)

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def at_most_one_holder(self) -> None:
        if not hasattr(self, "fc"):
            return
        senders = [u for u in USERS if self.fc.may_send(u)]
        assert senders == ([] if self.fc.holder is None else [self.fc.holder])

    @invariant()
    def queue_is_consistent(self) -> None:
        if not hasattr(self, "fc"):
            return
        fc = self.fc
        queued = [u for u, _ in fc.queue]
        prios = [p for _, p in fc.queue]
        assert len(queued) == len(set(queued)), "a user is twice in the queue"
        assert fc.holder not in queued, "the holder is in the queue"
        assert len(queued) <= self.config.queue_capacity
        assert prios == sorted(prios, reverse=True), "queue not in priority order"
        if fc.holder is None:
            assert queued == [] and fc.holder_priority is None
            assert fc.state is FloorState.IDLE
        else:
            holder_priority = fc.holder_priority
            assert holder_priority is not None
            # No queued entry has strictly higher priority than the holder.
            assert all(p <= holder_priority for p in prios)
            assert fc.state in (FloorState.TAKEN, FloorState.PENDING_REVOKE)
        # Everyone queued is waiting for an answer, and nobody else is: no
        # request vanished without a grant, a deny or a withdrawal.
        assert set(queued) == self.pending

    @invariant()
    def timers_match_the_state(self) -> None:
        if not hasattr(self, "fc"):
            return
        fc, cfg = self.fc, self.config
        deadline = fc.next_deadline()
        if fc.holder is None:
            assert deadline is None
            return
        # Everything due by now has fired ...
        assert deadline is not None and deadline > self.now
        # ... so no holder is silent for T1, talks past T2 unrevoked, or keeps
        # the floor past T3 after "Media burst too long".
        assert self.now < self.last_media + cfg.t1_end_of_media
        assert fc.holder_priority is not None
        if fc.state is FloorState.PENDING_REVOKE:
            assert self.revoked_at is not None
            assert self.now < self.revoked_at + cfg.t3_grace
        else:
            assert self.revoked_at is None
            t2 = cfg.t2_stop_talking(fc.holder_priority)
            assert t2 is None or self.now < self.granted_at + t2


FloorMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
TestFloorMachine = FloorMachine.TestCase
