"""Micro-benchmarks of the wire formats: ``python -m bench.protocol [--json]``.

- ``control_roundtrip_us``: ``encode`` + ``decode`` of a FloorRequest.
- ``datagram_roundtrip_us``: ``HopSession.seal`` + ``open`` of a 100-byte inner frame.
- ``relay_per_listener_us``: one ``open`` plus 50 re-seals, per listener: the
  relay's crypto cost per forwarded packet in a 50-listener channel.

Each figure is the median over many batches, per operation, loop overhead
included (so slightly pessimistic). Single-threaded and short: safe on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

from ptt_protocol import control, media

CONTROL_GOAL_US = 5.0
DATAGRAM_GOAL_US = 6.0
LISTENERS = 50


def median_us(operation: Callable[[], object], batches: int = 41, per_batch: int = 2000) -> float:
    """Median microseconds per call of ``operation``, over ``batches`` timed batches."""
    for _ in range(per_batch):  # warm caches and the allocator
        operation()
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(per_batch):
            operation()
        samples.append((time.perf_counter_ns() - start) / per_batch / 1000)
    return statistics.median(samples)


def _control_roundtrip() -> float:
    msg = control.FloorRequest(channel_id=1234, priority=2)
    encode, decode = control.encode, control.decode

    def roundtrip() -> object:
        return decode(encode(msg))

    assert roundtrip() == msg
    return median_us(roundtrip)


def _sessions(index: int) -> tuple[media.HopSession, media.HopSession]:
    key = os.urandom(media.HOP_KEY_SIZE)
    address = ("127.0.0.1", 40000 + index)
    return (
        media.HopSession(index, key, "client", address),
        media.HopSession(index, key, "server", address),
    )


def _inner() -> bytes:
    return media.pack_inner(7, 1, 0, 0, os.urandom(100 - media.INNER_HEADER.size))


def _datagram_roundtrip() -> float:
    client, server = _sessions(1)
    inner = _inner()
    assert len(inner) == 100
    address = ("127.0.0.1", 40001)
    seal, open_ = client.seal, server.open

    def roundtrip() -> object:
        return open_(seal(inner), address)

    assert roundtrip() == (media.DATA, inner)
    return median_us(roundtrip)


def _relay_per_listener() -> float:
    talker, talker_at_relay = _sessions(1)
    listeners = [_sessions(index)[1] for index in range(2, 2 + LISTENERS)]
    inner = _inner()
    address = ("127.0.0.1", 40001)
    # Sealed ahead so the talker's own seal is not counted; enough for every call.
    batches, per_batch = 11, 200
    datagrams = iter([talker.seal(inner) for _ in range(per_batch * (batches + 1))])

    def forward() -> object:
        _, forwarded = talker_at_relay.open(next(datagrams), address)
        for listener in listeners:
            listener.seal(forwarded)
        return forwarded

    return median_us(forward, batches=batches, per_batch=per_batch) / LISTENERS


def measure() -> dict[str, object]:
    """Every figure, as the JSON object ``--json`` prints."""
    return {
        "control_roundtrip_us": round(_control_roundtrip(), 3),
        "control_roundtrip_goal_us": CONTROL_GOAL_US,
        "datagram_roundtrip_us": round(_datagram_roundtrip(), 3),
        "datagram_roundtrip_goal_us": DATAGRAM_GOAL_US,
        "relay_per_listener_us": round(_relay_per_listener(), 3),
        "aead": "AES-256-GCM",
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print them (one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.protocol", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure()
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"control round trip {result['control_roundtrip_us']} us (goal <= {CONTROL_GOAL_US}), "
        f"datagram round trip {result['datagram_roundtrip_us']} us (goal <= {DATAGRAM_GOAL_US}), "
        f"relay {result['relay_per_listener_us']} us per listener ({LISTENERS} listeners)"
    )


if __name__ == "__main__":
    main()
