"""The machine a run measures on: pinning (`pinning_available`, `prepare_runner`), its
load (`loadavg`) and its description in the report (`machine_info`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.params import CLK_TCK, LOAD_CPU, PROCESS_CPU, WRK_SCRIPT
from bench.procs import log

WRK_HELP = ("wrk is needed to run the benchmark and was not found on PATH.\n"
            "Install it with:  sudo apt-get install wrk   (Debian/Ubuntu; wrk 4.x)\n"
            "or build it from https://github.com/wg/wrk and put it on PATH.")


def pinning_available() -> bool:
    """True when this machine lets us give the process under test CPU 0 and the load
    side CPU 1."""
    return {PROCESS_CPU, LOAD_CPU} <= os.sched_getaffinity(0) and shutil.which("taskset")\
        is not None


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
