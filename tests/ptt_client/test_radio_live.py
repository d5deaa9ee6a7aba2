"""``ptt-radio`` against a real server: the logins it must refuse (unknown credential, wrong
certificate, unknown channel) and two radios talking, texting and raising an emergency, scripted
and in a real terminal.

``main()`` runs in-process: the server runs on the test's event loop and ``main()`` (which starts
its own loop) in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.bundle import CredentialBundle
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import WavFileInput, load_wav
from ptt_client.client import RadioClient
from ptt_client.radio import main
from ptt_client.samples import sample_paths
from ptt_client.voice import Transmitter
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.credentials import bundle_for
from tests.orgfixture import Org
from tests.ptt_client.radio_cli import assert_one_line_error, write_bundle
from tests.ptt_client.speech import similarity
from tests.ptt_server.rawclient import RawClient, connect

# --- against a real server -------------------------------------------------------------------


def _server_bundle(org: Org, server: RelayServer, user: str, tmp_path: Path) -> str:
    return write_bundle(tmp_path / f"{user}.bundle", org.bundle(user, server))


async def refused_at_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, credential: str, channel: str
) -> str:
    """``ptt-radio`` on ``credential`` and ``channel`` (in a thread: the server runs on this
    loop) exits 2 before its script's ``quit``; what it wrote to stderr."""
    argv = ["--credential", credential, "--channel", channel]
    argv += ["--output", str(tmp_path / "o"), "--script", "quit 1"]
    code = await asyncio.to_thread(main, argv)
    _, err = capsys.readouterr()
    assert code == 2
    return err


async def test_login_refused_for_a_credential_the_server_does_not_know(
    tmp_path: Path, org: Org, server: RelayServer
) -> None:
    stranger = org.issue("dave")  # root-issued, but never enrolled on this server
    enrolled = org.bundle("alice", server)
    bundle = bundle_for(
        org.root,
        (stranger.keys, stranger.credential),
        server_url=enrolled.server_url,
        tls_fingerprint=enrolled.tls_fingerprint,
    )
    path = write_bundle(tmp_path / "dave.bundle", bundle)
    # A process, not a thread: RadioClient.stop() right after a refusal can leave the socket
    # open until the process ends, and the test server would wait 10 s for it to close.
    radio = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ptt_client.radio",
        "--credential", path, "--channel", "patrol",
        "--output", str(tmp_path / "o"), "--script", "quit 1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    async with asyncio.timeout(20):
        out, err = await radio.communicate()
    assert radio.returncode == 2
    assert out == b""
    assert_one_line_error(err.decode(), "login refused by wss://127.0.0.1:")


async def test_wrong_server_certificate_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org, server: RelayServer
) -> None:
    good = org.bundle("alice", server)
    bundle = CredentialBundle(
        device_keys=good.device_keys,
        credential=good.credential,
        root_public_key=good.root_public_key,
        server_url=good.server_url,
        tls_fingerprint="0" * 64,
    )
    path = write_bundle(tmp_path / "alice.bundle", bundle)
    err = await refused_at_start(capsys, tmp_path, path, "patrol")
    assert_one_line_error(err, "login refused", "is not the pinned")


async def test_unknown_channel_names_the_known_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org, server: RelayServer
) -> None:
    path = _server_bundle(org, server, "alice", tmp_path)
    err = await refused_at_start(capsys, tmp_path, path, "harbour")
    assert_one_line_error(err, "unknown channel 'harbour': this credential may join patrol")


@contextlib.asynccontextmanager
async def presence_of(server: RelayServer, org: Org, user: str) -> AsyncIterator[RawClient]:
    """The dispatcher (a raw client, no UDP), subscribed to ``user``'s presence: the server
    adds a radio to a channel's listeners, then tells the subscribers (``PresenceUpdate``
    with that channel), so the update is the event to wait for."""
    watcher = await connect(server, org.accounts["disp"], udp=False)
    try:
        await watcher.send(control.PresenceSubscribe(user_ids=(user,)))
        await watcher.ping()  # subscribed: what follows is news
        yield watcher
    finally:
        await watcher.close()


async def test_scripted_radio_talks_texts_and_raises_an_emergency_to_another_radio(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org, server: RelayServer
) -> None:
    sample, other = sample_paths()[0], sample_paths()[1]
    heard = tmp_path / "bob-heard"
    async with presence_of(server, org, "bob") as watcher:
        bob = asyncio.create_task(
            asyncio.to_thread(
                main,
                [
                    "--credential",
                    _server_bundle(org, server, "bob", tmp_path),
                    "--channel",
                    "patrol",
                    "--output",
                    str(heard),
                    "--no-udp",  # and bob's media goes through the WebSocket tunnel
                    "--script",
                    "quit 9",
                ],
            )
        )
        await watcher.wait_for(
            control.PresenceUpdate, lambda p: p.channel_id == org.channel_id, timeout=20
        )
    alice_code = await asyncio.to_thread(
        main,
        [
            "--credential",
            _server_bundle(org, server, "alice", tmp_path),
            "--channel",
            "patrol",
            "--input",
            str(sample),
            "--output",
            str(tmp_path / "alice-heard"),
            "--position",
            "48.8566,2.3522",
            "--script",
            "status on_scene 0; text 0.1 channel 'on scene, north gate'; talk 0.3 5;"
            " emergency 3; cancel 4.5; quit 5",
        ],
    )
    bob_code = await bob
    out, err = capsys.readouterr()
    assert (alice_code, bob_code) == (0, 0), (out, err)
    assert err == ""
    assert "text from alice on patrol: on scene, north gate" in out
    assert "EMERGENCY: alice on patrol" in out
    assert "emergency cancelled by alice" in out
    assert "failed" not in out, out
    # One WAV per burst: the talk, then the emergency talk (cut short by the cancel).
    bursts = sorted(heard.glob("*.wav"))
    assert len(bursts) == 2, bursts
    assert all(re.fullmatch(r"\d{8}-\d{6}_patrol_alice(-\d+)?\.wav", p.name) for p in bursts)
    received = load_wav(bursts[0])
    same, different = similarity(load_wav(sample), received), similarity(load_wav(other), received)
    # Opus at 20 kbit/s scores ~0.82 against its source when nothing is lost, a different
    # sample ~0.05; a loaded machine may conceal a few late frames, so leave a margin.
    assert same > 0.6, same
    assert same > different + 0.4, (same, different)
    # The emergency burst is the same sample from its start, cut by the cancel 1.5 s in.
    assert 0.5 < len(load_wav(bursts[1])) / 48_000 < 1.9


class Terminal:
    """The master side of a pty: what the radio printed, and keys to type."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.text = ""
        self._changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EIO: the radio closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.text += data.decode(errors="replace")
        self._changed.set()

    async def shows(self, fragment: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while fragment not in self.text:
                self._changed.clear()
                await self._changed.wait()

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


async def test_interactive_radio_in_a_terminal(
    tmp_path: Path, org: Org, server: RelayServer
) -> None:
    bob = RadioClient(
        org.bundle("bob", server), DeviceKeys.import_(org.bundle("bob", server).device_keys)
    )
    await bob.start()
    await bob.wait_connected()
    await bob.wait_for(events.KeysUpdated, lambda e: e.epoch == 1)
    await bob.affiliate(org.channel_id)
    await bob.wait_for(control.Affiliated)
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    radio = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ptt_client.radio",
        "--credential",
        _server_bundle(org, server, "alice", tmp_path),
        "--channel",
        "patrol",
        "--input",
        str(sample_paths()[0]),
        "--output",
        str(tmp_path / "alice-heard"),
        stdin=slave,
        stdout=slave,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    terminal = Terminal(master)
    try:
        await terminal.shows("q: quit")
        await terminal.shows("patrol | idle | udp | loss - | available")

        terminal.type("m")
        await terminal.shows("message to patrol> ")
        terminal.type("hello from the car\r")
        text = await bob.wait_for(events.TextReceived)
        assert (text.from_user, text.text) == ("alice", "hello from the car")

        terminal.type("s")
        await terminal.shows("| busy")

        terminal.type(" ")  # PTT on: alice talks from her WAV file
        taken = await bob.wait_for(control.FloorTaken)
        assert taken.user_id == "alice"
        await terminal.shows("patrol | TX")
        frame = await bob.wait_for(events.VoiceFrame)
        assert frame.talker == "alice"
        terminal.type(" ")  # PTT off before the file ends
        await bob.wait_for(control.FloorIdle)

        # Bob talks: alice's line shows him, verified once his burst signature checks.
        talk = asyncio.create_task(Transmitter(bob).talk(WavFileInput(sample_paths()[1])))
        await terminal.shows("RX Bob Brown verified")
        assert (await talk).outcome == "granted"

        terminal.type("q")
        async with asyncio.timeout(10):
            assert await radio.wait() == 0
        # The radio put the terminal back as it found it.
        assert termios.tcgetattr(slave) == before
    finally:
        if radio.returncode is None:
            radio.kill()
            await radio.wait()
        terminal.close()
        os.close(slave)
        await bob.stop()
    assert radio.stderr is not None
    assert await radio.stderr.read() == b""
