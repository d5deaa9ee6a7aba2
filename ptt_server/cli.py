"""``ptt-server``: run the relay for one district.

    ptt-server [--config FILE] [--data-dir DIR] [--listen HOST:PORT] [--media-port N]
               [--metrics-port N] [--public-host NAME] [--org-root root.pub]

On the first start, ``--org-root`` installs the organisation's root public key (the
``root.pub`` that ``ptt-admin init`` made on the org authority's machine) into the
data directory; later starts find it there. The relay never holds a private key of
the organisation and refuses to start if it finds one.

Flags override the config file, which overrides the embedded defaults.
SIGTERM and SIGINT shut down gracefully: clients are told, recordings and
state are flushed to the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import msgspec
import uvloop

from ptt_server.config import ConfigError, ServerConfig, load_config, org_root_path, validate
from ptt_server.keyfiles import OrgRootError, install_org_root
from ptt_server.logs import configure_logging

log = logging.getLogger("ptt_server")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:7300"
        )
    return host or "0.0.0.0", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptt-server", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    parser.add_argument("--config", type=Path, help="TOML config file (table [server])")
    parser.add_argument("--data-dir", help="database, TLS and organisation files")
    parser.add_argument("--listen", type=parse_listen, help="control plane HOST:PORT")
    parser.add_argument("--media-port", type=int, help="UDP media port (0 = any free port)")
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus endpoint on 127.0.0.1 (0 = off)"
    )
    parser.add_argument(
        "--public-host",
        help="the name radios reach this relay by: in its TLS certificate, the URL it prints"
        " for ptt-admin pin, and the UDP host radios are told (default: the --listen host)",
    )
    parser.add_argument(
        "--org-root",
        type=Path,
        metavar="root.pub",
        help="install the org root public key from ptt-admin init (first start)",
    )
    parser.add_argument(
        "--cluster",
        metavar="nats://HOST:PORT",
        help="join the cluster on this NATS bus (needs --store); default: one node on its own",
    )
    parser.add_argument("--node-name", help="this node's unique name in the cluster")
    parser.add_argument(
        "--store",
        metavar="postgresql://...",
        help="the PostgreSQL store a cluster's nodes share (default: SQLite in --data-dir)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config)
    overrides: dict[str, object] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.listen:
        overrides["listen_host"], overrides["listen_port"] = args.listen
    if args.media_port is not None:
        overrides["media_port"] = args.media_port
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.public_host:
        overrides["public_host"] = args.public_host
    for key in ("cluster", "node_name", "store"):
        if getattr(args, key):
            overrides[key] = getattr(args, key)
    config = msgspec.structs.replace(config, **overrides)
    validate(config)
    return config


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    from ptt_server.server import RelayServer

    server = await RelayServer.open(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except BaseException:
        await server.stop("server could not start")  # what was opened is closed again
        raise
    print(
        f"ptt-server: control wss://{config.client_host()}:{server.control_port}  "
        f"media udp/{server.media_port}  certificate sha256 {server.tls_fingerprint}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop("server shutting down")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"ptt-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    from ptt_server.startup import StartupError

    if args.org_root is not None:
        try:
            if install_org_root(org_root_path(config.resolved_data_dir()), args.org_root):
                print(f"ptt-server: org root installed from {args.org_root}", flush=True)
        except OrgRootError as exc:
            print(f"ptt-server: {exc}", file=sys.stderr)
            return 2

    try:
        uvloop.run(serve(config))
    except StartupError as exc:
        print(f"ptt-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
