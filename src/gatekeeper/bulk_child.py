"""An import run in a child process: the admin endpoint's large imports.

Parsing a file is CPU work; in the process that serves sends it delays every send
behind it (a 10M-line replace lifted the p99 of sends from 1.3 ms to 52 ms, although
the importer let the loop run between chunks). So a body larger than `OFFLOAD_BYTES`
is imported by `python -m gatekeeper.bulk_child`, at the configured import priority
(idle by default, as `gatekeeper lists import`), running the same `Importer` on its own
connection to the same store; the serving process only relays the body.

The pipe to the child carries frames, each a 4-byte big-endian length and its bytes:
first the pickled `Job`, then the body's chunks, then an empty frame that says the body
is complete. A body cut short (the client went away, a malformed transfer) never sends
that frame: the child then fails the import, and a replace leaves the list as it was.
The child answers with one pickled `Outcome` on its stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pickle
import struct
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gatekeeper.bulk import Importer
from gatekeeper.bulk_options import REFUSALS, ImportOptions, ImportRefused, ImportReport
from gatekeeper.config import ImportPriority, RedisConfig, StoreConfig
from gatekeeper.store import Store, StoreUnavailable, connect

OFFLOAD_BYTES = 1 << 20
"""Bodies up to this size are imported in the serving process (a child costs about
0.3 s to start); larger ones in a child."""
_FRAME = struct.Struct(">I")
# The refusals a child reports by name.
_REFUSALS: dict[str, type[ImportRefused]] = {cls.__name__: cls for cls in REFUSALS}
# Waiting for a child whose body was cut short to clean up and exit (then it is killed).
_EXIT_WAIT = 30.0
_CHILDREN: set[asyncio.Task[None]] = set()


class ImportChildFailed(Exception):
    """The child process died or answered nothing usable (a bug or a killed process, not
    a refusal or a store fault)."""


class BodyCutShort(Exception):
    """The body's end-of-data frame never came: the import must not be applied."""


@dataclass(frozen=True)
class Job:
    """What the child needs: the store's settings and URL, and the import's options."""

    redis: RedisConfig
    store: StoreConfig
    url: str
    options: ImportOptions


@dataclass(frozen=True)
class Outcome:
    """The child's answer: its report, and how it ended (`ok`, `refused` with the
    refusal's class name, or `unavailable`), with the message of what stopped it."""

    report: ImportReport
    ended: str = "ok"
    refusal: str = ""
    message: str = ""


def frame(data: bytes) -> bytes:
    """One frame of the pipe to the child."""
    return _FRAME.pack(len(data)) + data


class ChildImport:
    """One import in a child process. `late` is told the outcome (an `Outcome`, or the
    exception that ended it) of an import whose caller was cancelled after the whole
    body had gone to the child, which then completes it all the same."""

    def __init__(self, job: Job, late: Callable[[Outcome | BaseException], None]) -> None:
        self.job = job
        self.late = late
        self.ended = False
        """The whole body went to the child: the import is its own from then on."""

    async def run(self, head: list[bytes], rest: AsyncIterable[bytes],
                  report: ImportReport) -> None:
        """Import `head` then `rest`; `report` is filled with the child's counts. Raises
        what the import in process would (a refusal, StoreUnavailable), or
        ImportChildFailed."""
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatekeeper.bulk_child", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        answer = asyncio.ensure_future(_answer(child))
        try:
            await self._send(child, head, rest)
            outcome = await asyncio.shield(answer)
        except BaseException:
            # Before the end frame, the child abandons the import (a replace changes
            # nothing); after it, it completes it, and `late` hears how it ended.
            if child.stdin is not None:
                child.stdin.close()
            _keep(_reap(child, answer, self.late if self.ended else None))
            raise
        copy_report(report, outcome.report)
        if outcome.ended == "refused":
            raise _REFUSALS[outcome.refusal](outcome.message)
        if outcome.ended == "unavailable":
            raise StoreUnavailable(outcome.message)

    async def _send(self, child: asyncio.subprocess.Process, head: list[bytes],
                    rest: AsyncIterable[bytes]) -> None:
        stdin = child.stdin
        assert stdin is not None
        try:
            stdin.write(frame(pickle.dumps(self.job)))
            for chunk in head:
                stdin.write(frame(chunk))
                await stdin.drain()
            async for chunk in rest:
                stdin.write(frame(chunk))
                await stdin.drain()
            stdin.write(frame(b""))
            await stdin.drain()
            self.ended = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the child stopped reading (a refusal, a fault): its answer says why
        stdin.close()


def copy_report(report: ImportReport, counts: ImportReport) -> None:
    """`counts` copied into `report` (the caller's, which it holds on to)."""
    for field in dataclasses.fields(ImportReport):
        setattr(report, field.name, getattr(counts, field.name))


def _keep(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _CHILDREN.add(task)
    task.add_done_callback(_CHILDREN.discard)


async def _answer(child: asyncio.subprocess.Process) -> Outcome:
    """The child's outcome, once it has exited."""
    assert child.stdout is not None
    assert child.stderr is not None
    out, err = await asyncio.gather(child.stdout.read(), child.stderr.read())
    code = await child.wait()
    try:
        outcome = pickle.loads(out) if code == 0 else None  # noqa: S301 - our own child
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        outcome = None
    if not isinstance(outcome, Outcome) or outcome.refusal not in ("", *_REFUSALS):
        tail = " ".join(err.decode("utf-8", "replace").split())[-300:]
        raise ImportChildFailed(f"the import process exited with code {code}: {tail}")
    return outcome


async def _reap(child: asyncio.subprocess.Process, answer: asyncio.Future[Outcome],
                late: Callable[[Outcome | BaseException], None] | None) -> None:
    """Wait for a child whose caller has gone (killed after `_EXIT_WAIT`); tell `late`."""
    try:
        outcome: Outcome | BaseException = await asyncio.wait_for(answer, _EXIT_WAIT)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        outcome = exc
    except ImportChildFailed as exc:  # as expected when the body was cut short
        outcome = exc
    if late is not None:
        late(outcome)


async def split_head(chunks: AsyncIterable[bytes], limit: int = OFFLOAD_BYTES
                     ) -> tuple[list[bytes], AsyncIterator[bytes] | None]:
    """The body's first chunks up to just over `limit` bytes, and an iterator over the
    rest (None: the body ended within `limit`)."""
    iterator = aiter(chunks)
    head: list[bytes] = []
    size = 0
    async for chunk in iterator:
        head.append(chunk)
        size += len(chunk)
        if size > limit:
            return head, iterator
    return head, None


async def replay(head: list[bytes], rest: AsyncIterable[bytes] | None = None
                 ) -> AsyncIterator[bytes]:
    """`head`'s chunks, then `rest`'s."""
    for chunk in head:
        yield chunk
    if rest is not None:
        async for chunk in rest:
            yield chunk


# --------------------------------------------------------------------------- the child


def _priority(priority: ImportPriority) -> None:
    if priority == "idle":
        with contextlib.suppress(AttributeError, OSError):  # else at normal priority
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


async def _frames(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The body's chunks, until the end frame; BodyCutShort if the pipe ends first."""
    while True:
        try:
            size, = _FRAME.unpack(await reader.readexactly(_FRAME.size))
            if not size:
                return
            yield await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise BodyCutShort("the body ended before its end (cut short)") from exc


async def _child() -> Outcome:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    size, = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    job = pickle.loads(await reader.readexactly(size))  # noqa: S301 - from our parent
    assert isinstance(job, Job)
    _priority(job.store.import_priority)
    store = Store(connect(job.redis, job.url), job.redis, job.store, job.url)
    importer = Importer(store, job.options)
    try:
        await store.prepare()
        await importer.run(_frames(reader))
    except ImportRefused as exc:
        return Outcome(importer.report, "refused", type(exc).__name__, str(exc))
    except StoreUnavailable as exc:
        return Outcome(importer.report, "unavailable", message=str(exc))
    finally:
        await store.close()
    return Outcome(importer.report)


def main() -> None:
    """`python -m gatekeeper.bulk_child`: one import, framed on stdin."""
    # The answer has stdout to itself: anything else printed goes to stderr.
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    outcome = asyncio.run(_child())
    with answer:
        answer.write(pickle.dumps(outcome))


if __name__ == "__main__":
    # Run as `-m`, this file is `__main__`: its classes are not the ones the parent
    # pickled (gatekeeper.bulk_child's), so the module proper does the work.
    from gatekeeper.bulk_child import main as run

    run()
