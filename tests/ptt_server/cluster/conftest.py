"""The cluster's fixtures: a real nats-server, a shared PostgreSQL store, three real nodes."""

from tests.clusterfixture import cluster, locked_cluster, process_cluster
from tests.natsfixture import nats_server

__all__ = ["cluster", "locked_cluster", "nats_server", "process_cluster"]
