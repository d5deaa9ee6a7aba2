"""Which servers a call's ICE agent may use, and the aiortc configuration built from them.

The project never contacts a public server: aiortc's ``RTCConfiguration()`` leaves
``iceServers=None``, which aiortc replaces with Google's public STUN server, so the
configuration built here always carries an explicit list, empty when no server is set.
aioice uses the first STUN and the first TURN URL only (``turn:`` over UDP or TCP, ``turns:``
over TCP, password credentials).

``FIELDRADIO_ICE_HOSTS`` (:func:`pinned_host_addresses`, read here and nowhere else) pins the
host candidates a call offers to the listed addresses: an operator keeps calls on one
interface (the radio network, not the office LAN), and tests keep them on 127.0.0.1, which
aioice leaves out by itself (RFC 8445 5.1.1.1).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri

from ptt_client.calls.errors import CallMediaError

__all__ = [
    "ICE_HOSTS_ENV",
    "IceServer",
    "IceSettings",
    "pinned_host_addresses",
    "rtc_configuration",
]

ICE_HOSTS_ENV: Final = "FIELDRADIO_ICE_HOSTS"
"""Comma-separated IP addresses: the only host candidates calls offer (unset: every
interface but loopback, as aioice finds them)."""


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server: ``urls`` such as ``"turn:relay.example:3478?transport=udp"``,
    with the TURN REST ``username`` and ``credential`` the relay handed out."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


@dataclass(frozen=True, slots=True)
class IceSettings:
    """The servers a call may use; ``relay_only`` keeps media on TURN relay candidates (the
    peer then sees only the TURN server's address, never this radio's)."""

    servers: tuple[IceServer, ...] = ()
    relay_only: bool = False
    host_addresses: tuple[str, ...] | None = None
    """The only local addresses offered as host candidates; ``None``: those
    :data:`ICE_HOSTS_ENV` lists (:func:`pinned_host_addresses`), or every interface's."""


def pinned_host_addresses(environ: Mapping[str, str] = os.environ) -> tuple[str, ...] | None:
    """The addresses :data:`ICE_HOSTS_ENV` lists, ``None`` when it is unset or empty; raises
    :class:`CallMediaError` for a word that is not an IP address."""
    raw = environ.get(ICE_HOSTS_ENV, "").strip()
    if not raw:
        return None
    addresses = []
    for word in raw.split(","):
        try:
            addresses.append(str(ipaddress.ip_address(word.strip())))
        except ValueError:
            raise CallMediaError(
                f"{ICE_HOSTS_ENV}={raw!r}: {word.strip()!r} is not an IP address: list this"
                f" machine's addresses for calls, e.g. {ICE_HOSTS_ENV}=192.0.2.10,127.0.0.1"
            ) from None
    return tuple(dict.fromkeys(addresses))


def _is_turn(url: str) -> bool:
    return url.startswith(("turn:", "turns:"))


def rtc_configuration(ice: IceSettings) -> RTCConfiguration:
    """The aiortc configuration for ``ice``; raises :class:`CallMediaError` for a URL aiortc
    cannot use or a relay-only setting without a TURN server."""
    servers: list[RTCIceServer] = []
    for server in ice.servers:
        for url in server.urls:
            try:
                parse_stun_turn_uri(url)
            except ValueError as exc:
                raise CallMediaError(
                    f"ICE server URL {url!r} is not a stun:, turn: or turns: URL ({exc}): "
                    "fix the call settings"
                ) from exc
            if _is_turn(url) and not (server.username and server.credential):
                raise CallMediaError(
                    f"TURN server {url!r} has no username or credential: "
                    "ask the relay for TURN credentials"
                )
        servers.append(
            RTCIceServer(
                urls=list(server.urls),
                username=server.username or None,
                credential=server.credential or None,
            )
        )
    if ice.relay_only and not any(_is_turn(u) for s in ice.servers for u in s.urls):
        raise CallMediaError(
            "relay-only calls need a TURN server: add one to the call settings "
            "or allow direct media"
        )
    policy = RTCIceTransportPolicy.RELAY if ice.relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)
