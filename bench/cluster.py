"""Gatekeeper on one redis-server (phase A) and on a local Redis Cluster (phase B): the
same send benchmark side by side in one run, the phases alternating A B A B ...

    .venv/bin/python -m bench.cluster                 # 3 x (A, B) of 10 s: about 2 minutes
    .venv/bin/python -m bench.cluster --quick         # CI smoke: one A/B pair of 2 s
    .venv/bin/python -m bench.cluster --repeat 5 --rate 300

The question: "the same send benchmark on the local cluster: CPU per request <= 1.2x of
one node". Both phases are bench/run.py's `gatekeeper lists` row in its fixed-rate mode:
`gatekeeper run` (uvloop) pinned to CPU 0, wrk with bench/wrk/post.lua sending Twilio
form sends paced at `--rate` (default 500/s over 32 connections: a paced closed loop),
5% to blocked numbers (403 expected), the bench's fake gateway on loopback; wrk, the
gateway, every redis-server and this runner on CPU 1. Only the store differs:

- **A**: one redis-server (`redis.url: redis://...`), the one bench/run.py starts
  (Gatekeeper's embedded server configuration: AOF every second, big intsets).
- **B**: a Redis Cluster of 3 masters and 3 replicas (tests/topologies.py's ClusterRig,
  same redis-server binary), `redis.url: redis+cluster://<3 masters>`. Its nodes are
  given A's settings (`appendonly yes`, `appendfsync everysec`,
  `set-max-intset-entries`) and Redis's default `cluster-node-timeout` of 15 s (the
  rig's 1 s suits failover tests; here a busy moment on a shared machine must cause no
  failover).

Both stores run all through the run and hold the same lists (bench/run.py's number
plan: `--numbers` exact numbers and `--prefixes` prefixes over `global`, `tenant:acme`,
`tenant:beta`), imported with `gatekeeper lists import --mode replace` before the first
phase; the bench then waits until no node is rewriting its AOF and every replica has
caught up. Each phase starts a fresh Gatekeeper on its store, warms it up (`--warmup`),
measures one `--duration` window, stops it. On one server a lookup is one script call
over the three scopes; on the cluster it is one call per scope, sent to the master of
each scope's hash slot (the report says which masters those are).

Reading the figures (per phase; then B/A per repetition, and the median of those):

- **req/s**, **p50/p99 ms**: from wrk (403s included); **errors**: unexpected outcomes
  (socket errors, any non-2xx but the expected 403s), as bench/run.py.
- **gk us/req**: Gatekeeper's CPU time (its process tree: the screening helper too) over
  the timed window, utime+stime from /proc in 1/SC_CLK_TCK ticks, per request.
- **redis us/req**: the same summed over ALL redis-server processes of the phase's store
  (the one server, or all six nodes: replicas included, reaped fork children too).
- **redis net**: redis us/req less the store's idle CPU (measured once, `--idle` seconds
  with no Gatekeeper running, both stores in the same window) over the window: what the
  requests cost, without the cluster's own gossip and timers. At a fixed rate the idle
  share counts per request; it is in the plain figure, since a deployment pays it too.
- **total**: gk + redis us/req: "CPU per request". The figure to read is its B/A median;
  the question's 1.2 is reported against, never asserted.
- **cpu0% / cpu1%**: how busy each CPU was (everyone's processes).

The machine is shared and noisy: compare ratios within one run, and do not believe a
difference of a few percent. At 500 req/s a 10 s window holds ~5,000 requests and a
tick is 10 ms: redis us/req moves in steps of 2 us. Benchmarks measure; nothing here
asserts a timing (the run fails only on wrong answers, a dead process or a failover).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from redis.crc import key_slot
from tests.topologies import ClusterRig, RigError, info, query

from bench.run import (
    CLK_TCK,
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    REPO,
    SCOPES,
    SEND_PATH,
    WRK_SCRIPT,
    Bench,
    BenchError,
    ListFiles,
    Measurement,
    Params,
    Probe,
    Process,
    RowSpec,
    _sigterm_as_interrupt,
    allowed_cpus,
    cpu_set,
    gatekeeper_command,
    generate_lists,
    loadavg,
    log,
    machine_info,
    measure,
    prepare_runner,
    process_ticks,
    run_wrk,
    wait_http,
    write_gatekeeper_config,
)
from gatekeeper.embedded import free_port
from gatekeeper.redis_url import redacted
from gatekeeper.store.packing import INTSET_ENTRIES

DEFAULT_OUTPUT = REPO / "bench" / "results" / "cluster.json"
TARGET_RATIO = 1.2            # the question's figure, reported against, never asserted
CLUSTER_NODE_TIMEOUT_MS = 15_000   # Redis's default (the rig's 1 s is for failover tests)
SETTLE_LIMIT = 120.0
# A's settings (gatekeeper/embedded.py), given to every cluster node.
NODE_SETTINGS = (("set-max-intset-entries", str(INTSET_ENTRIES)),
                 ("cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)),
                 ("appendfsync", "everysec"), ("appendonly", "yes"))
PHASES = (("A", "single"), ("B", "cluster"))


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ClusterParams:
    """What one run measures."""

    duration: int
    warmup: int
    repeat: int
    rate: int
    connections: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    idle: int
    quick: bool
    seed: int
    output: str
    keep_logs: bool


def parse_args(argv: Sequence[str] | None) -> ClusterParams:
    """Command-line options; --quick changes the defaults to CI-smoke sizes."""
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, help="timed seconds per phase "
                   "(default 10; --quick: 2)")
    p.add_argument("--warmup", type=int, help="untimed seconds of sends before each "
                   "phase's window, Gatekeeper being new (default 3; --quick: 1; 0: none)")
    p.add_argument("--repeat", type=int, help="A/B pairs (default 3; --quick: 1)")
    p.add_argument("--rate", type=int, help="sends per second offered, paced as in "
                   "bench/run.py's rate mode (default 500; --quick: 200)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--blocked-fraction", type=float, default=0.05,
                   help="share of sends to blocked numbers, 403 expected (0.05)")
    p.add_argument("--numbers", type=int, help="exact numbers in the block lists over the "
                   "3 scopes (default 100000; --quick: 10000)")
    p.add_argument("--prefixes", type=int, help="prefixes in the block lists over the "
                   "3 scopes (default 1000; --quick: 100)")
    p.add_argument("--idle", type=int, help="seconds of measuring both stores' CPU with "
                   "no load, once, before the phases (default 5; --quick: 1; 0: skip)")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: one A/B pair of 2 s, 10k numbers")
    p.add_argument("--seed", type=int, default=20240601, help="list generation seed")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file "
                   f"(default {DEFAULT_OUTPUT.relative_to(REPO)})")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temporary directory with process and node logs")
    a = p.parse_args(argv)
    quick = bool(a.quick)

    def pick(value: int | None, normal: int, small: int) -> int:
        return value if value is not None else (small if quick else normal)

    params = ClusterParams(
        duration=pick(a.duration, 10, 2), warmup=pick(a.warmup, 3, 1),
        repeat=pick(a.repeat, 3, 1), rate=pick(a.rate, 500, 200),
        connections=a.connections, blocked_fraction=a.blocked_fraction,
        numbers=pick(a.numbers, 100_000, 10_000), prefixes=pick(a.prefixes, 1_000, 100),
        idle=pick(a.idle, 5, 1), quick=quick, seed=a.seed, output=a.output,
        keep_logs=a.keep_logs)
    if params.duration < 1 or params.repeat < 1 or params.warmup < 0 or params.idle < 0:
        p.error("--duration and --repeat must be at least 1, --warmup and --idle at least 0")
    if params.rate < 1 or params.connections < 1:
        p.error("--rate and --connections must be at least 1")
    if not 0 <= params.blocked_fraction < 1:
        p.error("--blocked-fraction must be in [0, 1)")
    if params.numbers < len(SCOPES) or params.prefixes < len(SCOPES):
        p.error("--numbers and --prefixes must be at least 3 (one per scope)")
    return params


def run_params(params: ClusterParams) -> Params:
    """bench/run.py's parameters, for what is borrowed from it: the lists, wrk in its
    rate mode, the process handling, `measure`."""
    return Params(
        duration=params.duration, warmup=params.warmup, connections=params.connections,
        threads=1, rate=params.rate, blocked_fraction=params.blocked_fraction,
        numbers=params.numbers, prefixes=params.prefixes,
        unlisted_pool=2_000 if params.quick else 10_000,
        blocked_pool=200 if params.quick else 1_000, gk_workers=None,
        rows=("gatekeeper-lists",), modes=("rate",), quick=params.quick, seed=params.seed,
        output=params.output, keep_logs=params.keep_logs, repeat=params.repeat)


# --------------------------------------------------------------------------- stores


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


# --------------------------------------------------------------------------- phases


@dataclass
class Phase:
    """One timed window on one store."""

    repetition: int
    phase: str                  # "A" (single) or "B" (cluster)
    store: str
    measurement: Measurement    # bench/run.py's figures (redis: all the store's processes)
    redis_cpu_us_per_req_by_process: dict[str, float]
    redis_net_cpu_us_per_req: float | None
    total_cpu_us_per_req: float
    gatekeeper_log: dict[str, int]   # "level event" -> count, destination_blocked aside
    checks: list[str] = field(default_factory=list)


def log_events(path: Path) -> dict[str, int]:
    """What Gatekeeper logged, by level and event, less the expected
    `destination_blocked` warnings (counted under that name)."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                key = "(not JSON)"
            else:
                key = (f"{event.get('level', '?')} {event.get('event', '?')}"
                       if isinstance(event, dict) else "(not an object)")
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def notable(events: dict[str, int]) -> dict[str, int]:
    """The log events worth a note: anything but the blocked attempts."""
    return {k: v for k, v in events.items() if k != "warning destination_blocked"}


class Scenario:
    """The fake gateway, both stores with the lists, Gatekeeper per phase."""

    def __init__(self, params: ClusterParams, wrk: str, workdir: Path, pinned: bool) -> None:
        self.params = params
        self.rp = run_params(params)
        self.wrk = wrk
        self.pinned = pinned
        self.workdir = workdir
        self.bench = Bench(self.rp, wrk, workdir, pinned)
        self.rig: ClusterRig | None = None
        self.upstream: Process | None = None
        self.upstream_port = 0
        self.stores: dict[str, Store] = {}
        self.masters: list[int] = []
        self.idle_us_per_s: dict[str, float] = {}
        self.notes: list[str] = []

    def close(self) -> None:
        """Stop everything: Gatekeeper, the gateway, redis-server, the cluster's nodes."""
        try:
            self.bench.close()
        finally:
            rig, self.rig = self.rig, None
            if rig is not None:
                try:
                    rig.stop()
                except RigError as exc:
                    log(f"bench.cluster: stopping the cluster: {exc}")

    def start(self, lists: ListFiles) -> None:
        """Gateway, both stores (pinned to the load CPU), the lists in each, settled."""
        load = {LOAD_CPU}
        self.upstream, self.upstream_port = self.bench.start_upstream(
            "upstream", self.bench.cpus(str(LOAD_CPU)))
        log("starting redis-server (A) ...")
        self.bench.start_redis()
        assert self.bench.redis_pid is not None
        single = Store("A", "single", self.bench.redis_url,
                       {f"{self.bench.redis.endpoint.port} server": self.bench.redis_pid})
        log("starting the cluster (B): 3 masters, 3 replicas ...")
        started = time.monotonic()
        self.rig = rig = ClusterRig(self.workdir / "cluster")
        rig.start()
        for port in rig.ports:
            configure_node(port)
        self.masters = rig.masters()
        cluster = Store("B", "cluster", rig.url, cluster_pids(rig))
        cluster.details["start_seconds"] = round(time.monotonic() - started, 1)
        cluster.details["node_settings"] = dict(NODE_SETTINGS)
        # Each scope's keys carry the scope as their hash tag: one master per scope.
        cluster.details["scope_masters"] = {
            s: rig.master_for_slot(key_slot(s.encode())) for s in SCOPES}
        self.stores = {"A": single, "B": cluster}
        for store in self.stores.values():
            if self.pinned:
                # Started from this runner (on the load CPU) they are there already;
                # made sure of, every thread.
                for pid in store.pids.values():
                    pin_threads(pid, load)
            store.details["pids"] = dict(store.pids)
            store.details["url"] = redacted(store.url)
            store.details["affinity"] = {k: allowed_cpus(p) for k, p in store.pids.items()}
        for store in self.stores.values():
            config = self.workdir / f"import-{store.name}.yaml"
            write_gatekeeper_config(config, store.url, "bench:", self.upstream_port,
                                    free_port(), free_port(),
                                    self.workdir / f"gk-data-{store.name}")
            log(f"importing {self.params.numbers:,} numbers and {self.params.prefixes:,} "
                f"prefixes into {store.name} ({store.phase}) ...")
            store.details["import_seconds"] = self.bench.import_lists(config, lists)
        single.details["settle_seconds"] = self.bench.wait_store_idle()
        cluster.details["settle_seconds"] = wait_cluster_settled(rig.ports)
        if self.params.idle:
            self.measure_idle(self.params.idle)

    def measure_idle(self, seconds: int) -> None:
        """Both stores' CPU with no Gatekeeper running, in one window."""
        log(f"idle: {seconds} s with no load ...")
        before = {k: s.ticks() for k, s in self.stores.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        after = {k: s.ticks() for k, s in self.stores.items()}
        spent = time.monotonic() - t0
        for key, store in self.stores.items():
            ticks = sum(after[key].values()) - sum(before[key].values())
            self.idle_us_per_s[key] = round(ticks * 1e6 / CLK_TCK / spent, 1)
            store.details["idle_cpu_ms_per_s"] = round(self.idle_us_per_s[key] / 1000, 2)
            log(f"  {store.name}: {self.idle_us_per_s[key] / 1000:.1f} ms of CPU per s")

    def start_gatekeeper(self, store: Store, tag: str) -> tuple[Process, str]:
        """`gatekeeper run` on `store`, pinned to CPU 0, ready; it and the send URL."""
        proxy_port, admin_port = free_port(), free_port()
        name = f"gatekeeper-{store.name}{tag}"
        config = self.workdir / f"{name}.yaml"
        write_gatekeeper_config(config, store.url, "bench:", self.upstream_port,
                                proxy_port, admin_port,
                                self.workdir / f"gk-data-{store.name}")
        process = self.bench.spawn(
            name, [*gatekeeper_command(), "run", "--config", str(config)],
            self.bench.cpus(str(PROCESS_CPU)))
        wait_http(process, admin_port, "/readyz", want_ok=True)
        wait_http(process, proxy_port, "/healthz-bench")  # any reply: the proxy listens
        return process, f"http://{HOST}:{proxy_port}{SEND_PATH}"

    def phase(self, repetition: int, key: str, lists: ListFiles) -> Phase:
        """A fresh Gatekeeper on store `key`, warmed up, one timed window, stopped."""
        store = self.stores[key]
        params = self.rp
        process, url = self.start_gatekeeper(store, f"-r{repetition}")
        row = RowSpec(store.name, f"{key} {store.name}",
                      f"wrk -> gatekeeper on the {store.name} store -> fake upstream",
                      lists=True)
        try:
            if params.warmup:
                pace_ms = params.connections * 1000 / params.rate
                run_wrk(self.wrk, url, params, params.warmup, pace_ms, lists.pool,
                        self.pinned)
            before = store.ticks()
            m = measure(row, "rate", url,
                        Probe(process, None, self.upstream, self.bench.cpus(str(PROCESS_CPU))),
                        dataclasses.replace(params, warmup=0), self.wrk, lists, self.pinned)
            after = store.ticks()
            if process.exited() is not None:
                raise BenchError(f"{process.name} exited during the run:\n"
                                 f"{process.log_tail()}")
        finally:
            self.bench.stop(process)
        m.round = repetition
        requests = max(m.requests, 1)
        by_process = {k: round((after[k] - before[k]) * 1e6 / CLK_TCK / requests, 1)
                      for k in store.pids}
        redis_us = (sum(after.values()) - sum(before.values())) * 1e6 / CLK_TCK / requests
        m.redis_cpu_us_per_req = round(redis_us, 1)
        idle = self.idle_us_per_s.get(key)
        net = None if idle is None else round(redis_us - idle * m.duration_s / requests, 1)
        checks = list(m.checks)
        if m.unexpected_errors:
            checks.append(f"{m.unexpected_errors} unexpected outcomes: {m.errors} {m.status}")
        if self.pinned:
            for label, pid in store.pids.items():
                cpus = allowed_cpus(pid)
                if cpus is not None and cpu_set(cpus) != {LOAD_CPU}:
                    checks.append(f"redis-server {label} was allowed on CPUs {cpus}, not "
                                  f"{LOAD_CPU}")
        if key == "B" and self.rig is not None:
            masters = self.rig.masters()
            if masters != self.masters:
                checks.append(f"the cluster's masters changed from {self.masters} to "
                              f"{masters}: a failover during the phase")
        return Phase(repetition, key, store.name, m, by_process, net,
                     round(m.cpu_us_per_req + redis_us, 1), log_events(process.log_path),
                     checks)


# --------------------------------------------------------------------------- report


def ratio(b: float | None, a: float | None) -> float | None:
    """b / a, rounded; None without both."""
    return round(b / a, 2) if a and b is not None else None


RATIO_FIGURES: dict[str, Callable[[Phase], float | None]] = {
    "requests_per_s": lambda p: p.measurement.requests_per_s,
    "p50": lambda p: p.measurement.latency_ms["p50"],
    "p99": lambda p: p.measurement.latency_ms["p99"],
    "gatekeeper_cpu": lambda p: p.measurement.cpu_us_per_req,
    "redis_cpu": lambda p: p.measurement.redis_cpu_us_per_req,
    "redis_net_cpu": lambda p: p.redis_net_cpu_us_per_req,
    "total_cpu": lambda p: p.total_cpu_us_per_req,
}


def repetitions(phases: Sequence[Phase]) -> list[dict[str, Any]]:
    """Per repetition: B/A of each figure."""
    out = []
    for rep in sorted({p.repetition for p in phases}):
        a = next((p for p in phases if p.repetition == rep and p.phase == "A"), None)
        b = next((p for p in phases if p.repetition == rep and p.phase == "B"), None)
        if a is not None and b is not None:
            out.append({"repetition": rep, **{name: ratio(get(b), get(a))
                                              for name, get in RATIO_FIGURES.items()}})
    return out


def median_ratios(ratios: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median of each B/A ratio over the repetitions."""
    out: dict[str, float | None] = {}
    for name in RATIO_FIGURES:
        values = [r[name] for r in ratios if r[name] is not None]
        out[name] = round(statistics.median(values), 2) if values else None
    return out


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(phases: Sequence[Phase], ratios: Sequence[dict[str, Any]],
                 medians: dict[str, float | None], scenario: Scenario,
                 params: ClusterParams, out: TextIO) -> None:
    """The terminal table and what it was measured on."""
    headers = ("rep", "phase", "req/s", "p50 ms", "p99 ms", "errors", "403 exp",
               "gk us/req", "redis us/req", "redis net", "total us/req", "cpu0%", "cpu1%")
    by_rep = {r["repetition"]: r for r in ratios}
    lines: list[tuple[str, ...]] = []

    def ratio_line(label: str, r: dict[str, Any]) -> tuple[str, ...]:
        return (label, "B/A", _fmt(r["requests_per_s"]), _fmt(r["p50"]), _fmt(r["p99"]),
                "", "", _fmt(r["gatekeeper_cpu"]), _fmt(r["redis_cpu"]),
                _fmt(r["redis_net_cpu"]), _fmt(r["total_cpu"]), "", "")

    for p in phases:
        m = p.measurement
        lines.append((
            str(p.repetition), f"{p.phase} {p.store}", f"{m.requests_per_s:,.0f}",
            f"{m.latency_ms['p50']:.2f}", f"{m.latency_ms['p99']:.2f}",
            str(m.unexpected_errors), str(m.expected_rejections),
            f"{m.cpu_us_per_req:,.0f}", _fmt(m.redis_cpu_us_per_req, ",.0f"),
            _fmt(p.redis_net_cpu_us_per_req, ",.0f"), f"{p.total_cpu_us_per_req:,.0f}",
            _fmt(m.cpu_busy_percent.get("cpu0"), ".0f"),
            _fmt(m.cpu_busy_percent.get("cpu1"), ".0f")))
        if p.phase == "B" and p.repetition in by_rep:
            lines.append(ratio_line(str(p.repetition), by_rep[p.repetition]))
    if len(ratios) > 1:
        lines.append(ratio_line("median", medians))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(fmt(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print(fmt(line), file=out)
    med = medians["total_cpu"]
    verdict = "n/a" if med is None else (
        f"within {TARGET_RATIO:g}x" if med <= TARGET_RATIO else f"ABOVE {TARGET_RATIO:g}x")
    print(f"\nCPU per request (gatekeeper + redis) B/A, median of {len(ratios)} "
          f"repetition(s): {_fmt(med)} ({verdict}); gatekeeper alone "
          f"{_fmt(medians['gatekeeper_cpu'])}, redis {_fmt(medians['redis_cpu'])} (net of "
          f"idle {_fmt(medians['redis_net_cpu'])}), p99 {_fmt(medians['p99'])}", file=out)
    single, cluster = scenario.stores["A"], scenario.stores["B"]
    masters = cluster.details.get("scope_masters", {})
    idle = " ".join(f"{s.phase} {s.details['idle_cpu_ms_per_s']:.1f}"
                    for s in (single, cluster) if "idle_cpu_ms_per_s" in s.details)
    print(f"\nA: one redis-server; B: a Redis Cluster of 3 masters + 3 replicas "
          f"(scopes on masters: {', '.join(f'{s} :{p}' for s, p in masters.items())}; "
          f"{len(set(masters.values()))} master(s) per lookup). Gatekeeper fresh per phase, "
          f"{params.warmup} s warm-up, {params.duration} s timed; wrk paced closed loop at "
          f"{params.rate} req/s offered over {params.connections} connections, "
          f"{params.blocked_fraction:.0%} blocked (403 expected). Lists: "
          f"{params.numbers:,} numbers + {params.prefixes:,} prefixes over {len(SCOPES)} "
          f"scopes. redis us/req: every redis-server of the store (cluster: all 6 nodes); "
          f"'redis net': less the idle CPU (ms/s: {idle or 'not measured'}). "
          + ("Gatekeeper on CPU 0; wrk, gateway, every redis-server on CPU 1."
             if scenario.pinned else "NOT pinned (fewer than 2 CPUs)."), file=out)


# --------------------------------------------------------------------------- the run


def run(params: ClusterParams) -> int:
    """The whole run; the exit status (1 on a failed check, never on a timing)."""
    prepared = prepare_runner("bench.cluster")
    if prepared is None:
        return 2
    wrk, pinned = prepared
    info_ = machine_info(wrk)
    lists = generate_lists(run_params(params))
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-cluster-"))
    scenario = Scenario(params, wrk, workdir, pinned)
    started = time.time()
    phases: list[Phase] = []
    try:
        scenario.start(lists)
        for rep in range(1, params.repeat + 1):
            for key, name in PHASES:
                log(f"repetition {rep} of {params.repeat}, phase {key} ({name}) ...")
                phase = scenario.phase(rep, key, lists)
                phases.append(phase)
                m = phase.measurement
                log(f"  {m.requests_per_s:,.0f} req/s  p50 {m.latency_ms['p50']:.2f}  p99 "
                    f"{m.latency_ms['p99']:.2f} ms  gk {m.cpu_us_per_req:,.0f}  redis "
                    f"{_fmt(m.redis_cpu_us_per_req, ',.0f')} us/req  errors "
                    f"{m.unexpected_errors}")
    except (BenchError, RigError) as exc:
        print(f"bench.cluster: {exc}", file=sys.stderr)
        print(f"bench.cluster: logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench.cluster: interrupted (logs kept in {workdir})", file=sys.stderr)
        return 130
    finally:
        scenario.close()
    ratios = repetitions(phases)
    medians = median_ratios(ratios)
    print()
    print_report(phases, ratios, medians, scenario, params, sys.stdout)
    failures = [f"repetition {p.repetition} phase {p.phase}: {c}"
                for p in phases for c in p.checks]
    notes = list(scenario.notes)
    notes += [f"repetition {p.repetition} phase {p.phase}: "
              f"{p.measurement.requests_per_s:.0f} of {params.rate} req/s offered: "
              "saturated, lower --rate" for p in phases
              if p.measurement.requests_per_s < 0.8 * params.rate]
    notes += [f"repetition {p.repetition} phase {p.phase}: Gatekeeper logged "
              f"{notable(p.gatekeeper_log)}" for p in phases if notable(p.gatekeeper_log)]
    for note in notes:
        print(f"note: {note}")
    for failure in failures:
        print(f"FAILED: {failure}")
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "loadavg_at_end": loadavg(),
        "machine": info_,
        "parameters": {**asdict(params), "send_path": SEND_PATH, "scopes": list(SCOPES),
                       "wrk_script": str(WRK_SCRIPT.relative_to(REPO)),
                       "rate_pacing_ms": params.connections * 1000 / params.rate},
        "pinning": ({"gatekeeper": f"taskset -c {PROCESS_CPU}",
                     "load_side": f"CPU {LOAD_CPU}: wrk, fake gateway, every redis-server "
                                  "(all threads), runner"} if pinned else "none"),
        "cpu_measurement": "utime+stime from /proc/<pid>/stat in ticks of "
                           f"1/{CLK_TCK} s over the timed window, per request: Gatekeeper's "
                           "process tree (+ reaped children); redis: the sum over every "
                           "redis-server of the store (+ reaped children); redis net: less "
                           "the store's idle CPU per second times the window",
        "lists": lists.manifest,
        "stores": {s.phase: {"name": s.name, **s.details} for s in scenario.stores.values()},
        "target_ratio": TARGET_RATIO,
        "summary": {"median_ratios": medians},
        "repetitions": ratios,
        "phases": [asdict(p) for p in phases],
        "notes": notes,
        "failures": failures,
    }
    output = Path(params.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {output}")
    if params.keep_logs:
        print(f"logs: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    params = parse_args(argv)
    with _sigterm_as_interrupt():
        return run(params)


if __name__ == "__main__":
    sys.exit(main())
