"""``ptt-dispatch`` command line: bad input gets a clear message and exit status 2."""

from __future__ import annotations

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
