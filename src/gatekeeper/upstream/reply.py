"""An upstream's reply: the Reply handed back, and the body of one that streams."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatekeeper.upstream.errors import UpstreamError

if TYPE_CHECKING:
    from gatekeeper.upstream.connection import _Connection

# A streamed reply stops reading from the upstream while this much waits for the client.
_STREAM_HIGH_WATER = 256 * 1024


@dataclass(slots=True, eq=False)
class Reply:
    """An upstream's reply: status, reason and raw headers; the body whole or streamed."""

    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    body: bytes | None  # the whole body, or None when it streams through `read()`
    _stream: _Stream | None = None

    async def read(self) -> bytes:
        """The next piece of a streamed body; b"" at its end. Raises UpstreamError."""
        if self._stream is None:
            return b""
        return await self._stream.read()

    def close(self) -> None:
        """Give up on a streamed body that was not read to its end (drops the connection)."""
        if self._stream is not None:
            self._stream.abandon()


class _Stream:
    """The body of a streamed reply, between the connection and the reader."""

    def __init__(self, connection: _Connection) -> None:
        self._connection: _Connection | None = connection
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _STREAM_HIGH_WATER and self._connection is not None:
            self._connection.pause()
        self._wake()

    def finish(self) -> None:
        self._done, self._connection = True, None
        self._wake()

    def fail(self, error: UpstreamError) -> None:
        if not self._done:
            self._error, self._done, self._connection = error, True, None
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._size <= _STREAM_HIGH_WATER // 2 and self._connection is not None:
            self._connection.resume()
        return chunk

    def abandon(self) -> None:
        if self._connection is not None:
            self._connection.abort(UpstreamError("broken_reply", "abandoned"))
        self._done, self._chunks = True, collections.deque()
