"""``make run``: a small police district on this machine, watched from the dispatcher console.

On the first run it creates a demo organisation in ``demo-data/`` (an admin, a
dispatcher, four officers, three channels), then every run starts the relay
server and four simulated officers who talk from the sample speech on a
schedule (one raises an emergency), and opens the console as the dispatcher.
Quitting the console stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DISPATCHER = ("dispatch", "Dispatch (Sgt. Moreau)")
OFFICERS = (
    ("officer1", "Officer Laurent"),
    ("officer2", "Officer Garnier"),
    ("officer3", "Officer Roux"),
    ("officer4", "Officer Faure"),
)
CHANNELS = {
    "patrol": [DISPATCHER[0]] + [o for o, _ in OFFICERS],
    "traffic": [DISPATCHER[0], "officer1", "officer2"],
    "tactical": [DISPATCHER[0], "officer3", "officer4"],
}
START_TIMEOUT = 20.0


class DemoError(Exception):
    """The demo cannot start; the message says why."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _admin(data_dir: Path, *args: str) -> None:
    """Run ``ptt-admin`` as the operator would (the console never imports the server)."""
    command = [sys.executable, "-m", "ptt_server.admin", "--data-dir", str(data_dir), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DemoError(f"ptt-admin {args[0]} failed: {done.stderr.strip()}")


def prepare_org(data_dir: Path, server_url: str) -> Path:
    """Create the demo organisation once; returns the dispatcher's bundle path."""
    bundles = data_dir / "bundles"
    dispatcher_bundle = bundles / f"{DISPATCHER[0]}.bundle"
    if (data_dir / "org" / "root.pub").exists():
        if not dispatcher_bundle.exists():
            raise DemoError(f"{data_dir} holds another organisation: remove it to start afresh")
        return dispatcher_bundle
    (bundles / "officers").mkdir(parents=True, exist_ok=True)
    _admin(data_dir, "init", "--server-url", server_url)
    _admin(data_dir, "enroll", DISPATCHER[0], "--role", "dispatcher", "--name", DISPATCHER[1],
           "--out", str(dispatcher_bundle))  # fmt: skip
    for user, name in OFFICERS:
        _admin(data_dir, "enroll", user, "--role", "officer", "--name", name,
               "--out", str(bundles / "officers" / f"{user}.bundle"))  # fmt: skip
    for channel, members in CHANNELS.items():
        _admin(data_dir, "channel", "create", channel, "--members", ",".join(members))
    return dispatcher_bundle


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.05
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the server stopped at start: see {log}")
        if not _port_free(port):
            return
        time.sleep(delay)  # polling a child process's port: there is no event to wait on
        delay = min(delay * 2, 0.5)
    raise DemoError(f"the server did not open port {port} within {START_TIMEOUT:g} s: see {log}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fieldradio-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path("demo-data"), help="where the demo org lives"
    )
    parser.add_argument(
        "--port", type=int, default=7300, help="control port (media uses the next one)"
    )
    parser.add_argument(
        "--duration", type=float, default=900.0, help="seconds the officers keep talking"
    )
    parser.add_argument("--no-audio", action="store_true", help="do not open a sound device")
    args = parser.parse_args(argv)
    port = args.port if _port_free(args.port) and _port_free(args.port + 1) else _free_port()
    media_port = port + 1 if _port_free(port + 1) else _free_port()
    server_url = f"wss://127.0.0.1:{port}"
    data_dir: Path = args.data_dir.resolve()
    try:
        dispatcher_bundle = prepare_org(data_dir, server_url)
    except (DemoError, OSError) as exc:
        print(f"demo: cannot create the demo organisation: {exc}", file=sys.stderr)
        return 2
    server_log = data_dir / "server.log"
    sim_log = data_dir / "officers.log"
    server: subprocess.Popen[bytes] | None = None
    officers: subprocess.Popen[bytes] | None = None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        with server_log.open("ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "ptt_server.cli", "--data-dir", str(data_dir),
                 "--listen", f"127.0.0.1:{port}", "--media-port", str(media_port)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        _wait_for_port(port, server, server_log)
        with sim_log.open("ab") as out:
            officers = subprocess.Popen(
                [sys.executable, "-m", "ptt_client.sim",
                 "--bundles", str(data_dir / "bundles" / "officers"), "--officers", str(len(OFFICERS)),
                 "--channel", "patrol", "--server", server_url, "--duration", str(args.duration),
                 "--talk-every", "12", "--emergency", "officer2", "45"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        from tui.app import main as console

        console_args = ["--credential", str(dispatcher_bundle), "--server", server_url]
        if args.no_audio:
            console_args.append("--no-audio")
        return console(console_args)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            _stop(officers)
        with contextlib.suppress(Exception):
            _stop(server)


if __name__ == "__main__":
    raise SystemExit(main())
