"""The command lines in the guides use only what the programs accept, so the guides cannot drift.

Every ```` ```sh ```` command of docs/operations.md (and of the READMEs) that runs
``ptt-admin``, ``ptt-server``, ``ptt-radio`` or ``ptt-dispatch`` is walked through the
``--help`` of the program and of each subcommand it names, each in a real process
(:mod:`tests.program_help`). Commands shown as output, in comments, are not checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.program_help import (
    ROOT,
    ShellCommand,
    command_problems,
    program_of,
    scripts,
    shell_commands,
)

GUIDE = ROOT / "docs" / "operations.md"
DOCUMENTS = (GUIDE, ROOT / "README.md", ROOT / "deploy" / "systemd" / "README.md")


def _program_commands(document: Path) -> list[ShellCommand]:
    return [c for c in shell_commands(document.read_text()) if program_of(c.words)]


COMMANDS = [(document, c) for document in DOCUMENTS for c in _program_commands(document)]


def test_the_guide_shows_every_program() -> None:
    """The parser finds the guide's commands: a change of fence or layout that hid them
    would otherwise leave the other tests with nothing to check."""
    shown = {program_of(c.words) for c in _program_commands(GUIDE)}
    assert shown == set(scripts()), f"the guide's ```sh blocks run only {sorted(map(str, shown))}"
    assert len(_program_commands(GUIDE)) >= 20


@pytest.mark.parametrize(
    ("document", "command"),
    COMMANDS,
    ids=[f"{d.name}:{c.line}:{' '.join(c.words[:3])}" for d, c in COMMANDS],
)
def test_command_uses_only_accepted_flags_and_subcommands(
    document: Path, command: ShellCommand
) -> None:
    problems = command_problems(command.words)
    assert not problems, f"{document.relative_to(ROOT)} line {command.line}: " + "; ".join(problems)


# The checker itself, on command lines known to be wrong: it must be able to say so.


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("ptt-admin", "enroll", "o.petit", "--rol", "officer"), "has no option --rol"),
        (("ptt-admin", "chanel", "list"), "has no command 'chanel'"),
        (("ptt-admin", "channel", "rename", "a", "b"), "has no command 'rename'"),
        (("ptt-admin", "--passphrase-env", "ORG_PASS"), "needs one of its commands"),
        # A parent's option after the subcommand is refused by argparse too.
        (("ptt-admin", "users", "--admin-dir", "/tmp/a"), "has no option --admin-dir"),
        (("ptt-server", "--datadir", "/srv/fieldradio"), "has no option --datadir"),
        (("ptt-radio", "--credential", "a.bundle", "--channels", "patrol"), "no option --channels"),
        (("ptt-dispatch", "--credential", "a.bundle", "--monitors", "x"), "no option --monitors"),
    ],
)
def test_a_wrong_command_line_is_caught(words: tuple[str, ...], expected: str) -> None:
    problems = command_problems(words)
    assert any(expected in p for p in problems), problems


def test_values_are_not_taken_for_commands() -> None:
    """``--passphrase-env ORG_PASS`` takes ORG_PASS as its value, not as a subcommand, and a
    flag's value that looks like a flag's name is skipped with it."""
    words = ("ptt-admin", "--passphrase-env", "ORG_PASS", "channel", "create", "patrol")
    assert command_problems((*words, "--members", "a,b")) == []
    assert command_problems(("ptt-radio", "--channel", "--scan", "--no-udp")) == []


def test_shell_commands_are_split_as_the_shell_would() -> None:
    text = "\n".join(
        [
            "Text with `ptt-admin users` inline is not a command.",
            "```sh",
            "read -rs X && export X    # ptt-admin in a comment",
            "FOO=1 ptt-admin --passphrase-env X enroll a --role officer --name 'A B' \\",
            "    --out a.bundle --plain-bundle",
            "# ptt-server: control wss://radio.example.org:7300 (output)",
            "ptt-radio --script 'talk 1 3; quit 5' --channel p; .venv/bin/ptt-server --help",
            "```",
            "   ```sh",
            "   ptt-admin users",
            "   ```",
        ]
    )
    found = [(c.line, c.words) for c in shell_commands(text) if program_of(c.words)]
    assert found == [
        (4, ("ptt-admin", "--passphrase-env", "X", "enroll", "a", "--role", "officer",
             "--name", "A B", "--out", "a.bundle", "--plain-bundle")),
        (7, ("ptt-radio", "--script", "talk 1 3; quit 5", "--channel", "p")),
        (7, (".venv/bin/ptt-server", "--help")),
        (10, ("ptt-admin", "users")),
    ]  # fmt: skip
