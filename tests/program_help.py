"""The programs of ``[project.scripts]`` as their own ``--help`` describes them.

Documents and deploy files show command lines (``docs/operations.md``, the systemd unit);
the tests that keep them true use this module. :func:`usage` runs one program's (or one
subcommand's) ``--help`` in a real process, started the way the installed console script
starts it (the entry point pyproject.toml names, so a stale script in ``.venv/bin`` cannot
hide a change), and reads from it the options and subcommands it accepts.
:func:`command_problems` walks a command line through those, subcommand by subcommand, as
argparse would, and says what it does not accept. :func:`shell_commands` finds the command
lines in the ```` ```sh ```` blocks of a Markdown file.

What is read from argparse's help: in ``options:``, each ``-x, --long VALUE`` line (a word
after the flag means the flag takes a value); in ``positional arguments:``, the
subcommands argparse lists under a subparser's metavar, indented by four spaces (or a
``{a,b}`` choice list). Positional arguments that are not subcommands are accepted as they
come; required options and value syntax are the program's own tests' business.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout the tests run from."""

HELP_TIMEOUT = 120.0
"""A cold interpreter importing Textual on two shared cores; not a performance bound."""

_OPERATORS = frozenset({"&&", "||", ";", "|", "&"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@functools.cache
def scripts() -> Mapping[str, str]:
    """``[project.scripts]`` of pyproject.toml: program name -> ``module:function``."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        table: dict[str, str] = tomllib.load(file)["project"]["scripts"]
    return table


@dataclass(frozen=True)
class Usage:
    """What one (sub)command's ``--help`` says it accepts."""

    options: Mapping[str, bool]
    """Every flag (``-h`` and ``--help`` alike) -> whether it takes a value."""
    commands: frozenset[str]
    """Its subcommands (empty for a command that has none)."""


def parse_help(text: str) -> Usage:
    """The options and subcommands in argparse's help ``text``."""
    options: dict[str, bool] = {}
    commands: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line and not line[0].isspace():
            section = line.rstrip(":") if line.endswith(":") else ""
            continue
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        if not words:
            continue
        if section in ("options", "optional arguments") and indent == 2 and line.lstrip()[0] == "-":
            invocation = re.split(r"\s{2,}", line.strip())[0]
            for variant in invocation.split(", "):
                flag, _, value = variant.partition(" ")
                options[flag] = bool(value)
        elif section == "positional arguments":
            if indent == 4:
                commands.add(words[0])
            elif indent == 2 and words[0].startswith("{"):
                commands.update(words[0].strip("{}").split(","))
    return Usage(options, frozenset(commands))


@functools.cache
def usage(program: str, path: tuple[str, ...] = ()) -> Usage:
    """Run ``program [path...] --help`` through its entry point in a real process and read it."""
    module, _, function = scripts()[program].partition(":")
    start = (
        f"import sys; from {module} import {function} as main;"
        f" sys.argv[0] = {program!r}; sys.exit(main())"
    )
    # Wide lines: argparse wraps at the terminal width, and one option per line reads best.
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-c", start, *path, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=HELP_TIMEOUT,
        check=False,
    )
    shown = " ".join((program, *path))
    assert result.returncode == 0, f"`{shown} --help` failed: {result.stderr.strip()}"
    found = parse_help(result.stdout)
    assert "--help" in found.options, f"`{shown} --help` printed no options:\n{result.stdout}"
    return found


def command_problems(words: Sequence[str]) -> list[str]:
    """What ``program`` in ``words`` (one command line, split as the shell would) does not
    accept: unknown options, unknown subcommands, a missing subcommand. Empty when fine."""
    program = Path(words[0]).name
    path: list[str] = []
    scope = usage(program)
    problems: list[str] = []
    rest = iter(words[1:])
    asked_help = False
    for word in rest:
        here = " ".join((program, *path))
        if word == "--":
            break
        if word.startswith("-") and word != "-":
            flag, equals, _ = word.partition("=")
            asked_help = asked_help or flag in ("-h", "--help")
            if flag not in scope.options:
                known = ", ".join(sorted(scope.options))
                problems.append(f"`{here}` has no option {flag} (its --help lists {known})")
            elif scope.options[flag] and not equals:
                next(rest, None)  # the flag's value
        elif scope.commands:
            if word not in scope.commands:
                known = ", ".join(sorted(scope.commands))
                problems.append(f"`{here}` has no command {word!r} (its --help lists {known})")
                return problems
            path.append(word)
            scope = usage(program, tuple(path))
    if scope.commands and not asked_help:
        known = ", ".join(sorted(scope.commands))
        problems.append(f"`{' '.join((program, *path))}` needs one of its commands: {known}")
    return problems


@dataclass(frozen=True)
class ShellCommand:
    """One command of a ```` ```sh ```` block, split into words as the shell would."""

    line: int
    """Line number of the command's first line in the document (1-based)."""
    words: tuple[str, ...]


_SH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```sh[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)


def shell_commands(text: str) -> Iterator[ShellCommand]:
    """Every simple command in the ```` ```sh ```` blocks of Markdown ``text``: continuation
    lines joined, comments dropped, lists (``&&``, ``;``, ``|``) split into their commands,
    leading ``VAR=value`` assignments removed."""
    for block in _SH_BLOCK.finditer(text):
        first_line = text.count("\n", 0, block.start("body")) + 1
        lines = block.group("body").splitlines()
        index = 0
        while index < len(lines):
            start = index
            logical = lines[index]
            while logical.endswith("\\") and index + 1 < len(lines):
                index += 1
                logical = logical[:-1] + " " + lines[index]
            index += 1
            for words in _simple_commands(logical):
                yield ShellCommand(first_line + start, words)


def _simple_commands(line: str) -> Iterator[tuple[str, ...]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    command: list[str] = []
    for word in [*lexer, ";"]:
        if word in _OPERATORS:
            while command and _ASSIGNMENT.match(command[0]):
                del command[0]
            if command:
                yield tuple(command)
            command = []
        else:
            command.append(word)


def program_of(words: Sequence[str]) -> str | None:
    """The ``[project.scripts]`` program a command runs (by name or path), or None."""
    name = Path(words[0]).name
    return name if name in scripts() else None
