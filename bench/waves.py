"""Server memory after waves of short-lived connections: ``python -m bench.waves [--waves 20]
[--connections 500] [--json] [--quick]``.

What runs: a real ``ptt-server`` process (``python -m ptt_server.cli`` on an organisation made
here, as :mod:`bench.relay` does), and from this process ``--waves`` waves of
``--connections`` connections opened together, none of which ever logs in. They are, in
turn (connection ``i`` is kind ``i % 4``):

- ``tcp``: connect, close;
- ``tls``: TLS handshake, close;
- ``ws``: TLS, WebSocket opening handshake, the server's Hello, close;
- ``garbage``: the same, then a garbage binary message as the first message, then wait for
  the server to close.

After each wave the bench waits until the server holds no pre-login connection (its
``fieldradio_prelogin_pending`` gauge; a server without it gets ``--settle`` seconds) and
then ``--settle`` seconds more (the server trims its heap 1 s after churn stops), and reads
the server's VmRSS from /proc/PID/status.

Prints ``rss_baseline_mb`` (before the first wave), ``rss_after_connection_waves_mb`` (after
the last), ``rss_peak_mb`` and the RSS after each wave, plus what happened to the
connections (completed, or refused by the server's pre-login cap) and the server's trims.
Goal: ``rss_after_connection_waves_mb`` within ``GROWTH_GOAL_MB`` of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

from websockets.asyncio.client import connect as ws_connect

from bench.loadgen import raise_fd_limit
from bench.processes import BenchError, RelayProcess, relay_process
from bench.relay import Params, make_org

KINDS: Final = ("tcp", "tls", "ws", "garbage")
STEP_TIMEOUT: Final = 30.0
"""Longest one connection of a wave may take (a loaded, shared machine)."""
GROWTH_GOAL_MB: Final = 20.0
"""Allowed RSS growth over the baseline after all the waves."""


@dataclass(frozen=True)
class WaveParams:
    waves: int = 20
    connections: int = 500
    settle: float = 2.0
    """Seconds after a wave's connections are gone before reading the RSS."""
    quick: bool = False


QUICK: Final = WaveParams(waves=4, connections=100, settle=1.5, quick=True)


def _client_tls() -> ssl.SSLContext:
    # The relay's certificate is self-signed and nothing here logs in: no pin to check.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def one_connection(kind: str, port: int, tls: ssl.SSLContext) -> str:
    """Play one short-lived connection of ``kind``; ``"ok"`` or the name of what failed."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            if kind in ("tcp", "tls"):
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=tls if kind == "tls" else None
                )
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
            else:
                ws = await ws_connect(
                    f"wss://127.0.0.1:{port}",
                    ssl=tls,
                    compression=None,
                    ping_interval=None,
                    open_timeout=STEP_TIMEOUT,
                    close_timeout=2,
                )
                await ws.recv()  # Hello
                if kind == "garbage":
                    await ws.send(os.urandom(100))
                    with contextlib.suppress(Exception):
                        async for _ in ws:  # the server answers an Error, then closes
                            pass
                await ws.close()
        return "ok"
    except Exception as exc:  # a refusal by the server is a result here, not a failure
        return type(exc).__name__


async def _prelogin_pending(relay: RelayProcess) -> float | None:
    return (await relay.metrics()).get("fieldradio_prelogin_pending")


async def _wait_drained(relay: RelayProcess, settle: float) -> None:
    """Until the server holds no pre-login connection (or ``settle`` s, if it cannot say)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while (held := await _prelogin_pending(relay)) is not None and held > 0:
        if time.monotonic() > deadline:
            raise BenchError(f"server still holds {held:.0f} pre-login connections")
        await asyncio.sleep(0.1)
    if held is None:
        await asyncio.sleep(settle)


async def measure_async(params: WaveParams) -> dict[str, Any]:
    started = time.monotonic()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-waves-") as tmp:
        data_dir = Path(tmp)
        await make_org(data_dir, replace(Params(), channels=1, listeners=1, sessions=1))
        async with relay_process(data_dir, "server-waves.log") as relay:
            tls = _client_tls()
            await asyncio.sleep(params.settle)
            baseline = relay.rss_bytes()
            per_wave: list[float] = []
            outcomes: collections.Counter[str] = collections.Counter()
            wave_seconds: list[float] = []
            for _ in range(params.waves):
                wave_started = time.monotonic()
                results = await asyncio.gather(
                    *(
                        one_connection(KINDS[i % len(KINDS)], relay.control_port, tls)
                        for i in range(params.connections)
                    )
                )
                wave_seconds.append(time.monotonic() - wave_started)
                for i, result in enumerate(results):
                    outcomes[f"{KINDS[i % len(KINDS)]}:{result}"] += 1
                await _wait_drained(relay, params.settle)
                await asyncio.sleep(params.settle)
                per_wave.append(relay.rss_bytes() / 2**20)
            metrics = await relay.metrics()
    after = per_wave[-1] if per_wave else baseline / 2**20
    growth = after - baseline / 2**20
    return {
        "rss_baseline_mb": baseline / 2**20,
        "rss_after_connection_waves_mb": after,
        "rss_growth_mb": growth,
        "rss_peak_mb": max(per_wave, default=after),
        "rss_per_wave_mb": per_wave,
        "goal": {
            "goal": f"growth <= {GROWTH_GOAL_MB:g} MB",
            "value": growth,
            "met": growth <= GROWTH_GOAL_MB,
        },
        "connections": dict(sorted(outcomes.items())),
        "wave_seconds": wave_seconds,
        "server": {
            name: value
            for name, value in metrics.items()
            if name.startswith(("fieldradio_prelogin", "fieldradio_heap"))
        },
        "params": {**asdict(params), "kinds": list(KINDS), "cpus": os.cpu_count()},
        "elapsed_s": time.monotonic() - started,
    }


def measure(params: WaveParams) -> dict[str, Any]:
    """Run the waves and return the report (what ``--json`` prints)."""
    return asyncio.run(measure_async(params))


def _human(results: dict[str, Any]) -> str:
    waves = " ".join(f"{mb:.0f}" for mb in results["rss_per_wave_mb"])
    goal = results["goal"]
    return "\n".join(
        [
            f"rss_baseline_mb                {results['rss_baseline_mb']:8.1f}",
            f"rss_after_connection_waves_mb  {results['rss_after_connection_waves_mb']:8.1f}"
            f"   goal {goal['goal']}  {'met' if goal['met'] else 'MISSED'}",
            f"rss_peak_mb                    {results['rss_peak_mb']:8.1f}",
            f"rss per wave (MB): {waves}",
            f"connections: {results['connections']}",
            f"elapsed {results['elapsed_s']:.1f} s",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.waves", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="4 waves of 100, a few seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--waves", type=int, help="waves of connections")
    parser.add_argument("--connections", type=int, help="connections opened together per wave")
    parser.add_argument("--settle", type=float, help="seconds before each RSS reading")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    params = QUICK if args.quick else WaveParams()
    overrides = {
        name: value
        for name, value in vars(args).items()
        if name not in ("quick", "json") and value is not None
    }
    params = replace(params, **overrides)
    if params.waves < 1 or params.connections < 1 or params.settle < 0:
        raise SystemExit("--waves and --connections must be at least 1, --settle at least 0")
    try:
        results = measure(params)
    except BenchError as exc:
        print(f"bench.waves: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(results, indent=2) if args.json else _human(results))


if __name__ == "__main__":
    main()
