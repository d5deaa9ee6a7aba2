"""``ptt-admin``: the org authority's command line.

    ptt-admin [--admin-dir DIR] [--passphrase-env VAR] init [--admin-user admin]
              [--admin-name NAME] [--relay wss://HOST:PORT --tls-fingerprint SHA256] [--plain-key]
    ptt-admin ... pin wss://HOST:PORT --tls-fingerprint SHA256
    ptt-admin ... enroll USER --role officer|dispatcher|admin --name NAME --out FILE
              [--device ID] [--valid-days 365] [--server-url URL]...
              [--bundle-passphrase-env VAR | --plain-bundle]
    ptt-admin ... revoke USER|DEVICE
    ptt-admin ... channel create NAME [--members u1,u2,...]
    ptt-admin ... channel add NAME USER...  |  channel remove NAME USER...
    ptt-admin ... channel rekey NAME  |  channel delete NAME  |  channel list
    ptt-admin ... users

Run it on the org authority's machine, not on the relay: the authority directory
(``--admin-dir``, default the platform's data dir for "fieldradio-authority") holds the
org root and the admin's keys, encrypted with the passphrase read from the environment
variable named by ``--passphrase-env`` (never from the command line, which other local
users can read in ps). ``init`` and ``pin`` work offline; every other command logs in to
the pinned relay as the org authority and sends it signed objects.

First start::

    ptt-admin --passphrase-env ORG_PASS init                 # on the authority's machine
    scp ~/.local/share/fieldradio-authority/root.pub relay:  # only the public key travels
    ptt-server --org-root root.pub                           # on the relay: prints the TLS sha256
    ptt-admin pin wss://relay:7300 --tls-fingerprint SHA256  # back on the authority's machine

Exit codes: 0 done; 2 wrong input or state (one line on stderr saying what to do,
nothing changed); 1 the environment failed (relay unreachable, unreadable file).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from crypto.errors import CryptoError
from crypto.identity import Role
from ptt_admin import channels, people
from ptt_admin.authority import (
    PROG,
    AdminError,
    Relay,
    RelayUnreachable,
    check_fingerprint,
    check_url,
    create_authority,
    open_authority,
    pin_relay,
)
from ptt_admin.session import AdminSession, connect
from ptt_client.command_line import OneLineParser, UsageError, env_secret

FIRST_START = """first start (see docs/operations.md):
  ptt-admin --passphrase-env ORG_PASS init       # here, on the authority's machine
  copy root.pub (public) to the relay; never root.key or admin.keys
  ptt-server --org-root root.pub                 # on the relay: prints its TLS sha256
  ptt-admin pin wss://HOST:7300 --tls-fingerprint SHA256
  ptt-admin --passphrase-env ORG_PASS enroll alice --role officer --name "Alice" \\
      --out alice.bundle --bundle-passphrase-env BUNDLE_PASS
  ptt-admin --passphrase-env ORG_PASS channel create patrol --members alice"""


def default_admin_dir() -> Path:
    return Path(platformdirs.user_data_dir("fieldradio-authority"))


def _parse_members(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The ``ptt-admin`` argument parser."""
    parser = OneLineParser(
        prog=PROG,
        description="The org authority: holds the org root, enrols devices, keys channels.",
        epilog=FIRST_START,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--admin-dir", type=Path, help=f"the authority directory (default {default_admin_dir()})"
    )
    parser.add_argument(
        "--passphrase-env",
        metavar="VAR",
        help="environment variable holding the passphrase of root.key and admin.keys",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create the organisation (offline)")
    init.add_argument("--admin-user", default="admin")
    init.add_argument("--admin-name", default="Administrator")
    init.add_argument("--relay", metavar="URL", help="wss://HOST:PORT of the relay, if known")
    init.add_argument("--tls-fingerprint", metavar="SHA256", help="the relay's certificate")
    init.add_argument(
        "--plain-key",
        action="store_true",
        help="keep the org root UNENCRYPTED (not recommended: anyone who reads the file"
        " can impersonate the organisation)",
    )
    init.set_defaults(run=_cmd_init, online=False)

    pin = sub.add_parser("pin", help="record the relay's URL and TLS certificate (offline)")
    pin.add_argument("url", metavar="wss://HOST:PORT")
    pin.add_argument("--tls-fingerprint", required=True, metavar="SHA256")
    pin.set_defaults(run=_cmd_pin, online=False)

    enroll = sub.add_parser("enroll", help="issue a device credential bundle")
    enroll.add_argument("user")
    enroll.add_argument("--role", required=True, choices=[r.value for r in Role])
    enroll.add_argument("--name", required=True, help="display name")
    enroll.add_argument("--out", required=True, type=Path, help="bundle file to write (0600)")
    enroll.add_argument("--device", help="device id (default: USER-<random>)")
    enroll.add_argument("--valid-days", type=int, default=people.DEFAULT_VALID_DAYS)
    enroll.add_argument(
        "--server-url",
        action="append",
        default=[],
        metavar="URL",
        help="server URL put in the bundle (default: the pinned relay); once per node of a"
        " cluster, the preferred first: the radio fails over to the others",
    )
    secret = enroll.add_mutually_exclusive_group()
    secret.add_argument(
        "--bundle-passphrase-env",
        metavar="VAR",
        help="environment variable holding the passphrase that encrypts the device keys",
    )
    secret.add_argument(
        "--plain-bundle",
        action="store_true",
        help="write the device keys UNENCRYPTED (only for a bundle made on the device itself)",
    )
    enroll.set_defaults(run=_cmd_enroll, online=True)

    revoke = sub.add_parser("revoke", help="revoke a lost device and rekey every channel it was on")
    revoke.add_argument("target", metavar="USER|DEVICE")
    revoke.set_defaults(run=_cmd_revoke, online=True)

    channel = sub.add_parser("channel", help="create channels and change their members")
    channel_sub = channel.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = channel_sub.add_parser("create", help="create a channel")
    create.add_argument("name")
    create.add_argument("--members", type=_parse_members, default=[], metavar="u1,u2,...")
    create.set_defaults(run=_cmd_channel_create, online=True)
    add = channel_sub.add_parser("add", help="add members (rekeys)")
    add.add_argument("name")
    add.add_argument("users", nargs="+", metavar="USER")
    add.set_defaults(run=_cmd_channel_add, online=True)
    remove = channel_sub.add_parser("remove", help="remove members (rekeys)")
    remove.add_argument("name")
    remove.add_argument("users", nargs="+", metavar="USER")
    remove.set_defaults(run=_cmd_channel_remove, online=True)
    rekey = channel_sub.add_parser("rekey", help="new epoch, same members")
    rekey.add_argument("name")
    rekey.set_defaults(run=_cmd_channel_rekey, online=True)
    delete = channel_sub.add_parser(
        "delete", help="delete a channel (refused while patched or in emergency)"
    )
    delete.add_argument("name")
    delete.set_defaults(run=_cmd_channel_delete, online=True)
    channel_list = channel_sub.add_parser("list", help="list channels and members")
    channel_list.set_defaults(run=_cmd_channel_list, online=True)

    users = sub.add_parser("users", help="list enrolled users")
    users.set_defaults(run=_cmd_users, online=True)
    return parser


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _print_change(change: channels.ChannelChange, verb: str = "") -> None:
    _say(
        f"{verb}channel {change.name!r} (id {change.channel_id}): epoch {change.epoch},"
        f" members: {', '.join(change.members) or '(none)'}"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        _say("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# --- offline commands ------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace, directory: Path, passphrase: str | None) -> None:
    if passphrase is None and not args.plain_key:
        raise AdminError(
            "the org root must be encrypted: put a passphrase in an environment variable and"
            " pass --passphrase-env VAR (or --plain-key to keep it in the clear, not"
            " recommended)"
        )
    relay = None
    if args.relay or args.tls_fingerprint:
        if not (args.relay and args.tls_fingerprint):
            raise AdminError("give both --relay URL and --tls-fingerprint SHA256, or neither")
        relay = Relay(check_url(args.relay), check_fingerprint(args.tls_fingerprint))
    authority = create_authority(
        directory,
        now=time.time(),
        passphrase=passphrase,
        admin_user=args.admin_user,
        admin_name=args.admin_name,
        relay=relay,
    )
    if passphrase is None:
        _warn(
            f"{authority.files.root_key} and {authority.files.admin_keys} are NOT encrypted"
            " (--plain-key): keep them offline or on an encrypted disk"
        )
    files = authority.files
    _say(f"organisation created in {directory}")
    _say(f"  org root key id  {authority.anchor.key_id.hex()}")
    _say(f"  admin            {authority.admin_credential.user_id}")
    _say(f"next: copy {files.root_pub} (public) to the relay and start it with")
    _say("      `ptt-server --org-root root.pub`; never copy root.key or admin.keys there")
    if relay is None:
        _say(f"then: `{PROG} pin wss://HOST:PORT --tls-fingerprint SHA256` (ptt-server prints it)")


def _cmd_pin(args: argparse.Namespace, directory: Path, passphrase: str | None) -> None:
    relay = Relay(check_url(args.url), check_fingerprint(args.tls_fingerprint))
    pin_relay(directory, relay)
    _say(f"relay pinned: {relay.url} (certificate sha256 {relay.tls_fingerprint})")


# --- online commands -------------------------------------------------------------------------


async def _cmd_enroll(args: argparse.Namespace, session: AdminSession) -> None:
    bundle_passphrase = env_secret(
        args.bundle_passphrase_env, "--bundle-passphrase-env", AdminError
    )
    if bundle_passphrase is None and not args.plain_bundle:
        raise AdminError(
            "the bundle leaves this machine, so its device keys must be encrypted: pass"
            " --bundle-passphrase-env VAR (give the passphrase to the officer apart from the"
            " file), or --plain-bundle if the bundle is made on the device itself"
        )
    result = await people.enroll(
        session,
        args.user,
        role=args.role,
        display_name=args.name,
        now=time.time(),
        out=args.out,
        device_id=args.device,
        valid_days=args.valid_days,
        server_urls=args.server_url,
        bundle_passphrase=bundle_passphrase,
    )
    cred = result.credential
    _say(
        f"enrolled {cred.user_id} ({cred.role.value}, device {cred.device_id}, serial"
        f" {cred.serial}, valid until {_date(cred.not_after)}) -> {args.out}"
    )
    if bundle_passphrase is None:
        _warn(f"the device keys in {args.out} are not encrypted (--plain-bundle)")
    if result.replaced_device:
        _warn(
            f"{cred.user_id}'s previous device {result.replaced_device!r} can no longer log in"
            " and was disconnected"
        )
    for change in result.rekeyed:
        _print_change(change, "rekeyed with the new device: ")


async def _cmd_revoke(args: argparse.Namespace, session: AdminSession) -> None:
    result = await people.revoke(session, args.target, now=time.time())
    _say(
        f"revoked {result.user_id} (device {result.device_id}, serial {result.serial};"
        f" revocation list version {result.revocations.version}): disconnected and refused"
        " from now on"
    )
    for change in result.rekeyed:
        _print_change(change, "removed and rekeyed: ")
    if not result.rekeyed:
        _say("  it was on no channel: no key to take back")


async def _cmd_channel_create(args: argparse.Namespace, session: AdminSession) -> None:
    _print_change(await channels.create(session, args.name, args.members, now=time.time()))


async def _cmd_channel_add(args: argparse.Namespace, session: AdminSession) -> None:
    change = await channels.change_members(session, args.name, add=args.users, now=time.time())
    _print_change(change)


async def _cmd_channel_remove(args: argparse.Namespace, session: AdminSession) -> None:
    change = await channels.change_members(session, args.name, remove=args.users, now=time.time())
    _print_change(change)


async def _cmd_channel_rekey(args: argparse.Namespace, session: AdminSession) -> None:
    _print_change(await channels.rekey(session, args.name, now=time.time()))


async def _cmd_channel_delete(args: argparse.Namespace, session: AdminSession) -> None:
    channel_id = await channels.delete(session, args.name, now=time.time())
    _say(
        f"deleted channel {args.name!r} (id {channel_id}): its members' radios left it;"
        " its recordings stay until their retention ends"
    )


async def _cmd_channel_list(args: argparse.Namespace, session: AdminSession) -> None:
    rows = await channels.list_channels(session, now=time.time())
    _table(
        ("ID", "NAME", "EPOCH", "MEMBERS"),
        [(str(r.channel_id), r.name, str(r.version), ",".join(r.members)) for r in rows],
    )


async def _cmd_users(args: argparse.Namespace, session: AdminSession) -> None:
    now = time.time()
    rows = await people.list_users(session, now=now)
    _table(
        ("USER", "NAME", "ROLE", "DEVICE", "SERIAL", "VALID UNTIL", "REVOKED", "ONLINE"),
        [
            (
                r.user_id,
                r.credential.display_name,
                r.credential.role.value,
                r.credential.device_id,
                str(r.credential.serial),
                _date(r.credential.not_after)
                + (" (expired)" if r.credential.not_after <= now else ""),
                "yes" if r.revoked else "no",
                "yes" if r.online else "no",
            )
            for r in rows
        ],
    )


_Online = Callable[[argparse.Namespace, AdminSession], Coroutine[Any, Any, None]]


async def _run_online(args: argparse.Namespace, directory: Path, passphrase: str | None) -> None:
    authority = open_authority(directory, passphrase, time.time())
    async with connect(authority) as session:
        command: _Online = args.run
        await command(args, session)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run ``ptt-admin`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: {_one_line(f'{exc} (see `{exc.prog} --help`)')}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    directory: Path = args.admin_dir or default_admin_dir()
    try:
        passphrase = env_secret(args.passphrase_env, "--passphrase-env", AdminError)
        if args.online:
            asyncio.run(_run_online(args, directory, passphrase))
        else:
            args.run(args, directory, passphrase)
    except RelayUnreachable as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except (AdminError, CryptoError) as exc:
        print(f"{PROG}: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
