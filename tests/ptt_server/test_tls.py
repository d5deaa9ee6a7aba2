"""The server's TLS pair on disk (ptt_server.tls): made private, never made over a kept half."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from ptt_server import tls


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert tls.ensure_self_signed(cert, key, ["127.0.0.1", "radio.example.org"])
    return cert, key


def test_a_new_pair_is_private_and_matches(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    assert mode_of(cert.parent) == 0o700
    assert mode_of(key) == 0o600
    assert tls.check_pair(cert, key) is False  # both there, and the key is the certificate's
    tls.server_context(cert, key)
    assert not tls.ensure_self_signed(cert, key, [])  # kept, not remade


@pytest.mark.parametrize("lost", ["cert.pem", "key.pem"])
def test_half_a_pair_is_refused_and_nothing_is_made(pair: tuple[Path, Path], lost: str) -> None:
    directory = pair[0].parent
    (directory / lost).unlink()
    kept = next(p for p in pair if p.name != lost)
    before = digest(kept)
    with pytest.raises(tls.TLSFilesError) as info:
        tls.ensure_self_signed(*pair, [])
    message = str(info.value)
    assert lost in message and kept.name in message
    assert "backup" in message and "move both away" in message and "new bundle" in message
    assert "\n" not in message
    assert digest(kept) == before
    assert sorted(p.name for p in directory.iterdir()) == [kept.name]


def test_a_key_of_another_pair_is_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = pair
    other_cert, other_key = tmp_path / "other" / "cert.pem", tmp_path / "other" / "key.pem"
    tls.ensure_self_signed(other_cert, other_key, [])
    os.replace(other_key, key)
    with pytest.raises(tls.TLSFilesError, match="does not belong to the certificate"):
        tls.ensure_self_signed(cert, key, [])


def test_a_configured_pair_that_is_missing_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(tls.TLSFilesError, match="tls_cert and tls_key"):
        tls.check_pair(tmp_path / "nope.pem", tmp_path / "nope.key")


def test_a_key_file_that_is_a_dangling_link_is_not_written_through(tmp_path: Path) -> None:
    """Key material goes only into a file this call creates (O_EXCL): never through a link
    someone left in its place, which would put the key wherever the link points."""
    directory = tmp_path / "tls"
    directory.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "stolen.pem"
    target.parent.mkdir()
    (directory / "key.pem").symlink_to(target)
    with pytest.raises(tls.TLSFilesError):
        tls.ensure_self_signed(directory / "cert.pem", directory / "key.pem", [])
    assert not target.exists()
    assert not (directory / "cert.pem").exists()


def test_a_loose_key_and_directory_are_narrowed(pair: tuple[Path, Path]) -> None:
    cert, key = pair
    os.chmod(key, 0o644)
    os.chmod(key.parent, 0o755)
    before = digest(key)
    assert not tls.ensure_self_signed(cert, key, [])
    assert (mode_of(key), mode_of(key.parent)) == (0o600, 0o700)
    assert digest(key) == before
