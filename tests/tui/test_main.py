"""``ptt-dispatch`` command line: bad input gets a clear message and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from crypto.identity import DeviceKeys
from tests.tui.org import make_bundle
from tui.app import main


def write_bundle(tmp_path: Path, passphrase: str | None) -> Path:
    bundle = make_bundle("disp", "Dispatch One")
    if passphrase is not None:
        keys = DeviceKeys.import_(bundle.device_keys, None)
        bundle = msgspec.structs.replace(
            bundle, device_keys=keys.export(passphrase, scrypt_n=2**10)
        )
    path = tmp_path / "disp.bundle"
    path.write_bytes(bundle.to_bytes())
    return path


def test_missing_credential_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--credential", str(tmp_path / "nope.bundle")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_damaged_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.bundle"
    path.write_bytes(b"\x01garbage")
    assert main(["--credential", str(path)]) == 2
    assert "is not a Fieldradio device bundle (truncated or damaged" in capsys.readouterr().err


def test_wrong_or_missing_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_bundle(tmp_path, "right horse battery")
    monkeypatch.delenv("PTT_PASSPHRASE", raising=False)
    assert main(["--credential", str(path)]) == 2
    assert "(set PTT_PASSPHRASE?)" in capsys.readouterr().err
    monkeypatch.setenv("DISPATCH_SECRET", "wrong")
    assert main(["--credential", str(path), "--passphrase-env", "DISPATCH_SECRET"]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_missing_talk_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_bundle(tmp_path, None)
    assert main(["--credential", str(path), "--talk-file", str(tmp_path / "x.wav")]) == 2
    assert "no WAV file" in capsys.readouterr().err


def test_credential_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "--credential" in capsys.readouterr().err


def test_a_listen_dir_that_cannot_be_made_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bundle(tmp_path, None)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["--credential", str(path), "--listen-dir", str(blocker / "heard")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ptt-dispatch: cannot create {blocker / 'heard'} (")
    assert err.endswith("give a writable directory with --listen-dir\n") and err.count("\n") == 1


def test_help_says_what_the_audio_flags_do() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui.app", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(done.stdout.split())
    assert "--talk-file WAV Space transmits this WAV file" in text
    assert "--listen-dir DIR write every burst heard into DIR, one WAV file each" in text
    assert "fieldradio/heard" in text
    assert "--no-audio open no sound device" in text
