"""Datagrams the kernel dropped at a UDP socket: its receive buffer was full.

Loopback loses nothing on the wire, but a socket whose process is held up (a shared,
loaded machine) overflows its receive buffer and the kernel drops what comes next,
counting it per socket in ``/proc/net/udp``'s ``drops`` column. A test that accounts for
every datagram counts these too, instead of blaming the code under test for them.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["udp_drops"]

_TABLES = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def udp_drops(port: int) -> int:
    """Datagrams dropped so far at the UDP socket(s) bound to local ``port``."""
    total = 0
    for table in _TABLES:
        try:
            lines = table.read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                total += int(fields[-1])
    return total
