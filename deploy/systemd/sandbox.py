"""Run a command under the seccomp rules systemd would give it from a unit file.

    python3 deploy/systemd/sandbox.py [--kill] UNIT -- COMMAND [ARG...]

For checking, on a machine where systemd cannot start the unit (a container, a build
machine), that the program still works inside the unit's sandbox. It reads the unit's
``SystemCallFilter=``, ``SystemCallErrorNumber=``, ``MemoryDenyWriteExecute=``,
``RestrictAddressFamilies=``, ``LockPersonality=`` and ``RestrictNamespaces=`` lines and
loads the seccomp filters systemd 252 builds for them (src/shared/seccomp-util.c), the
system-call groups expanded by ``systemd-analyze syscall-filter``, then execs COMMAND.
``--kill`` kills the process (SIGSYS) at any refused system call instead of returning the
unit's error number, so nothing refused can pass unnoticed. The file-system settings
(``ProtectSystem=`` and the like) are not reproduced here; run the command as a non-root
user (``unshare --user --map-user=1000 --map-group=1000``, as ``DynamicUser=`` and
``PrivateUsers=`` would) for the rest.

Needs the system's python3 with libseccomp's bindings (Debian: ``apt-get install
python3-seccomp``) and ``systemd-analyze``.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
from pathlib import Path

import seccomp

PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000
NAMESPACE_FLAGS |= 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
MAX_FAMILY = 46  # AF_MAX on Linux 6.x
FAMILIES = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
FAMILIES |= {"AF_NETLINK": socket.AF_NETLINK, "AF_PACKET": socket.AF_PACKET}


def service_settings(unit: Path) -> dict[str, list[str]]:
    """Every value of every key of the unit's [Service] section, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscalls(name: str, seen: set[str] | None = None) -> set[str]:
    """A system call, or every call of a ``@group`` (groups nest), as systemd names them."""
    if not name.startswith("@"):
        return {name}
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    calls: set[str] = set()
    for line in listing.splitlines()[1:]:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            calls |= syscalls(entry, seen)
    return calls


def _add(rules: seccomp.SyscallFilter, action: int, call: str, *args: seccomp.Arg) -> None:
    try:
        rules.add_rule(action, call, *args)
    except (RuntimeError, ValueError, OSError):
        pass  # a call this architecture does not have (systemd skips those too)


def load_filters(settings: dict[str, list[str]], *, kill: bool) -> None:
    """Load the filters for ``settings``. The allow list goes last: loading a filter is a
    system call (seccomp) that the list itself does not allow."""
    yes = {"yes", "true", "on", "1"}
    number = settings.get("SystemCallErrorNumber", [""])[-1]
    refused = seccomp.KILL_PROCESS if kill or not number else seccomp.ERRNO(getattr(errno, number))
    if settings.get("MemoryDenyWriteExecute", ["no"])[-1] in yes:
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        wx = PROT_WRITE | PROT_EXEC
        denied = seccomp.KILL_PROCESS if kill else seccomp.ERRNO(errno.EPERM)
        _add(rules, denied, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        _add(rules, denied, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        _add(
            rules, denied, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC)
        )
        _add(rules, denied, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        rules.load()
    families = settings.get("RestrictAddressFamilies")
    if families:
        allowed = {FAMILIES[name] for value in families for name in value.split()}
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for family in set(range(MAX_FAMILY)) - allowed:
            denied = seccomp.KILL_PROCESS if kill else seccomp.ERRNO(errno.EAFNOSUPPORT)
            _add(rules, denied, "socket", seccomp.Arg(0, seccomp.EQ, family))
        rules.load()
    if settings.get("LockPersonality", ["no"])[-1] in yes:
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        _add(rules, refused, "personality", seccomp.Arg(0, seccomp.NE, 0))  # PER_LINUX only
        rules.load()
    if settings.get("RestrictNamespaces", ["no"])[-1] in yes:
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        _add(rules, refused, "setns")
        _add(rules, refused, "unshare")
        for bit in range(32):
            if NAMESPACE_FLAGS & (1 << bit):
                _add(rules, refused, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, 1 << bit, 1 << bit))
        rules.load()
    filters = settings.get("SystemCallFilter")
    if filters:
        allow: set[str] = set()
        for value in filters:
            names = value.removeprefix("~").split()
            calls = set().union(*(syscalls(n) for n in names))
            allow = allow - calls if value.startswith("~") else allow | calls
        rules = seccomp.SyscallFilter(defaction=refused)
        for call in sorted(allow):
            _add(rules, seccomp.ALLOW, call)
        rules.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill", action="store_true", help="SIGSYS at any refused call")
    parser.add_argument("unit", type=Path)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    load_filters(service_settings(args.unit), kill=args.kill)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
