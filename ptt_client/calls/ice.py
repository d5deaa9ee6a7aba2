"""Which servers a call's ICE agent may use, and the aiortc configuration built from them.

The project never contacts a public server: aiortc's ``RTCConfiguration()`` leaves
``iceServers=None``, which aiortc replaces with Google's public STUN server, so the
configuration built here always carries an explicit list, empty when no server is set.
aioice uses the first STUN and the first TURN URL only (``turn:`` over UDP or TCP, ``turns:``
over TCP, password credentials).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtcicetransport import parse_stun_turn_uri

from ptt_client.calls.errors import CallMediaError

__all__ = ["IceServer", "IceSettings", "rtc_configuration"]


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
