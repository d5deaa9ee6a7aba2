"""``ptt-dispatch`` as a process, given the wrong file: an officer's bundle, or a file that is
no bundle at all. Either is one line on stderr and exit status 2, before any UI opens."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from crypto.identity import Role
from ptt_client.samples import sample_paths
from tests.tui.org import make_bundle

GUARD_S = 30.0
"""Only keeps a broken test from hanging (an opened console would wait for its user)."""


async def dispatch(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.app", *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        async with asyncio.timeout(GUARD_S):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    assert err.startswith("ptt-dispatch: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


async def test_an_officer_bundle_is_refused_at_start(tmp_path: Path) -> None:
    """Issue 11: the console opened with an officer's bundle, then failed at its first job."""
    path = tmp_path / "o.blanc.bundle"
    path.write_bytes(make_bundle("o.blanc", "Odile Blanc", Role.OFFICER).to_bytes())
    code, out, err = await dispatch("--credential", str(path), "--no-audio")
    assert (code, out) == (2, "")
    assert one_line(err) == (
        f"ptt-dispatch: '{path}' is the bundle of officer 'o.blanc' (Odile Blanc): ptt-dispatch"
        " needs a dispatcher's bundle, from `ptt-admin enroll NAME --role dispatcher`"
        " (give o.blanc's bundle to ptt-radio)"
    )


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (sample_paths()[0].read_bytes(), "a WAV audio file"),
        (b"wss://relay.example.org:7300\n", "a text file: 'wss://relay.example.org:7300'"),
    ],
    ids=["wav", "text"],
)
async def test_a_file_that_is_no_bundle_says_so(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "disp.bundle"
    path.write_bytes(content)
    code, out, err = await dispatch("--credential", str(path), "--no-audio")
    assert (code, out) == (2, "")
    assert one_line(err) == (
        f"ptt-dispatch: '{path}' is not a Fieldradio device bundle ({what}): use the bundle"
        " `ptt-admin enroll` wrote for this device"
    )


async def test_a_passphrase_variable_that_is_not_set_is_refused(tmp_path: Path) -> None:
    """As ptt-radio and ptt-admin do: a named variable that is unset is a mistake, not "no
    passphrase" (the console then failed later with a misleading wrong-passphrase error)."""
    path = tmp_path / "disp.bundle"
    path.write_bytes(make_bundle("disp", "Dispatch One").to_bytes())
    code, out, err = await dispatch(
        "--credential", str(path), "--passphrase-env", "FIELDRADIO_TEST_UNSET", "--no-audio"
    )
    assert (code, out) == (2, "")
    assert one_line(err) == (
        "ptt-dispatch: --passphrase-env FIELDRADIO_TEST_UNSET: that environment variable is not set"
    )
