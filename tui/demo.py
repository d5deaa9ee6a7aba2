"""``make run``: a small police district on this machine, watched from the dispatcher console.

Laid out as an operator would (docs/operations.md), all under ``demo-data/``: the org
authority's directory ``authority/`` (``ptt-admin``'s org root and admin keys, kept
unencrypted here because it is a demo), the relay's data directory ``relay/`` (only
``root.pub``, the TLS pair and the database) and the devices' ``bundles/``. The first
run creates the organisation (an admin, a dispatcher, four officers, three channels)
through ``ptt-admin`` over the control plane; every run starts the relay and four
simulated officers who talk from the sample speech on a schedule (one raises an
emergency), and opens the console as the dispatcher. Quitting the console stops
everything it started.

The console writes what it hears and recalls into ``demo-data/heard/`` (one WAV file per
burst), so a machine without a sound card shows everything too; there Space talks from a
bundled speech sample.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


def _admin(authority_dir: Path, *args: str) -> None:
    """Run ``ptt-admin`` as the operator would (the console never imports the relay)."""
    command = [sys.executable, "-m", "ptt_admin.cli", "--admin-dir", str(authority_dir), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DemoError(f"ptt-admin {args[0]} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class DemoDirs:
    """Where the demo's three parties keep their files."""

    root: Path

    @property
    def authority(self) -> Path:
        return self.root / "authority"

    @property
    def relay(self) -> Path:
        return self.root / "relay"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    @property
    def dispatcher_bundle(self) -> Path:
        return self.bundles / f"{DISPATCHER[0]}.bundle"

    @property
    def heard(self) -> Path:
        """The console's listen directory: every burst it hears or recalls, as WAV."""
        return self.root / "heard"


def prepare_authority(dirs: DemoDirs) -> bool:
    """Create the demo's org authority once; True if it is new (enrolment still to do)."""
    if (dirs.authority / "root.pub").exists():
        if not dirs.dispatcher_bundle.exists():
            raise DemoError(
                f"{dirs.root} holds an unfinished organisation: remove it to start afresh"
            )
        return False
    if dirs.root.exists() and any(dirs.root.iterdir()):
        if (dirs.root / "org").exists():
            raise DemoError(
                f"{dirs.root} holds a demo organisation of an older release: remove it to start"
                " afresh"
            )
    _admin(dirs.authority, "init", "--plain-key")
    return True


def tls_fingerprint(cert: Path) -> str:
    """SHA-256 of the certificate's DER bytes, as ``ptt-server`` prints it."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def populate(dirs: DemoDirs, server_url: str) -> None:
    """Pin the running relay, enroll the demo's people and create its channels."""
    fingerprint = tls_fingerprint(dirs.relay / "tls" / "cert.pem")
    _admin(dirs.authority, "pin", server_url, "--tls-fingerprint", fingerprint)
    (dirs.bundles / "officers").mkdir(parents=True, exist_ok=True)
    _admin(dirs.authority, "enroll", DISPATCHER[0], "--role", "dispatcher", "--name",
           DISPATCHER[1], "--out", str(dirs.dispatcher_bundle), "--plain-bundle")  # fmt: skip
    for user, name in OFFICERS:
        _admin(dirs.authority, "enroll", user, "--role", "officer", "--name", name,
               "--out", str(dirs.bundles / "officers" / f"{user}.bundle"), "--plain-bundle")  # fmt: skip
    for channel, members in CHANNELS.items():
        _admin(dirs.authority, "channel", "create", channel, "--members", ",".join(members))


def start_relay(dirs: DemoDirs, port: int, media_port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start ``ptt-server`` on the relay's data directory and wait for its control port."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "ptt_server.cli", "--data-dir", str(dirs.relay),
             "--org-root", str(dirs.authority / "root.pub"),
             "--listen", f"127.0.0.1:{port}", "--media-port", str(media_port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        _wait_for_port(port, server, log)
    except BaseException:
        _stop(server)
        raise
    return server


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


def console_arguments(dirs: DemoDirs, server_url: str, no_audio: bool) -> list[str]:
    """``ptt-dispatch``'s command line: the dispatcher's bundle, the relay, and the listen
    directory (without a microphone the console talks from its sample by itself)."""
    arguments = ["--credential", str(dirs.dispatcher_bundle), "--server", server_url,
                 "--listen-dir", str(dirs.heard)]  # fmt: skip
    return [*arguments, "--no-audio"] if no_audio else arguments


def audio_summary(dirs: DemoDirs, no_audio: bool, devices: tuple[bool, bool]) -> str:
    """One start-up line: what the dispatcher talks from and where its audio is written."""
    from tui.listening import default_sample, plan_audio

    has_input, has_output = devices
    plan = plan_audio(
        talk_file=None,
        listen_dir=dirs.heard,
        no_audio=no_audio,
        has_input=has_input,
        has_output=has_output,
        sample=default_sample(),
        default_dir=dirs.heard,
    )
    talk = f"the speech sample {plan.talk_file}" if plan.talk_file else "the microphone"
    played = ", and plays it" if plan.speaker else ""
    return (
        f"demo: Space talks from {talk}; the console writes what it hears and recalls (w)"
        f" to {dirs.heard}/{played}"
    )


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
    dirs = DemoDirs(args.data_dir.resolve())
    server_log = dirs.root / "server.log"
    sim_log = dirs.root / "officers.log"
    server: subprocess.Popen[bytes] | None = None
    officers: subprocess.Popen[bytes] | None = None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        try:
            new = prepare_authority(dirs)
        except (DemoError, OSError) as exc:
            print(f"demo: cannot create the demo organisation: {exc}", file=sys.stderr)
            return 2
        server = start_relay(dirs, port, media_port, server_log)
        if new:
            populate(dirs, server_url)
        with sim_log.open("ab") as out:
            officers = subprocess.Popen(
                [sys.executable, "-m", "ptt_client.sim",
                 "--bundles", str(dirs.bundles / "officers"), "--officers", str(len(OFFICERS)),
                 "--channel", "patrol", "--server", server_url, "--duration", str(args.duration),
                 "--talk-every", "12", "--emergency", "officer2", "45"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        from tui.app import main as console
        from tui.listening import probe_devices

        print(audio_summary(dirs, args.no_audio, probe_devices()), flush=True)
        code = console(console_arguments(dirs, server_url, args.no_audio))
        # The console's screen hid the start-up lines: say where the audio is once more.
        print(f"demo: what the console heard and recalled is in {dirs.heard}/")
        return code
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
