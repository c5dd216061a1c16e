"""The lean pipelined lookup connection, against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from typing import Any

import pytest

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store import (
    BlockedAttempt,
    EntryMeta,
    ListItem,
    LookupPipe,
    Store,
    StoreUnavailable,
    connect,
)

SCOPES = ("global", "tenant:acme", "tenant:beta")


@pytest.fixture
async def piped(redis_server: str, real_redis: Any) -> AsyncIterator[tuple[Store, Store]]:
    """The same store twice: lookups on the lean pipe, and on redis-py. A generous
    timeout: these tests are not about timeouts, and under the whole suite's load a
    first connection once took over 2 s (`cannot connect: TimeoutError`)."""
    config = RedisConfig(timeout=10.0)
    fast = Store(connect(config, redis_server), config, StoreConfig(), lookup_url=redis_server)
    plain = Store(connect(config, redis_server), config, StoreConfig())
    await fast.prepare()
    yield fast, plain
    await fast.close()
    await plain.close()


async def seed(store: Store) -> None:
    """Entries in every scope, channel-limited and expiring ones included."""
    now = time.time()
    await store.add("block", "global", [ListItem("+336*")], EntryMeta("api", now))
    await store.add("allow", "tenant:acme", [ListItem("+33612345678")], EntryMeta("api", now))
    await store.add("block", "tenant:beta", [ListItem("+4477*", "voice")], EntryMeta("api", now))
    await store.add("block", "global", [ListItem("+14155550100")],
                    EntryMeta("api", now, expires_at=now + 3600))


@pytest.mark.parametrize("numbers", [
    ["+33612345678"], ["+447700900123"], ["+14155550100"], ["+19995550100"],
    ["+33612345678", "+447700900123", "+14155550100", "+33612345678"],
], ids=["allow-and-block", "voice-only", "expiring", "unlisted", "several-with-repeat"])
@pytest.mark.parametrize("channel", [None, "sms", "voice"])
async def test_pipe_answers_like_redis_py(piped: tuple[Store, Store], numbers: list[str],
                                          channel: Any) -> None:
    """The lean path finds exactly what the redis-py path finds."""
    fast, plain = piped
    await seed(plain)
    assert await fast.lookup(numbers, SCOPES, channel) == \
        await plain.lookup(numbers, SCOPES, channel)


async def test_pipe_is_one_command_per_decision(piped: tuple[Store, Store],
                                                real_redis: Any) -> None:
    """Three scopes, a twelve-digit number: one EVALSHA, nothing else, on the pipe."""
    fast, _ = piped
    await fast.lookup(["+33612345678"], SCOPES, "sms")  # connect first
    before = await real_redis.info("commandstats")
    await fast.lookup(["+336123456789"], SCOPES, "sms")
    after = await real_redis.info("commandstats")
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
    # commandstats also counts what the script runs inside Redis (EXISTS, TIME, ZMSCORE,
    # HMGET of the packed records) and the INFO calls of the other client; the pipe itself
    # sent one EVALSHA.
    inside_script = {"cmdstat_exists", "cmdstat_time", "cmdstat_zmscore", "cmdstat_zscore",
                     "cmdstat_hget", "cmdstat_hmget", "cmdstat_sismember"}
    sent = {k: v for k, v in calls.items() if v and k not in inside_script | {"cmdstat_info"}}
    assert sent == {"cmdstat_evalsha": 1}


async def test_pipe_reloads_a_flushed_script(piped: tuple[Store, Store],
                                             real_redis: Any) -> None:
    """After SCRIPT FLUSH (or a server restart) the lookup script is loaded again."""
    fast, plain = piped
    await seed(plain)
    await real_redis.script_flush()
    result = await fast.lookup(["+33612345678"], SCOPES)
    assert {m.entry for m in result["+33612345678"]} == {"+336*", "+33612345678"}


async def test_pipe_recovers_from_a_killed_connection(piped: tuple[Store, Store],
                                                      real_redis: Any) -> None:
    """A dropped connection fails at most the calls in flight; the next call reconnects."""
    fast, plain = piped
    await seed(plain)
    await fast.lookup(["+33612345678"], SCOPES)
    await real_redis.client_kill_filter(_type="normal", skipme=True)
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(bool(await fast.lookup(["+33612345678"], SCOPES)))
        except StoreUnavailable:
            outcomes.append(False)
    assert outcomes[-1] is True


async def test_concurrent_lookups_get_their_own_replies(piped: tuple[Store, Store]) -> None:
    """Many lookups in flight at once each get the reply to their own question."""
    fast, plain = piped
    await seed(plain)
    numbers = [f"+3361234{i:04d}" for i in range(200)] + [f"+1999555{i:04d}" for i in range(200)]
    results = await asyncio.gather(*(fast.lookup([n], SCOPES) for n in numbers))
    for number, result in zip(numbers, results, strict=True):
        blocked = any(m.entry == "+336*" for m in result[number])
        assert blocked is number.startswith("+336")


@contextlib.contextmanager
def silent_server() -> Any:
    """A loopback socket that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


async def test_pipe_times_out_as_store_unavailable() -> None:
    """A server that does not answer is a StoreUnavailable within the timeout, not a hang."""
    with silent_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        config = RedisConfig(timeout=0.2)
        store = Store(connect(config, url), config, StoreConfig(), lookup_url=url)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.lookup(["+33612345678"], SCOPES)
        assert time.monotonic() - started < 2
        await store.close()


async def test_pipe_times_out_a_call_made_after_answered_ones() -> None:
    """The one watchdog timer also catches a call that is not the first: a server that
    answers once and then falls silent fails the next call within the timeout."""
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"+PONG\r\n")
        await writer.drain()
        await asyncio.sleep(5)  # silent from now on; the pipe gives up first
        writer.close()
    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = LookupPipe(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    assert await pipe.call(["PING"]) == "PONG"
    # Before the first call's deadline: the timer fires then, finds the second call not
    # yet due, and must wait for that one's own deadline (not fail it early).
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="timed out"):
        await pipe.call(["PING"])
    assert 0.15 < time.monotonic() - started < 2
    pipe.close()
    server.close()


async def test_pipe_refused_port_is_store_unavailable() -> None:
    """Nothing listening: StoreUnavailable at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    config = RedisConfig(timeout=0.5)
    store = Store(connect(config, url), config, StoreConfig(), lookup_url=url)
    with pytest.raises(StoreUnavailable):
        await store.lookup(["+33612345678"], SCOPES)
    await store.close()


async def test_pipe_appends_attempts_like_redis_py(redis_server: str, real_redis: Any) -> None:
    """A blocked attempt appended on the pipe is the same stream entry, capped the same."""
    config = RedisConfig(timeout=2.0, key_prefix="pipe-attempts:")
    fast = Store(connect(config, redis_server), config, StoreConfig(attempts_max_len=10),
                 lookup_url=redis_server)
    attempt = BlockedAttempt(request_id="req-1", upstream="twilio", channel="sms",
                             direction="outbound", number="+33612345678",
                             scopes="global,tenant:acme", scope="global", list="block",
                             entry="+336*", action="rejected")
    ids = [await fast.append_attempt(replace(attempt, request_id=f"req-{i}"))
           for i in range(500)]
    entries = await fast.read_attempts(count=1000)
    assert entries[0] == (ids[-1], {"ts": entries[0][1]["ts"],
                                    **asdict(replace(attempt, request_id="req-499"))})
    assert 10 <= len(entries) <= 200  # MAXLEN ~ 10 trims whole nodes
    await fast.close()
