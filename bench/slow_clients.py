"""Slow and idle clients against `gatekeeper run`: the latency of normal sends without and
with N held connections (half idle, half dribbling a head), and when the held ones close.

    .venv/bin/python -m bench.slow_clients                  # 1000 clients, 1 byte/s, 10 s
    .venv/bin/python -m bench.slow_clients --header 3 --clients 2000

Loopback only: Gatekeeper (the console script, on uvloop when installed, its embedded
store in a temporary directory) forwards to the bench's fake gateway. Bounded: the attack
ends `--header` + 5 s after it starts; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.process
import os
import resource
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from bench.run import Process, gatekeeper_command, log, wait_http
from gatekeeper.embedded import free_port

HOST = "127.0.0.1"
SEND_PATH = "/twilio/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json"
FORM = b"To=%2B12025550123&From=%2B15005550006&Body=hello"
SLOW_HEAD = (f"POST {SEND_PATH} HTTP/1.1\r\nHost: gk\r\nX-Slow: ".encode() + b"a" * 1000)


class Flag(Protocol):
    """A threading or multiprocessing Event."""

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class Attack:
    """What the held connections saw: per connection, seconds from connect until the
    server closed it (None: open when the attack gave up) and the bytes received; idle
    connections first, then slow ones. `connected` is set once all are open."""

    connected: Flag = field(default_factory=threading.Event)
    closed_after: list[float | None] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)


def attack(port: int, idle: int, slow: int, dribble: float, give_up: float,
           state: Attack) -> None:
    """Open `idle` + `slow` connections; every `dribble` seconds send one more head byte
    on each slow one; note when the server closes each; stop after `give_up` seconds."""
    count = idle + slow
    socks: list[socket.socket] = []
    opened: list[float] = []
    selector = selectors.DefaultSelector()
    state.closed_after = [None] * count
    state.received = [b""] * count
    left = count

    def gone(i: int) -> None:
        nonlocal left
        if state.closed_after[i] is None:
            state.closed_after[i] = time.monotonic() - opened[i]
            selector.unregister(socks[i])
            left -= 1

    try:
        for i in range(count):
            sock = socket.create_connection((HOST, port))
            sock.setblocking(False)
            socks.append(sock)
            opened.append(time.monotonic())
            selector.register(sock, selectors.EVENT_READ, i)
        state.connected.set()
        sent = 0
        deadline = time.monotonic() + give_up
        next_byte = time.monotonic()
        while left and time.monotonic() < deadline:
            if time.monotonic() >= next_byte:
                for i in range(idle, count):
                    if state.closed_after[i] is None:
                        try:
                            socks[i].send(SLOW_HEAD[sent:sent + 1])
                        except OSError:
                            gone(i)
                sent += 1
                next_byte += dribble
            wait = max(0.0, min(next_byte, deadline) - time.monotonic())
            for key, _ in selector.select(wait):
                i = key.data
                try:
                    data = socks[i].recv(4096)
                except OSError:
                    data = b""
                state.received[i] += data
                if not data:
                    gone(i)
    finally:
        state.connected.set()
        for sock in socks:
            sock.close()
        selector.close()


def _attack_in_child(results: Connection, connected: Flag, port: int, idle: int, slow: int,
                     dribble: float, give_up: float) -> None:
    """`attack` in a process of its own, so that the sends timed here do not share an
    interpreter lock with it; sends back when each connection closed and the reply heads."""
    state = Attack(connected)
    try:
        attack(port, idle, slow, dribble, give_up, state)
    finally:
        results.send((state.closed_after, [r[:12] for r in state.received]))


@dataclass
class AttackProcess:
    """`attack` running in a forked child process (see `start_attack`)."""

    child: multiprocessing.process.BaseProcess
    connected: Flag
    results: Connection

    def done(self) -> bool:
        """True once the child has sent its results (or died)."""
        return not self.child.is_alive() or self.results.poll()

    def finish(self, timeout: float) -> tuple[list[float | None], list[bytes]]:
        """Per connection: seconds until the server closed it, and its first 12 bytes."""
        if not self.results.poll(timeout):
            self.child.kill()
            raise RuntimeError("the attacking process sent no results")
        closed, received = self.results.recv()
        self.child.join(timeout)
        return closed, received


def start_attack(port: int, idle: int, slow: int, dribble: float,
                 give_up: float) -> AttackProcess:
    """Start `attack` in a forked child; its `connected` flag is set once all are open."""
    context = multiprocessing.get_context("fork")
    connected = context.Event()
    results, sender = context.Pipe(duplex=False)
    child = context.Process(target=_attack_in_child, daemon=True, args=(
        sender, connected, port, idle, slow, dribble, give_up))
    child.start()
    return AttackProcess(child, connected, results)


def timed_send(port: int) -> float:
    """One send on a new connection, answered 201 through the proxy; its seconds."""
    request = (f"POST {SEND_PATH} HTTP/1.1\r\nHost: gk\r\nConnection: close\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(FORM)}\r\n\r\n").encode() + FORM
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if not reply.startswith(b"HTTP/1.1 201"):
        raise RuntimeError(f"unexpected reply: {reply[:200]!r}")
    return time.monotonic() - started


def latency(name: str, seconds: list[float]) -> str:
    """One line: median, p99 and max in ms."""
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{name:<28} {len(ms):>5} sends  median {statistics.median(ms):7.2f} ms  "
            f"p99 {p99:7.2f} ms  max {ms[-1]:7.2f} ms")


def raise_own_fd_limit(needed: int) -> None:
    """This process holds one socket per client."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            sys.exit(f"needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def run(clients: int, header: float, dribble: float, interval: float, work: Path) -> None:
    """Start the gateway and Gatekeeper, probe quiet, probe under attack, report."""
    up_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    timeouts = {"header": header, "body": 30.0, "idle": 60.0}
    config = {
        "proxy": {"host": HOST, "port": proxy_port, "timeouts": timeouts},
        "admin": {"host": HOST, "port": admin_port, "timeouts": timeouts},
        "redis": {"data_dir": str(work / "data")},
        "log": {"level": "warning"},
        "upstreams": [{"name": "twilio", "url": f"http://{HOST}:{up_port}",
                       "preset": "twilio", "region": "US"}],
    }
    (work / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    env = {**os.environ, "GATEKEEPER_ADMIN_KEY": "bench-slow-clients-key-0123"}
    upstream = Process("upstream", [sys.executable, "-m", "bench.upstream", "--port",
                                    str(up_port)], work / "upstream.log", None)
    gatekeeper = Process("gatekeeper", [*gatekeeper_command(), "run", "--config",
                                        str(work / "config.yaml")],
                         work / "gatekeeper.log", None, env)
    try:
        upstream.start()
        gatekeeper.start()
        wait_http(upstream, up_port, "/")
        wait_http(gatekeeper, admin_port, "/readyz", want_ok=True)
        for _ in range(50):  # warm-up
            timed_send(proxy_port)
        quiet = [timed_send(proxy_port) for _ in range(200)]
        started = time.monotonic()
        attacking = start_attack(proxy_port, clients // 2, clients - clients // 2, dribble,
                                 header + 5.0)
        attacking.connected.wait(60)
        opened = time.monotonic() - started
        loaded: list[float] = []
        slowest = (0.0, 0.0)  # (seconds, when after the start of the attack)
        while not attacking.done():  # until every one is closed
            at = time.monotonic() - started
            loaded.append(timed_send(proxy_port))
            slowest = max(slowest, (loaded[-1], at))
            time.sleep(interval)
        closed_after, received = attacking.finish(10)
        after = [timed_send(proxy_port) for _ in range(50)]
    finally:
        gatekeeper.stop()
        upstream.stop()
    closed = [c for c in closed_after if c is not None]
    idle_n = clients // 2
    print(f"{clients} held connections ({idle_n} idle, {clients - idle_n} sending a head "
          f"byte every {dribble:g} s), header timeout {header:g} s; all opened in "
          f"{opened:.2f} s")
    print(latency("without held connections", quiet))
    print(latency(f"with {clients} held (to close)", loaded))
    print(f"{'':<28} slowest send started {slowest[1]:.2f} s into the attack")
    print(latency("after they were closed", after))
    print(f"closed by the server: {len(closed)} of {clients}, after "
          f"{min(closed, default=0):.2f} to {max(closed, default=0):.2f} s "
          f"(median {statistics.median(closed) if closed else 0:.2f} s); "
          f"408 replies to slow heads: "
          f"{sum(r.startswith(b'HTTP/1.1 408') for r in received[idle_n:])}")
    for line in gatekeeper.log_tail(400).splitlines():
        if "fd_limit" in line:
            print("gatekeeper:", line)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000, help="held connections")
    parser.add_argument("--header", type=float, default=10.0, help="head timeout, seconds")
    parser.add_argument("--dribble", type=float, default=1.0,
                        help="seconds between two bytes of a slow head")
    parser.add_argument("--interval", type=float, default=0.02,
                        help="seconds between two timed sends under attack")
    args = parser.parse_args()
    raise_own_fd_limit(args.clients + 256)
    log(f"bench.slow_clients: {args.clients} clients, header timeout {args.header:g} s")
    with tempfile.TemporaryDirectory(prefix="gk-slow-") as work:
        run(args.clients, args.header, args.dribble, args.interval, Path(work))


if __name__ == "__main__":
    main()
