"""``ptt-radio`` at start: argument, call-setting, input and credential errors are one line and
exit 2; a radio that cannot reach its server still stops on SIGTERM, on ``quit`` in its script
and in ``--json`` mode.

``main()`` runs in-process, or the radio runs as its own process where a signal is sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sys
import time
import typing
from pathlib import Path

import pytest

from crypto.bundle import CredentialBundle
from ptt_client.radio import main
from ptt_client.radio.keys import (
    KEY_BINDINGS,
    KEY_HELP,
    Keypad,
)
from ptt_client.script import SCRIPT_EXAMPLE, SCRIPT_STEPS, ScriptError, Step, parse_script
from tests.credentials import bundle_for
from tests.orgfixture import Org
from tests.ptt_client.radio_cli import assert_one_line_error, write_bundle


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


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
    path = write_bundle(
        tmp_path / "alice.bundle", _bundle(org, "alice", passphrase="correct horse")
    )
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
    path = write_bundle(tmp_path / "old.bundle", bundle)
    code, _, err = run(capsys, "--credential", path, "--channel", "patrol", "--script", "quit 1")
    assert code == 2
    assert_one_line_error(err, "expired")


async def test_interactive_mode_needs_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, org: Org
) -> None:
    path = write_bundle(tmp_path / "alice.bundle", _bundle(org, "alice"))
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
    path = write_bundle(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
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
    path = write_bundle(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
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
    path = write_bundle(tmp_path / "alice.bundle", _bundle(org, "alice", port=port))
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
