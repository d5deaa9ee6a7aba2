"""Where the radio is: a gpsd client (``--gps HOST:PORT``) or a fixed position (``--position``).

gpsd speaks JSON lines over TCP (https://gpsd.gitlab.io/gpsd/gpsd_json.html). A client
sends ``?WATCH={"enable":true,"json":true};`` and gpsd answers with VERSION, DEVICES and
WATCH reports, then one TPV ("time-position-velocity") report per fix cycle. A TPV with
``mode`` 2 (2D) or 3 (3D) carries ``lat``/``lon``; mode 0/1 means no fix yet.

:class:`GpsdReports` is the pure part (bytes in, positions out); :class:`GpsdClient` is a thin
asyncio loop around it that reconnects when gpsd goes away. Both sources expose
``positions()`` (an async iterator) and ``latest``.

Errors: :class:`GpsError` for arguments that cannot name a gpsd or a position. Nothing gpsd
sends raises: malformed lines are counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

DEFAULT_PORT: Final = 2947
"""gpsd's IANA-registered port."""

WATCH_COMMAND: Final = b'?WATCH={"enable":true,"json":true};\n'

MAX_LINE: Final = 64 * 1024
"""Longest gpsd line we keep; gpsd's own reports are under 10 KB (SKY with many satellites)."""

RECONNECT_INITIAL: Final = 0.2
RECONNECT_MAX: Final = 5.0


class GpsError(ValueError):
    """A ``--gps`` or ``--position`` argument is not usable; the message shows the format."""


@dataclass(frozen=True)
class Position:
    """A fix: degrees (WGS 84) and the GPS time as unix seconds, when gpsd gave one."""

    lat: float
    lon: float
    time: float | None = None


def _valid(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, port 2947; ``[::1]:2947`` for IPv6) -> ``(host, port)``."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise GpsError(f"--gps {text!r}: unclosed '[' (expected [IPv6]:PORT)")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise GpsError(f"--gps {text!r}: expected [IPv6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise GpsError(f"--gps {text!r}: expected HOST:PORT, e.g. 127.0.0.1:2947")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise GpsError(f"--gps {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_position(text: str) -> Position:
    """``LAT,LON`` in decimal degrees (``48.8566,2.3522``) -> :class:`Position`."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise GpsError(
            f"--position {text!r}: expected LAT,LON in decimal degrees, e.g. 48.8566,2.3522"
        ) from None
    if not _valid(lat, lon):
        raise GpsError(
            f"--position {text!r}: latitude must be within -90..90 and longitude -180..180"
        )
    return Position(lat, lon)


def _gps_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()  # "2024-06-15T12:00:01.000Z"
    except ValueError:
        return None


def position_from_report(report: object) -> Position | None:
    """The position in one decoded gpsd report, or ``None`` (not a TPV, no fix, bad values)."""
    if not isinstance(report, dict) or report.get("class") != "TPV":
        return None
    mode, lat, lon = report.get("mode"), report.get("lat"), report.get("lon")
    # gpsd_json(5): mode 0 = unknown, 1 = no fix, 2 = 2D, 3 = 3D.
    if not isinstance(mode, int) or isinstance(mode, bool) or mode < 2:
        return None
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    if isinstance(lat, bool) or isinstance(lon, bool) or not _valid(lat, lon):
        return None
    return Position(float(lat), float(lon), _gps_time(report.get("time")))


class GpsdReports:
    """Splits gpsd's byte stream into JSON lines and picks the fixes out (no I/O)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.malformed = 0
        """Lines that were not JSON objects, or longer than :data:`MAX_LINE`."""

    def feed(self, data: bytes) -> list[Position]:
        """Take bytes as they arrive; return the positions of the complete lines among them."""
        self._buffer += data
        positions: list[Position] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    # A runaway line: drop it up to its newline instead of buffering forever.
                    self._buffer.clear()
                    self._discarding = True
                    self.malformed += 1
                return positions
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if not line.strip():
                continue
            try:
                report = json.loads(line)
            except (ValueError, RecursionError):
                self.malformed += 1
                continue
            position = position_from_report(report)
            if position is not None:
                positions.append(position)

    def reset(self) -> None:
        """Forget a partial line (the connection it came from is gone)."""
        self._buffer.clear()
        self._discarding = False


class PositionSource(Protocol):
    """Anything that tells the radio where it is."""

    @property
    def latest(self) -> Position | None: ...

    def positions(self) -> AsyncIterator[Position]: ...


class FixedPosition:
    """A radio that does not move (``--position LAT,LON``): one position, forever."""

    def __init__(self, lat: float, lon: float) -> None:
        if not _valid(lat, lon):
            raise GpsError(f"position {lat},{lon} is not a valid latitude,longitude")
        self._position = Position(lat, lon)

    @property
    def latest(self) -> Position:
        return self._position

    async def positions(self) -> AsyncIterator[Position]:
        """Yield the position once."""
        yield self._position


class GpsdClient:
    """Follows gpsd at ``host:port``; reconnects (with backoff) whenever the connection drops."""

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        reconnect_initial: float = RECONNECT_INITIAL,
        reconnect_max: float = RECONNECT_MAX,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.connect_timeout = connect_timeout
        self._latest: Position | None = None
        self.connections = 0
        """Successful connections so far (a reconnect makes it 2, 3, ...)."""
        self.last_error = ""
        """Why the last connection attempt failed or ended (for a status display)."""
        self.reports = GpsdReports()

    @property
    def latest(self) -> Position | None:
        """The last fix seen, on any connection (kept across reconnects)."""
        return self._latest

    async def positions(self) -> AsyncIterator[Position]:
        """Yield every fix gpsd reports, for ever; cancel the consuming task to stop."""
        delay = self.reconnect_initial
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                async with asyncio.timeout(self.connect_timeout):
                    reader, stream = await asyncio.open_connection(self.host, self.port)
                writer = stream
                self.connections += 1
                self.reports.reset()
                stream.write(WATCH_COMMAND)
                await stream.drain()
                while data := await reader.read(4096):
                    fixes = self.reports.feed(data)
                    for position in fixes:
                        self._latest = position
                        delay = self.reconnect_initial  # a working gpsd resets the backoff
                        yield position
                self.last_error = f"gpsd at {self.host}:{self.port} closed the connection"
            except (OSError, TimeoutError) as exc:
                self.last_error = f"gpsd at {self.host}:{self.port}: {exc or type(exc).__name__}"
            finally:
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)


def open_source(gps: str | None, position: str | None) -> PositionSource | None:
    """The source the radio's ``--gps`` / ``--position`` flags name (``None``: neither)."""
    if gps is not None and position is not None:
        raise GpsError("give --gps HOST:PORT or --position LAT,LON, not both")
    if gps is not None:
        host, port = parse_endpoint(gps)
        return GpsdClient(host, port)
    if position is not None:
        fixed = parse_position(position)
        return FixedPosition(fixed.lat, fixed.lon)
    return None
