"""Reading a bundle file for ptt-radio and ptt-dispatch: a file that is no bundle says so in
one line that ends with what to use instead; the console refuses an officer's bundle."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from crypto.bundle import MAX_BUNDLE_BYTES
from crypto.identity import OrgRoot, Role
from ptt_client.bundle_file import USE_INSTEAD, check_console_bundle, read_bundle_file
from ptt_client.errors import BundleFileError
from ptt_client.samples import sample_paths
from tests.credentials import bundle_for, issue

_ROOT = OrgRoot.generate()
_OFFICER = bundle_for(_ROOT, issue(_ROOT, "o.blanc", display_name="Odile Blanc", serial=7))
_DISPATCHER = bundle_for(_ROOT, issue(_ROOT, "disp", Role.DISPATCHER, serial=8))


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "radio.bundle"
    path.write_bytes(data)
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(BundleFileError) as refused:
        read_bundle_file(path)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_bundle_reads_back(tmp_path: Path) -> None:
    assert read_bundle_file(_file(tmp_path, _OFFICER.to_bytes())) == _OFFICER


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "the file is empty"),
        (b"ptt-radio --channel patrol\n", "a text file: 'ptt-radio --channel patrol'"),
        (sample_paths()[0].read_bytes(), "a WAV audio file"),
        (bytes(range(200, 256)) * 3, "binary data of an unknown kind"),
        (_OFFICER.to_bytes()[:900], "truncated or damaged"),
        (b"\x01" + b"\x00" * (2 * MAX_BUNDLE_BYTES), "too large: more than 16 KB"),
    ],
    ids=["empty", "text", "wav", "random", "truncated", "huge"],
)
def test_a_file_that_is_no_bundle_says_what_it_is(tmp_path: Path, data: bytes, what: str) -> None:
    path = _file(tmp_path, data)
    message = _refusal(path)
    assert message.startswith(f"'{path}' is not a Fieldradio device bundle ({what}"), message
    assert message.endswith(f"): {USE_INSTEAD}"), message
    assert "format version" not in message


def test_a_bundle_of_a_newer_format_says_the_version(tmp_path: Path) -> None:
    newer = b"\x02" + msgspec.msgpack.encode(["a", "future", "bundle", b"\x00" * 64])
    message = _refusal(_file(tmp_path, newer))
    assert "format version 2 is not supported (this program reads 1)" in message
    assert "not a Fieldradio device bundle" not in message


def test_an_unreadable_file(tmp_path: Path) -> None:
    assert "cannot read credential file" in _refusal(tmp_path / "nobody.bundle")
    assert "Is a directory" in _refusal(tmp_path)


def test_the_console_refuses_an_officer_bundle_and_says_which_to_use() -> None:
    check_console_bundle(_DISPATCHER, Path("disp.bundle"), "ptt-dispatch")  # no error
    with pytest.raises(BundleFileError) as refused:
        check_console_bundle(_OFFICER, Path("o.blanc.bundle"), "ptt-dispatch")
    message = str(refused.value)
    assert message.startswith(
        "'o.blanc.bundle' is the bundle of officer 'o.blanc' (Odile Blanc): ptt-dispatch needs"
        " a dispatcher's bundle"
    ), message
    assert "`ptt-admin enroll NAME --role dispatcher`" in message
    assert "give o.blanc's bundle to ptt-radio" in message
