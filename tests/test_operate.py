"""Process behaviour operators rely on, tried as an operator would on real processes:
a worker that dies is restarted (the admin listener serves on), workers that cannot
start make the parent exit non-zero, SIGHUP reloads every worker, SIGTERM drains a send
in flight, and several workers' log records never share a line."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.test_cli import (
    free_port,
    gatekeeper_process,
    redis_pids,
    wait_healthy,
    write_config,
)
from tests.test_cli import http as admin_call
from tests.test_cli_workers import children, worker_children, workers_process

pytestmark = pytest.mark.slow

MESSAGES = "/twilio/2010-04-01/Accounts/AC1/Messages.json"


class SlowGateway(http.server.ThreadingHTTPServer):
    """A fake gateway on 127.0.0.1 answering 201 after `delay` seconds."""

    daemon_threads = True

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.received = threading.Event()
        super().__init__(("127.0.0.1", 0), _SlowHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    server: SlowGateway

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.set()
        time.sleep(self.server.delay)
        body = b'{"sid": "SM1", "status": "queued"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return None


@contextlib.contextmanager
def gateway(delay: float = 0.0) -> Iterator[SlowGateway]:
    server = SlowGateway(delay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def send(proxy_port: int, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{proxy_port}{MESSAGES}", data=b"To=%2B12125550123&Body=hi",
        method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def events(log: Path) -> list[dict[str, Any]]:
    """The JSON log records (lines that are not JSON, such as a traceback, left out)."""
    out = []
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


def wait_for(check: Any, within: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {within}s: {log.read_text()[-3000:]}")
        time.sleep(0.05)


def metric(admin_port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics",
                                timeout=5) as response:
        exposition = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def worker_pids(parent: int) -> list[int]:
    return worker_children(parent)


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port` (from
    /proc/net/tcp's LISTEN rows and the process's socket inodes)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            inodes.add(fields[9])
    held = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    held.add(target[8:-1])
    return bool(inodes & held)


def config_for(tmp_path: Path, upstream: str, **sections: Any) -> tuple[Path, int, int]:
    proxy_port, admin_port = free_port(), free_port()
    config = write_config(
        tmp_path / "gatekeeper.yaml", proxy={"host": "127.0.0.1", "port": proxy_port,
                                             **sections.pop("proxy", {})},
        admin={"host": "127.0.0.1", "port": admin_port},
        redis={"url": "embedded", "data_dir": str(tmp_path / "data")},
        upstreams=[{"name": "twilio", "url": upstream, "preset": "twilio"}], **sections)
    return config, proxy_port, admin_port


def test_a_killed_worker_is_restarted_while_the_admin_listener_serves_on(
        tmp_path: Path) -> None:
    """kill -9 of one of two workers: the parent logs its exit cause, counts it and
    starts another; /healthz answers while only the other worker lives (every worker
    serves the admin port)."""
    with gateway() as gate:
        config, proxy_port, admin_port = config_for(tmp_path, gate.url)
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            admin = f"http://127.0.0.1:{admin_port}"
            wait_healthy(parent, admin, log)
            wait_for(lambda: len(worker_pids(parent.pid)) == 2, 10, "two workers", log)
            # Both serve the admin port before one dies (on a loaded machine the second
            # can still be starting when the first answers /healthz).
            wait_for(lambda: all(listens(p, admin_port) for p in worker_pids(parent.pid)),
                     20, "both workers listening on the admin port", log)
            victim = worker_pids(parent.pid)[0]
            # The parent is stopped while the victim dies, so no new worker can take
            # over: every answer below comes from the surviving worker, however loaded
            # the machine (a timing window would prove nothing on a slow one).
            os.kill(parent.pid, signal.SIGSTOP)
            try:
                os.kill(victim, signal.SIGKILL)
                wait_for(lambda: Path(f"/proc/{victim}/stat").read_text().split()[2] == "Z",
                         10, "the victim dead", log)
                answers = []
                for _ in range(20):
                    try:
                        answers.append(admin_call("GET", f"{admin}/healthz", timeout=5)[0])
                    except OSError as fault:
                        answers.append(repr(fault))
            finally:
                os.kill(parent.pid, signal.SIGCONT)
            # A connection queued on the dead worker's socket when it died may be reset;
            # the listener itself answers on.
            assert answers.count(200) >= 19, answers
            wait_for(lambda: len(worker_pids(parent.pid)) == 2
                     and victim not in worker_pids(parent.pid), 10, "a new worker", log)
            assert send(proxy_port)[0] == 201
            wait_for(lambda: metric(admin_port, "gatekeeper_workers_alive") == 2, 5,
                     "two workers alive in /metrics", log)
            assert metric(admin_port, "gatekeeper_worker_restarts_total",
                          cause="signal") == 1
            assert metric(admin_port, "gatekeeper_workers_expected") == 2
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=30) == 0, log.read_text()
    exited = [e for e in events(log) if e.get("event") == "worker_exited"]
    assert [(e["pid"], e["signal"], e["exit_code"]) for e in exited] == \
        [(victim, "SIGKILL", None)]
    assert [e["event"] for e in events(log)].count("worker_restarted") == 1


def test_workers_that_cannot_start_make_the_parent_exit_non_zero(tmp_path: Path) -> None:
    """The proxy port held by another program (no SO_REUSEPORT): every worker dies at
    start; after five early deaths the parent gives up with exit 1 and says why."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        config, _, _ = config_for(tmp_path, "http://127.0.0.1:9")
        raw = yaml.safe_load(config.read_text())
        raw["proxy"]["port"] = port
        config.write_text(yaml.safe_dump(raw))
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            assert parent.wait(timeout=60) == 1, log.read_text()[-3000:]
    failing = [e for e in events(log) if e.get("event") == "workers_failing"]
    assert len(failing) == 1
    assert failing[0]["early_deaths"] == 5


def test_sighup_and_the_reload_endpoint_reload_every_worker(tmp_path: Path) -> None:
    """SIGHUP to the parent: both workers reload the file (a new mount serves); POST
    /admin/v1/reload answers 202 and both reload again."""
    with gateway() as gate:
        config, proxy_port, admin_port = config_for(tmp_path, gate.url,
                                                    log={"level": "info"})
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            wait_healthy(parent, f"http://127.0.0.1:{admin_port}", log)
            raw = yaml.safe_load(config.read_text())
            raw["upstreams"].append({"name": "sms2", "url": gate.url, "preset": "twilio",
                                     "mount": "/sms2"})
            config.write_text(yaml.safe_dump(raw))

            def reloaded() -> list[int]:
                return sorted(e["worker"] for e in events(log)
                              if e.get("event") == "config_reloaded")

            parent.send_signal(signal.SIGHUP)
            wait_for(lambda: reloaded() == [0, 1], 10, "both workers reloaded", log)
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy_port}/sms2/2010-04-01/Accounts/AC1/Messages.json",
                data=b"To=%2B12125550123&Body=hi", method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 201
            status, body = admin_call("POST", f"http://127.0.0.1:{admin_port}/admin/v1/reload")
            assert (status, body) == (202, {"status": "reloading", "workers": 2})
            wait_for(lambda: reloaded() == [0, 0, 1, 1], 10, "both reloaded again", log)
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=30) == 0, log.read_text()


def test_a_sighup_while_the_workers_start_reloads_each_once_and_ends_nothing(
        tmp_path: Path) -> None:
    """SIGHUP to the parent as soon as it has a child (the embedded store starting; the
    file changed since it was read), and again as soon as a worker exists: the parent
    lives on, each worker reloads (at most once per SIGHUP), the new mount serves, and
    SIGTERM exits 0."""
    with gateway() as gate:
        config, proxy_port, admin_port = config_for(tmp_path, gate.url,
                                                    log={"level": "info"})
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            wait_for(lambda: children(parent.pid), 30, "a child started", log)
            raw = yaml.safe_load(config.read_text())
            raw["upstreams"].append({"name": "sms2", "url": gate.url, "preset": "twilio",
                                     "mount": "/sms2"})
            config.write_text(yaml.safe_dump(raw))
            parent.send_signal(signal.SIGHUP)
            wait_for(lambda: worker_pids(parent.pid), 30, "a worker started", log)
            parent.send_signal(signal.SIGHUP)
            wait_healthy(parent, f"http://127.0.0.1:{admin_port}", log)

            def reloads() -> tuple[int, int]:
                workers = [e["worker"] for e in events(log)
                           if e.get("event") == "config_reloaded"]
                return workers.count(0), workers.count(1)

            # Each SIGHUP is passed on to the workers that run; two that come while one
            # is starting may be taken as one: one or two reloads each, never more.
            wait_for(lambda: min(reloads()) >= 1, 15, "both workers reloaded", log)
            time.sleep(0.5)  # a surplus reload would come within this
            assert set(reloads()) <= {1, 2}, log.read_text()
            request = urllib.request.Request(
                f"http://127.0.0.1:{proxy_port}/sms2/2010-04-01/Accounts/AC1/Messages.json",
                data=b"To=%2B12125550123&Body=hi", method="POST")
            for _ in range(4):  # either worker may answer
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 201
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=30) == 0, log.read_text()


def test_a_sigterm_while_the_parent_starts_stops_it_cleanly(tmp_path: Path) -> None:
    """SIGTERM to the parent as soon as it has a child (the embedded store starting):
    it stops what it started, the store included, and exits 0 (it was ended by the
    signal, its handlers not yet installed)."""
    with gateway() as gate:
        config, _, _ = config_for(tmp_path, gate.url, log={"level": "info"})
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            wait_for(lambda: children(parent.pid), 30, "a child started", log)
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=60) == 0, log.read_text()
    assert redis_pids(tmp_path / "data") == [], log.read_text()


def test_sigterm_lets_a_send_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    """A send waiting 2 s on its gateway when SIGTERM comes (drain 0.5 s): the client
    gets the gateway's 201, the process exits 0, and the drain is logged."""
    with gateway(delay=2.0) as gate:
        config, proxy_port, admin_port = config_for(
            tmp_path, gate.url, proxy={"drain_timeout": 0.5}, log={"level": "info"})
        log = tmp_path / "gk.log"
        with gatekeeper_process(config, log) as process:
            wait_healthy(process, f"http://127.0.0.1:{admin_port}", log)
            result: list[tuple[int, bytes]] = []
            client = threading.Thread(target=lambda: result.append(send(proxy_port)))
            client.start()
            assert gate.received.wait(5)
            stopped = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()
            took = time.monotonic() - stopped
            client.join(timeout=10)
    assert result == [(201, b'{"sid": "SM1", "status": "queued"}')]
    assert took >= 1.5
    [drained] = [e for e in events(log) if e.get("event") == "gatekeeper_stopping"]
    assert (drained["in_flight_at_start"], drained["refused"], drained["left"]) == (1, 0, 0)


def test_the_log_records_of_two_workers_never_share_a_line(tmp_path: Path) -> None:
    """Two workers writing an access record per request into one file: every line is
    one whole JSON record."""
    with gateway() as gate:
        config, proxy_port, admin_port = config_for(
            tmp_path, gate.url, log={"level": "info", "access": True})
        log = tmp_path / "gk.log"
        with workers_process(config, log, 2) as parent:
            wait_healthy(parent, f"http://127.0.0.1:{admin_port}", log)
            threads = [threading.Thread(target=lambda: [send(proxy_port) for _ in range(25)])
                       for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            parent.send_signal(signal.SIGTERM)
            assert parent.wait(timeout=30) == 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # a mixed line fails here
    served = [r for r in records if r.get("event") == "request"]
    assert len(served) == 200
    assert {r["worker"] for r in served} == {0, 1}
