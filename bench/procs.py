"""The bench's child processes (`Process`, `wait_http`, `log`) and the /proc readers of
their CPU time, system calls, waits and affinity."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.params import HOST, REPO, BenchError

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1


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
