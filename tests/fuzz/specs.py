"""A send before it is written out (`Spec`: builders make it, mutations change it), a
send as written on the wire (`Send`), and what every builder shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.fuzz.bodies import Body, Form
from tests.fuzz.lists import MountInfo
from tests.fuzz.spellings import Dest, dest


@dataclass
class Spec:
    """A send before it is written out; builders make it, mutations change it."""

    info: MountInfo
    method: str
    segments: list[str]
    body: Body
    content_type: str | None
    channel: str | None              # `sms`, `voice`, or None: either channel counts
    dests: list[Dest] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    ext: bool = False                # the route takes any `.suffix` on its last segment
    suffix: str = ""
    trailing_slash: bool = False
    routed: bool = True              # a documented send route (national spellings count)
    recipient_names: tuple[str, ...] = ()  # the body fields that hold recipients
    query_ok: bool = False           # the route reads its query (recipients may move there)
    takes_get: bool = False
    notes: list[str] = field(default_factory=list)
    last_literal: bool = True        # the last segment is a fixed word (not an id)
    plus_raw: bool = False
    # Other methods the same send takes (a POST route also takes PUT and PATCH, unless
    # the path has a route of its own for them).
    alt_methods: tuple[str, ...] = ("PUT", "PATCH")
    # An unknown write whose scan reads bare digits as national numbers (iletiMerkezi).
    national_scan: bool = False

    def deroute(self, note: str) -> None:
        """No longer a send route: a scanned write, decided on both channels."""
        self.routed = False
        self.channel = None
        self.notes.append(note)


@dataclass(frozen=True, slots=True, repr=False)
class Send:
    """A request as written on the wire, with what the checker needs to judge it."""

    info: MountInfo
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    channel: str | None
    routed: bool
    national: bool                   # national spellings of the region's numbers count
    refused_path: bool
    dests: tuple[Dest, ...]
    notes: tuple[str, ...]
    chunked: bool = False
    framing: tuple[tuple[str, str], ...] = ()   # Content-Length/Transfer-Encoding as sent

    def __repr__(self) -> str:
        return f"Send<{self.method} {self.target} {self.body[:60]!r} {list(self.notes)}>"

    def describe(self) -> str:
        head = "".join(f"{k}: {v}\n" for k, v in self.headers + self.framing)
        if self.chunked:
            head += "Transfer-Encoding: chunked (the body in two chunks)\n"
        return (f"{self.method} {self.target}\n{head}\n{self.body!r}\n"
                f"notes={list(self.notes)} channel={self.channel} routed={self.routed}")


Builder = Callable[[st.DrawFn, MountInfo], Spec]
ACCOUNT = "ACfeedfacefeedfacefeedfacefeedface"
TEXT = "hello there"


def _dests(draw: st.DrawFn, info: MountInfo, where: str = "field", lo: int = 1, hi: int = 3
           ) -> list[Dest]:
    return draw(st.lists(dest(info, where), min_size=lo, max_size=hi))


def _form(pairs: list[tuple[str, str]]) -> Form:
    return Form(pairs)
