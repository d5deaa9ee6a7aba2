"""``ptt-server`` as operators run it: config errors, flags, and a real process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crypto.identity import DeviceKeys
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.cli import build_parser, config_from_args, main
from ptt_server.config import ConfigError, ServerConfig, load_config
from tests.orgfixture import Org


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config == ServerConfig()
    assert config.listen_port == 7300 and config.media_port == 7301


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage ===", "not valid TOML"),
        ('[server]\nlisten_port = "abc"\n', "listen_port"),
        ("[server]\nlisten_prot = 7300\n", "listen_prot"),
        ("[server]\nlisten_port = 70000\n", "listen_port = 70000"),
        ("[server]\nheartbeat_interval = 30\nidle_timeout = 10\n", "idle_timeout"),
        ('[server]\ntls_cert = "a.pem"\n', "tls_key"),
        ("[server]\nrate_emergency_per_s = 0\n", "rate_emergency_per_s"),
        ("[server]\nrate_emergency_burst = 0\n", "rate_emergency_burst"),
        ("[server]\nmax_pending_logins = 0\n", "max_pending_logins = 0"),
        ("[server]\nlogin_timeout = 0\n", "login_timeout"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[server]\nlisten_port = 8000\nmedia_port = 8001\ndata_dir = "/srv/a"\n')
    args = build_parser().parse_args(
        ["--config", str(path), "--listen", "127.0.0.1:9000", "--data-dir", str(tmp_path)]
    )
    config = config_from_args(args)
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9000)
    assert config.media_port == 8001
    assert config.data_dir == str(tmp_path)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """main() installs a stderr handler on the root logger: put the old ones back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_missing_organisation_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "ptt-admin" in err and "init" in err and len(err.strip().splitlines()) == 1


async def test_a_real_server_process_says_goodbye_to_clients_on_sigterm(org: Org) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ptt_server.cli", "--data-dir", str(org.data_dir),
        "--listen", "127.0.0.1:0", "--media-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            banner = (await process.stdout.readline()).decode()
        assert "certificate sha256" in banner, banner
        port = int(banner.split("wss://")[1].split()[0].rsplit(":", 1)[1])

        class _Server:  # all Org.bundle needs to know of the server
            control_port = port

        bundle = org.bundle("alice", _Server)  # type: ignore[arg-type]
        client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))
        await client.start()
        await client.wait_connected(10)
        process.send_signal(signal.SIGTERM)
        goodbye = await client.wait_for(control.Goodbye, timeout=10)
        assert "shutting down" in goodbye.reason
        await client.stop()
        async with asyncio.timeout(15):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
