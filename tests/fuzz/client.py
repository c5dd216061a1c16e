"""The raw HTTP client: a send written byte for byte on a fresh connection, and the whole
reply read back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from tests.fuzz.specs import Send


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def _dechunk(data: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


def wire(send: Send, host: str) -> bytes:
    lines = [f"{send.method} {send.target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in send.headers]
    body = send.body
    if send.framing:
        lines += [f"{k}: {v}" for k, v in send.framing]
    elif send.chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                        for p in (body[:half], body[half:]) if p) + b"0\r\n\r\n"
    elif body or send.method not in ("GET", "HEAD"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


async def exchange(host: str, port: int, data: bytes, head: bool) -> Reply:
    """One request on a fresh connection; the whole reply."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    top, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = tuple((k.strip(), v.strip()) for k, _, v in
                    (line.partition(":") for line in header_lines))
    reply = Reply(int(status_line.split()[1]), headers, b"")
    if head:
        return reply
    if (reply.header("Transfer-Encoding") or "").lower() == "chunked":
        return replace(reply, body=_dechunk(rest))
    length = reply.header("Content-Length")
    return replace(reply, body=rest[:int(length)] if length is not None else rest)
