"""Private calls between real ``ptt-radio`` processes (issue 13): placed by ``--script``, with
WAV audio in and out, answered automatically or by hand, refused, to a callee who is offline;
what each radio prints (``--json``) and what the callee recorded.

The media goes peer to peer between the two processes on 127.0.0.1 (``FIELDRADIO_ICE_HOSTS``,
set by the ``loopback_ice`` fixture and inherited by the processes).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ptt_client.audio import load_wav
from ptt_client.samples import sample_paths
from ptt_protocol import control
from tests.calls_fixture import loopback_ice
from tests.ptt_client.radio_process import GUARD_S, RadioProcess, Starter
from tests.ptt_client.speech import similarity

__all__ = ["loopback_ice"]


def told(radio: RadioProcess) -> list[dict[str, Any]]:
    """Every JSON event the radio printed so far (--json: each line is one)."""
    return [json.loads(line) for line in radio.lines]


def first(radio: RadioProcess, event: str) -> dict[str, Any]:
    found = [e for e in told(radio) if e["event"] == event]
    assert found, (event, radio.lines)
    return found[0]


def is_event(*names: str) -> Any:
    return lambda line: json.loads(line)["event"] in names


async def ready(radio: RadioProcess) -> None:
    await radio.until(is_event("ready"))


async def test_a_scripted_call_carries_the_callers_wav_into_the_callees_recording(
    start_radio: Starter, radio_dir: Path
) -> None:
    recording = radio_dir / "bob-call.wav"
    bob = await start_radio(
        "bob", "--json", "--call-output", str(recording), "--script", "quit 600"
    )
    await ready(bob)
    sample = sample_paths()[0]
    alice = await start_radio(
        "alice", "--json", "--input", str(sample), "--script", "call 0 bob for 5; quit 9"
    )
    await bob.until(is_event("call_recorded"))
    await alice.until(is_event("call_ended"))  # the hanging-up side closes its media first
    await alice.until(is_event("stopped"))  # at its quit
    async with asyncio.timeout(GUARD_S):
        await alice.process.wait()  # exited by itself (stop() would signal it otherwise)
    alice_code, alice_err = await alice.stop()
    bob_code, bob_err = await bob.stop()
    assert (alice_code, alice_err, bob_code, bob_err) == (0, "", 0, "")

    ringing = first(bob, "call_ringing")
    assert (ringing["peer"], ringing["name"], ringing["outgoing"], ringing["answer"]) == (
        "alice",
        "Alice Adams",
        False,
        "automatic",
    )
    for radio, peer in ((alice, "bob"), (bob, "alice")):
        up = first(radio, "call_connected")
        assert (up["peer"], up["mode"], up["path"], up["relayed"]) == (
            peer,
            control.CALL_FULL_DUPLEX,
            "direct",
            False,
        )
        end = first(radio, "call_ended")
        assert (end["peer"], end["reason"]) == (peer, control.END_HANGUP), end
        assert "alice hung up" in end["text"] and 4.0 < end["duration_s"] < 8.0, end
    names = [e["event"] for e in told(alice)]
    assert names.index("call_dialing") < names.index("call_connected") < names.index("call_ended")
    saved = first(bob, "call_recorded")
    assert (saved["peer"], saved["path"]) == ("alice", str(recording))
    heard = load_wav(recording)
    assert similarity(load_wav(sample), heard) > 0.8


async def test_a_manual_answer_rings_until_the_script_answers(start_radio: Starter) -> None:
    bob = await start_radio("bob", "--json", "--answer", "manual", "--script", "answer 0; quit 600")
    await ready(bob)
    alice = await start_radio("alice", "--script", "call 0 bob for 1; quit 6")
    await bob.until(is_event("call_ended"))
    await alice.until(lambda line: "call with bob ended" in line)
    await alice.stop()
    await bob.stop()
    ringing = first(bob, "call_ringing")
    assert (ringing["peer"], ringing["answer"]) == ("alice", "manual")
    bob_names = [e["event"] for e in told(bob)]
    assert bob_names.index("call_ringing") < bob_names.index("call_connected")
    assert first(bob, "call_ended")["reason"] == control.END_HANGUP
    # The caller's lines: it rang at bob's, then the call went through, end to end.
    body = [line[9:] for line in alice.lines]
    rang = body.index("ringing at bob")
    up = body.index("call with bob connected: end to end, direct (full duplex)")
    down = next(i for i, b in enumerate(body) if b.startswith("call with bob ended (hangup)"))
    assert rang < up < down, body


async def test_a_refused_call_and_an_offline_callee_say_why(start_radio: Starter) -> None:
    bob = await start_radio("bob", "--answer", "manual", "--script", "refuse 0; quit 600")
    await bob.until(lambda line: line.endswith("bob on 'patrol': 1:patrol"))
    alice = await start_radio("alice", "--script", "call 0 bob; call 3 carol; quit 5")
    await alice.until(lambda line: "call with carol ended" in line)
    code, err = await alice.stop()
    await bob.stop()
    assert (code, err) == (0, "")
    ended = [line[9:] for line in alice.lines if " ended (" in line]
    assert ended[0].startswith("call with bob ended (refused): bob refused the call"), ended
    assert ended[1].startswith("call with carol ended (offline)") and "not logged in" in ended[1]
    assert any("CALL from Alice Adams (alice): a answers, r refuses" in line for line in bob.lines)


async def test_a_half_duplex_call_gives_the_floor_to_the_talk_step(
    start_radio: Starter, radio_dir: Path
) -> None:
    """In a half-duplex call the radio's PTT (here the script's talk step) takes the call's
    floor; the other radio is told, and hears the talker's speech only while it talks."""
    recording = radio_dir / "bob-half.wav"
    bob = await start_radio(
        "bob", "--json", "--call-output", str(recording), "--script", "quit 600"
    )
    await ready(bob)
    sample = sample_paths()[0]
    alice = await start_radio(
        "alice",
        "--json",
        "--input",
        str(sample),
        "--script",
        "call 0 bob for 7 half; talk 2 3; quit 10",
    )
    await bob.until(is_event("call_recorded"))
    await alice.until(is_event("call_ended"))
    await alice.stop()
    await bob.stop()
    assert first(bob, "call_connected")["mode"] == control.CALL_HALF_DUPLEX
    talkers = [e["talker"] for e in told(bob) if e["event"] == "call_talker"]
    assert talkers[:2] == ["alice", ""], talkers  # alice took the floor, then let it go
    mine = [e["talker"] for e in told(alice) if e["event"] == "call_talker"]
    assert mine[:2] == ["alice", ""], mine
    # bob heard alice's speech (sent only while she held the floor) and silence otherwise.
    assert similarity(load_wav(sample), load_wav(recording)) > 0.6
