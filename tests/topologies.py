"""Local test rigs: a real Redis Cluster (3 masters, 3 replicas) and a real Sentinel group
(a master, a replica, 3 sentinels), run from the suite's redis-server on 127.0.0.1;
either over TLS only (`Tls`: a private CA, servers and clients with certificates), run
from a redis-server built with TLS (Debian's; the suite's is built without).

Every wait is bounded and raises `RigError` on timeout. Every process is SIGKILLed at
`stop()`, and gets SIGKILL from the kernel if the thread that started it dies (Linux).
Importable without pytest.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import redis
import trustme
from redis.crc import key_slot

from gatekeeper.embedded import _port_free, find_binary, free_port

_PR_SET_PDEATHSIG = 1
CLUSTER_SLOTS = 16384
# Redis 6.2 has no `cluster-port`: the cluster bus listens on port + 10000.
_BUS_OFFSET = 10000
_MAX_CLUSTER_PORT = 65535 - _BUS_OFFSET
_START_TIMEOUT = 10.0
_LAUNCH_ATTEMPTS = 5
_PORT_DRAWS = 200


class RigError(RuntimeError):
    """A rig could not be started, or a wait on it timed out."""


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it dies.

    Not gatekeeper.embedded._die_with_parent, which asks for SIGTERM (a graceful
    shutdown) where a test rig wants the process gone at once.
    """

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        # Its own process group: a Ctrl-C reaches pytest alone, which then stops the rig.
        os.setpgid(0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def redis_binaries() -> tuple[str, str]:
    """The suite's redis-server and the redis-cli beside it."""
    server = find_binary(None)
    cli = Path(server).with_name("redis-cli")
    if not (cli.is_file() and os.access(cli, os.X_OK)):
        raise RigError(f"no redis-cli beside {server} (expected {cli}); the rigs need it")
    return server, str(cli)


@dataclass(frozen=True)
class Tls:
    """A private CA's files for TLS-only rigs: the servers' certificate (for 127.0.0.1)
    and a client's, which the servers require (`tls-auth-clients yes`)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path) -> Tls:
        """A new CA and its two certificates, written under `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        files = cls(*(directory / name for name in (
            "ca.pem", "server.crt", "server.key", "client.crt", "client.key")))
        ca.cert_pem.write_to_path(str(files.ca))
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(str(files.server_cert))
        server.private_key_pem.write_to_path(str(files.server_key))
        client = ca.issue_cert("gatekeeper@example.test")
        client.cert_chain_pems[0].write_to_path(str(files.client_cert))
        client.private_key_pem.write_to_path(str(files.client_key))
        return files

    def server_lines(self) -> list[str]:
        """A server's (or sentinel's) TLS settings: replication and the cluster bus
        over TLS too."""
        return [f'tls-cert-file "{self.server_cert}"', f'tls-key-file "{self.server_key}"',
                f'tls-ca-cert-file "{self.ca}"', "tls-auth-clients yes",
                "tls-replication yes", "tls-cluster yes"]

    def client_kwargs(self) -> dict[str, object]:
        """redis-py's TLS arguments."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca), "ssl_certfile":
                str(self.client_cert), "ssl_keyfile": str(self.client_key)}

    def cli_args(self) -> list[str]:
        """redis-cli's TLS arguments."""
        return ["--tls", "--cacert", str(self.ca), "--cert", str(self.client_cert),
                "--key", str(self.client_key)]

    def url_query(self) -> str:
        """A rediss+... URL's query naming the CA and the client certificate."""
        return (f"?ssl_ca_certs={self.ca}&ssl_certfile={self.client_cert}"
                f"&ssl_keyfile={self.client_key}")


def tls_redis_binaries() -> tuple[str, str]:
    """A redis-server built with TLS (linked with OpenSSL) and its redis-cli; fails
    saying how to get one (`make redis-tls` installs Debian's)."""
    candidates = [find_binary(None), shutil.which("redis-server"), "/usr/bin/redis-server"]
    for server in dict.fromkeys(c for c in candidates if c):
        cli = Path(server).with_name("redis-cli")
        with contextlib.suppress(OSError):
            if b"SSL_CTX_new" in Path(server).read_bytes() and os.access(cli, os.X_OK):
                return server, str(cli)
    raise RigError("the TLS rigs need a redis-server built with TLS and its redis-cli "
                   "(`make redis-tls`, or as root: apt-get install redis-server); none of "
                   f"{candidates} is one")


def query(port: int, *args: str | int, timeout: float = 1.0, tls: Tls | None = None
          ) -> object:
    """One command to 127.0.0.1:port (over TLS with `tls`) and its decoded reply.
    redis-py parses replies by the first word alone, so `"CLUSTER", "NODES"` comes back
    raw while PING and INFO keep their parsing (True, a dict)."""
    extra = tls.client_kwargs() if tls is not None else {}
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout,
                         socket_connect_timeout=timeout, decode_responses=True,
                         **extra)  # type: ignore[arg-type]
    try:
        # redis-py leaves execute_command unannotated.
        reply: object = client.execute_command(*args)  # type: ignore[no-untyped-call]
        return reply
    finally:
        client.close()


def _info_fields(text: object) -> dict[str, str]:
    """`key:value` lines (INFO, CLUSTER INFO) as a dict."""
    if not isinstance(text, str):
        raise RigError(f"expected an INFO-like text reply, got {text!r}")
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def info(port: int, section: str, tls: Tls | None = None) -> dict[str, str]:
    """INFO <section> of a server, as a dict of strings."""
    raw = query(port, "INFO", section, tls=tls)  # parsed into a dict by redis-py
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return _info_fields(raw)


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.05) -> float:
    """Poll `check` until it is true; returns the seconds waited. Exceptions from `check`
    count as "not yet" (the last one is reported on timeout)."""
    start = time.monotonic()
    deadline = start + timeout
    last: BaseException | None = None
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (redis.RedisError, OSError, RigError, ValueError) as exc:
            last = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last!r})" if last is not None else ""
            raise RigError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


def _answers_ping(port: int, tls: Tls | None = None) -> bool:
    try:
        return query(port, "PING", timeout=0.5, tls=tls) in (True, "PONG")
    except (redis.RedisError, OSError):
        return False


@dataclass
class _Server:
    """One redis-server process: its directory, config file and (re)launch."""

    binary: str
    directory: Path
    port: int
    conf_name: str
    extra_args: tuple[str, ...] = ()
    tls: Tls | None = None
    """Listen on TLS only (`port 0`, `tls-port`), and be reached over TLS."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        """The config file (rewritten by sentinels and by cluster nodes' CONFIG REWRITE)."""
        return self.directory / self.conf_name

    def write_conf(self, lines: Iterable[str]) -> None:
        """Write the config file: common settings, then `lines`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ports = [f"port {self.port}"] if self.tls is None else \
            ["port 0", f"tls-port {self.port}", *self.tls.server_lines()]
        common = [
            *ports,
            "bind 127.0.0.1",
            "protected-mode no",
            "daemonize no",
            f'dir "{self.directory.resolve()}"',
            'logfile "server.log"',
        ]
        self.conf.write_text("\n".join([*common, *lines]) + "\n")

    def launch(self) -> None:
        """Start the process (no waiting); its early output goes to stdout.log."""
        if self.running:
            raise RigError(f"127.0.0.1:{self.port} is already running")
        with (self.directory / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, str(self.conf.resolve()), *self.extra_args],
                cwd=self.directory, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509
            )

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def wait_up(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until it answers PING; RigError (with its log) if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not _answers_ping(self.port, self.tls):
            if not self.running or time.monotonic() > deadline:
                status = "exited" if not self.running else f"did not answer in {timeout:g} s"
                raise RigError(f"redis-server on 127.0.0.1:{self.port} {status}: "
                               f"{self.log_tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the process (its whole group) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise RigError(f"redis-server pid {process.pid} survived SIGKILL") from exc

    def log_tail(self, lines: int = 8) -> str:
        """The last lines of its stdout and log file."""
        text = []
        for name in ("stdout.log", "server.log"):
            with contextlib.suppress(OSError):
                text += (self.directory / name).read_text(errors="replace").splitlines()
        return " | ".join(text[-lines:]) or "no output"


def _launch_fresh(make: Callable[[int], _Server], port_ok: Callable[[int], bool],
                  taken: set[int]) -> _Server:
    """Launch a server on a new free port that suits `port_ok` (retrying on another one
    if another process took it first)."""
    last = ""
    launches = 0
    for _ in range(_PORT_DRAWS):
        port = free_port()
        if port in taken or not port_ok(port):
            continue
        server = make(port)
        server.launch()
        try:
            server.wait_up()
        except RigError as exc:
            server.kill()
            last = str(exc)
            launches += 1
            if "Address already in use" in last and launches < _LAUNCH_ATTEMPTS:
                continue
            raise
        taken.add(port)
        return server
    raise RigError(f"no suitable free port found for a redis-server: {last or 'none drawn'}")


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: frozenset[int]

    @property
    def is_master(self) -> bool:
        """A master not marked as failed (a PFAIL, `fail?`, one still counts)."""
        return "master" in self.flags and "fail" not in self.flags

    @property
    def is_replica(self) -> bool:
        """A replica not marked as failed."""
        return "slave" in self.flags and "fail" not in self.flags


def _slot_set(fields: list[str]) -> frozenset[int]:
    slots: set[int] = set()
    for item in fields:
        if item.startswith("["):  # a slot being migrated or imported
            continue
        low, _, high = item.partition("-")
        slots.update(range(int(low), int(high or low) + 1))
    return frozenset(slots)


def parse_cluster_nodes(text: object) -> list[ClusterNode]:
    """CLUSTER NODES output as ClusterNode records."""
    if not isinstance(text, str):
        raise RigError(f"unexpected CLUSTER NODES reply {text!r}")
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1]) if ":" in address else 0
        master = None if parts[3] == "-" else parts[3]
        nodes.append(ClusterNode(parts[0], port, frozenset(parts[2].split(",")), master,
                                 _slot_set(parts[8:])))
    return nodes


def _cluster_port_ok(taken: set[int], port: int) -> bool:
    """A port whose bus port (port + 10000) exists, is free, and clashes with no node's."""
    bus = port + _BUS_OFFSET
    return (port <= _MAX_CLUSTER_PORT and bus not in taken
            and port - _BUS_OFFSET not in taken and _port_free(bus))


class ClusterRig:
    """Six cluster-enabled redis-servers joined as 3 masters with a replica each."""

    def __init__(self, workdir: Path, tls: Tls | None = None) -> None:
        self.workdir = workdir
        self.tls = tls
        self.binary, self.cli = redis_binaries() if tls is None else tls_redis_binaries()
        self._nodes: dict[int, _Server] = {}
        self.dead: set[int] = set()
        self._killed_at: dict[int, float] = {}
        self._slots_at_kill: dict[int, frozenset[int]] = {}

    @property
    def ports(self) -> list[int]:
        """The six nodes' ports, in start order."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """A redis+cluster:// URL naming the first three nodes as seeds."""
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])
        if self.tls is not None:
            return f"rediss+cluster://{seeds}{self.tls.url_query()}"
        return f"redis+cluster://{seeds}"

    def _make_node(self, port: int) -> _Server:
        server = _Server(self.binary, self.workdir / f"node-{port}", port, "redis.conf",
                         tls=self.tls)
        server.write_conf([
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 1000",
            "appendonly no",
            'save ""',
        ])
        return server

    def start(self) -> None:
        """Start six nodes, create the cluster, wait until it is fully formed (30 s)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        try:
            for _ in range(6):
                server = _launch_fresh(self._make_node, partial(_cluster_port_ok, taken), taken)
                self._nodes[server.port] = server
            self._create()
            wait_for(self._formed, 30, "the cluster to form (cluster_state:ok on every node, "
                     f"{CLUSTER_SLOTS} slots, 3 masters with a synced replica each)",
                     interval=0.1)
        except BaseException:
            self.stop()
            raise

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        tls = self.tls.cli_args() if self.tls is not None else []
        command = [self.cli, *tls, "--cluster", "create", *addresses,
                   "--cluster-replicas", "1", "--cluster-yes"]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=60, check=False,
                stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise RigError(f"redis-cli --cluster create took over 60 s: {exc.output!r}") from exc
        if done.returncode != 0:
            raise RigError(f"redis-cli --cluster create failed ({done.returncode}): "
                           f"{done.stdout[-2000:]} {done.stderr[-2000:]}")

    def _formed(self) -> bool:
        for port in self.live_ports():
            fields = _info_fields(query(port, "CLUSTER", "INFO", tls=self.tls))
            if (fields.get("cluster_state") != "ok"
                    or fields.get("cluster_slots_ok") != str(CLUSTER_SLOTS)):
                return False
        nodes = self.nodes()
        masters = [n for n in nodes if n.is_master and n.slots]
        replicas = [n for n in nodes if n.is_replica]
        if len(masters) != 3 or len(replicas) != 3:
            return False
        if {r.master_id for r in replicas} != {m.node_id for m in masters}:
            return False
        return all(info(r.port, "replication", self.tls).get("master_link_status") == "up"
                   for r in replicas)

    def live_ports(self) -> list[int]:
        """Ports of the nodes whose process runs."""
        return [port for port, server in self._nodes.items() if server.running]

    def nodes(self, port: int | None = None) -> list[ClusterNode]:
        """CLUSTER NODES as seen by `port` (default: the first live node)."""
        if port is None:
            live = self.live_ports()
            if not live:
                raise RigError("no cluster node is running")
            port = live[0]
        return parse_cluster_nodes(query(port, "CLUSTER", "NODES", tls=self.tls))

    def masters(self) -> list[int]:
        """Ports of the current masters (not marked failed), per a live node."""
        return sorted(n.port for n in self.nodes() if n.is_master)

    def master_for_slot(self, slot: int) -> int:
        """Port of the master serving `slot`, per a live node."""
        for node in self.nodes():
            if "master" in node.flags and slot in node.slots:
                return node.port
        raise RigError(f"no master serves slot {slot}")

    def spread_scopes(self, count: int = 3) -> list[str]:
        """Scopes (`tenant:t<i>`, the hash tag of their keys) whose slots are served by
        `count` different masters."""
        chosen: dict[int, str] = {}
        for i in range(1000):
            scope = f"tenant:t{i}"
            chosen.setdefault(self.master_for_slot(key_slot(scope.encode())), scope)
            if len(chosen) == count:
                return list(chosen.values())
        raise RigError("no scopes spread over the masters")

    def replica_of(self, master_port: int) -> int:
        """Port of a (not failed) replica of the master on `master_port`."""
        nodes = self.nodes()
        ids = [n.node_id for n in nodes if n.port == master_port]
        if not ids:
            raise RigError(f"no cluster node on port {master_port}")
        replicas = sorted(n.port for n in nodes if n.is_replica and n.master_id == ids[0])
        if not replicas:
            raise RigError(f"the node on port {master_port} has no replica")
        return replicas[0]

    def process(self, port: int) -> subprocess.Popen[bytes]:
        """The process of the node on `port` (to stop and continue it)."""
        process = self._nodes[port].process
        if process is None:
            raise RigError(f"no running node on port {port}")
        return process

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (remembering the slots it served)."""
        server = self._nodes[port]
        with contextlib.suppress(RigError, redis.RedisError, OSError):
            others = [p for p in self.live_ports() if p != port]
            if others:
                served = [n.slots for n in self.nodes(others[0]) if n.port == port]
                self._slots_at_kill[port] = served[0] if served else frozenset()
        server.kill()
        self._killed_at[port] = time.monotonic()
        self.dead.add(port)

    def restart(self, port: int, timeout: float = 30) -> None:
        """Start a killed node again on its own dir and nodes.conf, so that it rejoins
        (a failed-over master comes back as a replica). Waits until every live node
        sees it as up again."""
        server = self._nodes[port]
        server.kill()
        server.launch()
        server.wait_up(min(timeout, _START_TIMEOUT))
        self.dead.discard(port)

        def rejoined() -> bool:
            for other in self.live_ports():
                seen = [n for n in self.nodes(other) if n.port == port]
                if not seen or seen[0].flags & {"fail", "fail?", "handshake", "noaddr"}:
                    return False
            return True

        wait_for(rejoined, timeout, f"127.0.0.1:{port} to rejoin the cluster")

    def wait_promoted(self, dead_master_port: int, timeout: float = 30) -> float:
        """Wait until a live node reports cluster_state:ok with every slot the dead master
        served on another master; returns the seconds from `kill()` to that report (from
        this call if the node was not killed through the rig). Before returning it also
        waits, within the same timeout, until every live node agrees, so that `masters()`
        and friends see the new layout."""
        slots = self._slots_at_kill.get(dead_master_port)
        if not slots:
            slots = frozenset().union(
                *(n.slots for n in self.nodes() if n.port == dead_master_port))
        if not slots:
            raise RigError(f"the node on port {dead_master_port} served no slots")
        called = time.monotonic()
        since = self._killed_at.get(dead_master_port, called)

        def taken_over(port: int) -> bool:
            with contextlib.suppress(redis.RedisError, OSError):
                state = _info_fields(query(port, "CLUSTER", "INFO", tls=self.tls))
                if state.get("cluster_state") != "ok":
                    return False
                masters = [n for n in self.nodes(port)
                           if n.is_master and n.port != dead_master_port]
                return slots <= frozenset().union(*(n.slots for n in masters))
            return False

        what = f"a replica to take over the slots of 127.0.0.1:{dead_master_port}"
        wait_for(lambda: any(taken_over(p) for p in self.live_ports()), timeout, what)
        elapsed = time.monotonic() - since
        wait_for(lambda: all(taken_over(p) for p in self.live_ports()),
                 max(0.0, called + timeout - time.monotonic()),
                 f"every live node to agree on {what}")
        return elapsed

    def stop(self) -> None:
        """SIGKILL every node."""
        errors = []
        for server in self._nodes.values():
            try:
                server.kill()
            except RigError as exc:
                errors.append(str(exc))
        if errors:
            raise RigError("; ".join(errors))


class SentinelRig:
    """A master, one replica and three sentinels monitoring them as `service`."""

    def __init__(self, workdir: Path, service: str = "mymaster", tls: Tls | None = None
                 ) -> None:
        self.workdir = workdir
        self.service = service
        self.tls = tls
        self.binary, _ = redis_binaries() if tls is None else tls_redis_binaries()
        self._servers: dict[int, _Server] = {}
        self._sentinels: dict[int, _Server] = {}
        self.dead: set[int] = set()
        self._killed_at: dict[int, float] = {}

    @property
    def data_ports(self) -> list[int]:
        """Ports of the two data servers (master and replica at start)."""
        return list(self._servers)

    @property
    def sentinel_ports(self) -> list[int]:
        """Ports of the three sentinels."""
        return list(self._sentinels)

    @property
    def url(self) -> str:
        """A redis+sentinel:// URL: the three sentinels, the service, db 0."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is not None:
            return f"rediss+sentinel://{hosts}/{self.service}/0{self.tls.url_query()}"
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def _make_data(self, port: int, master: int | None) -> _Server:
        server = _Server(self.binary, self.workdir / f"redis-{port}", port, "redis.conf",
                         tls=self.tls)
        lines = ["appendonly no", 'save ""']
        if master is not None:
            lines.append(f"replicaof 127.0.0.1 {master}")
        server.write_conf(lines)
        return server

    def _make_sentinel(self, port: int, master: int) -> _Server:
        server = _Server(self.binary, self.workdir / f"sentinel-{port}", port,
                         "sentinel.conf", ("--sentinel",), tls=self.tls)
        name = self.service
        server.write_conf([
            f"sentinel monitor {name} 127.0.0.1 {master} 2",
            f"sentinel down-after-milliseconds {name} 1000",
            f"sentinel failover-timeout {name} 5000",
            f"sentinel parallel-syncs {name} 1",
        ])
        return server

    def start(self) -> None:
        """Start master, replica (synced) and sentinels; wait until every sentinel knows
        the master, the replica and the 2 other sentinels (30 s)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        try:
            master = _launch_fresh(lambda p: self._make_data(p, None), _port_free, taken)
            self._servers[master.port] = master
            replica = _launch_fresh(lambda p: self._make_data(p, master.port),
                                    _port_free, taken)
            self._servers[replica.port] = replica
            wait_for(lambda: info(replica.port, "replication", self.tls).get(
                "master_link_status") == "up", 30,
                f"replica 127.0.0.1:{replica.port} to sync with the master")
            for _ in range(3):
                sentinel = _launch_fresh(lambda p: self._make_sentinel(p, master.port),
                                         _port_free, taken)
                self._sentinels[sentinel.port] = sentinel
            wait_for(lambda: self._sentinels_ready(master.port), 30,
                     "every sentinel to know the master, its replica and 2 other sentinels",
                     interval=0.1)
        except BaseException:
            self.stop()
            raise

    def _sentinels_ready(self, master_port: int) -> bool:
        for port in self.sentinel_ports:
            if self._named_master(port) != master_port:
                return False
            sentinels = query(port, "SENTINEL", "sentinels", self.service, tls=self.tls)
            replicas = query(port, "SENTINEL", "replicas", self.service, tls=self.tls)
            if not (isinstance(sentinels, list) and len(sentinels) == 2):
                return False
            if not (isinstance(replicas, list) and len(replicas) == 1):
                return False
        return True

    def _named_master(self, sentinel_port: int) -> int:
        reply = query(sentinel_port, "SENTINEL", "get-master-addr-by-name", self.service,
                      tls=self.tls)
        if not (isinstance(reply, list) and len(reply) == 2):
            raise RigError(f"sentinel {sentinel_port} does not know {self.service}: {reply!r}")
        return int(reply[1])

    def master_port(self) -> int:
        """The master's port as a live sentinel names it."""
        last: Exception | None = None
        for port, sentinel in self._sentinels.items():
            if not sentinel.running:
                continue
            try:
                return self._named_master(port)
            except (redis.RedisError, OSError, RigError) as exc:
                last = exc
        raise RigError(f"no sentinel names a master for {self.service}: {last!r}")

    def process(self, port: int) -> subprocess.Popen[bytes]:
        """The process of the data server on `port` (to stop and continue it)."""
        process = self._servers[port].process
        if process is None:
            raise RigError(f"no running data server on port {port}")
        return process

    def kill_master(self) -> int:
        """SIGKILL the current master's process; returns its port."""
        port = self.master_port()
        self.kill(port)
        return port

    def kill(self, port: int) -> None:
        """SIGKILL the data server or sentinel on `port`."""
        server = self._servers.get(port) or self._sentinels.get(port)
        if server is None:
            raise RigError(f"no rig process on port {port}")
        server.kill()
        self._killed_at[port] = time.monotonic()
        self.dead.add(port)

    def wait_promoted(self, old_port: int, timeout: float = 30) -> float:
        """Wait until a sentinel names a master other than `old_port` and that server's
        ROLE is master; returns the seconds from the kill to then (from this call if the
        master was not killed through the rig). Before returning it also waits, within
        the same timeout, until every live sentinel names that master."""
        called = time.monotonic()
        since = self._killed_at.get(old_port, called)

        def named(port: int) -> int | None:
            """The new master `port` names, once it answers ROLE as master."""
            with contextlib.suppress(redis.RedisError, OSError, RigError):
                master = self._named_master(port)
                role = query(master, "ROLE", tls=self.tls) if master != old_port else None
                if isinstance(role, list) and role and role[0] == "master":
                    return master
            return None

        def live() -> list[int]:
            return [port for port, s in self._sentinels.items() if s.running]

        what = f"the sentinels to promote a new master in place of 127.0.0.1:{old_port}"
        wait_for(lambda: any(named(port) is not None for port in live()), timeout, what)
        elapsed = time.monotonic() - since

        def agreed() -> bool:
            answers = {named(port) for port in live()}
            return len(answers) == 1 and None not in answers

        wait_for(agreed, max(0.0, called + timeout - time.monotonic()),
                 f"every live sentinel to agree on {what}")
        return elapsed

    def restart(self, port: int, timeout: float = _START_TIMEOUT) -> None:
        """Start a killed data server or sentinel again with its own dir and config; waits
        until it answers PING (the sentinels turn an old master into a replica)."""
        server = self._servers.get(port) or self._sentinels.get(port)
        if server is None:
            raise RigError(f"no rig process on port {port}")
        server.kill()
        server.launch()
        server.wait_up(timeout)
        self.dead.discard(port)

    def stop(self) -> None:
        """SIGKILL every sentinel and data server."""
        errors = []
        for server in [*self._sentinels.values(), *self._servers.values()]:
            try:
                server.kill()
            except RigError as exc:
                errors.append(str(exc))
        if errors:
            raise RigError("; ".join(errors))
