"""bench.cluster's scenario: the fake gateway and both stores with the lists, and
each phase (one timed window of a fresh Gatekeeper on one store)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis.crc import key_slot
from tests.topologies import ClusterRig, RigError

from bench.cluster_params import ClusterParams, run_params
from bench.cluster_stores import (
    NODE_SETTINGS,
    Store,
    cluster_pids,
    configure_node,
    pin_threads,
    wait_cluster_settled,
)
from bench.run import (
    CLK_TCK,
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    SCOPES,
    SEND_PATH,
    Bench,
    BenchError,
    ListFiles,
    Measurement,
    Probe,
    Process,
    RowSpec,
    allowed_cpus,
    cpu_set,
    gatekeeper_command,
    log,
    measure,
    run_wrk,
    wait_http,
    write_gatekeeper_config,
)
from gatekeeper.embedded import free_port
from gatekeeper.redis_url import redacted


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
