"""Micro-benchmarks of the end-to-end layer: ``python -m bench.crypto [--json]``.

- ``frame_seal_us`` / ``frame_open_us``: :class:`crypto.keyring.FrameSealer.seal` and
  :class:`crypto.keyring.FrameOpener.open` of a 60-byte Opus frame with a 13-byte inner
  header as metadata (open includes header parsing, the floor-holder check and the
  replay window). Goal: <= 10 us each.
- ``burst_sign_us_per_s``: the talker's signing cost per second of 50 frame/s audio
  (hash every frame, one Ed25519 statement per 40 frames or per second).
  ``burst_verify_us_per_s`` is the listener's matching cost.
- ``rekey_200_ms``: CPU time to create an epoch key and wrap it for a 200-member
  channel with :func:`crypto.epoch.wrap_epoch` (HPKE ML-KEM-768 + X25519 and one
  Ed25519 signature per member). ``rekey_200_verified_ms`` also verifies every
  recipient credential first. ``rekey_200_bytes``: all envelopes on the wire.
  Goal: rekey_200 <= 50 ms.

Medians over repeated batches; single-threaded and a few seconds long: safe on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator

from crypto.epoch import new_epoch_key, wrap_epoch
from crypto.identity import Credential, DeviceKeys, OrgRoot, Role, TrustAnchor
from crypto.keyring import FrameOpener, FrameSealer
from crypto.roster import Member, Roster
from crypto.talker import BurstSigner, BurstVerifier

FRAME_GOAL_US = 10.0
REKEY_GOAL_MS = 50.0
MEMBERS = 200
FPS = 50
OPUS_BYTES = 60
CHANNEL = 7
NOW = 1_800_000_000.0
_METADATA = CHANNEL.to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(5)


def median_us(operation: Callable[[], object], batches: int = 31, per_batch: int = 2000) -> float:
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


def _frame_seal() -> float:
    sealer = FrameSealer(new_epoch_key(CHANNEL, 1, 1), 3)
    seal, opus = sealer.seal, os.urandom(OPUS_BYTES)

    def one() -> object:
        return seal(_METADATA, opus, NOW)

    return median_us(one)


def _frame_open() -> float:
    key = new_epoch_key(CHANNEL, 1, 1)
    # live=False: tens of thousands of frames open at one `now` (the plausibility bound on a
    # live burst's counters would refuse them; a recording is opened the same way).
    sealer, opener = FrameSealer(key, 3), FrameOpener(live=False)
    opener.add_epoch(key, NOW)
    opus = os.urandom(OPUS_BYTES)
    batches, per_batch = 31, 2000
    # Each frame opens once (replay window): seal enough fresh ones ahead, untimed.
    frames: Iterator[bytes] = iter(
        [sealer.seal(_METADATA, opus, NOW) for _ in range(per_batch * (batches + 2))]
    )
    open_ = opener.open

    def one() -> object:
        return open_(_METADATA, next(frames), 3, NOW, burst=1)

    assert one() == opus
    return median_us(one, batches=batches, per_batch=per_batch)


def _burst(seconds: int) -> tuple[float, float]:
    """(talker, listener) microseconds per second of audio, median over runs."""
    keys = DeviceKeys.generate()
    sealer = FrameSealer(new_epoch_key(CHANNEL, 1, 1), 3)
    frames = [sealer.seal(_METADATA, os.urandom(OPUS_BYTES), NOW) for _ in range(FPS * seconds)]
    sign_runs, verify_runs = [], []
    for burst in range(7):
        statements: list[bytes] = []
        start = time.perf_counter_ns()
        signer = BurstSigner(keys, CHANNEL, burst, NOW)
        for sequence, frame in enumerate(frames):
            now = NOW + sequence / FPS
            signer.add(sequence, frame)
            if signer.due(now):
                statements.append(signer.sign(now))
        statements.append(signer.sign(NOW + seconds, end=True))
        sign_runs.append((time.perf_counter_ns() - start) / 1000 / seconds)
        start = time.perf_counter_ns()
        verifier = BurstVerifier(keys.signing_public_key, CHANNEL, burst)
        for sequence, frame in enumerate(frames):
            verifier.add(sequence, frame)
        for statement in statements:
            verifier.check(statement)
        verify_runs.append((time.perf_counter_ns() - start) / 1000 / seconds)
        assert len(verifier.verified) == len(frames)
    return statistics.median(sign_runs), statistics.median(verify_runs)


def _enroll(root: OrgRoot, user_id: str, role: Role, serial: int) -> tuple[DeviceKeys, Credential]:
    keys = DeviceKeys.generate()
    credential = root.issue_credential(
        user_id=user_id,
        display_name=user_id,
        role=role,
        device_id=f"{user_id}-device",
        signing_key=keys.signing_public_key,
        hpke_key=keys.hpke_public_key,
        not_before=int(NOW) - 86_400,
        not_after=int(NOW) + 86_400,
        serial=serial,
    )
    return keys, credential


def _rekey() -> tuple[float, float, int]:
    """(ms, ms with recipient checks, envelope bytes) for a MEMBERS-member channel."""
    root = OrgRoot.generate()
    trust = TrustAnchor(root.public_key_bytes())
    dispatcher_keys, dispatcher = _enroll(root, "dispatch", Role.DISPATCHER, 1)
    credentials = {"dispatch": dispatcher}
    for i in range(MEMBERS - 1):
        credentials[f"officer{i:03d}"] = _enroll(root, f"officer{i:03d}", Role.OFFICER, i + 2)[1]
    roster = Roster(CHANNEL, 1, tuple(Member.from_credential(c) for c in credentials.values()))
    plain, verified = [], []
    size = 0
    for epoch in range(1, 4):
        start = time.process_time()
        key = new_epoch_key(CHANNEL, epoch, roster.version)
        envelopes = wrap_epoch(key, roster, credentials, dispatcher_keys, dispatcher)
        plain.append((time.process_time() - start) * 1000)
        size = sum(len(envelope) for envelope in envelopes.values())
        start = time.process_time()
        key = new_epoch_key(CHANNEL, epoch, roster.version)
        wrap_epoch(key, roster, credentials, dispatcher_keys, dispatcher, trust=trust, now=NOW)
        verified.append((time.process_time() - start) * 1000)
    return statistics.median(plain), statistics.median(verified), size


def measure() -> dict[str, object]:
    """Every figure, as the JSON object ``--json`` prints."""
    sign_us, verify_us = _burst(seconds=10)
    rekey_ms, rekey_verified_ms, rekey_bytes = _rekey()
    return {
        "frame_seal_us": round(_frame_seal(), 3),
        "frame_open_us": round(_frame_open(), 3),
        "frame_goal_us": FRAME_GOAL_US,
        "burst_sign_us_per_s": round(sign_us, 1),
        "burst_verify_us_per_s": round(verify_us, 1),
        "rekey_200_ms": round(rekey_ms, 2),
        "rekey_200_verified_ms": round(rekey_verified_ms, 2),
        "rekey_200_bytes": rekey_bytes,
        "rekey_goal_ms": REKEY_GOAL_MS,
        "suite": "SFrame AES_128_GCM_SHA256_128",
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print them (one JSON object with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.crypto", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure()
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"frame seal {result['frame_seal_us']} us, open {result['frame_open_us']} us"
        f" (goal <= {FRAME_GOAL_US}); burst signing {result['burst_sign_us_per_s']} us per"
        f" second of audio (verify {result['burst_verify_us_per_s']}); rekey of {MEMBERS}"
        f" members {result['rekey_200_ms']} ms (goal <= {REKEY_GOAL_MS}),"
        f" {result['rekey_200_bytes']} bytes of envelopes"
    )


if __name__ == "__main__":
    main()
