"""The screening helper: a request whose body is over `sending.OFF_LOOP_BYTES` is
screened in a separate, lowest-priority process with its own lookup connection, so that
a large batch costs the event loop (and the small sends waiting behind it) next to
nothing.

One helper per Gatekeeper process (each worker of `run --workers N` has its own),
started with the resources and stopped with them; `main` is the child, which imports
Gatekeeper from the parent's own `sys.path`. It rebuilds the mounts from the
configuration (routes hold functions and compiled patterns, so a job names its upstream
and route index), runs `examine.examine` as the event loop would, looking numbers up in
slices of HELPER_LOOKUP_SLICE on its own connection to the URL each job names (the
store's current one: it follows a moved embedded server), and sends back `Examined`.
Jobs run one at a time, in arrival order.

A helper failure never lets a send through unchecked: a helper that dies, does not
answer within `job_timeout` (it is then killed) or fails on a job costs that request a
503 `screening_unavailable` (logged as `screening_unavailable`, counted with that
reason). A helper that ends is logged (`screen_helper_exited`) and started again, at
once for a waiting request, else with back-off.

Frames, both ways: an 8-byte length, then a pickle. To the child: the configuration,
then (url, job, route index) per job; from it: its pid once ready, then per job an
`Examined` or the text of an unexpected error.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, ClassVar

import structlog
from multidict import CIMultiDict

from gatekeeper.embedded import exit_fields
from gatekeeper.examine import Examined, Job, Refusal, Rules, at_once, examine
from gatekeeper.providers.preset import Message
from gatekeeper.supervisor import Backoff

if TYPE_CHECKING:
    from gatekeeper.config import Config
    from gatekeeper.proxy import Mount
    from gatekeeper.store import Store

Logger = structlog.typing.FilteringBoundLogger

# Numbers per lookup call in the helper: small, so that none of its calls holds
# redis-server (and the small sends' lookups queued there) for more than a moment
# (measured: 32 held it ~1.7 ms and doubled the small sends' p50; 4 halved the batches'
# throughput; bench/README.md). What may fail open is still decided by
# screening.LOOKUP_SLICE, as on the loop.
HELPER_LOOKUP_SLICE = 8
# The child's priority: the event loop's process comes first on a shared CPU. Niceness
# alone is not enough there: a waking Gatekeeper waits for the helper's time slice to
# end (measured: the small sends' p99 doubled). In Linux's idle class it is preempted at
# once and runs on CPU time nothing else wants; the price: on CPUs that stay saturated
# it barely runs, and its jobs end in `job_timeout` (503, never forwarded).
NICENESS = 10
IDLE_CLASS = True
_LENGTH = struct.Struct("!Q")
# The pipes' capacity, both ways: a large job or reply crosses in one write instead of
# one per 64 KiB, each of which would wake the other side.
PIPE_BYTES = 1 << 20
# The child's command: the parent's module search path, so that both run the same code.
_BOOTSTRAP = "import sys; sys.path[:] = {path!r}; from gatekeeper.bigscreen import main; main()"

UNAVAILABLE = Examined(Refusal(
    503, "screening_unavailable",
    "The request could not be screened; it was not forwarded.", "screening_unavailable"))


class HelperFault(Exception):
    """The helper could not answer a job (it died, timed out, or could not start)."""


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read(stream: asyncio.StreamReader) -> Any:
    (size,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return pickle.loads(await stream.readexactly(size))  # noqa: S301 - our own child


def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless it is known to have ended. Not `process.kill()`: that polls the
    process first, which may reap it from under the loop's child watcher (then the exit
    status is lost); a signal to a process that ended but is not reaped yet is moot."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


def _settled(task: asyncio.Task[Any]) -> None:
    # An exchange whose request went away: its fault is logged by no one, not lost.
    if not task.cancelled():
        task.exception()


@dataclass(slots=True)
class _Child:
    """One helper process."""

    process: asyncio.subprocess.Process
    started: float
    ready: bool = False


class ScreenHelper:
    """The loop's side: starts the helper, hands it jobs one at a time, restarts it."""

    # Seconds a job may run in the helper before it is taken as hung and killed, and a
    # new helper may take to be ready (class attributes: tests shorten them).
    job_timeout: ClassVar[float] = 60.0
    start_timeout: ClassVar[float] = 30.0
    backoff: ClassVar[Backoff] = Backoff(first=0.5, limit=30.0, stable_after=30.0)

    def __init__(self, config: Config, log: Logger) -> None:
        self._hello = _frame(config)
        self._log = log
        self._lock = asyncio.Lock()
        self._child: _Child | None = None
        self._closed = False
        self._delay = self.backoff.first
        self._exchanges: set[asyncio.Task[Any]] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self.starts = 0     # helpers started, the first included
        self.answered = 0   # jobs answered

    @property
    def pid(self) -> int | None:
        """The running helper's process id."""
        return None if self._child is None else self._child.process.pid

    async def start(self) -> None:
        """Start the helper (its imports then run in the background: about 0.5 s)."""
        async with self._lock:
            await self._spawn()

    async def examine(self, request_id: str, url: str, job: Job, route: int | None
                      ) -> Examined:
        """Screen `job` in the helper against the store at `url`; `route` indexes the
        mount's routes (None: an unknown write). A failure is logged and comes back as
        the 503 `screening_unavailable` refusal: never raised, never forwarded."""
        message = job.message
        portable = replace(job, message=Message(message.body, message.query,
                                                CIMultiDict(message.headers)))
        task = asyncio.get_running_loop().create_task(
            self._exchange(_frame((url, portable, route))))
        # Kept until done: a request that goes away must not leave the reply unread.
        self._exchanges.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(self._exchanges.discard)
        try:
            result = await asyncio.shield(task)
        except HelperFault as exc:
            self._log.error("screening_unavailable", request_id=request_id, error=str(exc))
            return UNAVAILABLE
        if not isinstance(result, Examined):
            self._log.error("screening_unavailable", request_id=request_id,
                            error=f"the helper failed: {result}")
            return UNAVAILABLE
        if result.rewritten is not None:
            result = replace(result, rewritten=replace(result.rewritten,
                                                       headers=message.headers))
        return result

    async def close(self) -> None:
        """Stop the helper; a job in flight fails (its request gets the 503)."""
        self._closed = True
        for task in self._watchers:
            task.cancel()
        if self._watchers:
            await asyncio.gather(*self._watchers, return_exceptions=True)
        child, self._child = self._child, None
        if child is not None:
            _kill(child.process)
            await child.process.wait()
        if self._exchanges:
            await asyncio.gather(*self._exchanges, return_exceptions=True)

    async def _exchange(self, job: bytes) -> object:
        async with self._lock:
            child = await self._ready()
            process = child.process
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                async with asyncio.timeout(self.job_timeout):
                    process.stdin.write(job)
                    await process.stdin.drain()
                    result = await _read(process.stdout)
            except TimeoutError:
                self._discard(child)
                raise HelperFault(f"no answer within {self.job_timeout:g} s; "
                                  f"helper {process.pid} killed") from None
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._discard(child)
                raise HelperFault(f"helper {process.pid} ended: "
                                  f"{type(exc).__name__}") from exc
            self.answered += 1
            return result

    async def _ready(self) -> _Child:
        """The running helper, started if there is none, once it has said it is ready."""
        if self._closed:
            raise HelperFault("the helper is stopped")
        child = self._child
        if child is None or child.process.returncode is not None:
            child = await self._spawn()
        if not child.ready:
            assert child.process.stdout is not None
            try:
                async with asyncio.timeout(self.start_timeout):
                    await _read(child.process.stdout)
            except TimeoutError:
                self._discard(child)
                raise HelperFault(f"the helper did not start within "
                                  f"{self.start_timeout:g} s") from None
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._discard(child)
                raise HelperFault(f"the helper ended while starting: "
                                  f"{type(exc).__name__}") from exc
            child.ready = True
        return child

    async def _spawn(self) -> _Child:
        """Start a helper (under the lock)."""
        loop = asyncio.get_running_loop()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _BOOTSTRAP.format(path=sys.path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                # Its own session: a Ctrl-C in the terminal reaches Gatekeeper alone,
                # which stops it. Replies are up to a body's size: read them in big steps.
                start_new_session=True, limit=1 << 20)
        except OSError as exc:
            raise HelperFault(f"cannot start the helper: {exc}") from exc
        if self._closed:  # stopped meanwhile: this one must not outlive the close
            _kill(process)
            await process.wait()
            raise HelperFault("the helper is stopped")
        assert process.stdin is not None
        process.stdin.write(self._hello)
        child = self._child = _Child(process, loop.time())
        self.starts += 1
        self._log.info("screen_helper_started", pid=process.pid, starts=self.starts)
        watcher = loop.create_task(self._watch(child))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return child

    def _discard(self, child: _Child) -> None:
        """Drop a helper that failed a job: killed if still running (its watcher logs
        the end and starts another)."""
        _kill(child.process)
        if self._child is child:
            self._child = None

    async def _watch(self, child: _Child) -> None:
        """Log the helper's end; start another after a back-off if none has been."""
        code = await child.process.wait()
        if self._closed:
            return
        self._log.error("screen_helper_exited", pid=child.process.pid, **exit_fields(code))
        if self._child is child:
            self._child = None
        loop = asyncio.get_running_loop()
        if loop.time() - child.started >= self.backoff.stable_after:
            self._delay = self.backoff.first
        delay, self._delay = self._delay, self.backoff.after(self._delay)
        await asyncio.sleep(delay)
        async with self._lock:
            if self._child is None and not self._closed:
                try:
                    await self._spawn()
                except HelperFault as exc:
                    self._log.error("screen_helper_start_failed", error=str(exc))


# --------------------------------------------------------------------------- the child


class _Worker:
    """The child's side: the mounts, an event loop, and a store per URL."""

    def __init__(self, config: Config) -> None:
        from gatekeeper.proxy import Mount  # noqa: PLC0415 - the child alone needs it

        self.config = config
        self.rules = Rules.of(config)
        unknown = config.proxy.unknown_writes
        self.mounts: dict[str, Mount] = {u.name: Mount.build(u, unknown)
                                         for u in config.upstreams}
        self.loop = asyncio.new_event_loop()
        self.url: str | None = None
        self.store: Store | None = None

    def run(self, url: str, job: Job, route: int | None) -> Examined:
        """Screen one job, as `Sending` would on the loop."""
        return self.loop.run_until_complete(self._run(url, job, route))

    async def _run(self, url: str, job: Job, route: int | None) -> Examined:
        from gatekeeper.store import Store, connect  # noqa: PLC0415

        if self.store is None or self.url != url:
            if self.store is not None:
                await self.store.close()
            redis = self.config.redis
            self.store = Store(connect(redis, url), redis, self.config.store, url)
            self.url = url
        mount = self.mounts[job.upstream]
        examined = await examine(job, mount, None if route is None else mount.routes[route],
                                 self.rules, self.store.lookup, at_once, HELPER_LOOKUP_SLICE,
                                 self.store)
        if examined.rewritten is not None:
            # The loop puts the request's own headers back.
            examined = replace(examined, rewritten=replace(examined.rewritten, headers={}))
        return examined


def _receive(stream: IO[bytes]) -> Any:
    """The next frame, or None at the end of the input (Gatekeeper is gone)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - from the Gatekeeper that started us


def _send(stream: IO[bytes], value: object) -> None:
    stream.write(_frame(value))
    stream.flush()


def main() -> None:
    """The helper process: read jobs on stdin, answer on stdout, until stdin ends."""
    with contextlib.suppress(OSError):  # not allowed here: run at the same priority
        os.nice(NICENESS)
    if IDLE_CLASS:
        with contextlib.suppress(OSError, AttributeError):  # Linux only
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    resize = getattr(fcntl, "F_SETPIPE_SZ", None)   # Linux only
    for fd in (source.fileno(), sink.fileno()):
        with contextlib.suppress(OSError):  # the system's limit is lower: 64 KiB it is
            if resize is not None:
                fcntl.fcntl(fd, resize, PIPE_BYTES)
    # Whatever else writes to stdout (a library's print) goes to stderr, never into
    # the replies.
    os.dup2(2, 1)
    config = _receive(source)
    if config is None:
        return
    worker = _Worker(config)
    _send(sink, os.getpid())
    while (job := _receive(source)) is not None:
        url, request, route = job
        answer: object
        try:
            answer = worker.run(url, request, route)
        except Exception as exc:  # a bug: this request is refused, the helper goes on
            answer = f"{type(exc).__name__}: {exc}"
        try:
            _send(sink, answer)
        except BrokenPipeError:
            return


if __name__ == "__main__":
    main()
