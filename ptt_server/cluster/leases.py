"""Floor leases and burst ids in JetStream key-value buckets: the plumbing under the floors.

The node that first needs a channel's floor (a radio of its own pressed PTT and nobody
answered on the channel's floor subject) takes the lease: a JetStream key-value entry
created with compare-and-set in a bucket whose entries expire after :data:`LEASE_S`.
It renews the lease every :data:`ptt_server.cluster.floors.TICK_S` while the floor is busy,
and lets it go once the floor has been idle for
:data:`ptt_server.cluster.floors.IDLE_KEEP_S` (so only channels that talk hold leases).

Burst ids keep increasing across owners: each grant's id is kept in a second bucket
(no expiry), and a new owner numbers on from it.

:class:`FloorLeases` only stores and reads; when to take, renew or let go is the policy of
:class:`ptt_server.cluster.floors.ClusterFloors`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Final

from nats.aio.client import Client as NATS
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger("ptt_server.cluster")

LEASE_S: Final = 1.5
"""Seconds a floor lease lives unrenewed: the longest a dead owner holds a floor."""
KV_TIMEOUT_S: Final = 1.0
"""Seconds a lease operation waits for JetStream."""
LEASE_BUCKET: Final = "fieldradio_floor_leases"
BURST_BUCKET: Final = "fieldradio_floor_bursts"


class FloorLeases:
    """The floor leases of one node (``node_name``) and the last burst id of each channel.

    Every lease outcome sets :attr:`ok`: a compare-and-set refusal means the bucket
    answered, any other error means it is away.
    """

    def __init__(self, node_name: str, refused: Callable[[str, str], None]) -> None:
        """``refused(subject, why)`` counts and logs what another node stored wrongly."""
        self._name = node_name.encode()
        self._refused = refused
        self._leases_kv: KeyValue | None = None
        self._bursts_kv: KeyValue | None = None
        self.ok = True
        """The lease bucket answered at its last use (False: JetStream is away, e.g. its
        leader died, while the bus itself may be up)."""

    async def start(self, nc: NATS) -> None:
        """Open both buckets, making them on first use."""
        # A press waits at most this for the lease bucket before its node decides alone.
        js = nc.jetstream(timeout=KV_TIMEOUT_S)
        self._leases_kv = await _bucket(js, KeyValueConfig(bucket=LEASE_BUCKET, ttl=LEASE_S))
        self._bursts_kv = await _bucket(js, KeyValueConfig(bucket=BURST_BUCKET))

    async def take(self, channel_id: int) -> int | None:
        """Create the channel's lease for this node: its revision, or None if another node
        holds it or the bucket is away."""
        assert self._leases_kv is not None
        for _ in range(2):
            try:
                revision = await self._leases_kv.create(str(channel_id), self._name)
            except KeyWrongLastSequenceError:
                self.ok = True
                return None  # another node holds it
            except KeyNotFoundError:
                # The old lease expired between nats-py's create and its check of why the
                # create failed (it reads the key again): the key is free now, try again.
                continue
            except Exception as exc:
                self.ok = False
                log.warning("floor lease not taken", extra={"fields": {"error": str(exc)}})
                return None
            self.ok = True
            return revision
        self.ok = True
        return None  # it expired and was taken again meanwhile

    async def renew(self, channel_id: int, revision: int) -> int | None:
        """Renew the lease held at ``revision``: its new revision, or None if not renewed."""
        assert self._leases_kv is not None
        try:
            revision = await self._leases_kv.update(str(channel_id), self._name, last=revision)
        except Exception as exc:  # taken by another node after an outage, or the bus is away
            self.ok = isinstance(exc, KeyWrongLastSequenceError)
            log.warning(
                "floor lease not renewed",
                extra={"fields": {"channel": channel_id, "error": str(exc)}},
            )
            return None
        self.ok = True
        return revision

    async def give_back(self, channel_id: int, revision: int) -> None:
        """Delete the lease held at ``revision`` (if it fails, the lease expires)."""
        if self._leases_kv is not None:
            with contextlib.suppress(Exception):
                await self._leases_kv.delete(str(channel_id), last=revision)

    async def holds(self, channel_id: int, node: str) -> bool:
        """Whether ``node`` holds the channel's lease (True when the bucket is away)."""
        assert self._leases_kv is not None
        try:
            entry = await self._leases_kv.get(str(channel_id))
        except KeyNotFoundError:
            return False
        except Exception as exc:  # the bus is away: nothing to check against, the news stands
            log.warning("floor lease unknown", extra={"fields": {"error": str(exc)}})
            return True
        return entry.value == node.encode()

    async def probe(self) -> None:
        """While the lease bucket is thought away: one cheap read says whether it is back."""
        if self.ok or self._leases_kv is None:
            return
        try:
            await self._leases_kv.get("probe")
        except KeyNotFoundError:
            self.ok = True
        except Exception as exc:
            log.debug("lease bucket still away", extra={"fields": {"error": str(exc)}})

    async def last_burst(self, channel_id: int) -> int:
        """The last burst id granted on the channel by any owner (0 if none or unknown)."""
        assert self._bursts_kv is not None
        try:
            entry = await self._bursts_kv.get(str(channel_id))
        except KeyNotFoundError:
            return 0
        except Exception as exc:
            log.warning("last burst id unknown", extra={"fields": {"error": str(exc)}})
            return 0
        try:
            return max(0, min(int(entry.value or b"0"), 0xFFFF_FFFF))
        except ValueError:
            self._refused(BURST_BUCKET, "a burst id that is not a number")
            return 0

    async def remember_burst(self, channel_id: int, burst_id: int) -> None:
        """Keep ``burst_id`` as the channel's last, for the next owner to number on from."""
        assert self._bursts_kv is not None
        try:
            await self._bursts_kv.put(str(channel_id), str(burst_id).encode())
        except Exception as exc:
            log.warning("burst id not kept", extra={"fields": {"error": str(exc)}})


async def _bucket(js: object, config: KeyValueConfig) -> KeyValue:
    """The key-value bucket, made on first use (every node makes it the same way)."""
    from nats.js.client import JetStreamContext

    assert isinstance(js, JetStreamContext)
    try:
        return await js.create_key_value(config)
    except Exception:
        assert config.bucket is not None
        return await js.key_value(config.bucket)
