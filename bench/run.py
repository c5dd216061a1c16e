"""Gatekeeper benchmark: direct, naive passthrough and Gatekeeper rows side by side.

    .venv/bin/python -m bench.run                 # or: make bench
    .venv/bin/python -m bench.run --quick         # CI smoke: tiny durations and lists

Every row is measured in one run, twice: at a fixed concurrency (a closed loop, as fast
as it goes) and at a fixed rate below saturation (wrk paced with delay()). Everything
listens on 127.0.0.1; the only upstream is the bench's own fake gateway. See
bench/README.md for how to read the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import importlib.metadata
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gatekeeper.embedded import free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "latest.json"
WRK_SCRIPT = BENCH_DIR / "wrk" / "post.lua"
HOST = "127.0.0.1"
ACCOUNT_SID = "AC" + "0" * 32
SEND_PATH = f"/twilio/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SCOPES = ("global", "tenant:acme", "tenant:beta")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCESS_CPU = 0   # the process under test
LOAD_CPU = 1      # wrk, the fake upstream, redis-server, this runner
LISTS_FORMAT = 1  # bump when the generated files change shape
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
WRK_HELP = ("wrk is needed to run the benchmark and was not found on PATH.\n"
            "Install it with:  sudo apt-get install wrk   (Debian/Ubuntu; wrk 4.x)\n"
            "or build it from https://github.com/wg/wrk and put it on PATH.")

ROW_DIRECT = "direct"
ROW_PASSTHROUGH = "passthrough"
ROW_GK_EMPTY = "gatekeeper-empty"
ROW_GK_LISTS = "gatekeeper-lists"
ROW_GK_WORKERS = "gatekeeper-workers"
ROW_GK_RULES = "gatekeeper-rules"
ROW_GK_POLICY = "gatekeeper-policy"
ROWS = (ROW_DIRECT, ROW_PASSTHROUGH, ROW_GK_EMPTY, ROW_GK_LISTS, ROW_GK_WORKERS,
        ROW_GK_RULES, ROW_GK_POLICY)
# The policy of the gatekeeper-policy row: every rule kind, none of them blocking the
# bench's US numbers. Quiet hours (the shipped windows) are evaluated in monitor mode:
# the bench draws area codes 201 to 989, unassigned ones too, whose time zone is
# unknown, so every zone's window applies and some zone is always quiet at some hour
# of the day; blocking would make the row's refusals depend on when it runs.
BENCH_POLICY = {"global": {
    "countries": {"block": ["KP", "IR", "CU", "SY"], "monitor": ["NG"]},
    "number_types": {"premium_rate": "block", "shared_cost": "block", "uan": "monitor"},
    "quiet_hours": {"action": "block", "intents": ["marketing"]},
    "mode": {"quiet_hours": "monitor"},
    "safe": ["+15005550006"],
    # Two velocity limits, counted on every send (high enough never to refuse one).
    "velocity": [{"per": "number", "limit": "1000000/hour"},
                 {"per": "block", "digits": 8, "limit": "1000000/hour"}],
}}
# The gatekeeper-rules row's: the same without the velocity limits (what they cost).
BENCH_RULES = {"global": {k: v for k, v in BENCH_POLICY["global"].items()
                          if k != "velocity"}}
MODES = ("concurrency", "rate")
_PR_SET_PDEATHSIG = 1


class BenchError(Exception):
    """The bench could not run a step (message for the terminal)."""


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Params:
    """What one run measures."""

    duration: int
    warmup: int
    connections: int
    threads: int
    rate: int
    blocked_fraction: float
    numbers: int
    prefixes: int
    unlisted_pool: int
    blocked_pool: int
    gk_workers: int | None
    rows: tuple[str, ...]
    modes: tuple[str, ...]
    quick: bool
    seed: int
    output: str
    keep_logs: bool
    repeat: int


def parse_args(argv: Sequence[str] | None) -> Params:
    """Command-line options; --quick changes the defaults to CI-smoke sizes."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, help="timed seconds per row and mode "
                   "(default 10; --quick: 1)")
    p.add_argument("--warmup", type=int, help="untimed seconds before each timed window "
                   "(default 3; --quick: 1; 0: none)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=1,
                   help="wrk threads, all pinned to the load CPU (default 1)")
    p.add_argument("--rate", type=int, help="offered req/s of the fixed-rate mode "
                   "(default 500; --quick: 200; 0 skips the mode)")
    p.add_argument("--blocked-fraction", type=float, default=0.05,
                   help="share of requests to blocked numbers (0.05)")
    p.add_argument("--numbers", type=int, help="exact numbers in the block lists, over "
                   "the 3 scopes (default 1000000; --quick: 10000)")
    p.add_argument("--prefixes", type=int, help="prefixes in the block lists, over the "
                   "3 scopes (default 10000; --quick: 100)")
    p.add_argument("--gk-workers", type=int, metavar="N",
                   help="also run the row 'gatekeeper N=<N>': `gatekeeper run --workers N` "
                   "with the lists, given both CPUs")
    p.add_argument("--only", help="comma-separated rows to run, of: " + ", ".join(ROWS))
    p.add_argument("--modes", default=",".join(MODES),
                   help="comma-separated modes: concurrency, rate (default both)")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: 1 s windows, 10k numbers, small pools")
    p.add_argument("--seed", type=int, default=20240601, help="list generation seed")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON results file "
                   f"(default {DEFAULT_OUTPUT.relative_to(REPO)})")
    p.add_argument("--repeat", type=int, default=1, metavar="R",
                   help="run all rows R times in turn (ABCD ABCD ...) and report the "
                   "median of each figure; every window is in the JSON (default 1)")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the temporary directory with process logs")
    a = p.parse_args(argv)
    quick = bool(a.quick)

    def pick(value: int | None, normal: int, small: int) -> int:
        return value if value is not None else (small if quick else normal)

    rows = tuple(r.strip() for r in a.only.split(",") if r.strip()) if a.only else \
        (ROW_DIRECT, ROW_PASSTHROUGH, ROW_GK_EMPTY, ROW_GK_LISTS)
    if a.gk_workers is not None and not a.only:
        rows = (*rows, ROW_GK_WORKERS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown row {unknown[0]!r}; rows: {', '.join(ROWS)}")
    if ROW_GK_WORKERS in rows and a.gk_workers is None:
        p.error(f"row {ROW_GK_WORKERS} needs --gk-workers N")
    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: expected a comma-separated subset of {', '.join(MODES)}")
    rate = pick(a.rate, 500, 200)
    if rate <= 0:
        modes = tuple(m for m in modes if m != "rate")
    duration, warmup = pick(a.duration, 10, 1), pick(a.warmup, 3, 1)
    if duration < 1 or warmup < 0:
        p.error("--duration must be at least 1 s and --warmup at least 0")
    if a.connections < 1 or not 1 <= a.threads <= a.connections:
        p.error("need connections >= threads >= 1")
    if not 0 <= a.blocked_fraction < 1:
        p.error("--blocked-fraction must be in [0, 1)")
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    if a.gk_workers is not None and a.gk_workers < 1:
        p.error("--gk-workers must be at least 1")
    numbers, prefixes = pick(a.numbers, 1_000_000, 10_000), pick(a.prefixes, 10_000, 100)
    if numbers < len(SCOPES) or prefixes < len(SCOPES):
        p.error("--numbers and --prefixes must be at least 3 (one per scope)")
    return Params(
        duration=duration, warmup=warmup, connections=a.connections, threads=a.threads,
        rate=rate, blocked_fraction=a.blocked_fraction, numbers=numbers, prefixes=prefixes,
        unlisted_pool=2_000 if quick else 10_000, blocked_pool=200 if quick else 1_000,
        gk_workers=a.gk_workers, rows=rows, modes=modes, quick=quick, seed=a.seed,
        output=a.output, keep_logs=a.keep_logs, repeat=a.repeat)


# --------------------------------------------------------------------------- the lists


@dataclass(frozen=True)
class ListFiles:
    """Generated block lists (one file per scope) and the destination pool for wrk."""

    scope_files: dict[str, Path]
    pool: Path
    manifest: dict[str, Any]


def _scope_file_name(scope: str) -> str:
    return "block-" + scope.replace(":", "_") + ".txt"


def generate_lists(params: Params) -> ListFiles:
    """The block lists and the pool, generated deterministically from the seed and kept
    under bench/.cache (reused when complete: manifest.json is written last).

    Number plan (all +1, ten national digits, so every one is a possible number):
    exact entries have area codes 300-699; prefixes are `+17...*`/`+18...*` (area codes
    700-899, 3 to 7 national digits); unlisted destinations have area codes 200-299, so
    no entry can match them and the 95% do the same lookups with or without lists.
    Blocked destinations: half exact entries, half numbers under a prefix, all scopes.
    """
    name = (f"lists-v{LISTS_FORMAT}-n{params.numbers}-p{params.prefixes}"
            f"-u{params.unlisted_pool}-b{params.blocked_pool}-s{params.seed}")
    folder = CACHE_DIR / name
    scope_files = {s: folder / _scope_file_name(s) for s in SCOPES}
    pool = folder / "pool.txt"
    manifest_path = folder / "manifest.json"
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads(manifest_path.read_text())
        if all(f.is_file() for f in (*scope_files.values(), pool)):
            return ListFiles(scope_files, pool, manifest)
    started = time.monotonic()
    log(f"generating lists in {folder.relative_to(REPO)} (cached for later runs) ...")
    rng = random.Random(params.seed)  # noqa: S311 - reproducible test data, not secrets
    # Exact numbers: distinct national numbers 3000000000..6999999999.
    exact = [3_000_000_000 + v for v in rng.sample(range(4_000_000_000), params.numbers)]
    prefixes: set[str] = set()
    lengths, weights = (3, 4, 5, 6, 7), (1, 4, 16, 40, 40)
    while len(prefixes) < params.prefixes:
        length = rng.choices(lengths, weights)[0]
        digits = rng.choice("78") + "".join(rng.choice("0123456789")
                                            for _ in range(length - 1))
        prefixes.add(digits)
    prefix_list = sorted(prefixes)
    rng.shuffle(prefix_list)
    folder.mkdir(parents=True, exist_ok=True)
    handles = {s: (folder / (_scope_file_name(s) + ".part")).open("w") for s in SCOPES}
    try:
        for i, national in enumerate(exact):
            handles[SCOPES[i % len(SCOPES)]].write(f"+1{national}\n")
        for i, digits in enumerate(prefix_list):
            handles[SCOPES[i % len(SCOPES)]].write(f"+1{digits}*\n")
    finally:
        for handle in handles.values():
            handle.close()
    unlisted: set[int] = set()
    while len(unlisted) < params.unlisted_pool:
        unlisted.add(2_000_000_000 + rng.randrange(1_000_000_000))
    blocked_exact = rng.sample(exact, min(len(exact), params.blocked_pool // 2))
    blocked_prefixed: list[str] = []
    for _ in range(params.blocked_pool - len(blocked_exact)):
        digits = rng.choice(prefix_list)
        blocked_prefixed.append(digits + "".join(rng.choice("0123456789")
                                                 for _ in range(10 - len(digits))))
    # The plan guarantees it; checked anyway, since the comparison depends on it.
    exact_set = set(exact)
    for national in unlisted:
        text = str(national)
        if national in exact_set or any(text[:n] in prefixes for n in range(3, 8)):
            raise BenchError(f"generated unlisted number +1{text} is listed")
    with (folder / "pool.txt.part").open("w") as out:
        out.writelines(f"u +1{n}\n" for n in sorted(unlisted))
        out.writelines(f"b +1{n}\n" for n in blocked_exact)
        out.writelines(f"b +1{d}\n" for d in blocked_prefixed)
    for scope in SCOPES:
        (folder / (_scope_file_name(scope) + ".part")).replace(scope_files[scope])
    (folder / "pool.txt.part").replace(pool)
    manifest = {
        "numbers": params.numbers, "prefixes": params.prefixes, "seed": params.seed,
        "scopes": list(SCOPES), "unlisted_pool": len(unlisted),
        "blocked_pool": len(blocked_exact) + len(blocked_prefixed),
        "blocked_pool_exact": len(blocked_exact),
        "blocked_pool_under_prefix": len(blocked_prefixed),
        "plan": {"exact": "+1 area codes 300-699", "prefixes": "+17*/+18*, 3-7 digits",
                 "unlisted": "+1 area codes 200-299"},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"  generated in {time.monotonic() - started:.1f} s")
    return ListFiles(scope_files, pool, manifest)


# --------------------------------------------------------------------------- processes


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the runner dies without stopping it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)



class Process:
    """A child server: started pinned (taskset) with output in a log file, stopped with
    SIGTERM (then SIGKILL), its whole tree measurable through /proc."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cpus: str | None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.cpus = cpus
        self.log_path = log_path
        self._env = env
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id (the same after taskset's exec)."""
        if self._popen is None:
            raise BenchError(f"{self.name} is not running")
        return self._popen.pid

    @property
    def command(self) -> list[str]:
        """The command line as run, taskset included."""
        taskset = shutil.which("taskset")
        if self.cpus is None or taskset is None:
            return self.argv
        return [taskset, "-c", self.cpus, *self.argv]

    def start(self) -> None:
        """Start it (not waiting for readiness)."""
        with self.log_path.open("ab") as out:
            self._popen = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=REPO, env=self._env, preexec_fn=_die_with_parent,  # noqa: PLW1509
            )

    def exited(self) -> int | None:
        """Its exit status once it has exited."""
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The end of its output."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL; idempotent."""
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        popen.terminate()
        try:
            popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def wait_http(process: Process, port: int, path: str, want_ok: bool = False,
              timeout: float = START_TIMEOUT) -> None:
    """Wait until 127.0.0.1:`port` answers `path` (with a 2xx when `want_ok`)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        status = process.exited()
        if status is not None:
            raise BenchError(f"{process.name} exited with status {status} while starting:\n"
                             f"{process.log_tail()}")
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            reply.read()
            if not want_ok or 200 <= reply.status < 300:
                return
            last = f"HTTP {reply.status}"
        except OSError as exc:
            last = str(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise BenchError(f"{process.name} did not answer GET {path} on port {port} within "
                     f"{timeout:.0f} s ({last}):\n{process.log_tail()}")


# --------------------------------------------------------------------------- CPU time


def _stat_fields(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields from field 3 on) of /proc/<pid>/stat, None when gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    return comm, raw[raw.rindex(")") + 2:].split()


def process_ticks(pid: int, with_reaped_children: bool = False) -> int:
    """utime + stime of a process (all its threads), in clock ticks; with
    `with_reaped_children`, plus cutime + cstime (children it has waited for)."""
    stat = _stat_fields(pid)
    if stat is None:
        return 0
    f = stat[1]
    # Fields 14-17 (utime, stime, cutime, cstime) are at index n - 3 here.
    ticks = int(f[11]) + int(f[12])
    if with_reaped_children:
        ticks += int(f[13]) + int(f[14])
    return ticks


def tree_pids(root: int, exclude_comm: frozenset[str] = frozenset()) -> list[int]:
    """`root` and all its live descendants, less processes named in `exclude_comm` (and
    their subtrees)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat_fields(int(entry))
        if stat is not None:
            children.setdefault(int(stat[1][1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        stat = _stat_fields(pid)
        if stat is None or (pid != root and stat[0] in exclude_comm):
            continue
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_ticks(root: int, exclude_comm: frozenset[str] = frozenset()) -> int:
    """CPU ticks of a process tree: every live process's utime + stime, plus cutime +
    cstime, so a worker that exits (and is reaped) inside the window still counts."""
    return sum(process_ticks(pid, with_reaped_children=True)
               for pid in tree_pids(root, exclude_comm))


def syscalls(pids: Sequence[int]) -> int:
    """Read and write system calls of live processes (syscr + syscw in /proc/<pid>/io:
    read, write and their kin, which uvloop uses on sockets; not recv, send or
    epoll_wait, so a plain asyncio process shows about none)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith(("syscr:", "syscw:")):
                    total += int(line.split(":", 1)[1])
    return total


def waits(pids: Sequence[int]) -> int:
    """How many times live processes gave up the CPU of their own accord
    (voluntary_ctxt_switches in /proc/<pid>/status): for an event loop, each time it
    found nothing to do and slept in epoll_wait. Fewer per request means more work
    found per wake-up (larger batches)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split(":", 1)[1])
    return total


def allowed_cpus(pid: int) -> str | None:
    """Cpus_allowed_list of a process (what taskset set), None when gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    return None


def cpu_set(text: str) -> set[int]:
    """CPUs of a list such as "0", "0,1" or "0-1"."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if low:
            cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def cpu_times() -> dict[str, tuple[int, int, int]]:
    """Per-CPU (busy, steal, total) jiffies from /proc/stat (busy: neither idle, iowait
    nor steal; steal: time the hypervisor gave the vCPU to someone else)."""
    out: dict[str, tuple[int, int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
            values = [int(v) for v in parts[1:9]]   # user..steal
            idle, steal = values[3] + values[4], values[7]
            out[parts[0]] = (sum(values) - idle - steal, steal, sum(values))
    return out


def collector_seconds(url: str) -> float | None:
    """gatekeeper_gc_seconds_total, all generations, from a Gatekeeper's /metrics."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    except OSError:
        return None
    found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith("gatekeeper_gc_seconds_total{")]
    return sum(found) if found else None  # a Gatekeeper before the metric


@dataclass
class Probe:
    """Whose CPU time a window reads."""

    target: Process
    redis_pid: int | None = None
    load_upstream: Process | None = None
    pinned_to: str | None = None   # the target's expected Cpus_allowed_list
    metrics_url: str | None = None  # a Gatekeeper's /metrics (its collector's time)


@dataclass
class Snapshot:
    """CPU counters at one instant."""

    target: int
    redis: int | None
    load_upstream: int | None
    cpus: dict[str, tuple[int, int, int]]
    pids: list[int]
    affinity: dict[int, str | None]
    gc_seconds: float | None = None
    syscalls: int = 0
    waits: int = 0

    @classmethod
    def take(cls, probe: Probe) -> Snapshot:
        """Read them all now."""
        pids = tree_pids(probe.target.pid, frozenset({"redis-server"}))
        return cls(
            gc_seconds=collector_seconds(probe.metrics_url) if probe.metrics_url else None,
            syscalls=syscalls(pids), waits=waits(pids),
            target=tree_ticks(probe.target.pid, frozenset({"redis-server"})),
            redis=process_ticks(probe.redis_pid) if probe.redis_pid else None,
            load_upstream=(tree_ticks(probe.load_upstream.pid)
                           if probe.load_upstream else None),
            cpus=cpu_times(), pids=pids, affinity={pid: allowed_cpus(pid) for pid in pids})


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """What post.lua's done() printed."""

    requests: int
    duration_us: int
    errors: dict[str, int]
    sent: dict[str, int]
    status: dict[str, int]
    latency_us: dict[str, float]


def run_wrk(wrk: str, url: str, params: Params, seconds: int, pace_ms: float,
            pool: Path, pinned: bool) -> WrkResult:
    """One wrk run on the load CPU; its BENCH_RESULT line."""
    argv = [wrk, "-t", str(params.threads), "-c", str(params.connections),
            "-d", f"{seconds}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), url,
            "--", str(pool), str(params.blocked_fraction), f"{pace_ms:.3f}", SEND_PATH]
    taskset = shutil.which("taskset")
    if taskset and pinned:
        argv = [taskset, "-c", str(LOAD_CPU), *argv]
    try:
        done = subprocess.run(  # noqa: S603 - our own argv, no shell
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60} s") from exc
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return WrkResult(raw["requests"], raw["duration_us"], raw["errors"],
                             raw["sent"], raw["status"], raw["latency_us"])
    raise BenchError(f"wrk printed no result (exit {done.returncode}):\n"
                     f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


# --------------------------------------------------------------------------- rows


@dataclass
class RowSpec:
    """One row: the process under test and what it is compared on."""

    name: str
    label: str
    description: str
    lists: bool = False       # 403 from Gatekeeper for blocked numbers is expected
    cpus: str = str(PROCESS_CPU)
    workers: int | None = None
    policy: dict[str, Any] | None = None  # the policy configured (BENCH_POLICY...)


@dataclass
class Measurement:
    """One row in one mode."""

    row: str
    label: str
    mode: str
    offered_rate: int | None
    requests: int
    duration_s: float
    requests_per_s: float
    latency_ms: dict[str, float]
    unexpected_errors: int
    errors: dict[str, int]
    expected_rejections: int
    status: dict[str, int]
    sent: dict[str, int]
    cpu_us_per_req: float
    redis_cpu_us_per_req: float | None
    load_upstream_cpu_us_per_req: float | None
    cpu_busy_percent: dict[str, float]
    cpu_steal_percent: dict[str, float]
    measured_pids: list[int]
    affinity: dict[int, str | None]
    checks: list[str] = field(default_factory=list)
    round: int = 1
    rounds: int = 1
    cpu_ratio_to_passthrough: float | None = None
    p99_ratio_to_passthrough: float | None = None
    gc_us_per_req: float | None = None  # of cpu_us_per_req, in Python's collector
    syscalls_per_req: float | None = None  # its read()s and write()s (see syscalls)
    waits_per_req: float | None = None  # its sleeps for want of work (see waits)


def measure(row: RowSpec, mode: str, url: str, probe: Probe, params: Params, wrk: str,
            lists: ListFiles, pinned: bool) -> Measurement:
    """Warm up, then one timed window with CPU counters read before and after it."""
    pace_ms = params.connections * 1000 / params.rate if mode == "rate" else 0.0
    if params.warmup:
        run_wrk(wrk, url, params, params.warmup, pace_ms, lists.pool, pinned)
    before = Snapshot.take(probe)
    result = run_wrk(wrk, url, params, params.duration, pace_ms, lists.pool, pinned)
    after = Snapshot.take(probe)
    return tally(row, mode, params, probe, before, after, result)


def tally(row: RowSpec, mode: str, params: Params, probe: Probe, before: Snapshot,
          after: Snapshot, result: WrkResult) -> Measurement:
    """One timed window's figures, from the counters read around it and wrk's result."""
    requests = max(result.requests, 1)

    def per_request(a: int | None, b: int | None) -> float | None:
        if a is None or b is None:
            return None
        return (b - a) * 1_000_000 / CLK_TCK / requests

    status, errors = result.status, result.errors
    socket_errors = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    expected = status["403_rejected"] if row.lists else 0
    non_2xx = result.requests - status["2xx"]
    unexpected = socket_errors + non_2xx - expected
    checks = []
    if probe.pinned_to is not None:
        for snapshot in (before, after):
            for pid, cpus in snapshot.affinity.items():
                if cpus is not None and cpu_set(cpus) != cpu_set(probe.pinned_to):
                    checks.append(f"pid {pid} was allowed on CPUs {cpus}, not "
                                  f"{probe.pinned_to}: something changed its affinity")
    if row.lists:
        # Every blocked destination must be refused, nothing else (a few requests may be
        # in flight when wrk stops, hence the tolerance of one per connection).
        missing = result.sent["blocked"] - status["403_rejected"]
        if not 0 <= missing <= params.connections:
            checks.append(f"{result.sent['blocked']} requests to blocked numbers but "
                          f"{status['403_rejected']} rejections")
    duration_s = result.duration_us / 1e6
    busy, steal = {}, {}
    for cpu, (b1, s1, t1) in after.cpus.items():
        b0, s0, t0 = before.cpus.get(cpu, (b1, s1, t1))
        busy[cpu] = round(100 * (b1 - b0) / max(t1 - t0, 1), 1)
        steal[cpu] = round(100 * (s1 - s0) / max(t1 - t0, 1), 1)
    target_us = per_request(before.target, after.target)
    lat = result.latency_us
    return Measurement(
        row=row.name, label=row.label, mode=mode,
        offered_rate=params.rate if mode == "rate" else None,
        requests=result.requests, duration_s=round(duration_s, 3),
        requests_per_s=round(result.requests / max(duration_s, 1e-9), 1),
        latency_ms={k: round(lat[k] / 1000, 3) for k in ("p50", "p90", "p99", "max", "mean")},
        unexpected_errors=unexpected, errors={**errors, "non_2xx": non_2xx},
        expected_rejections=expected, status=status, sent=result.sent,
        cpu_us_per_req=round(target_us or 0.0, 1),
        gc_us_per_req=None if before.gc_seconds is None or after.gc_seconds is None
        else round((after.gc_seconds - before.gc_seconds) * 1e6 / requests, 1),
        syscalls_per_req=round((after.syscalls - before.syscalls) / requests, 2),
        waits_per_req=round((after.waits - before.waits) / requests, 3),
        redis_cpu_us_per_req=_round(per_request(before.redis, after.redis)),
        load_upstream_cpu_us_per_req=_round(per_request(before.load_upstream,
                                                        after.load_upstream)),
        cpu_busy_percent=busy, cpu_steal_percent=steal,
        measured_pids=sorted(set(before.pids) | set(after.pids)),
        affinity={**before.affinity, **after.affinity},
        checks=checks)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --------------------------------------------------------------------------- the bench


def pinning_available() -> bool:
    """True when this machine lets us give the process under test CPU 0 and the load
    side CPU 1."""
    return {PROCESS_CPU, LOAD_CPU} <= os.sched_getaffinity(0) and shutil.which("taskset")\
        is not None


def gatekeeper_command() -> list[str]:
    """The `gatekeeper` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "gatekeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gatekeeper"]


def gatekeeper_has_workers_flag() -> bool:
    """Whether `gatekeeper run` accepts --workers."""
    done = subprocess.run(  # noqa: S603 - our own argv, no shell
        [*gatekeeper_command(), "run", "--help"], capture_output=True, text=True,
        timeout=60, check=False, cwd=REPO)
    return "--workers" in done.stdout


def write_gatekeeper_config(path: Path, redis_url: str, key_prefix: str,
                            upstream_port: int, proxy_port: int, admin_port: int,
                            data_dir: Path, policy: dict[str, Any] | None = None) -> None:
    """A config whose only upstream is the fake gateway on loopback (with `policy`)."""
    config = {
        "proxy": {"host": HOST, "port": proxy_port, "on_invalid": "reject"},
        "admin": {"host": HOST, "port": admin_port, "key_env": "GATEKEEPER_BENCH_ADMIN_KEY"},
        "redis": {"url": redis_url, "data_dir": str(data_dir), "key_prefix": key_prefix,
                  "timeout": 2.0},
        "store": {"on_error": "closed"},
        # warning: the per-request `request` event is info; blocked attempts
        # (destination_blocked) are warnings and still written, to a log file.
        "log": {"level": "warning", "format": "json"},
        "upstreams": [{
            "name": "twilio", "url": f"http://{HOST}:{upstream_port}", "preset": "twilio",
            "region": "US", "on_block": "reject", "timeout": 30,
            "scopes": ["tenant:acme", "tenant:beta"],
        }],
        **({"policy": policy} if policy else {}),
    }
    # JSON is YAML: no YAML writer needed.
    path.write_text(json.dumps(config, indent=2) + "\n")


def loadavg() -> list[str]:
    """The 1, 5 and 15 minute load averages."""
    return Path("/proc/loadavg").read_text().split()[:3]


def machine_info(wrk: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(argv: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603
                                  timeout=10, check=False)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        return "unknown"

    def package(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    from gatekeeper.embedded import find_binary  # noqa: PLC0415 - after the wrk check

    return {
        "hostname": platform.node(), "kernel": platform.release(),
        "machine": platform.machine(), "cpu_model": model, "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)), "clock_ticks_per_s": CLK_TCK,
        "loadavg_at_start": loadavg(),
        "python": platform.python_version(), "aiohttp": package("aiohttp"),
        "uvloop": package("uvloop"), "gatekeeper": package("gatekeeper"),
        "wrk": version([wrk, "-v"]),
        "redis_server": version([find_binary(None), "--version"]),
    }


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


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def combine(windows: list[Measurement]) -> Measurement:
    """One row and mode over several rounds: the median of each figure (separately),
    counts summed, every check kept."""
    if len(windows) == 1:
        return windows[0]
    first = windows[0]

    def med(get: Callable[[Measurement], float | None]) -> float | None:
        values = [v for v in map(get, windows) if v is not None]
        return _median(values) if values else None

    def total(get: Callable[[Measurement], dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in windows:
            for k, v in get(w).items():
                out[k] = out.get(k, 0) + v
        return out

    return Measurement(
        row=first.row, label=first.label, mode=first.mode, offered_rate=first.offered_rate,
        requests=sum(w.requests for w in windows),
        duration_s=round(sum(w.duration_s for w in windows), 3),
        requests_per_s=round(statistics.median(w.requests_per_s for w in windows), 1),
        latency_ms={k: _median([w.latency_ms[k] for w in windows]) for k in first.latency_ms},
        unexpected_errors=sum(w.unexpected_errors for w in windows),
        errors=total(lambda w: w.errors),
        expected_rejections=sum(w.expected_rejections for w in windows),
        status=total(lambda w: w.status), sent=total(lambda w: w.sent),
        cpu_us_per_req=round(statistics.median(w.cpu_us_per_req for w in windows), 1),
        redis_cpu_us_per_req=med(lambda w: w.redis_cpu_us_per_req),
        gc_us_per_req=med(lambda w: w.gc_us_per_req),
        syscalls_per_req=med(lambda w: w.syscalls_per_req),
        waits_per_req=med(lambda w: w.waits_per_req),
        load_upstream_cpu_us_per_req=med(lambda w: w.load_upstream_cpu_us_per_req),
        cpu_busy_percent={cpu: _median([w.cpu_busy_percent.get(cpu, 0.0) for w in windows])
                          for cpu in first.cpu_busy_percent},
        cpu_steal_percent={cpu: _median([w.cpu_steal_percent.get(cpu, 0.0) for w in windows])
                           for cpu in first.cpu_steal_percent},
        measured_pids=sorted({p for w in windows for p in w.measured_pids}),
        affinity={k: v for w in windows for k, v in w.affinity.items()},
        checks=[f"round {w.round}: {c}" for w in windows for c in w.checks],
        round=0, rounds=len(windows))


def summarize(windows: list[Measurement]) -> list[Measurement]:
    """Per row and mode, in first-seen order: the combined figures of all its rounds."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for w in windows:
        groups.setdefault((w.row, w.mode), []).append(w)
    return [combine(group) for group in groups.values()]


def add_ratios(results: list[Measurement]) -> None:
    """CPU/request and p99 of each row relative to the passthrough row of the same mode
    (and round)."""
    base = {(m.mode, m.round): m for m in results if m.row == ROW_PASSTHROUGH}
    for m in results:
        ref = base.get((m.mode, m.round))
        if ref is None:
            continue
        if ref.cpu_us_per_req > 0:
            m.cpu_ratio_to_passthrough = round(m.cpu_us_per_req / ref.cpu_us_per_req, 2)
        if ref.latency_ms["p99"] > 0:
            m.p99_ratio_to_passthrough = round(m.latency_ms["p99"] / ref.latency_ms["p99"], 2)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[Measurement], params: Params, pinned: bool, out: TextIO
                ) -> None:
    """The terminal table."""
    headers = ("row", "mode", "req/s", "p50 ms", "p99 ms", "errors", "403 exp",
               "CPU us/req", "gc us/req", "sys/req", "waits/req", "redis us/req", "CPU x pt",
               "p99 x pt", "cpu0%", "cpu1%")
    lines = []
    for m in results:
        mode = "conc" if m.mode == "concurrency" else f"rate {m.offered_rate}"
        lines.append((
            m.label, mode, f"{m.requests_per_s:,.0f}", f"{m.latency_ms['p50']:.2f}",
            f"{m.latency_ms['p99']:.2f}", str(m.unexpected_errors),
            str(m.expected_rejections), f"{m.cpu_us_per_req:,.0f}",
            _fmt(m.gc_us_per_req, ",.1f"), _fmt(m.syscalls_per_req, ".2f"),
            _fmt(m.waits_per_req, ".3f"),
            _fmt(m.redis_cpu_us_per_req, ",.0f"),
            _fmt(m.cpu_ratio_to_passthrough, ".2f"),
            _fmt(m.p99_ratio_to_passthrough, ".2f"),
            _fmt(m.cpu_busy_percent.get("cpu0"), ".0f"),
            _fmt(m.cpu_busy_percent.get("cpu1"), ".0f")))
    widths = [max(len(h), *(len(row[i]) for row in lines)) if lines else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    print(fmt(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in lines:
        print(fmt(row), file=out)
    rounds = f"median of {params.repeat} rounds; " if params.repeat > 1 else ""
    workers = (f" gatekeeper N={params.gk_workers} has both CPUs, shared with the load "
               "side." if params.gk_workers and ROW_GK_WORKERS in params.rows else "")
    print(f"\n{params.connections} connections, {params.threads} wrk thread(s); "
          f"{params.duration} s timed after {params.warmup} s warm-up per row and mode; "
          f"{rounds}"
          f"rate mode: paced closed loop at {params.rate} req/s offered. 'x pt' = ratio "
          "to the passthrough row (same mode). CPU us/req: the process under test "
          "(and its workers), utime+stime over the timed window; "
          + (f"process under test on CPU 0, wrk/upstream/redis on CPU 1.{workers}"
             if pinned else "NOT pinned (fewer than 2 CPUs)."), file=out)


def prepare_runner(name: str) -> tuple[str, bool] | None:
    """wrk's path and whether the run is pinned, with this runner moved to the load CPU
    (what it starts without taskset, redis-server, runs there too; the process under
    test is started with `taskset -c 0`); None, said on stderr, when wrk or its script
    is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print(f"{name}: {WRK_HELP}", file=sys.stderr)
        return None
    if not WRK_SCRIPT.is_file():
        print(f"{name}: missing {WRK_SCRIPT}", file=sys.stderr)
        return None
    pinned = pinning_available()
    if pinned:
        os.sched_setaffinity(0, {LOAD_CPU})
    else:
        log(f"{name}: fewer than 2 usable CPUs (or no taskset): running unpinned; figures "
            "mix load generation with the process under test")
    return wrk, pinned


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
