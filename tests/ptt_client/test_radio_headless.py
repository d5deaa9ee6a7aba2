"""A headless ``ptt-radio`` process against a real server: one line per event worth knowing
(the floor, the talker, the media path, what concerns its officer, and not other people's
revoked devices nor the rosters re-sent at every login), and ``--json``.
"""

from __future__ import annotations

import asyncio
import json

from ptt_client import events
from ptt_client.channel_admin import remove_member
from ptt_client.samples import sample_paths
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.orgfixture import Org, joined_radio, start_server
from tests.ptt_client.radio_process import GUARD_S, Starter


async def test_a_reconnecting_radio_does_not_report_other_people_s_revocations_again(
    org: Org, server: RelayServer, start_radio: Starter
) -> None:
    """Issue 11: at every reconnect radios printed "credential for 'carol' ... is revoked"
    (another officer's device) and "roster ... refused (replayed)" (the roster they hold)."""
    await org.revoke(server, 1, org.accounts["carol"])  # carol's device was lost; still listed
    alice = await start_radio("alice", "--script", "quit 600")
    await alice.until(lambda line: line.endswith("alice on 'patrol': 1:patrol"))
    bob = await joined_radio(org, server, "bob")
    control_port, media_port = server.control_port, server.media_port
    await server.stop()
    restarted = await start_server(org, listen_port=control_port, media_port=media_port)
    try:
        await alice.until(lambda line: line.endswith(" restored"))
        await bob.wait_for(events.Connected, lambda e: e.reconnect)
        # Everything the server sent alice at login, and its answers to what she asked on
        # reading it (carol's credential), comes before a text sent after her read receipt
        # for an earlier one: once she prints that text, she has handled all of it.
        first = await bob.send_text("one", to_user="alice")
        await bob.wait_for(
            control.TextReceipt,
            lambda r: r.message_id == first and r.kind == control.RECEIPT_READ,
            timeout=GUARD_S,
        )
        await bob.send_text("two", to_user="alice")
        await alice.until(lambda line: line.endswith("text from bob (direct): two"))
        code, err = await alice.stop()
    finally:
        await bob.stop()
        await restarted.stop()
    assert code == 0, (alice.lines, err)
    assert err == ""  # nothing on stderr, at the first login nor at the reconnect
    printed = "\n".join(alice.lines)
    assert f"link to wss://127.0.0.1:{control_port} lost" in printed
    assert "carol" not in printed and "revoked" not in printed and "replayed" not in printed
    assert "WARNING" not in printed


async def test_a_radio_shows_who_leaves_its_channel_and_its_own_removal(
    org: Org, server: RelayServer, start_radio: Starter
) -> None:
    """What does concern the officer: who may talk on the channel, and their own place."""
    alice = await start_radio("alice", "--script", "quit 600")
    await alice.until(lambda line: line.endswith("alice on 'patrol': 1:patrol"))
    disp = await joined_radio(org, server, "disp")
    try:
        assert await remove_member(disp, org.channel_id, "carol") == 2
        await alice.until(lambda line: line.endswith("roster of patrol (version 2): left: carol"))
        await alice.until(lambda line: " keys: patrol epoch 2, made by Dispatch One" in line)
        await disp.wait_for(events.KeysUpdated, lambda e: e.roster_version == 2)
        assert await remove_member(disp, org.channel_id, "alice") == 3
        await alice.until(lambda line: "you are off the roster of patrol (version 3)" in line)
        await alice.until(
            lambda line: line.endswith("left patrol (removed from the channel roster)")
        )
        code, err = await alice.stop()
    finally:
        await disp.stop()
    assert (code, err) == (0, "")


async def test_headless_lines_and_json_events_of_a_talk(
    org: Org, server: RelayServer, start_radio: Starter
) -> None:
    """Issue 11: headless output showed no floor grant, talker or media path. Bob listens
    with --json, alice talks a WAV file from her script and prints lines."""
    bob = await start_radio("bob", "--json", "--no-udp", "--script", "quit 600")
    await bob.until(lambda line: json.loads(line)["event"] == "ready")
    sample = sample_paths()[0]
    alice = await start_radio("alice", "--input", str(sample), "--script", "talk 0 1.5; quit 2")
    await bob.until(lambda line: json.loads(line)["event"] == "floor_idle")
    bob_code, bob_err = await bob.stop()
    async with asyncio.timeout(GUARD_S):
        alice_code, alice_err = await alice.stop()  # it ends by itself at its quit
    assert (alice_code, alice_err) == (0, "")
    assert (bob_code, bob_err) == (0, "")

    told = [json.loads(line) for line in bob.lines]  # every line of stdout is one JSON object
    names = [e["event"] for e in told]
    # The key may come before the client reports the login; the channel is joined after it.
    assert set(names[:5]) == {"logged_in", "media_path", "epoch", "channel_joined", "ready"}
    assert names.index("logged_in") < names.index("media_path") < names.index("ready")
    assert all(isinstance(e["t"], float) for e in told)
    by_name = {e["event"]: e for e in told}
    assert by_name["media_path"]["path"] == "tunnel"
    taken = by_name["floor_taken"]
    assert (taken["channel"], taken["talker"], taken["name"]) == ("patrol", "alice", "Alice Adams")
    assert taken["emergency"] is False
    assert by_name["floor_idle"] == {
        "t": by_name["floor_idle"]["t"],
        "event": "floor_idle",
        "channel": "patrol",
        "talker": "alice",
    }
    assert names.index("floor_taken") < names.index("talker_verified") < names.index("floor_idle")
    assert names[-1] == "stopped" and told[-1]["code"] == 0

    lines = alice.lines
    assert all(line[2] == ":" and line[5] == ":" and line[8] == " " for line in lines), lines
    body = [line[9:] for line in lines]
    login = body.index(f"logged in to wss://127.0.0.1:{server.control_port} as alice")
    assert login < body.index("media: UDP, direct to the relay") < body.index("joined patrol")
    granted = next(i for i, b in enumerate(body) if b.startswith("floor granted on patrol"))
    released = next(i for i, b in enumerate(body) if b.startswith("released the floor on patrol"))
    assert granted < released, body
    assert body[-1] == "stopped (exit status 0)"


async def test_an_imminent_peril_from_the_script_is_shown_as_such_at_its_priority(
    org: Org, server: RelayServer, start_radio: Starter
) -> None:
    """Issue 13: `peril AT` raises an imminent peril; the other radio shows it as one, and
    alice's talk is at priority 3 (between dispatcher and emergency), not 4."""
    bob = await start_radio("bob", "--json", "--no-udp", "--script", "quit 600")
    await bob.until(lambda line: json.loads(line)["event"] == "ready")
    sample = sample_paths()[0]
    alice = await start_radio("alice", "--input", str(sample), "--script", "peril 0; quit 12")
    await bob.until(lambda line: json.loads(line)["event"] == "floor_taken")
    told = [json.loads(line) for line in bob.lines]
    alert = next(e for e in told if e["event"] in ("imminent_peril", "emergency"))
    assert (alert["event"], alert["user"], alert["channel"]) == (
        "imminent_peril",
        "alice",
        "patrol",
    )
    taken = next(e for e in told if e["event"] == "floor_taken")
    assert (taken["talker"], taken["priority"]) == ("alice", 3), taken
    [active] = await server.store.active_emergencies()
    assert (active.user_id, active.kind) == ("alice", "imminent_peril")
    await bob.stop()
    await alice.stop()
    assert any("IMMINENT PERIL raised" in line for line in alice.lines), alice.lines


async def test_a_dispatchers_broadcast_from_the_script_is_shown_as_one(
    org: Org, server: RelayServer, start_radio: Starter
) -> None:
    """Issue 13: `broadcast START DURATION CHANNELS` from a dispatcher's radio; the listener's
    floor_taken (its line and its JSON) says broadcast."""
    bob = await start_radio("bob", "--json", "--no-udp", "--script", "quit 600")
    await bob.until(lambda line: json.loads(line)["event"] == "ready")
    sample = sample_paths()[0]
    disp = await start_radio(
        "disp", "--input", str(sample), "--script", "broadcast 0 1 patrol; quit 4"
    )
    await bob.until(lambda line: json.loads(line)["event"] == "floor_idle")
    taken = next(json.loads(line) for line in bob.lines if '"floor_taken"' in line)
    assert (taken["talker"], taken["broadcast"], taken["priority"]) == ("disp", True, 2)
    async with asyncio.timeout(GUARD_S):
        code, err = await disp.stop()  # it ends by itself at its quit
    await bob.stop()
    assert (code, err) == (0, "")
    ended = next(line for line in disp.lines if "BROADCAST to patrol" in line)
    assert ended.endswith("BROADCAST to patrol: granted, 50 frames on 1 channel(s)"), disp.lines
