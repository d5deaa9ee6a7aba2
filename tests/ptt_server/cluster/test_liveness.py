"""Which nodes are alive (ptt_server.cluster.liveness.Liveness, pure) and the heartbeat's
wire format."""

from __future__ import annotations

import msgspec
import pytest

from ptt_server.cluster import wire
from ptt_server.cluster.liveness import DEAD_AFTER_S, Liveness


def test_a_node_silent_for_the_dead_time_is_dead_once() -> None:
    live = Liveness("node1")
    assert live.heard("node0", 0.0) and live.heard("node2", 0.0)
    assert not live.heard("node2", 1.0)  # known already
    assert live.dead(DEAD_AFTER_S - 0.1) == []
    assert live.dead(DEAD_AFTER_S) == ["node0"]  # node2 was heard at 1.0
    assert live.dead(DEAD_AFTER_S) == []  # declared once
    assert live.live() == ["node1", "node2"]
    assert live.heard("node0", 5.0)  # back: alive again
    assert live.live() == ["node0", "node1", "node2"]


def test_the_sweeper_is_the_lowest_live_name() -> None:
    live = Liveness("node1")
    assert live.sweeper() == "node1"  # alone
    live.heard("node0", 0.0)
    live.heard("node2", 0.0)
    assert live.sweeper() == "node0"
    live.heard("node2", 2.0)
    assert live.dead(DEAD_AFTER_S) == ["node0"]
    assert live.sweeper() == "node1"  # node0 died: the next lowest does the work


def test_its_own_name_is_never_heard_nor_dead() -> None:
    live = Liveness("node1")
    assert not live.heard("node1", 0.0)
    assert live.dead(100.0) == [] and live.live() == ["node1"]
    assert live.unheard(["node1"], 0.0) == [] and live.unheard(["node1"], 100.0) == []


def test_a_node_the_store_names_and_nobody_hears_is_dead_after_the_dead_time() -> None:
    live = Liveness("node1")
    live.heard("node2", 0.0)
    assert live.unheard(["node2", "node9"], 0.0) == []  # node2 is alive; node9 noted
    assert live.unheard(["node2", "node9"], DEAD_AFTER_S - 0.1) == []
    assert live.unheard(["node9"], DEAD_AFTER_S) == ["node9"]
    assert live.unheard([], DEAD_AFTER_S + 1) == []  # its rows were cleared: forgotten
    assert live.unheard(["node9"], 10.0) == []  # named again: a fresh wait
    live.heard("node9", 11.0)  # it is alive after all
    assert live.unheard(["node9"], 20.0) == []


def test_a_bus_outage_of_its_own_declares_nobody_dead() -> None:
    live = Liveness("node1")
    live.heard("node0", 0.0)
    live.resume(10.0)  # nothing heard 0..10: the silence was this node's
    assert live.dead(10.0 + DEAD_AFTER_S - 0.1) == []


def test_a_heartbeat_is_decoded_strictly() -> None:
    beat = wire.decode(wire.encode(wire.Heartbeat(node="node0")))
    assert beat == wire.Heartbeat(node="node0")
    bad = msgspec.msgpack.encode({"type": "heartbeat", "node": ""})
    with pytest.raises(wire.BusMessageError):
        wire.decode(bad)
    with pytest.raises(wire.BusMessageError):
        wire.decode(msgspec.msgpack.encode({"type": "heartbeat", "node": "x" * 200}))
