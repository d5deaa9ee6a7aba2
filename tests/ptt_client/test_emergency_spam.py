"""Emergency spam by several members, raise/cancel cycles, during and before a genuine call
(issue 9 section 3, the red team's variants of ``test_emergency_flood.py``).

Real server, real radios, Opus and the Player's tones. Two members (an officer and a dispatcher)
raise and cancel alerts as fast as their radios send, each cancel ending an alert so each raise
makes a new one; meanwhile another officer raises a genuine emergency and talks. Every other
radio must get that alert at once and *hear* its emergency tone (the tone was coalesced into
the spammers' before: one gap for all alerts meant their new alert every second kept the gap
closed), hear the call in full, and take only a bounded number of alerts and tones.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import numpy as np

from ptt_client.audio import WavFileInput, WavFileOutput, load_wav
from ptt_client.client import RadioClient
from ptt_client.codec import Pcm
from ptt_client.samples import sample_paths
from ptt_client.tones import Tone, tone_frames
from ptt_client.voice import Played, Player, Transmitter
from ptt_protocol import control
from ptt_server.server import RelayServer
from ptt_server.sessions import TOLD_ALERTS_KEPT
from tests.orgfixture import Org, joined_radio, start_server
from tests.ptt_client.speech import similarity


class TimedWavOutput(WavFileOutput):
    """A WAV sink that also keeps what was written after ``since`` (each write a frame), and
    sets ``heard`` once the whole emergency tone has been written after it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.since: float | None = None
        self.after: list[Pcm] = []
        self.heard = asyncio.Event()
        self._tone = tone_frames(Tone.EMERGENCY)

    def write(self, pcm: Pcm) -> None:
        super().write(pcm)
        if self.since is None or time.monotonic() < self.since:
            return
        self.after.append(np.array(pcm))
        tail = self.after[-len(self._tone) :]
        if len(tail) == len(self._tone) and all(
            np.array_equal(a, b) for a, b in zip(tail, self._tone, strict=True)
        ):
            self.heard.set()


async def raise_and_cancel(radio: RadioClient, stop: asyncio.Event) -> int:
    """Raise and cancel as fast as the radio sends: each raise is a new alert."""
    cycles = 0
    while not stop.is_set():
        await radio.raise_emergency(48.85, 2.35)
        await radio.cancel_emergency()
        cycles += 1
        if cycles % 25 == 0:
            # The spam goes at the server's pace, not the socket's. Not a bound on that pace:
            # each admitted raise and cancel is a store write, and on a loaded machine's disk
            # the pong may wait behind them for longer than ping_server's 5 s default.
            await radio.ping_server(timeout=60)
    return cycles


async def test_a_genuine_emergency_amid_raise_cancel_spam_is_toned_and_its_call_heard(
    org: Org, server: RelayServer, tmp_path: Path
) -> None:
    radios = [await joined_radio(org, server, u) for u in ("alice", "bob", "carol", "disp")]
    alice, bob, carol, disp = radios
    sample, other = sample_paths()[0], sample_paths()[1]
    expected = len(list(WavFileInput(sample).frames()))
    alerts: list[control.EmergencyAlert] = []
    bob.add_listener(lambda e: alerts.append(e) if isinstance(e, control.EmergencyAlert) else None)
    played: list[Played] = []
    heard_all = asyncio.Event()

    def on_played(frame: Played) -> None:
        if frame.talker == "alice":
            played.append(frame)
            if len(played) >= expected - 2:  # see test_emergency_flood.py on the last frames
                heard_all.set()

    output = TimedWavOutput(tmp_path / "bob.wav")
    player = Player(bob, output, tones=True, on_played=on_played)
    player.start()
    stop = asyncio.Event()
    spam: list[asyncio.Task[int]] = []
    try:
        started = output.since = time.monotonic()
        spam = [asyncio.create_task(raise_and_cancel(r, stop)) for r in (carol, disp)]
        async with asyncio.timeout(10):
            await output.heard.wait()  # the spam's tone has played: none is waiting now
        assert {a.user_id for a in alerts} == {"carol", "disp"}
        # The spammers pause (a gap of one cycle would do: before the fix their next new alert
        # 5 s on made a tone, and the only thing that made alice's audible).
        stop.set()
        cycles = await asyncio.gather(*spam)
        await bob.ping_server()

        output.after.clear()
        output.heard.clear()
        output.since = time.monotonic()
        genuine = await alice.raise_emergency(48.86, 2.36)
        await alice.ping_server()  # the server has handled alice's alert...
        await bob.ping_server()  # ...and bob has all it sent before: alice's was not held
        assert genuine in {a.alert_id for a in alerts}
        async with asyncio.timeout(10):
            await output.heard.wait()  # bob hears alice's emergency tone, whole

        # alice, in emergency, talks while the spam goes on.
        stop.clear()
        spam = [asyncio.create_task(raise_and_cancel(r, stop)) for r in (carol, disp)]
        result = await Transmitter(alice).talk(WavFileInput(sample))
        assert result.outcome == "granted" and result.frames_sent == expected
        async with asyncio.timeout(10):
            await heard_all.wait()
        stop.set()
        cycles = [a + b for a, b in zip(cycles, await asyncio.gather(*spam), strict=True)]
        await bob.ping_server()
        spam_s = time.monotonic() - started
    finally:
        stop.set()
        for task in spam:
            task.cancel()
        await player.stop()
        output.close()
        for client in radios:
            await client.stop()

    kinds = [p.kind for p in played]
    assert kinds.count("play") >= expected * 0.95, kinds
    received = load_wav(output.path)
    same = similarity(load_wav(sample), received)
    assert same > 0.8 and same > similarity(load_wav(other), received) + 0.3, same

    # Bounded: each spammer's broadcasts stay within its limit over the time it spammed,
    # however many alerts it made; a tone per raiser, and one more owed for the one voice cut.
    assert min(cycles) >= 50, cycles
    config = server.config
    per_user = config.rate_emergency_burst + 1 + int(spam_s * config.rate_emergency_per_s)
    spammed = [a for a in alerts if a.user_id != "alice"]
    assert len(spammed) <= 2 * per_user, (len(spammed), per_user, cycles)
    stats = player.tone_queue.stats
    assert stats.accepted[Tone.EMERGENCY] <= 3 and stats.owed <= 1, stats


async def test_raise_cancel_cycles_leave_the_relay_holding_a_bounded_record_per_session(
    org: Org, server: RelayServer
) -> None:
    """Each raise after a cancel is a new alert, and the relay remembered every alert it ever
    sent a session (so that late entry would not repeat it): a member cycling as fast as its
    radio sends grew its own session's set by one id per cycle and every listener's by one a
    second, for as long as the session lasts. Now a session remembers a bounded number;
    forgetting one costs at most a repeat at late entry (radios and consoles show an alert
    once), never a lost alert."""
    radios = [await joined_radio(org, server, u) for u in ("alice", "bob", "carol")]
    alice, bob, carol = radios
    try:
        await alice.raise_emergency()
        for cycle in range(4 * TOLD_ALERTS_KEPT):
            await carol.raise_emergency()
            await carol.cancel_emergency()
            if cycle % 25 == 0:
                await carol.ping_server()
        await carol.ping_server()
        await bob.ping_server()
        for user in ("alice", "bob", "carol"):
            assert len(server.sessions.by_user[user].told_alerts) <= TOLD_ALERTS_KEPT, user
    finally:
        for client in radios:
            await client.stop()


async def test_raise_cancel_cycles_store_alerts_at_a_bounded_rate(
    org: Org, server: RelayServer
) -> None:
    """Each cycle stored a new alert for good (no emergency is ever pruned): about 900 rows a
    second from one radio, measured. Cancels now draw on the session's message budget, as
    texts and locations do (a cancel over it is refused, "slow down", and the alert stays
    active: the safe side), so one member's cycles store alerts no faster than that budget,
    while every raise is still recorded (emergencies are never refused)."""
    carol = await joined_radio(org, server, "carol")
    refused: list[control.Error] = []
    carol.add_listener(lambda e: refused.append(e) if isinstance(e, control.Error) else None)
    try:
        started = time.monotonic()
        for cycle in range(300):
            await carol.raise_emergency()
            await carol.cancel_emergency()
            if cycle % 25 == 0:
                await carol.ping_server()
        await carol.ping_server()
        took = time.monotonic() - started
    finally:
        await carol.stop()
    with contextlib.closing(sqlite3.connect(f"file:{org.db_path}?mode=ro", uri=True)) as db:
        (stored,) = db.execute("SELECT count(*) FROM emergencies").fetchone()
    config = server.config
    # The message budget over the time the cycles took (its burst is three times its rate).
    most = 1 + int(config.rate_messages_per_s * (3 + took))
    assert stored <= most, (stored, most, took)
    assert refused and all(e.code == control.ERROR_RATE_LIMITED for e in refused)


async def test_a_refused_cancel_leaves_the_alert_active_on_the_radio_and_for_dispatchers(
    org: Org,
) -> None:
    """Cancels draw on the message budget; a refused one must not leave the officer's radio
    showing "no emergency" (and talking at normal priority) while every console still shows
    the alert. A budget below one message refuses every cancel, deterministically."""
    relay = await start_server(org, rate_messages_per_s=0.2)
    alice = await joined_radio(org, relay, "alice")
    disp = await joined_radio(org, relay, "disp")
    seen: list[control.Message] = []
    alice.add_listener(lambda e: seen.append(e) if isinstance(e, control.Error) else None)
    disp.add_listener(lambda e: seen.append(e) if isinstance(e, control.EmergencyCancel) else None)
    try:
        alert_id = await alice.raise_emergency()
        await disp.wait_for(control.EmergencyAlert, lambda a: a.alert_id == alert_id)
        await alice.cancel_emergency()
        await alice.ping_server()  # the server answered the cancel before the ping
        await disp.ping_server()
        assert [(type(m), getattr(m, "code", None)) for m in seen] == [
            (control.Error, control.ERROR_RATE_LIMITED)
        ], seen
        assert alice.emergency_alert == alert_id  # as on the server: still active
        assert alice.core.default_priority() == 4  # its talk still goes at emergency priority
        assert [a.alert_id for a in await relay.store.active_emergencies()] == [alert_id]
    finally:
        await alice.stop()
        await disp.stop()
        await relay.stop()
