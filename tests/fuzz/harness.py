"""The harness: a fuzzing Gatekeeper on the test's event loop, driven from Hypothesis in
a worker thread; every promise the invariant makes checked after each send, less the
failures an open known issue explains."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import FakeUpstream, Recorded, Running, StartGatekeeper
from tests.fuzz.checker import View, _xml_strings, leaks_in, record_texts, view_for
from tests.fuzz.client import Reply, exchange, wire
from tests.fuzz.lists import PREFIX_ENTRY, MountInfo, Num, fuzz_config, load_lists, mounts
from tests.fuzz.specs import Send

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KnownIssue:
    """A failure found and reported, skipped by the checker only while it is open."""

    name: str
    summary: str
    matches: Callable[[Send, list[tuple[str, str]]], bool]
    kind: str = "leak"   # `leak`, or `reply`: the reply's shape (request id, JSON body)


@dataclass
class Outcome:
    """What one send did."""

    send: Send
    reply: Reply
    records: list[Recorded]
    leaks: list[tuple[str, str]]


class Failure(AssertionError):
    pass


@dataclass
class Harness:
    """A fuzzing Gatekeeper on the test's event loop, driven from a worker thread."""

    running: Running
    upstream: FakeUpstream
    infos: dict[str, MountInfo]
    on_invalid: str
    loop: asyncio.AbstractEventLoop
    known: tuple[KnownIssue, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)
    known_hits: dict[str, list[str]] = field(default_factory=dict)
    collected: list[str] = field(default_factory=list)
    collect: bool = False
    monitor_seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, start_gatekeeper: StartGatekeeper, upstream: FakeUpstream,
                    tmp_path: Path, *, on_invalid: str, flip: bool, monitor_preset: str,
                    redis: Any = None, known: Sequence[KnownIssue] = ()) -> Harness:
        infos = mounts(flip, monitor_preset)
        config = fuzz_config(upstream.url, tmp_path, infos, on_invalid)
        running = await start_gatekeeper(config, redis)
        await load_lists(running)
        return cls(running, upstream, infos, on_invalid, asyncio.get_running_loop(),
                   tuple(known), collect=bool(os.environ.get("GATEKEEPER_FUZZ_COLLECT")))

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _send(self, send: Send) -> tuple[Reply, list[Recorded]]:
        server = self.running.proxy.server
        before = len(self.upstream.received)
        host = f"{server.host}:{server.port}"
        reply = await exchange(server.host, server.port, wire(send, host), send.method == "HEAD")
        await asyncio.sleep(0)
        return reply, self.upstream.received[before:]

    async def check(self, send: Send) -> tuple[Outcome, list[str]]:
        """Send on this loop; the outcome and every broken promise."""
        reply, records = await self._send(send)
        outcome = Outcome(send, reply, records, [])
        decision = reply.header("X-Gatekeeper-Decision") or "-"
        self.stats[decision] = self.stats.get(decision, 0) + 1
        return outcome, self.problems(outcome)

    def run(self, send: Send) -> Outcome:
        """From a worker thread: send, then check everything the invariant says; raises
        Failure (or, with GATEKEEPER_FUZZ_COLLECT, writes the failure down and goes on)."""
        outcome, problems = self.call(self.check(send))
        if problems:
            text = explain(outcome, problems)
            if self.collect:
                self.collected.append(text)
                path = os.environ["GATEKEEPER_FUZZ_COLLECT"]
                with open(path, "a", encoding="utf-8") as out:
                    out.write(text + "\n=====\n")
            else:
                raise Failure(text)
        return outcome

    def problems(self, o: Outcome) -> list[str]:
        """Every promise the outcome breaks, less those an open known issue explains."""
        send, reply, records = o.send, o.reply, o.records
        out: list[str] = []
        shape: list[str] = []   # promises about the reply's shape (not about leaks)
        decision = reply.header("X-Gatekeeper-Decision")
        if reply.status >= 500:
            out.append(f"status {reply.status}")
        if not reply.header("X-Request-Id"):
            shape.append("no X-Request-Id on the reply")
        if len(records) > 1:
            out.append(f"{len(records)} upstream requests for one send")
        if decision in ("forwarded", "partial", "monitored") and not records:
            out.append(f"decision {decision} but nothing reached the upstream")
        if decision in ("rejected", "skipped") and records:
            out.append(f"decision {decision} but the upstream received the request")
        if send.refused_path and (records or reply.status != 400):
            out.append("a refused path spelling was not refused with 400")
        if not records and reply.status >= 400 and send.method != "HEAD" and \
                not _readable_error(reply):
            shape.append("a refusal without a JSON (or the API's XML) body")
        for record in records:
            expected = f"/up/{send.info.name}/"
            if not record.path_qs.startswith(expected) and record.path_qs != expected[:-1]:
                out.append(f"reached the wrong upstream: {record.path_qs[:60]}")
            if any(k.lower() == "x-gatekeeper-scope" for k, _ in record.raw_headers):
                out.append("X-Gatekeeper-Scope was forwarded")
            o.leaks.extend(leaks_in(record_texts(record), view_for(send)))
        if shape:
            issue = self._known("reply", send, [])
            if issue is None:
                out += shape
        issue = self._known("leak", send, o.leaks) if o.leaks else None
        if send.info.on_block == "monitor":
            if o.leaks and decision != "monitored" and issue is None:
                out.append(f"monitor: blocked {[lb for lb, _ in o.leaks]} reached the upstream "
                           f"with decision {decision}, not monitored")
            if decision == "monitored":
                self.monitor_seen["monitored"] = self.monitor_seen.get("monitored", 0) + 1
                every = View(None, view_for(send).tenant, send.info.region, True)
                if not o.leaks and not any(leaks_in(record_texts(r), every) for r in records):
                    out.append("monitor: decided blocked but the checker sees no blocked number "
                               "in what arrived (a blind spot of the checker)")
            # Everything arrives here as sent: every blocked number placed in the request,
            # however spelled, must be visible to the checker, or it is blind to a spelling.
            if records:
                found = {label for r in records for label, _ in
                         leaks_in(record_texts(r), View(None, True, send.info.region, True))}
                for d in send.dests:
                    want = _label_of(d.num)
                    if want is None or d.kind in ("row", "joined"):
                        continue
                    if want in found or f"{want} (national)" in found:
                        self.monitor_seen[d.kind] = self.monitor_seen.get(d.kind, 0) + 1
                    else:
                        out.append(f"checker blind to spelling {d.kind}: {d.text!r} ({want})")
        elif o.leaks and issue is None:
            labels = [lb for lb, _ in o.leaks]
            out.append(f"LEAK {labels} reached upstream {send.info.name} "
                       f"(decision {decision}): " +
                       "; ".join(f"{lb} in {text[:120]!r}" for lb, text in o.leaks))
        return out

    def _known(self, kind: str, send: Send, leaks: list[tuple[str, str]]) -> KnownIssue | None:
        """The open issue that explains a failure of this kind, counted in the summary."""
        issue = next((k for k in self.known if k.kind == kind and k.matches(send, leaks)),
                     None)
        if issue is not None:
            self.known_hits.setdefault(issue.name, []).append(send.describe())
        return issue


def _label_of(num: Num) -> str | None:
    """The checker's label for a blocked number (None for allowed and unlisted ones)."""
    if num.role == "prefix":
        return PREFIX_ENTRY
    return None if num.role in ("allowed", "unlisted") else num.e164


def explain(outcome: Outcome, problems: list[str]) -> str:
    """A failure as a report: what broke, the request, the reply, what arrived."""
    reply = outcome.reply
    return "\n".join(problems) + "\n--- request ---\n" + outcome.send.describe() + \
        "\n--- reply ---\n" + f"{reply.status} {dict(reply.headers)}\n{reply.body!r}" + \
        "".join(f"\n--- upstream received ---\n{r.method} {r.path_qs}\n{r.body!r}"
                for r in outcome.records)


def _readable_error(reply: Reply) -> bool:
    kind = (reply.header("Content-Type") or "").lower()
    try:
        if "xml" in kind:
            return bool(_xml_strings(reply.body.decode("utf-8")))
        json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def examples(base: int) -> int:
    """`base` times GATEKEEPER_FUZZ_EXAMPLES (default 1): the long-run multiplier."""
    return max(1, int(base * float(os.environ.get("GATEKEEPER_FUZZ_EXAMPLES", "1"))))
