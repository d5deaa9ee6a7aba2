"""Load-generator worker for :mod:`bench.relay`: many raw sessions in one process.

    python -m bench.loadgen --accounts FILE --control-port N --fingerprint HEX

The bench runs several of these, each with its own batch of accounts, so the sessions it
measures the relay with do not share one event loop (or one GIL) with the bench itself.
A worker speaks the wire protocol directly, like ``tests/ptt_server/rawclient.py``: TLS
WebSocket (certificate pinned by SHA-256), challenge-response login, a client-side
:class:`~ptt_protocol.media.HopSession` per session. No end-to-end crypto: the relay
never opens a frame, so a frame is the SFrame header the relay routes on (the talker's
KID: the relay forwards only a talker's own), then 8 bytes of ``time.monotonic_ns()``
(CLOCK_MONOTONIC is one clock for every process on Linux) and random filler.

All sessions of a worker share ONE UDP socket. The relay sends to the address a session
was last seen at, so this is what a NAT in front of a fleet looks like to it, and it keeps
a 1000-session worker at 1000 control sockets plus one, and its receive loop on one file
descriptor. Received datagrams are told apart by the session index in their header.

Commands come one JSON object per line on stdin and each gets one JSON line on stdout
(``{"ok": true, ...}`` or ``{"ok": false, "error": ...}``); nothing else goes to stdout.
The first line a worker prints is ``{"ok": true, "ready": ...}``.

- ``connect`` (``concurrency``): log every account in (at most ``concurrency`` logins in
  flight), prove its UDP path with a keepalive and affiliate it to its channel.
- ``floor``: every talker account requests the floor on its channel and waits for the grant.
- ``talk_start`` (``rate``, ``frame_bytes``, ``record``): talkers send ``rate`` datagrams
  per second each, their start times spread evenly; with ``record`` every received DATA
  datagram is kept with its arrival time for ``stats``.
- ``talk_stop``: stop sending; answers the datagrams sent per channel.
- ``stats``: DATA datagrams received so far and, for recorded ones, the latency of each
  (arrival minus the send time in the frame, microseconds); clears the recording.
- ``release``: talkers release the floor.
- ``keepalive_start`` (``interval``) / ``keepalive_stop``: every session sends a UDP
  keepalive each ``interval`` seconds, spread evenly; stop answers sent and answered.
- ``close`` (``count``): log ``count`` sessions out (closing their WebSocket).
- ``quit``: exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import json
import os
import resource
import secrets
import socket
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec
import uvloop
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from crypto.sframe import decode_header, encode_header
from ptt_protocol import control, media
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement

STEP_TIMEOUT: Final = 60.0
"""Longest wait for one login step: generous, the machine is shared and the relay busy."""
KEEPALIVE_RETRY: Final = 2.0
"""Seconds before a login's UDP probe is sent again (a datagram may be lost)."""
UDP_BUFFER: Final = 4 * 1024 * 1024
"""SO_RCVBUF/SO_SNDBUF asked for (Linux caps it at net.core.rmem_max / wmem_max)."""
_STAMP: Final = struct.Struct("!Q")
"""The send time at the start of each frame: ``time.monotonic_ns()``."""
MIN_SLEEP_S: Final = 0.001
"""Shortest pause of the talker loop. uvloop rounds a timer to whole milliseconds, so a
sub-millisecond sleep is a zero timeout and the loop spun: 0.75 of a core for 2,400 frames/s,
taken from the relay on a 2-core machine. Frames due meanwhile go out together, each stamped
when it is sent, so the latency figures are not changed by it."""

T = TypeVar("T")
M = TypeVar("M", bound=control.Message)


class LoadError(Exception):
    """A session could not log in, affiliate or get the floor; the message says which step."""


class Account(msgspec.Struct, frozen=True):
    """One enrolled device the worker plays, as the bench writes it to the accounts file."""

    user_id: str
    device_keys: bytes
    """``DeviceKeys.export(None)``: unencrypted, the file lives in the bench's temp dir."""
    credential: bytes
    channel_id: int
    talker: bool = False
    kid: int = 0
    """The SFrame KID of this account in its channel's roster (sender index, epoch 1)."""


def write_accounts(path: Path, accounts: list[Account]) -> None:
    """Write the accounts file a worker reads (msgpack)."""
    path.write_bytes(msgspec.msgpack.encode(accounts))


def read_accounts(path: Path) -> list[Account]:
    return msgspec.msgpack.decode(path.read_bytes(), type=list[Account])


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (each session holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- one session -------------------------------------------------------------------------------


class LoadSession:
    """One logged-in account: its control connection, hop session and pending waits."""

    def __init__(self, account: Account, ws: ClientConnection, login_ok: control.LoginOk) -> None:
        self.account = account
        self.ws = ws
        self.index = login_ok.session_index
        self.hop = media.HopSession(login_ok.session_index, login_ok.hop_key, "client")
        self.burst_id: int | None = None
        self.sequence = 0
        self.closed = False
        self._waiters: list[tuple[type[Any], asyncio.Future[Any]]] = []
        self._reader = asyncio.create_task(self._read())

    def expect(self, kind: type[M]) -> asyncio.Future[M]:
        """A future for the next message of ``kind``; register it before sending the request."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(LoadError(f"{self.account.user_id}: connection closed"))
        else:
            self._waiters.append((kind, future))
        return future

    def _on_message(self, message: control.Message) -> None:
        for position, (kind, future) in enumerate(self._waiters):
            if isinstance(message, kind):
                del self._waiters[position]
                if not future.done():
                    future.set_result(message)
                return
        if isinstance(message, control.Error | control.FloorDeny) and self._waiters:
            _, future = self._waiters.pop(0)
            if not future.done():
                future.set_exception(LoadError(f"{self.account.user_id}: refused: {message}"))

    async def _read(self) -> None:
        # Always read, so the server's pings are answered and its queue never backs up.
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    self._on_message(control.decode(raw))
        except (websockets.ConnectionClosed, ProtocolError, OSError):
            pass
        finally:
            self.closed = True
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(
                        LoadError(f"{self.account.user_id}: connection closed while waiting")
                    )
            self._waiters.clear()

    async def close(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


# --- the shared UDP socket ---------------------------------------------------------------------


class MediaSocket(asyncio.DatagramProtocol):
    """The worker's one UDP socket: counts DATA, records it on demand, answers probes."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.data_received = 0
        self.keepalives_answered = 0
        self.recording: list[tuple[int, bytes]] | None = None
        self.probes: dict[int, asyncio.Future[None]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDP transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # The hot loop of a listener worker: no decryption here (done later, for
        # recorded datagrams only), just the arrival time and a count.
        if len(data) < media.MIN_DATAGRAM_SIZE:
            return
        if data[1] == media.DATA:
            self.data_received += 1
            recording = self.recording
            if recording is not None:
                recording.append((time.monotonic_ns(), data))
        elif data[1] == media.KEEPALIVE:
            self.keepalives_answered += 1
            probe = self.probes.pop(int.from_bytes(data[4:8], "big"), None)
            if probe is not None and not probe.done():
                probe.set_result(None)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP from a relay that stopped: counted as loss by the bench, not fatal here


def _client_tls() -> ssl.SSLContext:
    # The relay's certificate is self-signed: it is checked against the pin, not a CA.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def bounded(
    concurrency: int, jobs: Sequence[Callable[[], Awaitable[T]]]
) -> list[T | BaseException]:
    """Run ``jobs`` with at most ``concurrency`` in flight; results or exceptions, in order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs), return_exceptions=True))


# --- the worker --------------------------------------------------------------------------------


class LoadGenerator:
    """Every session of this worker and the commands the bench sends it."""

    def __init__(
        self, accounts: list[Account], host: str, control_port: int, fingerprint: bytes
    ) -> None:
        self.accounts = accounts
        self.host = host
        self.url = f"wss://{host}:{control_port}"
        self.fingerprint = fingerprint
        self.keys = {a.user_id: DeviceKeys.import_(a.device_keys) for a in accounts}
        self.sessions: list[LoadSession] = []
        self.socket = MediaSocket()
        self.media_addr: tuple[str, int] | None = None
        self._tls = _client_tls()
        self._talking: asyncio.Task[dict[int, int]] | None = None
        self._stop_talking = asyncio.Event()
        self._keepalive: asyncio.Task[int] | None = None
        self._stop_keepalive = asyncio.Event()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_BUFFER)
        sock.bind((self.host, 0))
        await loop.create_datagram_endpoint(lambda: self.socket, sock=sock)

    # --- connect -------------------------------------------------------------------------

    async def _login(self, account: Account) -> LoadSession:
        ws = await ws_connect(
            self.url,
            ssl=self._tls,
            compression=None,
            max_size=control.MAX_MESSAGE_SIZE,
            open_timeout=STEP_TIMEOUT,
            ping_interval=None,  # the server pings; the library answers
            close_timeout=2,
        )
        try:
            der = ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
            if hashlib.sha256(der).digest() != self.fingerprint:
                raise LoadError("the relay's certificate does not match the pinned fingerprint")
            async with asyncio.timeout(STEP_TIMEOUT):
                hello = control.decode(await ws.recv(decode=False))
            if not isinstance(hello, control.Hello):
                raise LoadError(f"{account.user_id}: expected Hello, got {hello}")
            client_nonce = secrets.token_bytes(control.NONCE_SIZE)
            statement = login_statement(hello.server_nonce, client_nonce, self.fingerprint)
            login = control.Login(
                credential=account.credential,
                signature=self.keys[account.user_id].sign(statement),
                client_nonce=client_nonce,
                client_software="bench.loadgen",
            )
            await ws.send(control.encode(login))
            async with asyncio.timeout(STEP_TIMEOUT):
                reply = control.decode(await ws.recv(decode=False))
        except BaseException:
            await ws.close()
            raise
        if not isinstance(reply, control.LoginOk):
            await ws.close()
            raise LoadError(f"{account.user_id}: login refused: {reply}")
        if self.media_addr is None:
            self.media_addr = (reply.media_host or self.host, reply.media_port)
        return LoadSession(account, ws, reply)

    def _send_keepalive(self, session: LoadSession) -> None:
        assert self.socket.transport is not None and self.media_addr is not None
        self.socket.transport.sendto(session.hop.seal(b"", media.KEEPALIVE), self.media_addr)

    async def _probe(self, session: LoadSession) -> None:
        """A keepalive and its answer: the relay now knows this session's UDP address."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.socket.probes[session.index] = answered
            self._send_keepalive(session)
            try:
                async with asyncio.timeout(KEEPALIVE_RETRY):
                    await answered
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise LoadError(f"{session.account.user_id}: no keepalive answer") from None

    async def _connect_one(self, account: Account) -> LoadSession:
        session = await self._login(account)
        try:
            await self._probe(session)
            affiliated = session.expect(control.Affiliated)
            await session.ws.send(control.encode(control.Affiliate(channel_id=account.channel_id)))
            async with asyncio.timeout(STEP_TIMEOUT):
                await affiliated
        except BaseException:
            await session.close()
            raise
        return session

    async def connect(self, concurrency: int) -> dict[str, Any]:
        started = time.monotonic()
        jobs = [functools.partial(self._connect_one, a) for a in self.accounts]
        results = await bounded(concurrency, jobs)
        errors = [r for r in results if isinstance(r, BaseException)]
        self.sessions = [r for r in results if isinstance(r, LoadSession)]
        return {
            "connected": len(self.sessions),
            "failed": len(errors),
            "errors": sorted({f"{type(e).__name__}: {e}" for e in errors})[:5],
            "seconds": time.monotonic() - started,
        }

    # --- talking ---------------------------------------------------------------------------

    def _talkers(self) -> list[LoadSession]:
        return [s for s in self.sessions if s.account.talker and not s.closed]

    async def floor(self) -> dict[str, Any]:
        async def take(session: LoadSession) -> None:
            granted = session.expect(control.FloorGranted)
            request = control.FloorRequest(channel_id=session.account.channel_id, priority=1)
            await session.ws.send(control.encode(request))
            async with asyncio.timeout(STEP_TIMEOUT):
                session.burst_id = (await granted).burst_id
            session.sequence = 0

        talkers = self._talkers()
        await asyncio.gather(*(take(s) for s in talkers))
        return {"granted": len(talkers)}

    async def release(self) -> dict[str, Any]:
        talkers = self._talkers()
        for session in talkers:
            release = control.FloorRelease(channel_id=session.account.channel_id)
            await session.ws.send(control.encode(release))
            session.burst_id = None
        return {"released": len(talkers)}

    async def _talk(self, rate: float, frame_bytes: int) -> dict[int, int]:
        """Send ``rate`` datagrams/s per talker, start times spread over one period."""
        talkers = [s for s in self._talkers() if s.burst_id is not None]
        sent = {s.account.channel_id: 0 for s in talkers}
        if not talkers:
            await self._stop_talking.wait()
            return sent
        transport, addr = self.socket.transport, self.media_addr
        assert transport is not None and addr is not None
        period = int(1e9 / rate)
        start = time.monotonic_ns()
        due = [start + i * period // len(talkers) for i in range(len(talkers))]
        headers = [encode_header(s.account.kid, 0) for s in talkers]
        filler = os.urandom(max(0, frame_bytes - _STAMP.size - max(map(len, headers))))
        while not self._stop_talking.is_set():
            now = time.monotonic_ns()
            for i, session in enumerate(talkers):
                while due[i] <= now:
                    assert session.burst_id is not None
                    frame = headers[i] + _STAMP.pack(time.monotonic_ns()) + filler
                    inner = media.pack_inner(
                        session.account.channel_id, session.burst_id, session.sequence, 0, frame
                    )
                    transport.sendto(session.hop.seal(inner), addr)
                    session.sequence += 1
                    sent[session.account.channel_id] += 1
                    due[i] += period
            await asyncio.sleep(max(MIN_SLEEP_S, (min(due) - time.monotonic_ns()) / 1e9))
        return sent

    async def talk_start(self, rate: float, frame_bytes: int, record: bool) -> dict[str, Any]:
        if self._talking is not None:
            raise LoadError("already talking: send talk_stop first")
        self.socket.recording = [] if record else None
        if record:
            # The recording keeps a tuple per datagram (400,000 in a 10 s window at 40,000/s)
            # and the collector's passes over them paused this process for 10-1,150 ms
            # (measured): time the listeners' datagrams waited, counted as relay latency.
            # Nothing on this path makes reference cycles; stats() turns collection back on.
            gc.disable()
        self._stop_talking.clear()
        self._talking = asyncio.create_task(self._talk(rate, frame_bytes))
        return {"talkers": len(self._talkers())}

    async def talk_stop(self) -> dict[str, Any]:
        if self._talking is None:
            return {"sent": {}}
        self._stop_talking.set()
        sent = await self._talking
        self._talking = None
        return {"sent": {str(k): v for k, v in sent.items()}}

    def stats(self) -> dict[str, Any]:
        """Counts, and the latency of every recorded datagram (opened now, off the hot loop)."""
        recording, self.socket.recording = self.socket.recording, None
        gc.enable()
        by_index = {s.index: s for s in self.sessions}
        latencies: list[int] = []
        unopened = 0
        for arrived, data in recording or ():
            session = by_index.get(int.from_bytes(data[4:8], "big"))
            try:
                if session is None:
                    raise LoadError("datagram for a session this worker does not have")
                _, inner = session.hop.open(data, "relay")
                frame = media.unpack_inner(inner).frame
                stamp = _STAMP.unpack_from(frame, decode_header(frame).size)[0]
                latencies.append((arrived - stamp) // 1000)
            except (ProtocolError, LoadError, struct.error, CryptoError):
                unopened += 1
        return {
            "received": self.socket.data_received,
            "latencies_us": latencies,
            "unopened": unopened,
            "keepalives_answered": self.socket.keepalives_answered,
            "sessions": sum(1 for s in self.sessions if not s.closed),
        }

    # --- idle sessions ---------------------------------------------------------------------

    async def _keepalives(self, interval: float) -> int:
        """Each live session sends a keepalive every ``interval`` s, the sessions evenly spread."""
        sessions = [s for s in self.sessions if not s.closed]
        sent = 0
        if not sessions:
            await self._stop_keepalive.wait()
            return sent
        step = interval / len(sessions)
        start = time.monotonic()
        while not self._stop_keepalive.is_set():
            position = int((time.monotonic() - start) / step)
            while sent <= position:
                self._send_keepalive(sessions[sent % len(sessions)])
                sent += 1
            await asyncio.sleep(max(0.001, start + sent * step - time.monotonic()))
        return sent

    async def keepalive_start(self, interval: float) -> dict[str, Any]:
        if self._keepalive is not None:
            raise LoadError("keepalives already running")
        self._stop_keepalive.clear()
        self.socket.keepalives_answered = 0
        self._keepalive = asyncio.create_task(self._keepalives(interval))
        return {}

    async def keepalive_stop(self) -> dict[str, Any]:
        if self._keepalive is None:
            return {"sent": 0, "answered": 0}
        self._stop_keepalive.set()
        sent = await self._keepalive
        self._keepalive = None
        return {"sent": sent, "answered": self.socket.keepalives_answered}

    async def close(self, count: int, concurrency: int = 50) -> dict[str, Any]:
        live = [s for s in self.sessions if not s.closed]
        leaving = live[len(live) - min(count, len(live)) :]
        await bounded(concurrency, [s.close for s in leaving])
        return {"closed": len(leaving), "sessions": len(live) - len(leaving)}

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        if name == "connect":
            return await self.connect(int(command.get("concurrency", 25)))
        if name == "floor":
            return await self.floor()
        if name == "talk_start":
            return await self.talk_start(
                float(command["rate"]), int(command["frame_bytes"]), bool(command["record"])
            )
        if name == "talk_stop":
            return await self.talk_stop()
        if name == "stats":
            return self.stats()
        if name == "release":
            return await self.release()
        if name == "keepalive_start":
            return await self.keepalive_start(float(command["interval"]))
        if name == "keepalive_stop":
            return await self.keepalive_stop()
        if name == "close":
            return await self.close(int(command["count"]))
        raise LoadError(f"unknown command {name!r}")


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(generator: LoadGenerator) -> None:
    """Answer commands from stdin until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await generator.open()
    _reply({"ok": True, "ready": True, "accounts": len(generator.accounts)})
    while line := await reader.readline():
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        try:
            result = await generator.handle(command)
        except (LoadError, OSError, TimeoutError, websockets.WebSocketException) as exc:
            _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            _reply({"ok": True, **result})
    for session in generator.sessions:
        session.ws.transport.abort()  # the bench is done with this worker: no goodbyes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--accounts", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--fingerprint", required=True, help="relay certificate SHA-256 (hex)")
    args = parser.parse_args(argv)
    raise_fd_limit()
    generator = LoadGenerator(
        read_accounts(args.accounts),
        args.host,
        args.control_port,
        bytes.fromhex(args.fingerprint),
    )
    uvloop.run(serve(generator))


if __name__ == "__main__":
    main()
