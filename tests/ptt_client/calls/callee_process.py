"""A callee radio in its own process, for tests that kill it: reads the offer SDP (one JSON
line) on stdin, writes the answer SDP and then "connected" (JSON lines) on stdout, and sends
silence until it is killed. Run as ``python -m tests.ptt_client.calls.callee_process``."""

from __future__ import annotations

import asyncio
import json
import sys

from ptt_client.calls import CallMedia, IceSettings


async def main() -> None:
    # Loopback only: the test's FIELDRADIO_ICE_HOSTS=127.0.0.1 is inherited.
    offer = json.loads(await asyncio.to_thread(sys.stdin.readline))
    media = CallMedia(IceSettings(), None, None)
    print(json.dumps(await media.answer(offer)), flush=True)
    await media.wait_connected()
    print(json.dumps("connected"), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
