"""Gatekeeper benchmark: direct, naive passthrough and Gatekeeper rows side by side.

    .venv/bin/python -m bench.run                 # or: make bench
    .venv/bin/python -m bench.run --quick         # CI smoke: tiny durations and lists

Every row is measured in one run, twice: at a fixed concurrency (a closed loop, as fast
as it goes) and at a fixed rate below saturation (wrk paced with delay()). Everything
listens on 127.0.0.1; the only upstream is the bench's own fake gateway. See
bench/README.md for how to read the figures.
"""


import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.gatekeeper_cli import (
    gatekeeper_command,
    gatekeeper_has_workers_flag,
    write_gatekeeper_config,
)
from bench.lists import ListFiles, generate_lists
from bench.machine import loadavg, machine_info, prepare_runner
from bench.measure import Measurement, Probe, RowSpec, Snapshot, WrkResult, measure, run_wrk, tally
from bench.params import (
    BENCH_POLICY,
    BENCH_RULES,
    CLK_TCK,
    HOST,
    LOAD_CPU,
    PROCESS_CPU,
    REPO,
    ROW_DIRECT,
    ROW_GK_EMPTY,
    ROW_GK_LISTS,
    ROW_GK_POLICY,
    ROW_GK_RULES,
    ROW_GK_WORKERS,
    ROW_PASSTHROUGH,
    SCOPES,
    SEND_PATH,
    WRK_SCRIPT,
    BenchError,
    Params,
)
from bench.params import parse_args as parse_params
from bench.procs import Process, allowed_cpus, cpu_set, log, process_ticks, tree_pids, wait_http
from bench.summary import add_ratios, print_table, summarize
from gatekeeper.embedded import free_port

# What the other bench modules import from here (defined in the modules above).
__all__ = [
    "BENCH_POLICY", "BENCH_RULES", "CLK_TCK", "HOST", "LOAD_CPU", "PROCESS_CPU", "REPO",
    "ROW_GK_LISTS", "ROW_GK_POLICY", "ROW_GK_RULES", "SCOPES", "SEND_PATH", "WRK_SCRIPT",
    "Bench", "BenchError", "ListFiles", "Measurement", "Params", "Probe", "Process",
    "RowSpec", "Snapshot", "WrkResult", "_sigterm_as_interrupt", "allowed_cpus", "cpu_set",
    "gatekeeper_command", "generate_lists", "loadavg", "log", "machine_info", "main",
    "measure", "parse_args", "prepare_runner", "process_ticks", "run_bench", "run_wrk",
    "tally", "tree_pids", "wait_http", "write_gatekeeper_config",
]


def parse_args(argv: Sequence[str] | None) -> Params:
    """Command-line options (bench.params.parse_args), described by this module's
    docstring."""
    return parse_params(argv, __doc__)


# --------------------------------------------------------------------------- the bench


class Bench:
    """Starts what the rows need, measures them, stops everything."""

    def __init__(self, params: Params, wrk: str, workdir: Path, pinned: bool) -> None:
        self.params = params
        self.wrk = wrk
        self.workdir = workdir
        self.pinned = pinned
        self.processes: list[Process] = []
        self.redis: Any = None
        self.redis_url = ""
        self.redis_pid: int | None = None
        self.notes: list[str] = []
        self.skipped: dict[str, str] = {}
        self.env = {**os.environ, "GATEKEEPER_BENCH_ADMIN_KEY": secrets.token_hex(16),
                    "PYTHONUNBUFFERED": "1"}

    def cpus(self, wanted: str) -> str | None:
        return wanted if self.pinned else None

    def spawn(self, name: str, argv: list[str], cpus: str | None) -> Process:
        process = Process(name, argv, self.workdir / f"{name}.log", cpus, self.env)
        self.processes.append(process)
        process.start()
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        with contextlib.suppress(ValueError):
            self.processes.remove(process)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def start_upstream(self, name: str, cpus: str | None) -> tuple[Process, int]:
        port = free_port()
        process = self.spawn(name, [sys.executable, "-m", "bench.upstream",
                                    "--port", str(port)], cpus)
        wait_http(process, port, "/ready")
        return process, port

    def start_redis(self) -> None:
        from gatekeeper.embedded import EmbeddedRedis  # noqa: PLC0415

        # Started from this (load-CPU-pinned) process: redis-server inherits CPU 1.
        self.redis = EmbeddedRedis(self.workdir / "redis")
        endpoint = self.redis.start()
        self.redis_url, self.redis_pid = endpoint.url, endpoint.pid

    def import_lists(self, config: Path, lists: ListFiles) -> dict[str, float]:
        """`gatekeeper lists import FILE --list block --scope S --mode replace`, per scope."""
        seconds: dict[str, float] = {}
        for scope, path in lists.scope_files.items():
            started = time.monotonic()
            argv = [*gatekeeper_command(), "lists", "import", str(path), "--list", "block",
                    "--scope", scope, "--mode", "replace", "--config", str(config)]
            done = subprocess.run(  # noqa: S603 - our own argv, no shell
                argv, capture_output=True, text=True, timeout=1800, check=False, cwd=REPO,
                env=self.env)
            if done.returncode != 0:
                raise BenchError(f"`{' '.join(argv)}` failed ({done.returncode}):\n"
                                 f"{done.stderr[-2000:]}")
            report = json.loads(done.stdout)
            seconds[scope] = round(time.monotonic() - started, 2)
            log(f"  {scope}: {report.get('added', '?'):,} entries in {seconds[scope]} s")
        return seconds

    def run(self, lists: ListFiles) -> tuple[list[Measurement], dict[str, Any]]:
        params = self.params
        rows = self.row_specs()
        extra: dict[str, Any] = {}
        results: list[Measurement] = []
        load_upstream: Process | None = None
        upstream_port = 0
        if any(r.name != ROW_DIRECT for r in rows):
            load_upstream, upstream_port = self.start_upstream(
                "upstream-load", self.cpus(str(LOAD_CPU)))
        gk_rows = [r for r in rows if r.name.startswith("gatekeeper")]
        if gk_rows:
            self.start_redis()
        if any(r.lists and r.name not in self.skipped for r in rows):
            # Before any row, and settled: an import's aftermath (Redis rewriting its
            # append-only file in a forked child) would otherwise land in one row only.
            extra["import_seconds"] = self.load_lists(lists, upstream_port)
            extra["store_settle_seconds"] = self.wait_store_idle()
        for round_ in range(1, params.repeat + 1):
            for row in rows:
                if row.name in self.skipped:
                    continue
                suffix = f" (round {round_} of {params.repeat})" if params.repeat > 1 else ""
                log(f"row {row.label}{suffix} ...")
                process, url, probe = self.start_row(row, round_, upstream_port,
                                                     load_upstream)
                try:
                    for mode in params.modes:
                        m = measure(row, mode, url, probe, params, self.wrk, lists,
                                    self.pinned)
                        m.round = round_
                        results.append(m)
                        log(f"  {mode:<11} {m.requests_per_s:>9,.0f} req/s  p99 "
                            f"{m.latency_ms['p99']:.2f} ms  {m.cpu_us_per_req:,.0f} us/req"
                            f"  errors {m.unexpected_errors}")
                        if process.exited() is not None:
                            raise BenchError(f"{process.name} exited during the run:\n"
                                             f"{process.log_tail()}")
                    if row.name.startswith("gatekeeper"):
                        counts = extra.setdefault("gatekeeper_log_lines", {})
                        counts[row.name] = counts.get(row.name, 0) + \
                            _count_lines(process.log_path)
                finally:
                    self.stop(process)
        return results, extra

    def load_lists(self, lists: ListFiles, upstream_port: int) -> dict[str, float]:
        """Import the generated lists (key prefix `bench:`); seconds per scope."""
        params = self.params
        config = self.workdir / "gatekeeper-import.yaml"
        write_gatekeeper_config(config, self.redis_url, "bench:", upstream_port,
                                free_port(), free_port(), self.workdir / "gk-data")
        log(f"importing {params.numbers:,} numbers and {params.prefixes:,} prefixes over "
            f"{len(SCOPES)} scopes (gatekeeper lists import, --mode replace) ...")
        return self.import_lists(config, lists)

    def wait_store_idle(self, limit: float = 120.0) -> float:
        """Seconds until redis-server has no append-only-file rewrite or snapshot under
        way (or `limit`)."""
        import redis  # noqa: PLC0415 - only the bench's store check needs the client

        client = redis.Redis.from_url(self.redis_url)
        started = time.monotonic()
        try:
            while time.monotonic() - started < limit:
                info = client.info("persistence")
                if not any(info.get(k) for k in ("aof_rewrite_in_progress",
                                                 "aof_rewrite_scheduled",
                                                 "rdb_bgsave_in_progress")):
                    break
                time.sleep(0.5)
        finally:
            client.close()
        waited = round(time.monotonic() - started, 1)
        if waited >= 1:
            log(f"  waited {waited} s for redis-server to finish rewriting its files")
        return waited

    def row_specs(self) -> list[RowSpec]:
        params = self.params
        specs = {
            ROW_DIRECT: RowSpec(ROW_DIRECT, "direct",
                                "wrk -> fake upstream (the upstream is under test)"),
            ROW_PASSTHROUGH: RowSpec(ROW_PASSTHROUGH, "passthrough",
                                     "wrk -> bench/passthrough.py -> fake upstream"),
            ROW_GK_EMPTY: RowSpec(ROW_GK_EMPTY, "gatekeeper empty",
                                  "wrk -> gatekeeper (empty lists) -> fake upstream"),
            ROW_GK_LISTS: RowSpec(
                ROW_GK_LISTS, "gatekeeper lists",
                f"wrk -> gatekeeper ({params.numbers:,} numbers + {params.prefixes:,} "
                f"prefixes over {len(SCOPES)} scopes; {params.blocked_fraction:.0%} of "
                "requests blocked: 403 expected) -> fake upstream", lists=True),
            ROW_GK_RULES: RowSpec(
                ROW_GK_RULES, "gatekeeper lists+rules",
                "as gatekeeper lists, with policy rules (countries, number types, quiet "
                "hours, a safe list) that block none of its numbers", lists=True,
                policy=BENCH_RULES),
            ROW_GK_POLICY: RowSpec(
                ROW_GK_POLICY, "gatekeeper lists+policy",
                "as gatekeeper lists+rules, with two velocity limits (per number, per "
                "block) counted on every send, high enough never to refuse one",
                lists=True, policy=BENCH_POLICY),
        }
        if params.gk_workers is not None:
            n = params.gk_workers
            specs[ROW_GK_WORKERS] = RowSpec(
                ROW_GK_WORKERS, f"gatekeeper N={n}",
                f"as gatekeeper lists, `gatekeeper run --workers {n}`, given both CPUs "
                "(shared with the load side)", lists=True,
                cpus=f"{PROCESS_CPU},{LOAD_CPU}", workers=n)
            if not gatekeeper_has_workers_flag():
                self.skipped[ROW_GK_WORKERS] = (
                    "`gatekeeper run` has no --workers option (checked with "
                    "`gatekeeper run --help`): src/gatekeeper/cli/ does not define it yet")
        return [specs[name] for name in params.rows]

    def start_row(self, row: RowSpec, round_: int, upstream_port: int,
                  load_upstream: Process | None) -> tuple[Process, str, Probe]:
        """Start the row's process under test; it, the URL to load and what to read."""
        tag = f"-r{round_}" if self.params.repeat > 1 else ""
        if row.name == ROW_DIRECT:
            process, port = self.start_upstream("upstream-direct" + tag, self.cpus(row.cpus))
            return process, f"http://{HOST}:{port}{SEND_PATH}", \
                Probe(process, pinned_to=self.cpus(row.cpus))
        if row.name == ROW_PASSTHROUGH:
            port = free_port()
            process = self.spawn("passthrough" + tag, [
                sys.executable, "-m", "bench.passthrough", "--port", str(port),
                "--upstream", f"http://{HOST}:{upstream_port}"], self.cpus(row.cpus))
            wait_http(process, port, "/ready")
            return process, f"http://{HOST}:{port}{SEND_PATH}", \
                Probe(process, load_upstream=load_upstream, pinned_to=self.cpus(row.cpus))
        proxy_port, admin_port = free_port(), free_port()
        config = self.workdir / f"{row.name}{tag}.yaml"
        write_gatekeeper_config(config, self.redis_url,
                                "bench:" if row.lists else "bench-empty:", upstream_port,
                                proxy_port, admin_port, self.workdir / "gk-data",
                                row.policy)
        argv = [*gatekeeper_command(), "run", "--config", str(config)]
        if row.workers is not None:
            argv += ["--workers", str(row.workers)]
        process = self.spawn(row.name + tag, argv, self.cpus(row.cpus))
        wait_http(process, admin_port, "/readyz", want_ok=True)
        wait_http(process, proxy_port, "/healthz-bench")  # any reply: the proxy listens
        return process, f"http://{HOST}:{proxy_port}{SEND_PATH}", \
            Probe(process, self.redis_pid, load_upstream, self.cpus(row.cpus),
                  f"http://{HOST}:{admin_port}/metrics")


def _count_lines(path: Path) -> int:
    with contextlib.suppress(OSError), path.open("rb") as f:
        return sum(1 for _ in f)
    return 0

def run_bench(params: Params) -> int:
    """The whole run; the exit status."""
    prepared = prepare_runner("bench")
    if prepared is None:
        return 2
    wrk, pinned = prepared
    info = machine_info(wrk)
    lists = generate_lists(params)
    workdir = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-"))
    bench = Bench(params, wrk, workdir, pinned)
    started = time.time()
    try:
        windows, extra = bench.run(lists)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        print(f"bench: logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        bench.close()
    add_ratios(windows)
    results = summarize(windows) if params.repeat > 1 else windows
    if params.repeat > 1:
        add_ratios(results)
    print()
    print_table(results, params, pinned, sys.stdout)
    for name, reason in bench.skipped.items():
        print(f"\nSKIPPED row {name}: {reason}")
    failures = [f"{m.label} ({m.mode}): {m.unexpected_errors} unexpected errors "
                f"{m.errors} {m.status}" for m in results if m.unexpected_errors]
    failures += [f"{m.label} ({m.mode}): {c}" for m in results for c in m.checks]
    for m in results:
        if m.mode == "rate" and m.offered_rate and \
                m.requests_per_s < 0.8 * m.offered_rate:
            bench.notes.append(f"{m.label}: reached {m.requests_per_s:.0f} of "
                               f"{m.offered_rate} req/s offered: saturated, lower --rate")
    for note in bench.notes:
        print(f"note: {note}")
    for failure in failures:
        print(f"FAILED: {failure}")
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "loadavg_at_end": loadavg(),
        "machine": info,
        "parameters": {**asdict(params), "send_path": SEND_PATH, "scopes": list(SCOPES),
                       "wrk_script": str(WRK_SCRIPT.relative_to(REPO)),
                       "rate_pacing_ms": params.connections * 1000 / params.rate
                       if params.rate else None},
        "pinning": ({"process_under_test": f"taskset -c {PROCESS_CPU}",
                     "load_side": f"CPU {LOAD_CPU}: wrk, fake upstream, redis-server, runner",
                     "gatekeeper_workers_row": f"taskset -c {PROCESS_CPU},{LOAD_CPU}"}
                    if pinned else "none"),
        "cpu_measurement": "utime+stime (+cutime+cstime) from /proc/<pid>/stat of the "
                           "process under test and its live descendants except "
                           "redis-server, read just before and just after the timed wrk "
                           f"run, in ticks of 1/{CLK_TCK} s, divided by wrk's request "
                           "count; redis-server read separately",
        "lists": lists.manifest,
        **extra,
        "rows": [asdict(m) for m in results],
        "windows": [asdict(m) for m in windows] if params.repeat > 1 else [],
        "skipped": bench.skipped,
        "notes": bench.notes,
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
    return 1 if failures or bench.skipped else 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C (children are stopped in `finally`)."""
    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    params = parse_args(argv)
    with _sigterm_as_interrupt():
        return run_bench(params)


if __name__ == "__main__":
    sys.exit(main())
