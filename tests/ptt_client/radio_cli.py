"""What every ``ptt-radio`` command-line test checks the same way: the one-line form of a startup
error, and a credential bundle written where the radio is told to read it.
"""

from __future__ import annotations

from pathlib import Path

from crypto.bundle import CredentialBundle


def assert_one_line_error(err: str, *fragments: str) -> None:
    """``err`` is one ``ptt-radio: ...`` line, no traceback, naming every fragment."""
    assert err.startswith("ptt-radio: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def write_bundle(path: Path, bundle: CredentialBundle) -> str:
    """Write ``bundle`` to ``path``; the path as the radio's ``--credential`` argument."""
    path.write_bytes(bundle.to_bytes())
    return str(path)
