"""Prometheus metrics for operators.

The relay's per-packet counters are plain integer attributes (an ``int += 1``
costs nanoseconds; a ``prometheus_client.Counter.inc`` takes a lock each time)
and are read by a collector only when Prometheus scrapes. Everything counted
less often than per packet uses ordinary ``prometheus_client`` metrics.
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class RelayCounters:
    """Counted on the media hot path without locks; drops are keyed by reason."""

    __slots__ = (
        "bus_received_packets",
        "drops",
        "forwarded_bytes",
        "forwarded_packets",
        "received_packets",
        "roam_moves",
        "roam_probes",
    )

    def __init__(self) -> None:
        self.received_packets = 0
        self.forwarded_packets = 0
        self.forwarded_bytes = 0
        self.roam_probes = 0
        """Probes sent to a session's old address because a newer datagram came from elsewhere."""
        self.roam_moves = 0
        """Sessions moved to a new address after an unanswered probe."""
        self.bus_received_packets = 0
        """Frames another node of the cluster published and this node fanned out."""
        self.drops: TallyCounter[str] = TallyCounter()


class _RelayCollector(Collector):
    def __init__(self, counters: RelayCounters, sessions: Gauge | None = None) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        c = self._counters
        yield CounterMetricFamily(
            "fieldradio_media_received_packets",
            "Media datagrams received",
            value=c.received_packets,
        )
        yield CounterMetricFamily(
            "fieldradio_media_forwarded_packets",
            "Media datagrams forwarded to listeners",
            value=c.forwarded_packets,
        )
        yield CounterMetricFamily(
            "fieldradio_media_bus_received_packets",
            "Media frames received from other nodes of the cluster and fanned out here",
            value=c.bus_received_packets,
        )
        yield CounterMetricFamily(
            "fieldradio_media_forwarded_bytes", "Media bytes forwarded", value=c.forwarded_bytes
        )
        yield CounterMetricFamily(
            "fieldradio_media_roam_probes",
            "Probes of a session's old address before moving it (many without moves: replays"
            " from elsewhere, or radios on two paths)",
            value=c.roam_probes,
        )
        yield CounterMetricFamily(
            "fieldradio_media_roam_moves",
            "Sessions moved to a new address after an unanswered probe",
            value=c.roam_moves,
        )
        drops = CounterMetricFamily(
            "fieldradio_media_dropped_packets", "Media datagrams dropped", labels=["reason"]
        )
        for reason, count in sorted(c.drops.items()):
            drops.add_metric([reason], count)
        yield drops


class ServerMetrics:
    """Every metric the server exposes, in its own registry (tests run many servers)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.relay = RelayCounters()
        self.registry.register(_RelayCollector(self.relay))
        r = self.registry
        self.sessions = Gauge("fieldradio_sessions", "Logged-in sessions", registry=r)
        self.channels = Gauge(
            "fieldradio_active_channels", "Channels with affiliated members", registry=r
        )
        self.logins = Counter("fieldradio_logins", "Login attempts", ["outcome"], registry=r)
        self.prelogin_pending = Gauge(
            "fieldradio_prelogin_pending",
            "Connections accepted and not logged in yet (capped by max_pending_logins)",
            registry=r,
        )
        self.prelogin_closed = Counter(
            "fieldradio_prelogin_closed",
            "Connections closed before logging in, by reason (refused at the cap, displaced"
            " by a fairer share, login_timeout, shutdown, or closed by the peer / failed TLS)",
            ["reason"],
            registry=r,
        )
        self.heap_trims = Counter(
            "fieldradio_heap_trims", "malloc_trim calls after connection churn", registry=r
        )
        self.heap_trim_seconds = Counter(
            "fieldradio_heap_trim_seconds",
            "Time spent in malloc_trim (the event loop was blocked that long)",
            registry=r,
        )
        self.bus_refused = Counter(
            "fieldradio_bus_refused",
            "Messages from other nodes of the cluster refused (malformed, unknown, misrouted),"
            " by subject family",
            ["subject"],
            registry=r,
        )
        self.bus_dropped = Counter(
            "fieldradio_bus_dropped",
            "Messages for other nodes dropped (media while the bus was away, full buffer)",
            registry=r,
        )
        self.floor_leases = Counter(
            "fieldradio_floor_leases",
            "Floor leases of this node by event (taken, renewed, released, lost)",
            ["event"],
            registry=r,
        )
        self.gc_reclaims = Counter(
            "fieldradio_gc_reclaims",
            "Full collections of the frozen heap (ptt_server.gc_freeze)",
            registry=r,
        )
        self.gc_reclaim_seconds = Counter(
            "fieldradio_gc_reclaim_seconds",
            "Time spent in those collections (the event loop was blocked that long)",
            registry=r,
        )
        self.floor_grants = Counter("fieldradio_floor_grants", "Floor grants", registry=r)
        self.floor_denials = Counter("fieldradio_floor_denials", "Floor denials", registry=r)
        self.floor_preemptions = Counter(
            "fieldradio_floor_preemptions", "Floor pre-emptions by a higher priority", registry=r
        )
        self.floor_revokes = Counter(
            "fieldradio_floor_revokes", "Floor revokes", ["cause"], registry=r
        )
        self.access_time = Histogram(
            "fieldradio_floor_access_seconds",
            "Server-side time from floor request to grant",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 1.0),
            registry=r,
        )
        self.control_errors = Counter(
            "fieldradio_control_errors", "Control messages refused", ["code"], registry=r
        )
        self.emergencies = Counter("fieldradio_emergencies", "Emergency alerts raised", registry=r)
        self.emergencies_held = Counter(
            "fieldradio_emergency_presses_held",
            "Emergency presses recorded but held back by the per-user broadcast limit",
            registry=r,
        )
        self.messages = Counter("fieldradio_messages", "Text messages relayed", registry=r)

    def count_gc_reclaim(self, seconds: float) -> None:
        """A full collection of the frozen heap took ``seconds`` (the loop was blocked)."""
        self.gc_reclaims.inc()
        self.gc_reclaim_seconds.inc(seconds)

    def count_heap_trim(self, seconds: float) -> None:
        """A ``malloc_trim`` took ``seconds`` (the loop was blocked)."""
        self.heap_trims.inc()
        self.heap_trim_seconds.inc(seconds)
