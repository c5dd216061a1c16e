"""bench.cluster's stores: the redis-server processes under Gatekeeper, and the
local Redis Cluster's nodes (their settings, pids, pinning, settling)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.topologies import ClusterRig, RigError, info, query

from bench.run import BenchError, log, process_ticks
from gatekeeper.store.packing import INTSET_ENTRIES

CLUSTER_NODE_TIMEOUT_MS = 15_000   # Redis's default (the rig's 1 s is for failover tests)
SETTLE_LIMIT = 120.0
# A's settings (gatekeeper/embedded.py), given to every cluster node.
NODE_SETTINGS = (("set-max-intset-entries", str(INTSET_ENTRIES)),
                 ("cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)),
                 ("appendfsync", "everysec"), ("appendonly", "yes"))


@dataclass
class Store:
    """One store under Gatekeeper: its URL and the redis-server processes it is."""

    phase: str                 # "A" or "B"
    name: str                  # "single" or "cluster"
    url: str
    pids: dict[str, int]       # "<port> <role>" -> pid of each redis-server
    details: dict[str, Any] = field(default_factory=dict)

    def ticks(self) -> dict[str, int]:
        """utime+stime (+ reaped children's) of each of its processes, in clock ticks;
        BenchError when one is gone (a dead node would read as a cheap one)."""
        out = {}
        for label, pid in self.pids.items():
            if not alive(pid):
                raise BenchError(f"store {self.name}: redis-server {label} (pid {pid}) "
                                 "has exited")
            out[label] = process_ticks(pid, with_reaped_children=True)
        return out


def alive(pid: int) -> bool:
    """True while `pid` runs (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` on `cpus` (sched_setaffinity on a pid moves its main thread
    only; redis-server's background threads are threads of their own)."""
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)


def cluster_pids(rig: ClusterRig) -> dict[str, int]:
    """"<port> master|replica" -> pid of each node (from the rig's own records)."""
    masters = set(rig.masters())
    out = {}
    for port, server in rig._nodes.items():
        if server.process is None:
            raise BenchError(f"cluster node {port} has no process")
        role = "master" if port in masters else "replica"
        out[f"{port} {role}"] = server.process.pid
    return out


def configure_node(port: int) -> None:
    """Give a cluster node the single server's settings (see NODE_SETTINGS)."""
    for name, value in NODE_SETTINGS:
        reply = query(port, "CONFIG", "SET", name, value, timeout=5.0)
        if reply not in (True, "OK"):
            raise BenchError(f"cluster node {port}: CONFIG SET {name} {value}: {reply!r}")


def cluster_settled(ports: Sequence[int]) -> bool:
    """No node rewriting its AOF or saving, every replica linked and caught up."""
    for port in ports:
        persistence = info(port, "persistence")
        if any(persistence.get(k, "0") != "0" for k in (
                "aof_rewrite_in_progress", "aof_rewrite_scheduled",
                "rdb_bgsave_in_progress")):
            return False
    for port in ports:
        replication = info(port, "replication")
        if replication.get("role") != "slave":
            continue
        if replication.get("master_link_status") != "up":
            return False
        master = int(replication["master_port"])
        if info(master, "replication").get("master_repl_offset") != \
                replication.get("slave_repl_offset"):
            return False
    return True


def wait_cluster_settled(ports: Sequence[int], limit: float = SETTLE_LIMIT) -> float:
    """Seconds until `cluster_settled` (or `limit`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(RigError, OSError, ValueError, KeyError):
            if cluster_settled(ports):
                break
        time.sleep(0.2)
    waited = round(time.monotonic() - started, 1)
    if waited >= 1:
        log(f"  waited {waited} s for the cluster's AOF rewrites and replicas")
    return waited
