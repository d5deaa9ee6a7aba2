"""The shipped systemd unit (deploy/systemd/) parses, runs a real program with flags that
program accepts, and keeps its sandbox.

The unit is read as systemd reads it (sections, ``Key=value`` lines, repeated keys adding up)
and, where ``systemd-analyze`` is installed, verified by systemd itself. Its ``ExecStart``
must name a program of pyproject.toml's ``[project.scripts]`` in a ``make``-built
``.venv/bin``, and every flag it passes is checked against that program's ``--help`` in a
real process (:mod:`tests.program_help`).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pytest

from ptt_server.config import load_config
from tests.program_help import ROOT, command_problems, program_of

UNIT = ROOT / "deploy" / "systemd" / "fieldradio-server.service"
CONFIG = ROOT / "deploy" / "systemd" / "server.toml"
SECTIONS = {"Unit", "Service", "Install"}
PRIVILEGED_PORTS = 1024

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Section -> key -> every value given, in order (systemd.syntax(7): ``#`` and ``;``
    start comments, a trailing backslash continues the line). Anything else is an error."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    lines = iter(enumerate(text.splitlines(), start=1))
    for number, raw in lines:
        line = raw.strip()
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines, (number, ""))[1].strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        key, equals, value = line.partition("=")
        assert equals and section is not None, f"line {number} is not Key=value: {raw!r}"
        section[key.strip()].append(value.strip())
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text())


def one(unit: Unit, section: str, key: str) -> str:
    """The value of a key systemd reads once (the last assignment wins)."""
    values = unit[section].get(key)
    assert values, f"[{section}] has no {key}="
    return values[-1]


def exec_start(unit: Unit) -> list[str]:
    return shlex.split(one(unit, "Service", "ExecStart"))


def flag_value(words: list[str], flag: str) -> str | None:
    for index, word in enumerate(words):
        if word == flag and index + 1 < len(words):
            return words[index + 1]
        if word.startswith(flag + "="):
            return word.partition("=")[2]
    return None


def test_the_unit_parses_into_known_sections(unit: Unit) -> None:
    assert set(unit) == SECTIONS
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_exec_start_runs_a_console_script_with_flags_it_accepts(unit: Unit) -> None:
    words = exec_start(unit)
    program = PurePosixPath(words[0])
    assert program.is_absolute(), "systemd wants an absolute ExecStart path"
    assert program_of(words) == "ptt-server", f"{program.name} is not in [project.scripts]"
    assert program.parent.parts[-2:] == (".venv", "bin"), "make puts the programs in .venv/bin"
    # ProtectHome=yes hides these from the service.
    assert program.parts[1] not in ("home", "root"), program
    assert command_problems(words) == []


def test_the_data_dir_is_the_state_directory(unit: Unit) -> None:
    words = exec_start(unit)
    state = one(unit, "Service", "StateDirectory")
    assert flag_value(words, "--data-dir") == f"/var/lib/{state}"
    assert one(unit, "Service", "StateDirectoryMode") == "0700"


def test_the_shipped_config_loads_and_leaves_the_data_dir_to_the_unit() -> None:
    config = load_config(CONFIG)  # the server's own loader: unknown keys are refused
    assert config.data_dir == "", "the unit passes --data-dir; a data_dir here would be ignored"
    assert config.public_host, "the certificate and UDP need the name radios use"


def test_the_sandbox_is_there(unit: Unit) -> None:
    service = unit["Service"]
    dynamic = service.get("DynamicUser", ["no"])[-1] == "yes"
    assert dynamic or service.get("User", ["root"])[-1] not in ("root", "0"), "a dedicated user"
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "RestrictNamespaces": "yes",
        "Restart": "on-failure",
    }
    assert {key: one(unit, "Service", key) for key in expected} == expected
    assert set(" ".join(service["RestrictAddressFamilies"]).split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
    }
    assert "@system-service" in service["SystemCallFilter"][0].split()
    assert int(one(unit, "Service", "LimitNOFILE")) >= 16384, "one descriptor per radio"


def test_no_capability_unless_a_port_needs_it(unit: Unit) -> None:
    words = exec_start(unit)
    assert PurePosixPath(flag_value(words, "--config") or "").name == CONFIG.name
    config = load_config(CONFIG)  # what the install step copies to /etc/fieldradio
    listen = flag_value(words, "--listen")
    ports = [
        int(listen.rpartition(":")[2]) if listen else config.listen_port,
        int(flag_value(words, "--media-port") or config.media_port),
    ]
    bounding = one(unit, "Service", "CapabilityBoundingSet")
    ambient = unit["Service"].get("AmbientCapabilities", [""])[-1]
    if min(ports) < PRIVILEGED_PORTS:
        assert bounding == ambient == "CAP_NET_BIND_SERVICE"
        assert unit["Service"].get("PrivateUsers", ["no"])[-1] == "no"
    else:
        assert bounding == ambient == "", f"ports {ports} need no capability"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd's own parser: an unknown key or section, a bad value, a missing executable.
    The unit's program lives in /opt, not on a build machine: the copy runs this
    interpreter instead (its path and flags are checked above)."""
    words = exec_start(parse_unit(UNIT.read_text()))
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text().replace(f"ExecStart={words[0]} ", f"ExecStart={sys.executable} ")
    )
    assert copy.read_text() != UNIT.read_text()
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    about_ours = [
        line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line
    ]
    assert result.returncode == 0 and not about_ours, result.stdout + result.stderr
