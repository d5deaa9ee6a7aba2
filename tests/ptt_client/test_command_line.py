"""The command-line pieces ptt-radio, ptt-sim and ptt-admin share: a usage error is an
exception naming the (sub)command, and a passphrase variable that is named but missing (or
empty, where that is refused) is the program's own error, never ``None``."""

from __future__ import annotations

import pytest

from ptt_client.command_line import OneLineParser, UsageError, env_secret


class _ProgramError(Exception):
    pass


def test_a_usage_error_raises_and_names_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OneLineParser(prog="tool")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make").add_argument("name")
    with pytest.raises(UsageError) as caught:
        parser.parse_args(["make"])
    assert caught.value.prog == "tool make"
    assert str(caught.value) == "the following arguments are required: name"
    with pytest.raises(UsageError) as caught:
        parser.parse_args(["--bogus"])
    assert caught.value.prog == "tool"
    assert capsys.readouterr() == ("", "")  # nothing printed: the program prints one line


def test_no_variable_named_is_no_secret() -> None:
    assert env_secret(None, "--passphrase-env", _ProgramError, environ={}) is None


def test_a_set_variable_is_the_secret() -> None:
    environ = {"PASS": "correct horse"}
    assert env_secret("PASS", "--passphrase-env", _ProgramError, environ=environ) == (
        "correct horse"
    )


@pytest.mark.parametrize("allow_empty", [False, True])
def test_a_named_variable_that_is_not_set_is_the_programs_error(allow_empty: bool) -> None:
    with pytest.raises(
        _ProgramError, match=r"^--pass-env PASS: that environment variable is not set$"
    ):
        env_secret("PASS", "--pass-env", _ProgramError, allow_empty=allow_empty, environ={})


def test_an_empty_variable_is_refused_unless_allowed() -> None:
    environ = {"PASS": ""}
    with pytest.raises(_ProgramError, match="PASS: that environment variable is empty"):
        env_secret("PASS", "--pass-env", _ProgramError, environ=environ)
    assert env_secret("PASS", "--pass-env", _ProgramError, allow_empty=True, environ=environ) == ""
