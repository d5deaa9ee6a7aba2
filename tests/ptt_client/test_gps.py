"""The gpsd client against the real gpsd (driven by ``gpsfake``), and its pure parsing.

``data/route.nmea`` is a short drive: four cycles of a receiver without a fix (RMC status V,
GGA quality 0), then six fixes a second apart. Its checksums were computed when it was
written; :func:`test_route_log_checksums_are_valid` recomputes them, and the expected
positions come from the NMEA fields themselves (:func:`route_fixes`), not from the code under
test.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client.gps import (
    DEFAULT_PORT,
    MAX_LINE,
    FixedPosition,
    GpsdClient,
    GpsdReports,
    GpsError,
    Position,
    open_source,
    parse_endpoint,
    parse_position,
    position_from_report,
)

ROUTE = Path(__file__).parent / "data" / "route.nmea"
GPSFAKE = shutil.which("gpsfake") or "/usr/bin/gpsfake"

# --- the log and what it says ----------------------------------------------------------------


def nmea_checksum(body: str) -> str:
    """NMEA 0183: XOR of every character between '$' and '*', two upper-case hex digits."""
    return f"{functools.reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def _degrees(value: str, hemisphere: str) -> float:
    # ddmm.mmmm / dddmm.mmmm: degrees, then minutes.
    head, _, _ = value.partition(".")
    degrees = int(value[: len(head) - 2])
    minutes = float(value[len(head) - 2 :])
    sign = -1 if hemisphere in "SW" else 1
    return sign * (degrees + minutes / 60)


def route_fixes() -> list[Position]:
    """The fixes in the log, read from its RMC sentences (valid ones only)."""
    fixes = []
    for line in ROUTE.read_text().splitlines():
        fields = line[1 : line.index("*")].split(",")
        if fields[0] != "GPRMC" or fields[2] != "A":
            continue
        hhmmss, date = fields[1], fields[9]
        when = datetime(
            2000 + int(date[4:6]),
            int(date[2:4]),
            int(date[0:2]),
            int(hhmmss[0:2]),
            int(hhmmss[2:4]),
            int(hhmmss[4:6]),
            tzinfo=UTC,
        )
        fixes.append(
            Position(
                _degrees(fields[3], fields[4]), _degrees(fields[5], fields[6]), when.timestamp()
            )
        )
    return fixes


def test_route_log_checksums_are_valid() -> None:
    lines = ROUTE.read_bytes().split(b"\r\n")
    assert lines[-1] == b""  # every sentence ends with CR LF
    for line in lines[:-1]:
        text = line.decode("ascii")
        assert text.startswith("$") and text[-3] == "*", text
        assert text[-2:] == nmea_checksum(text[1:-3]), text
    assert len(route_fixes()) == 6


# --- gpsd and gpsfake ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Poll until something accepts on ``port`` (gpsd is up), or fail with gpsfake's output.

    Bounded polling, because nothing else works here: gpsd is another process, started by
    gpsfake, and tells no one when it listens (gpsfake's progress lines come before or
    after that depending on its internals, and ``-q`` silences them). The deadline only
    stops a broken gpsfake from hanging the test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"gpsfake exited with {process.returncode}: {err.decode(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    pytest.fail(f"gpsd did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def gpsfake(port: int, *, linger: int = 30) -> Iterator[subprocess.Popen[bytes]]:
    """Run gpsd on ``port`` fed once with the route; it exits ``linger`` s after the log ends.

    ``-t``: gpsfake feeds gpsd over TCP. Over the default pty, gpsd drops the first second of
    sentences while it probes the serial line, and how many it drops depends on the load.
    """
    if not Path(GPSFAKE).exists():
        pytest.fail(
            "gpsfake is not installed: `apt-get install gpsd gpsd-clients` (tools/bootstrap.sh)"
        )
    process = subprocess.Popen(
        [GPSFAKE, "-t", "-1", "-q", "-c", "0.02", "-W", str(linger), "-P", str(port), str(ROUTE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # gpsfake and its gpsd in one group we can end together
    )
    try:
        wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # gpsfake can hang on TERM if gpsd died
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


async def take(source: AsyncIterator[Position], count: int, timeout: float) -> list[Position]:
    got: list[Position] = []
    async with asyncio.timeout(timeout):
        async for position in source:
            got.append(position)
            if len(got) == count:
                break
    return got


def assert_route(got: list[Position], expected: list[Position]) -> None:
    assert len(got) == len(expected)
    for position, fix in zip(got, expected, strict=True):
        assert position.lat == pytest.approx(fix.lat, abs=1e-8)
        assert position.lon == pytest.approx(fix.lon, abs=1e-8)
        assert position.time == fix.time


async def test_reads_the_fixes_from_a_real_gpsd() -> None:
    port = free_port()
    expected = route_fixes()
    client = GpsdClient("127.0.0.1", port)
    with gpsfake(port):
        positions = client.positions()
        try:
            got = await take(positions, len(expected), timeout=20)
        finally:
            await positions.aclose()  # type: ignore[attr-defined]
    # The four no-fix cycles (TPV mode 1) are skipped; every fix arrives, in order.
    assert_route(got, expected)
    assert client.latest == got[-1]
    assert client.connections == 1
    assert client.reports.malformed == 0


async def test_reconnects_when_gpsd_goes_away() -> None:
    port = free_port()
    expected = route_fixes()
    client = GpsdClient("127.0.0.1", port, reconnect_initial=0.05, reconnect_max=0.2)
    positions = client.positions()
    try:
        with gpsfake(port, linger=1) as first:
            got = await take(positions, len(expected), timeout=20)
            # This gpsfake gives up 1 s after its log ends and takes gpsd with it.
            await asyncio.to_thread(first.wait, 20)
        with gpsfake(port):
            got += await take(positions, len(expected), timeout=20)
    finally:
        await positions.aclose()  # type: ignore[attr-defined]
    assert_route(got, expected + expected)
    assert client.connections == 2
    assert "127.0.0.1" in client.last_error


async def test_keeps_retrying_while_nothing_listens() -> None:
    port = free_port()
    client = GpsdClient("127.0.0.1", port, reconnect_initial=0.01, reconnect_max=0.02)
    positions = client.positions()
    with pytest.raises(TimeoutError):
        await take(positions, 1, timeout=0.2)
    await positions.aclose()  # type: ignore[attr-defined]
    assert client.connections == 0
    assert f"127.0.0.1:{port}" in client.last_error


# --- the report parser -----------------------------------------------------------------------


def _line(report: object) -> bytes:
    return json.dumps(report).encode() + b"\r\n"


def test_only_tpv_reports_with_a_2d_or_3d_fix_count() -> None:
    reports = GpsdReports()
    stream = b"".join(
        [
            _line({"class": "VERSION", "release": "3.22"}),
            _line({"class": "TPV", "mode": 1}),
            _line({"class": "TPV", "mode": 0, "lat": 1.0, "lon": 2.0}),
            _line({"class": "SKY", "mode": 3, "lat": 1.0, "lon": 2.0}),
            _line({"class": "TPV", "mode": 2, "lat": 48.5, "lon": -2.25}),
            _line(
                {
                    "class": "TPV",
                    "mode": 3,
                    "lat": -33.0,
                    "lon": 151,
                    "time": "2024-06-15T12:00:01.500Z",
                }
            ),
        ]
    )
    assert reports.feed(stream) == [
        Position(48.5, -2.25, None),
        Position(-33.0, 151.0, datetime(2024, 6, 15, 12, 0, 1, 500_000, tzinfo=UTC).timestamp()),
    ]
    assert reports.malformed == 0


def test_lines_split_across_reads_are_joined() -> None:
    reports = GpsdReports()
    line = _line({"class": "TPV", "mode": 3, "lat": 10.0, "lon": 20.0})
    got = [p for i in range(len(line)) for p in reports.feed(line[i : i + 1])]
    assert got == [Position(10.0, 20.0)]


@pytest.mark.parametrize(
    "report",
    [
        {"class": "TPV", "mode": True, "lat": 1.0, "lon": 2.0},
        {"class": "TPV", "mode": "3", "lat": 1.0, "lon": 2.0},
        {"class": "TPV", "mode": 3, "lat": "1", "lon": 2.0},
        {"class": "TPV", "mode": 3, "lat": True, "lon": 2.0},
        {"class": "TPV", "mode": 3, "lat": 91.0, "lon": 2.0},
        {"class": "TPV", "mode": 3, "lat": 1.0, "lon": -180.5},
        {"class": "TPV", "mode": 3, "lat": math.nan, "lon": 2.0},
        {"class": "TPV", "mode": 3, "lat": math.inf, "lon": 2.0},
        {"class": "TPV", "mode": 3, "lon": 2.0},
        ["TPV", 3, 1.0, 2.0],
        "TPV",
    ],
)
def test_reports_with_bad_values_give_no_position(report: object) -> None:
    assert position_from_report(report) is None
    assert GpsdReports().feed(_line(report)) == []


def test_a_bad_time_keeps_the_position_without_a_time() -> None:
    report = {"class": "TPV", "mode": 3, "lat": 1.0, "lon": 2.0, "time": "yesterday"}
    assert position_from_report(report) == Position(1.0, 2.0, None)


def test_garbage_and_runaway_lines_are_counted_and_skipped() -> None:
    reports = GpsdReports()
    good = _line({"class": "TPV", "mode": 3, "lat": 1.0, "lon": 2.0})
    assert reports.feed(b'not json\n{"class":\n' + b"[" * 100_000 + b"\n") == []
    assert reports.malformed == 3
    # A line longer than MAX_LINE is dropped up to its newline; the next line still counts.
    assert reports.feed(b"x" * (MAX_LINE + 1)) == []
    assert reports.feed(b"y" * 1000 + b"\n" + good) == [Position(1.0, 2.0)]
    assert reports.malformed == 4


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_arbitrary_bytes_never_raise(chunks: list[bytes]) -> None:
    reports = GpsdReports()
    for chunk in chunks:
        for position in reports.feed(chunk):
            assert -90 <= position.lat <= 90 and -180 <= position.lon <= 180


# --- arguments and the fixed source ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2948", ("127.0.0.1", 2948)),
        ("gps.local", ("gps.local", DEFAULT_PORT)),
        ("[::1]:3000", ("::1", 3000)),
        ("[::1]", ("::1", DEFAULT_PORT)),
    ],
)
def test_endpoints(text: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":2947", "expected HOST:PORT"),
        ("host:port", "the port must be a number from 1 to 65535"),
        ("host:0", "the port must be a number from 1 to 65535"),
        ("host:70000", "the port must be a number from 1 to 65535"),
        ("[::1", "unclosed '['"),
        ("[::1]x", "expected [IPv6]:PORT"),
    ],
)
def test_bad_endpoints(text: str, message: str) -> None:
    with pytest.raises(GpsError, match=message.replace("[", r"\[")):
        parse_endpoint(text)


def test_positions_parse_and_bad_ones_say_the_format() -> None:
    assert parse_position("48.8566,2.3522") == Position(48.8566, 2.3522)
    assert parse_position("-33.86,151.21") == Position(-33.86, 151.21)
    for bad in ("48.8566", "48.8,2.3,1", "north,east", ""):
        with pytest.raises(GpsError, match="expected LAT,LON"):
            parse_position(bad)
    for bad in ("91,0", "0,181", "nan,0", "0,inf"):
        with pytest.raises(GpsError, match="latitude must be within"):
            parse_position(bad)


async def test_fixed_position_yields_itself() -> None:
    fixed = FixedPosition(48.85, 2.35)
    assert fixed.latest == Position(48.85, 2.35)
    assert [p async for p in fixed.positions()] == [Position(48.85, 2.35)]
    with pytest.raises(GpsError):
        FixedPosition(100.0, 0.0)


def test_open_source_picks_the_flag_given() -> None:
    assert open_source(None, None) is None
    gpsd = open_source("127.0.0.1:2950", None)
    assert isinstance(gpsd, GpsdClient) and (gpsd.host, gpsd.port) == ("127.0.0.1", 2950)
    assert isinstance(open_source(None, "1,2"), FixedPosition)
    with pytest.raises(GpsError, match="not both"):
        open_source("127.0.0.1", "1,2")
