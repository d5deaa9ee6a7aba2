"""``ptt-radio``: startup errors are one line and exit 2; the keypad and status line; and two
scripted radios talking through a real server.

``main()`` runs in-process. Where a server is needed it runs on the test's event loop and
``main()`` (which starts its own loop) in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import signal
import socket
import sys
import termios
import time
import typing
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crypto.bundle import CredentialBundle
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import WavFileInput, load_wav
from ptt_client.client import RadioClient
from ptt_client.radio import StatusView, main, status_line
from ptt_client.radio.keys import (
    CALL_PROMPT,
    EMERGENCY_CALL_PROMPT,
    KEY_BINDINGS,
    KEY_HELP,
    CallKey,
    CancelEmergency,
    Compose,
    ComposeCancelled,
    CycleStatus,
    Keypad,
    PlaceCall,
    Quit,
    RaiseEmergency,
    SelectChannel,
    SendText,
    TogglePtt,
)
from ptt_client.samples import sample_paths
from ptt_client.script import SCRIPT_EXAMPLE, SCRIPT_STEPS, ScriptError, Step, parse_script
from ptt_client.voice import Transmitter
from ptt_protocol import control
from ptt_server.server import RelayServer
from tests.credentials import bundle_for
from tests.orgfixture import Org
from tests.ptt_client.speech import similarity
from tests.ptt_server.rawclient import RawClient, connect


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("ptt-radio: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        ([], ["--credential FILE is required"]),
        (["--credential", "x.bundle"], ["--channel NAME is required"]),
        (["--bogus"], ["unrecognized arguments: --bogus", "see ptt-radio --help"]),
        (["--frame-ms", "ten"], ["argument --frame-ms: invalid int value: 'ten'"]),
        (
            ["--credential", "x", "--channel", "p", "--frame-ms", "30"],
            ["--frame-ms 30: use one of 10, 20, 40, 60"],
        ),
        (
            ["--credential", "x", "--channel", "p", "--gps", "h:1", "--position", "1,2"],
            ["argument --position: not allowed with argument --gps"],
        ),
        (
            ["--credential", "x", "--channel", "p", "--position", "95,2"],
            ["latitude must be within"],
        ),
        (["--credential", "x", "--channel", "p", "--gps", "host:port"], ["--gps 'host:port'"]),
        (
            ["--credential", "x", "--channel", "p", "--server", "https://h:1"],
            ["--server 'https://h:1': expected wss://HOST:PORT"],
        ),
        (
            ["--credential", "x", "--channel", "p", "--script", "talk 1; quit 2"],
            ["--script: step 1 `talk 1`: expected `talk START DURATION`"],
        ),
        (
            ["--credential", "x", "--channel", "p", "--input", "nowhere.wav"],
            ["--input 'nowhere.wav': no such file"],
        ),
    ],
)
def test_argument_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, *fragments)


def test_call_settings_are_checked_at_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad call input or FIELDRADIO_ICE_HOSTS stops the radio at once, not at the first call."""
    start = ("--credential", "x", "--channel", "p")
    code, _, err = run(capsys, *start, "--call-input", str(tmp_path / "none.wav"))
    assert code == 2
    assert_one_line_error(err, "--call-input", "no such file (give 'mic' or a WAV file)")
    monkeypatch.setenv("FIELDRADIO_ICE_HOSTS", "127.0.0.1,wlan0")
    code, _, err = run(capsys, *start)
    assert code == 2
    assert_one_line_error(err, "FIELDRADIO_ICE_HOSTS=", "'wlan0' is not an IP address")
    code, _, err = run(capsys, *start, "--answer", "sometimes")
    assert code == 2 and "--answer: invalid choice: 'sometimes'" in err


def test_an_input_that_is_not_wav_is_refused_at_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 11: a non-WAV --input failed only at the first press, and the radio exited 0."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio at all\n")
    code, out, err = run(capsys, "--credential", "x", "--channel", "p", "--input", str(notes))
    assert code == 2
    assert out == ""
    assert_one_line_error(err, "--input:", "not a PCM WAV file", "sox")


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "--credential" in out and "--script" in out and "--json" in out


def test_help_explains_every_script_step_and_every_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 11: --help did not explain --script nor the keys. It is made from the tables
    the parser and the keypad use, so it lists each of them."""
    code, out, _ = run(capsys, "--help")
    assert code == 0
    words = " ".join(out.split())  # help wraps long lines
    assert "defined in ptt_client/script.py" in words
    for step in SCRIPT_STEPS:
        assert f"{step.usage} {step.help}" in words, step
    assert f'e.g. --script "{SCRIPT_EXAMPLE}"' in out
    for binding in KEY_BINDINGS:
        assert f"{binding.label} {binding.help}" in words, binding
    assert (
        KEY_HELP
        == "space: talk  1-9: channel  s: status  e: emergency  i: peril  c: cancel  m: text"
        "  d: call  u: urgent call  a: answer  r: refuse  h: hang up  q: quit"
    )


def test_the_help_tables_cover_the_language_and_the_keypad() -> None:
    """A step or a key added without a row in the table would be missing from --help."""
    assert {step.kind for step in SCRIPT_STEPS} == set(typing.get_args(Step))
    assert parse_script(SCRIPT_EXAMPLE)
    for step in SCRIPT_STEPS:  # the usage line is the syntax the parser checks
        with pytest.raises(ScriptError, match=re.escape(f"expected `{step.usage}`")):
            parse_script(f"{step.name} 1 2 3 4 5")
    bound = {key for binding in KEY_BINDINGS for key in binding.keys}
    for code_point in range(32, 127):
        key = chr(code_point)
        pressed = Keypad().press(key)
        assert (pressed is not None) == (key.lower() in bound), repr(key)


def test_list_devices_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--list-devices")
    assert code == 0
    assert err == ""
    # Either devices ("0: name (1 in, 2 out)") or the explanation that there are none.
    lines = out.splitlines()
    assert lines
    assert all(": " in line for line in lines) or lines == [
        "no sound devices found (PortAudio sees none): use --input FILE.wav and --output"
    ]


# --- the credential --------------------------------------------------------------------------


def _bundle(
    org: Org, user: str, passphrase: str | None = None, port: int = 7300
) -> CredentialBundle:
    account = org.accounts[user]
    return bundle_for(
        org.root,
        (account.keys, account.credential),
        server_url=f"wss://127.0.0.1:{port}",
        tls_fingerprint="ab" * 32,
        passphrase=passphrase,
    )


def _write(path: Path, bundle: CredentialBundle) -> str:
    path.write_bytes(bundle.to_bytes())
    return str(path)


def test_missing_credential_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nobody.bundle"
    code, _, err = run(
        capsys, "--credential", str(missing), "--channel", "patrol", "--script", "quit 1"
    )
    assert code == 2
    assert_one_line_error(err, f"cannot read credential file '{missing}'", "No such file")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is not a Fieldradio device bundle (the file is empty): use the bundle"),
        (b"\x01garbage", "is not a Fieldradio device bundle (truncated or damaged"),
        (b"\x07" + b"x" * 100, "is not a Fieldradio device bundle (binary data"),
        (b"\x02\x92\x01\x02", "format version 2 is not supported (this program reads 1)"),
        (b"\x01" * 70_000, "is not a Fieldradio device bundle (too large"),
    ],
    ids=["empty", "damaged", "binary", "newer-version", "oversize"],
)
def test_bad_credential_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "bad.bundle"
    path.write_bytes(content)
    code, _, err = run(
        capsys, "--credential", str(path), "--channel", "patrol", "--script", "quit 1"
    )
    assert code == 2
    assert_one_line_error(err, fragment)


async def test_passphrase_errors(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    org: Org,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _write(tmp_path / "alice.bundle", _bundle(org, "alice", passphrase="correct horse"))
    base = ["--credential", path, "--channel", "patrol", "--script", "quit 1"]

    code, _, err = run(capsys, *base)
    assert code == 2
    assert_one_line_error(err, "give the passphrase", "use --passphrase-env VAR")

    monkeypatch.delenv("RADIO_PASS", raising=False)
    code, _, err = run(capsys, *base, "--passphrase-env", "RADIO_PASS")
    assert code == 2
    assert_one_line_error(err, "--passphrase-env RADIO_PASS: that environment variable is not set")

    monkeypatch.setenv("RADIO_PASS", "wrong horse")
    code, _, err = run(capsys, *base, "--passphrase-env", "RADIO_PASS")
    assert code == 2
    assert_one_line_error(err, "wrong passphrase")


async def test_expired_credential(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org
) -> None:
    old = org.issue("alice", not_before=time.time() - 7200, not_after=time.time() - 3600)
    bundle = bundle_for(org.root, (old.keys, old.credential), tls_fingerprint="ab" * 32)
    path = _write(tmp_path / "old.bundle", bundle)
    code, _, err = run(capsys, "--credential", path, "--channel", "patrol", "--script", "quit 1")
    assert code == 2
    assert_one_line_error(err, "expired")


async def test_interactive_mode_needs_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org
) -> None:
    path = _write(tmp_path / "alice.bundle", _bundle(org, "alice"))
    argv = ["--credential", path, "--channel", "patrol", "--output", str(tmp_path / "o")]
    code = await asyncio.to_thread(main, argv)  # main() runs its own event loop
    _, err = capsys.readouterr()
    assert code == 2
    assert_one_line_error(err, "interactive mode needs a terminal on stdin: use --script")


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _radio_process(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ptt_client.radio", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip


async def test_sigterm_stops_a_radio_that_cannot_reach_its_server(tmp_path: Path, org: Org) -> None:
    port = _closed_port()
    path = _write(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
    radio = await _radio_process(
        "--credential", path, "--channel", "patrol",
        "--output", str(tmp_path / "heard"), "--script", "quit 600",
    )  # fmt: skip
    assert radio.stdout is not None and radio.stderr is not None
    try:
        async with asyncio.timeout(20):
            line = (await radio.stdout.readline()).decode()
        # It never had a link: not "lost", but cannot reach, and it says it goes on trying.
        assert (
            f"cannot reach the server at wss://127.0.0.1:{port} (Connection refused): retrying\n"
        ) in line, line
        radio.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await radio.wait() == 3
    finally:
        if radio.returncode is None:
            radio.kill()
            await radio.wait()
    rest = (await radio.stdout.read()).decode()
    assert (
        f"stopped before joining the channel (a signal): the server at wss://127.0.0.1:{port}"
        " never answered"
    ) in rest, rest
    assert "lost" not in line + rest
    assert await radio.stderr.read() == b""


async def test_quit_in_the_script_ends_a_radio_that_cannot_reach_its_server(
    tmp_path: Path, org: Org
) -> None:
    """Issue 11: the script's quit waited for a connection that never came."""
    port = _closed_port()
    path = _write(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
    radio = await _radio_process(
        "--credential", path, "--channel", "patrol", "--output", str(tmp_path / "heard"),
        "--script", "talk 0 2; quit 1.5",
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):  # a guard: it ends on its own at 1.5 s
            out, err = await radio.communicate()
    finally:
        if radio.returncode is None:
            radio.kill()
            await radio.wait()
    assert radio.returncode == 3, (out, err)
    assert err == b""
    lines = out.decode().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(
        f"cannot reach the server at wss://127.0.0.1:{port} (Connection refused): retrying"
    )
    assert lines[1].endswith(
        "stopped before joining the channel (the script's quit at 1.5 s): the server at"
        f" wss://127.0.0.1:{port} never answered"
    ), lines


async def test_a_json_radio_that_cannot_reach_its_server(tmp_path: Path, org: Org) -> None:
    port = _closed_port()
    path = _write(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
    radio = await _radio_process(
        "--credential", path, "--channel", "patrol", "--output", str(tmp_path / "heard"),
        "--json", "--script", "quit 1",
    )  # fmt: skip
    async with asyncio.timeout(30):
        out, err = await radio.communicate()
    assert radio.returncode == 3
    assert err == b""
    told = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["event"] for e in told] == ["unreachable", "stopped"]
    url = f"wss://127.0.0.1:{port}"
    assert told[0]["url"] == url and told[0]["reason"] == "Connection refused"
    assert told[1]["code"] == 3
    assert all(isinstance(e["t"], float) and e["t"] > 1.7e9 for e in told)


# --- against a real server -------------------------------------------------------------------


def _server_bundle(org: Org, server: RelayServer, user: str, tmp_path: Path) -> str:
    return _write(tmp_path / f"{user}.bundle", org.bundle(user, server))


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
    path = _write(tmp_path / "dave.bundle", bundle)
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
    path = _write(tmp_path / "alice.bundle", bundle)
    argv = [
        "--credential",
        path,
        "--channel",
        "patrol",
        "--output",
        str(tmp_path / "o"),
        "--script",
        "quit 1",
    ]
    code = await asyncio.to_thread(main, argv)
    _, err = capsys.readouterr()
    assert code == 2
    assert_one_line_error(err, "login refused", "is not the pinned")


async def test_unknown_channel_names_the_known_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org, server: RelayServer
) -> None:
    path = _server_bundle(org, server, "alice", tmp_path)
    argv = [
        "--credential",
        path,
        "--channel",
        "harbour",
        "--output",
        str(tmp_path / "o"),
        "--script",
        "quit 1",
    ]
    code = await asyncio.to_thread(main, argv)
    _, err = capsys.readouterr()
    assert code == 2
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


# --- keys and the status line ----------------------------------------------------------------


def test_keypad_commands() -> None:
    keypad = Keypad()
    presses = [keypad.press(k) for k in [" ", "3", "0", "s", "e", "c", "x", "Q"]]
    assert presses == [
        TogglePtt(),
        SelectChannel(3),
        None,
        CycleStatus(),
        RaiseEmergency(),
        CancelEmergency(),
        None,
        Quit(),
    ]


def test_keypad_composes_a_text() -> None:
    keypad = Keypad()
    assert keypad.press("m") == Compose("")
    typed = [keypad.press(k) for k in "on scenx"]
    assert typed[-1] == Compose("on scenx")
    assert keypad.press("\x7f") == Compose("on scen")
    assert keypad.press("\x01") is None  # control characters are not typed
    assert keypad.press("q") == Compose("on scenq")  # q is a letter while composing
    assert keypad.press("\x7f") == Compose("on scen")
    assert keypad.press("e") == Compose("on scene")
    assert keypad.press("\r") == SendText("on scene")
    assert keypad.composing is None
    assert keypad.press("q") == Quit()


def test_keypad_escape_or_empty_enter_cancels() -> None:
    keypad = Keypad()
    keypad.press("m")
    keypad.press("a")
    assert keypad.press("\x1b") == ComposeCancelled()
    keypad.press("m")
    keypad.press(" ")
    assert keypad.press("\n") == ComposeCancelled()
    assert keypad.press(" ") == TogglePtt()


def test_keypad_places_calls_and_acts_on_them() -> None:
    """d and u prompt for whom to call (a text prompt: letters are typed, not keys)."""
    keypad = Keypad()
    assert keypad.press("d") == Compose("", CALL_PROMPT)
    typed = [keypad.press(k) for k in "bob half"]
    assert typed[-1] == Compose("bob half", CALL_PROMPT)
    assert keypad.press("\r") == PlaceCall("bob half")
    assert keypad.press("U") == Compose("", EMERGENCY_CALL_PROMPT)
    keypad.press("c")
    assert keypad.press("\n") == PlaceCall("c", emergency=True)
    assert [keypad.press(k) for k in "arh"] == [
        CallKey("answer"),
        CallKey("refuse"),
        CallKey("hangup"),
    ]
    assert keypad.press("m") == Compose("")
    keypad.press("x")
    assert keypad.press("\r") == SendText("x")  # the text prompt is a text prompt again


@pytest.mark.parametrize(
    ("view", "line"),
    [
        (StatusView("patrol", True, "idle"), "patrol | idle | udp | loss - | available"),
        (
            StatusView(
                "patrol",
                True,
                "taken",
                talker="Bob Brown",
                verified=True,
                loss_percent=1.26,
                status="on_scene",
            ),
            "patrol | RX Bob Brown verified | udp | loss 1.3% | on_scene",
        ),
        (
            StatusView("patrol", True, "taken", talker="carol", heard_on="north", media="tunnel"),
            "patrol | RX carol on north | tunnel | loss - | available",
        ),
        (
            StatusView("patrol", True, "taken", talker="Dispatch One", broadcast=True),
            "patrol | RX BROADCAST Dispatch One | udp | loss - | available",
        ),
        (
            StatusView("patrol", True, "granted", transmitting=True),
            "patrol | TX | udp | loss - | available",
        ),
        (
            StatusView("patrol", True, "queued", queue_position=2),
            "patrol | queued #2 | udp | loss - | available",
        ),
        (
            StatusView("patrol", False, "idle", emergency=True),
            "EMERGENCY | patrol | offline, reconnecting | udp | loss - | available",
        ),
    ],
)
def test_status_line(view: StatusView, line: str) -> None:
    assert status_line(view) == line
