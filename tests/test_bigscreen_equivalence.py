"""The screening helper process (`gatekeeper.bigscreen`) against the event loop: random
batches and unknown writes, screened on the loop and in the helper on one real
redis-server, come out the same (refusal, decisions and their order, reasons, rewrite);
the helper follows the store's URL and survives a failing job."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from structlog.testing import CapturingLogger

from gatekeeper.bigscreen import ScreenHelper
from gatekeeper.config import Config
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.examine import Examined, Job, Rules, examine
from gatekeeper.providers.preset import Message
from gatekeeper.proxy import Mount
from gatekeeper.sending import OFF_LOOP_BYTES, off_loop
from gatekeeper.store import EntryMeta, ListItem, Store, connect
from gatekeeper.types import ListName
from tests.conftest import make_config

pytestmark = pytest.mark.integration

TEXT = "Your appointment is tomorrow at 10:00, reply STOP to opt out"
JSON = {"Content-Type": "application/json"}


def batch(recipients: list[str]) -> bytes:
    """A generic JSON batch."""
    return json.dumps({"messages": [{"to": n, "text": TEXT} for n in recipients]}).encode()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A real redis-server of this test's own."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@dataclass
class Place:
    """A helper and the loop's own store, on one real server with the test's lists."""

    config: Config
    url: str
    store: Store
    helper: ScreenHelper
    mounts: dict[str, Mount]

    async def both(self, job: Job, route: int | None) -> tuple[Examined, Examined]:
        """`job` screened on the loop, then in the helper."""
        mount = self.mounts[job.upstream]
        local = await examine(job, mount, None if route is None else mount.routes[route],
                              Rules.of(self.config), self.store.lookup, off_loop)
        return local, await self.helper.examine("test", self.url, job, route)


LISTED: dict[tuple[ListName, str], list[str]] = {
    ("block", "global"): ["+14155550007", "+1303*", "+4477009*"],
    ("allow", "global"): ["+14155550008", "+1303555*"],
    ("block", "tenant:acme"): ["+14155550008", "+33612345678"],
    ("allow", "tenant:acme"): ["+14155550007"],
}


HELPER_LOG = CapturingLogger()


async def _place(config: Config, url: str) -> Place:
    store = Store(connect(config.redis, url), config.redis, config.store, url)
    await store.prepare()
    for (name, scope), entries in LISTED.items():
        await store.add(name, scope, [ListItem(e) for e in entries],
                        EntryMeta("test", time.time()))
    await store.add("block", "global", [ListItem("+14155550009", "voice")],
                    EntryMeta("test", time.time()))
    # Its own logger: the process-wide one may write to a stream an earlier test closed.
    helper = ScreenHelper(config, structlog.wrap_logger(HELPER_LOG, processors=[]))
    await helper.start()
    unknown = config.proxy.unknown_writes
    return Place(config, url, store, helper,
                 {u.name: Mount.build(u, unknown) for u in config.upstreams})


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.Runner, Place]]:
    """One helper for the module's property tests, on its own event loop and its own
    redis-server (which no other test empties)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("eq-redis"))
    url = server.start().url
    config = make_config("http://127.0.0.1:9", tmp_path_factory.mktemp("eq"),
                         proxy={"max_recipients": 300})
    try:
        with asyncio.Runner() as runner:
            found = runner.run(_place(config, url))
            yield runner, found
            runner.run(found.helper.close())
            runner.run(found.store.close())
    finally:
        server.stop()


RECIPIENTS = st.one_of(
    st.sampled_from([
        "+14155550007", "+14155550008", "+14155550009", "+13035550199", "+13035551234",
        "+447700900123", "+33612345678", "(415) 555-0007", "whatsapp:+14155550007",
        "tel:+1-303-555-0100", "sip:+14155550008@example.com", "client:alice",
        "sip:alice@example.com", "+1 415 555 0007"]),
    st.integers(2_000_000, 2_000_999).map(lambda n: f"+1415{n}"),
)
# Not possible numbers (400 `invalid_phone_number` unless a list blocks them).
INVALID = st.sampled_from(["12", "abc", "+999123", "004155550007"])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(recipients=st.lists(RECIPIENTS, min_size=1, max_size=320),
       invalid=st.one_of(st.just([]), st.just([]), st.lists(INVALID, min_size=1, max_size=2)),
       scopes=st.sampled_from([("global",), ("global", "tenant:acme")]),
       query=st.sampled_from(["", "Verbose=1", "cc=%2B14155550007"]),
       pad=st.booleans())
@example(recipients=[f"+1415{2_000_000 + i}" for i in range(301)], invalid=[],
         scopes=("global",), query="", pad=False)  # over proxy.max_recipients
@example(recipients=["+14155550007", *(f"+1415{2_000_000 + i}" for i in range(128))],
         invalid=[], scopes=("global",), query="", pad=True)  # one over a slice
def test_helper_and_loop_screen_batches_alike(
        place: tuple[asyncio.Runner, Place], recipients: list[str], invalid: list[str],
        scopes: tuple[str, ...], query: str, pad: bool) -> None:
    """Random batches (blocked, allowed, prefixed, channel-limited, invalid, repeated,
    spelled several ways, over the recipient limit, numbers in the query) come out of
    the helper exactly as out of the loop: refusal, decisions, reasons, rewrite."""
    runner, where = place
    doc: dict[str, Any] = {"messages": [{"to": n, "text": TEXT}
                                        for n in [*recipients, *invalid]]}
    if pad:
        doc["note"] = "x" * OFF_LOOP_BYTES
    job = Job("generic", Message(json.dumps(doc).encode(), query, JSON), scopes)
    local, helper = runner.run(where.both(job, 0))
    assert helper == local
    assert list(helper.blocked) == list(local.blocked)  # in the same order too
    event(local.refusal.code if local.refusal else
          "partial" if local.rewritten else "blocked" if local.blocked else "forwarded")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(recipients=st.lists(RECIPIENTS, min_size=0, max_size=200),
       path=st.sampled_from(["/2010-04-01/x.json", "/lookup/+14155550007/hlr"]))
def test_helper_and_loop_scan_unknown_writes_alike(
        place: tuple[asyncio.Runner, Place], recipients: list[str], path: str) -> None:
    """Unknown writes (route None) are scanned alike in both places."""
    runner, where = place
    body = json.dumps({"batch": [{"dst": n} for n in recipients]}).encode()
    job = Job("twilio", Message(body, "", JSON), ("global",), path)
    local, helper = runner.run(where.both(job, None))
    assert helper == local


def test_helper_follows_the_url_of_each_job(
        place: tuple[asyncio.Runner, Place], own_server: EmbeddedRedis) -> None:
    """The store moving (another URL) moves the helper's lookups with it."""
    runner, where = place
    assert own_server.endpoint is not None
    job = Job("generic", Message(batch(["+14155550007"]), "", JSON), ("global",))
    first = runner.run(where.helper.examine("test", where.url, job, 0))
    moved = runner.run(where.helper.examine("test", own_server.endpoint.url, job, 0))
    back = runner.run(where.helper.examine("test", where.url, job, 0))
    assert list(first.blocked) == list(back.blocked) == ["+14155550007"]
    assert moved.blocked == {}   # nothing listed on the other server


def test_a_failing_job_is_refused_and_the_helper_goes_on(
        place: tuple[asyncio.Runner, Place]) -> None:
    """An error inside the helper (here, a route it does not have) refuses that request
    with `screening_unavailable`; the same helper answers the next job."""
    runner, where = place
    pid = where.helper.pid
    job = Job("generic", Message(batch(["+14155550007"]), "", JSON), ("global",))
    failed = runner.run(where.helper.examine("test", where.url, job, 99))
    assert failed.refusal is not None
    assert (failed.refusal.status, failed.refusal.code) == (503, "screening_unavailable")
    assert any(call.method_name == "error" and call.kwargs.get("event") ==
               "screening_unavailable" and call.kwargs.get("request_id") == "test"
               for call in HELPER_LOG.calls)
    answered = runner.run(where.helper.examine("test", where.url, job, 0))
    assert answered.refusal is None
    assert where.helper.pid == pid
