"""The relay as a cluster, on this machine: ``python -m bench.cluster [--json] [--quick]``.

What runs: ``nats-server`` with JetStream (:class:`tests.natsfixture.NatsServer`), a
PostgreSQL server (:class:`tests.pgfixture.PostgresServer`) holding the store the nodes
share, and ``--nodes`` (3) ``ptt-server`` processes (``python -m ptt_server.cli --cluster
nats://... --store postgresql://... --node-name nodeI``, one TLS pair for all in a TOML
config, since there is no flag for it). The organisation is made as :mod:`bench.relay` makes
it (:func:`bench.relay.make_org`, straight into the store), plus one channel of real radios
for the failover part (:mod:`bench.cluster_failover`).

1. Media. ``--channels`` K channels of one talker and ``--listeners`` L listeners; the
   talkers log in on node 0 (which then owns every floor), the listeners are spread evenly
   over all nodes, one :mod:`bench.loadgen` process per node. Every talker sends ``--rate``
   frames/s for ``--seconds``. Gives:

   - ``cross_node_added_latency_p50_ms`` / ``_p99_ms``: listener arrival minus talker send
     (CLOCK_MONOTONIC in both processes) for the listeners on the other nodes: node 0's
     relay, its publish to NATS, nats-server, the listener's node and its fan-out, plus the
     load generators' own scheduling (an upper bound). The same figure for node 0's own
     listeners is reported beside it (``same_node_...``).
   - ``fwd_pkts_per_cpu_s``: packets forwarded to listeners (every node's
     ``fieldradio_media_forwarded_packets_total``) per CPU-second of every node AND
     nats-server (/proc/PID/stat) over the send window plus a drain.
   - ``nats_msgs_per_frame``: nats-server's ``out_msgs`` (/varz) over that window divided by
     the frames the talkers sent. Media crosses once per node with listeners other than the
     talker's, so the floor is nodes-with-listeners - 1; lease renewals, floor heartbeats and
     JetStream replies are in the count too. Goal: at most the nodes with listeners.

2. Failover (:mod:`bench.cluster_failover`): real ``RadioClient`` radios whose bundles list
   every node. Node 0 owns the radios' floor (one of its radios talks) and holds a listener,
   an emergency raiser per ``--emergencies`` and a text sender; then node 0 is ``kill -9``-ed.
   Gives ``floor_takeover_s`` (kill -> a radio on node 2 granted the floor),
   ``failover_s`` (kill -> node 0's listener, failed over, hears that radio),
   ``emergencies_lost`` (raised and answered on node 0 before the kill, missing from the
   shared store's active alerts afterwards) and ``texts_lost`` (``RECEIPT_STORED`` before the
   kill, not delivered exactly once to their recipient, who logs in on a survivor after it).

Goals: cross-node p99 <= 5 ms, nats_msgs_per_frame <= nodes with listeners, failover_s <= 3,
floor_takeover_s <= 2, emergencies_lost == 0, texts_lost == 0. ``--quick``: small numbers,
well under a minute (the test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

from bench import relay
from bench.goals import goal_lines, judged
from bench.loadgen import Account, raise_fd_limit
from bench.processes import (
    CLOCK_TICKS,
    BenchError,
    RelayProcess,
    Worker,
    connect_all,
    on_all,
    relay_process,
)
from ptt_server import tls
from tests.natsfixture import NatsServer
from tests.pgfixture import PostgresServer, PostgresServerError

NODES: Final = 3
FORWARDED: Final = "fieldradio_media_forwarded_packets_total"
BUS_RECEIVED: Final = "fieldradio_media_bus_received_packets_total"
GRACE_S: Final = relay.GRACE_S
SETTLE_S: Final = relay.SETTLE_S


@dataclass(frozen=True)
class Params:
    """Everything that shapes a run; reported with the results."""

    nodes: int = NODES
    channels: int = 6
    listeners: int = 30
    """Listeners per media channel, spread evenly over the nodes."""
    seconds: float = 10.0
    rate: float = 50.0
    """Frames/s per talker in the latency step (20 ms voice frames)."""
    offered: float = 40_000.0
    """Forwarded packets/s offered in the load step (the CPU figure): the latency step's
    rate leaves the nodes mostly idle, and their fixed costs (ticks, heartbeats) would
    make the figure one of idleness."""
    frame_bytes: int = 80
    emergencies: int = 10
    texts: int = 20
    quick: bool = False

    @property
    def load_rate(self) -> float:
        """Frames/s per talker in the load step."""
        return self.offered / (self.channels * self.listeners)


QUICK: Final = Params(
    channels=2, listeners=9, seconds=2.0, offered=6000.0, emergencies=3, texts=5, quick=True
)


def goals_for(nodes_with_listeners: int) -> dict[str, tuple[str, float]]:
    return {
        "cross_node_added_latency_p99_ms": ("<=", 5.0),
        "nats_msgs_per_frame": ("<=", float(nodes_with_listeners)),
        "failover_s": ("<=", 3.0),
        "floor_takeover_s": ("<=", 2.0),
        "emergencies_lost": ("==", 0.0),
        "texts_lost": ("==", 0.0),
    }


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (/proc/PID/stat fields 14-15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the shared store --------------------------------------------------------------------------


@contextlib.contextmanager
def shared_store(work_dir: Path) -> Iterator[str]:
    """The URL of a fresh database on a PostgreSQL server of this run's own."""
    try:
        server = PostgresServer(work_dir)
    except PostgresServerError as exc:
        raise BenchError(str(exc)) from None
    try:
        yield server.url(server.create_database("fieldradio_bench"))
    finally:
        server.close()


# --- the nodes ---------------------------------------------------------------------------------


@dataclass
class ClusterRun:
    """nats-server and the node processes, as the parts see them."""

    nats: NatsServer
    nodes: list[RelayProcess]
    exits: contextlib.AsyncExitStack
    work_dir: Path

    def url(self, index: int) -> str:
        return f"wss://127.0.0.1:{self.nodes[index].control_port}"

    async def kill(self, index: int) -> None:
        """``kill -9`` node ``index`` and reap it (its context then has nothing to stop)."""
        process = self.nodes[index].process
        process.kill()
        await process.wait()

    def cpu_seconds(self) -> float:
        pids = [n.pid for n in self.nodes if n.process.returncode is None]
        assert self.nats.pid is not None
        return sum(cpu_seconds(pid) for pid in [*pids, self.nats.pid])


@contextlib.asynccontextmanager
async def cluster(
    org_dir: Path, work_dir: Path, store_url: str, nodes: int
) -> AsyncIterator[ClusterRun]:
    nats = NatsServer(work_dir / "nats")
    nats.start()
    try:
        tls_dir = work_dir / "tls"
        tls.ensure_self_signed(tls_dir / "cert.pem", tls_dir / "key.pem", ["127.0.0.1"])
        config = work_dir / "node.toml"
        config.write_text(
            f'[server]\ntls_cert = "{tls_dir / "cert.pem"}"\ntls_key = "{tls_dir / "key.pem"}"\n'
            'log_level = "WARNING"\n'
        )
        async with contextlib.AsyncExitStack() as exits:
            run = ClusterRun(nats, [], exits, work_dir)
            for index in range(nodes):
                data_dir = work_dir / f"node{index}"
                shutil.copytree(org_dir, data_dir)  # the org root; the store is PostgreSQL
                args = ["--config", str(config), "--cluster", nats.url, "--store", store_url]
                node = relay_process(data_dir, "server.log", [*args, "--node-name", f"node{index}"])
                run.nodes.append(await exits.enter_async_context(node))
            yield run
    finally:
        nats.close()


# --- part 1: media -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def node_workers(
    batches: Sequence[tuple[str, list[Account], RelayProcess]], work_dir: Path
) -> AsyncIterator[list[Worker]]:
    """A load generator per batch, each logged in on its own node."""
    started: list[Worker] = []
    try:
        for name, accounts, node in batches:
            started.append(await Worker.spawn(name, accounts, node, work_dir))
        yield started
    finally:
        await asyncio.gather(*(w.quit() for w in started))


def _summed(metrics: Sequence[dict[str, float]], name: str) -> float:
    return sum(m.get(name, 0.0) for m in metrics)


async def media_step(
    run: ClusterRun, talkers: Worker, listeners: list[Worker], params: Params, rate: float
) -> dict[str, Any]:
    """Every talker sends ``rate`` frames/s for ``--seconds``: what was sent, forwarded,
    heard and how late, the CPU of every node and of nats-server, NATS's message counts."""
    nodes = run.nodes
    await talkers.call("floor")
    heard_before = sum(s["received"] for s in await on_all(listeners, "stats"))
    await on_all(listeners, "talk_start", rate=rate, frame_bytes=params.frame_bytes, record=True)
    before = await asyncio.gather(*(n.metrics() for n in nodes))
    varz_before, cpu_before, wall_before = run.nats.varz(), run.cpu_seconds(), time.monotonic()
    await talkers.call("talk_start", rate=rate, frame_bytes=params.frame_bytes, record=False)
    await asyncio.sleep(params.seconds)
    sent = sum((await talkers.call("talk_stop"))["sent"].values())
    await asyncio.sleep(GRACE_S)
    cpu, wall = run.cpu_seconds() - cpu_before, time.monotonic() - wall_before
    varz_after = run.nats.varz()
    after = await asyncio.gather(*(n.metrics() for n in nodes))
    await on_all(listeners, "talk_stop")
    stats = await on_all(listeners, "stats")
    await talkers.call("release")
    forwarded = round(_summed(after, FORWARDED) - _summed(before, FORWARDED))
    same = sorted(v / 1000 for v in stats[0]["latencies_us"])
    cross = sorted(v / 1000 for s in stats[1:] for v in s["latencies_us"])
    expected = sent * params.listeners
    heard = sum(s["received"] for s in stats) - heard_before
    out_msgs = varz_after["out_msgs"] - varz_before["out_msgs"]
    return {
        "talker_rate_pps": rate,
        "offered_fwd_pps": rate * params.channels * params.listeners,
        "talker_sent": sent,
        "listeners_expected": expected,
        "listeners_received": heard,
        "loss_pct": 100.0 * (expected - heard) / expected if expected else None,
        "forwarded": forwarded,
        "forwarded_per_node": [
            round(a.get(FORWARDED, 0.0) - b.get(FORWARDED, 0.0))
            for a, b in zip(after, before, strict=True)
        ],
        "bus_received": round(_summed(after, BUS_RECEIVED) - _summed(before, BUS_RECEIVED)),
        "cpu_s": cpu,
        "window_s": wall,
        "cpu_util": cpu / wall,
        "fwd_pkts_per_cpu_s": forwarded / cpu if cpu > 0 else None,
        "nats_in_msgs": varz_after["in_msgs"] - varz_before["in_msgs"],
        "nats_out_msgs": out_msgs,
        "nats_msgs_per_frame": out_msgs / sent if sent else None,
        "cross_node_samples": len(cross),
        "cross_node_p50_ms": relay._percentile(cross, 0.50),
        "cross_node_p99_ms": relay._percentile(cross, 0.99),
        "cross_node_max_ms": cross[-1] if cross else None,
        "same_node_p50_ms": relay._percentile(same, 0.50),
        "same_node_p99_ms": relay._percentile(same, 0.99),
    }


async def media_part(run: ClusterRun, plan: relay.Plan, params: Params) -> dict[str, Any]:
    """The talkers on node 0, a listener process per node; the latency step, then the load."""
    nodes = run.nodes
    batches = [("talkers", plan.talkers, nodes[0])] + [
        (f"listeners-node{i}", plan.listeners[i :: len(nodes)], nodes[i]) for i in range(len(nodes))
    ]
    async with node_workers(batches, run.work_dir) as group:
        talkers, listeners = group[0], group[1:]
        await connect_all(group, 25)
        for i, node in enumerate(nodes):
            await node.wait_sessions(len(batches[1 + i][1]) + (len(plan.talkers) if i == 0 else 0))
        await asyncio.sleep(SETTLE_S)  # the nodes subscribe to a channel's media after Affiliated
        latency = await media_step(run, talkers, listeners, params, params.rate)
        load = await media_step(run, talkers, listeners, params, params.load_rate)
    return {
        "latency": latency,
        "load": load,
        "nodes_with_listeners": sum(1 for _, accounts, _ in batches[1:] if accounts),
    }


# --- the whole run -----------------------------------------------------------------------------


def _goals(results: dict[str, Any], nodes_with_listeners: int) -> dict[str, dict[str, Any]]:
    return judged(goals_for(nodes_with_listeners), results)


def _log_tails(work_dir: Path) -> str:
    logs = sorted([*work_dir.glob("*.log"), *work_dir.glob("node*/*.log")])
    return "\n".join(
        f"--- {path.relative_to(work_dir)}\n{path.read_text(errors='replace')[-2000:]}"
        for path in logs
    )


async def measure_async(params: Params) -> dict[str, Any]:
    from bench import cluster_failover

    started = time.monotonic()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work_dir = Path(tmp)
        os.chmod(work_dir, 0o755)  # PostgreSQL runs as its own user under it
        org_dir = work_dir / "org"
        with shared_store(work_dir) as store_url:
            relay_params = replace(
                relay.Params(), channels=params.channels, listeners=params.listeners, sessions=0
            )
            plan = await relay.make_org(org_dir, relay_params, store_url)
            radios = await cluster_failover.make_radios(plan, params, store_url)
            try:
                async with cluster(org_dir, work_dir, store_url, params.nodes) as run:
                    media = await media_part(run, plan, params)
                    failover = await cluster_failover.failover_part(run, radios, store_url)
            except BenchError as exc:
                raise BenchError(f"{exc}\n{_log_tails(work_dir)}") from None
    latency, load = media["latency"], media["load"]
    results: dict[str, Any] = {
        "cross_node_added_latency_p50_ms": latency["cross_node_p50_ms"],
        "cross_node_added_latency_p99_ms": latency["cross_node_p99_ms"],
        "fwd_pkts_per_cpu_s": load["fwd_pkts_per_cpu_s"],
        "nats_msgs_per_frame": latency["nats_msgs_per_frame"],
        "failover_s": failover["failover_s"],
        "floor_takeover_s": failover["floor_takeover_s"],
        "emergencies_lost": failover["emergencies_lost"],
        "texts_lost": failover["texts_lost"],
    }
    results["goals"] = _goals(results, media["nodes_with_listeners"])
    results["media"] = media
    results["failover"] = failover
    results["params"] = {**asdict(params), "cpus": os.cpu_count()}
    results["elapsed_s"] = time.monotonic() - started
    return results


def measure(params: Params) -> dict[str, Any]:
    """Run the whole bench and return the report (what ``--json`` prints)."""
    return asyncio.run(measure_async(params))


def _human(results: dict[str, Any]) -> str:
    lines = goal_lines(results["goals"], (32, 12, 6), 3)
    lines.append(f"fwd_pkts_per_cpu_s {results['fwd_pkts_per_cpu_s']:,.0f}")
    lines.append(f"elapsed {results['elapsed_s']:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, well under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--nodes", type=int, help="ptt-server nodes (at least 3)")
    parser.add_argument("--channels", type=int, help="media channels (1 talker each, on node 0)")
    parser.add_argument("--listeners", type=int, help="listeners per media channel")
    parser.add_argument("--seconds", type=float, help="media send window")
    parser.add_argument("--rate", type=float, help="frames/s per talker, latency step")
    parser.add_argument("--offered", type=float, help="forwarded packets/s offered, load step")
    parser.add_argument("--emergencies", type=int, help="emergencies raised on the killed node")
    parser.add_argument("--texts", type=int, help="texts stored through the killed node")
    return parser


def params_from_args(args: argparse.Namespace) -> Params:
    params = QUICK if args.quick else Params()
    overrides = {
        name: value
        for name, value in vars(args).items()
        if name not in ("quick", "json") and value is not None
    }
    params = replace(params, **overrides)
    if params.nodes < 3:
        raise SystemExit(
            "--nodes must be at least 3 (the failover part kills node 0, uses 1 and 2)"
        )
    if min(params.channels, params.listeners, params.emergencies, params.texts) < 1:
        raise SystemExit("channels, listeners, emergencies and texts must be at least 1")
    return params


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    params = params_from_args(args)
    try:
        results = measure(params)
    except BenchError as exc:
        print(f"bench.cluster: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(results, indent=2) if args.json else _human(results))


if __name__ == "__main__":
    main()
