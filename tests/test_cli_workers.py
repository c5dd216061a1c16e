"""`gatekeeper run --workers N`: several processes on one port, one store, clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_KEY
from tests.test_cli import GATEKEEPER, free_port, http, redis_pids, wait_healthy, write_config


def children(pid: int) -> list[int]:
    """The direct child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def worker_children(pid: int) -> list[int]:
    """The direct children of `pid` that are workers (not the embedded redis-server);
    a child that exits between the listing and the read is left out, not an error."""
    found = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_text()
        except OSError:
            continue
        if "redis" not in cmdline:
            found.append(child)
    return found


def rejected_count(exposition: str) -> float:
    """The sum of gatekeeper_decisions_total samples with action="rejected"."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        if family.name == "gatekeeper_decisions":
            total += sum(sample.value for sample in family.samples
                         if sample.name == "gatekeeper_decisions_total"
                         and sample.labels.get("action") == "rejected")
    return total


@contextlib.contextmanager
def workers_process(config: Path, log: Path, workers: int
                    ) -> Iterator[subprocess.Popen[bytes]]:
    """`gatekeeper run --workers N`, killed (with its group) if still running at the end."""
    env = {k: v for k, v in os.environ.items() if k != "GATEKEEPER_CONFIG"}
    env["GATEKEEPER_ADMIN_KEY"] = ADMIN_KEY
    env["TMPDIR"] = str(config.parent)  # where the workers' shared metrics files go
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(GATEKEEPER), "run", "--config", str(config), "--workers", str(workers)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env,
            start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    """Both workers answer on the proxy port, share the embedded store and one /metrics
    (each worker's counts in it within a second), and SIGTERM stops them and the store
    (and removes the shared metrics files). The policy has quiet hours: the parent loads
    the geocoder once, before the fork, and no worker loads it again."""
    data_dir = tmp_path / "data"
    proxy_port, admin_port = free_port(), free_port()
    config = write_config(
        tmp_path / "w.yaml", proxy={"host": "127.0.0.1", "port": proxy_port},
        admin={"host": "127.0.0.1", "port": admin_port},
        redis={"url": "embedded", "data_dir": str(data_dir)},
        upstreams=[{"name": "twilio", "url": "http://127.0.0.1:9", "preset": "twilio"}],
        log={"level": "info", "format": "json"},
        policy={"global": {"quiet_hours": {"action": "monitor"}}})
    log = tmp_path / "w.log"
    with workers_process(config, log, 2) as parent:
        wait_healthy(parent, f"http://127.0.0.1:{admin_port}", log)
        status, _ = http("POST", f"http://127.0.0.1:{admin_port}/admin/v1/lists/block/entries",
                         {"entries": ["+33612345678"]})
        assert status == 200
        # Every worker sees the entry (one store): a blocked send is refused whichever
        # worker takes the connection; new connections spread over both.
        for _ in range(20):
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy_port}/twilio/2010-04-01/Accounts/AC1/Messages.json",
                data=b"To=%2B33612345678", method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 403
        # One /metrics counts the sends both workers refused: the worker that does not
        # serve the scrape settles its counts into its file within a second (tally).
        seen: list[float] = []
        deadline = time.monotonic() + 5
        while not seen or (seen[-1] < 20 and time.monotonic() < deadline):
            if seen:
                time.sleep(0.1)
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics",
                                        timeout=5) as response:
                seen.append(rejected_count(response.read().decode()))
        assert seen[-1] == 20, seen
        assert len(list(tmp_path.glob("gatekeeper-metrics-*"))) == 1
        workers = worker_children(parent.pid)
        assert len(workers) == 2
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0, log.read_text()
    deadline = time.monotonic() + 5  # the store's exit is reaped a moment after
    while redis_pids(data_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_pids(data_dir) == []
    assert all(not Path(f"/proc/{p}").exists() for p in workers)
    assert list(tmp_path.glob("gatekeeper-metrics-*")) == []
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()
              if line.startswith("{")]
    assert events.count("geocoder_loaded") == 1
    assert events.index("geocoder_loaded") < events.index("gatekeeper_started")
