"""The layering promised in STYLE.md, checked at run time as well as by import-linter."""

import subprocess
import sys

IO_FRAMEWORKS = ("asyncio", "websockets", "textual", "pyaudio", "aiortc", "uvloop", "sqlite3")


def _modules_after_import(package: str) -> set[str]:
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_protocol_and_crypto_load_no_io_framework() -> None:
    for package in ("ptt_protocol", "crypto"):
        loaded = _modules_after_import(package)
        leaked = sorted(m for m in loaded if m.split(".")[0] in IO_FRAMEWORKS)
        assert not leaked, f"{package} pulls in I/O frameworks: {leaked}"


def test_console_model_loads_no_io_framework_and_no_widgets() -> None:
    """``tui.state`` is the console's pure model: driven by events and ``now``, nothing else."""
    loaded = _modules_after_import("tui.state")
    leaked = sorted(
        m
        for m in loaded
        if m.split(".")[0] in IO_FRAMEWORKS
        or m.startswith(("tui.app", "tui.screens", "tui.widgets"))
    )
    assert not leaked, f"tui.state pulls in I/O frameworks or the Textual side: {leaked}"


def test_the_radios_session_core_loads_no_io_framework() -> None:
    """``ptt_client.session_core`` (and the floor view it holds) decide what the radio does
    with every control message: pure, like the relay's session core."""
    code = "import sys, ptt_client.session_core\nprint('\\n'.join(sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(out.stdout.split())
    leaked = sorted(
        m
        for m in loaded
        if m.split(".")[0] in IO_FRAMEWORKS
        or m in ("ptt_client.client", "ptt_client.e2e", "ptt_client.media_path")
    )
    assert not leaked, f"ptt_client.session_core pulls in I/O: {leaked}"
