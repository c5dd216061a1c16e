"""Velocity counts in the store on a real redis-server: the script's reply (the integer 0
when every number came out clear, the common case, cheaper to read; the per-number
arrays otherwise), read the same either way; and a send the lists block, never counted
(nothing to take back)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.policy import LISTS, decide
from gatekeeper.rules import VelocityLimit
from gatekeeper.store import EntryMeta, ListItem, Store, connect
from gatekeeper.store.scripts import VELOCITY_LUA
from gatekeeper.store.velocity import _Batch, _read
from gatekeeper.velocity import Counting

pytestmark = pytest.mark.integration

HOUR_MS = "3600000"


def number_args(count: bool, *limits: tuple[int, bool]) -> list[str]:
    """One number's ARGV part: its limits, whether it counts, then (limit, window ms,
    hold ms, enforced) per limit."""
    out = [str(len(limits)), "1" if count else "0"]
    for limit, enforced in limits:
        out += [str(limit), HOUR_MS, "0", "1" if enforced else "0"]
    return out


async def run_script(redis: Any, numbers: list[tuple[bool, list[tuple[int, bool]]]]
                     ) -> Any:
    """VELOCITY_LUA over `numbers` (whether each counts, its limits), each limit with
    its own counter and guard key."""
    keys: list[str] = []
    argv: list[str] = ["m"]
    for i, (count, limits) in enumerate(numbers):
        keys += [key for j in range(len(limits)) for key in (f"t:c:{i}:{j}", f"t:g:{i}:{j}")]
        argv += number_args(count, *limits)
    return await redis.eval(VELOCITY_LUA, len(keys), *keys, *argv)


@pytest.mark.parametrize(("numbers", "before", "expected"), [
    # (whether it counts, [(limit, enforced)]) per number; sends already counted; reply
    ([(True, [(2, True)])], 0, 0),
    ([(False, [(2, True)])], 0, 0),
    ([(True, [(2, True), (5, True)]), (True, [(3, True)])], 0, 0),
    ([(True, [(1, True)])], 1, [[1, 1, "wait", 0]]),
    ([(True, [(1, False)])], 1, [[0, 0, 0, 1]]),
    ([(True, [(5, True)]), (True, [(1, True)])], 1, [[0, 0, 0, 0], [1, 1, "wait", 0]]),
], ids=["counted", "looked-at", "two-numbers-clear", "over", "monitored-reached",
        "one-of-two-over"])
async def test_the_reply_is_zero_only_when_every_number_is_clear(
        real_redis: Any, numbers: list[tuple[bool, list[tuple[int, bool]]]],
        before: int, expected: Any) -> None:
    for _ in range(before):
        await run_script(real_redis, numbers)
    reply = await run_script(real_redis, numbers)
    if isinstance(expected, list):
        reply = [[("wait" if w == "wait" and 0 < r <= 3_600_000 else r)
                  for r, w in zip(part, want, strict=True)]
                 for part, want in zip(reply, expected, strict=True)]
    assert reply == expected


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3)), min_size=1, max_size=5))
def test_a_zero_reply_reads_as_every_number_counted_under_its_limits(
        shapes: list[tuple[bool, int]]) -> None:
    """`_read` of the integer 0 gives what it gives for the all-clear arrays."""
    limit = VelocityLimit("number", 5, 3600.0)
    group = [Counting(f"+1212555{i:04d}", "global", "sms", ((limit, str(i)),) * n, count)
             for i, (count, n) in enumerate(shapes)]
    counters = [tuple(f"c{i}:{j}" for j in range(n)) for i, (_, n) in enumerate(shapes)]
    firsts = [1 + 2 * sum(n for _, n in shapes[:i]) for i in range(len(shapes))]
    batch: _Batch = (group, [], b"", b"", 0, counters, firsts)
    assert _read(batch, "m", 0) == _read(batch, "m", [[0, 0, 0, 0] for _ in group])


NY = "+12125550123"
META = EntryMeta(source="test", added_at=1.0, added_by="pytest")
LIMIT = VelocityLimit("number", 5, 3600.0)
SCOPES = ("global", "tenant:a")


def test_the_script_reads_each_scopes_block_list_then_allow_list() -> None:
    """LOOKUP_LUA's "lists block the number" check reads triples 2s-1 and 2s as scope
    s's block and allow lists: the order in which a lookup probes them."""
    assert LISTS == ("block", "allow")


async def lists_store(redis_server: str, entries: list[tuple[str, str, str]]) -> Store:
    """A Store on the suite's redis-server and its lean pipe (the production lookup
    path), holding `entries` (list, scope, entry)."""
    config = RedisConfig(url=redis_server, timeout=5.0)
    store = Store(connect(config), config, StoreConfig(), redis_server)
    for name, scope, entry in entries:
        await store.add(name, scope, [ListItem(entry)], META)  # type: ignore[arg-type]
    return store


@pytest.mark.parametrize(("entries", "probed", "own", "numbers", "counted"), [
    ([], SCOPES, 2, [NY], True),
    ([("block", "global", NY)], SCOPES, 2, [NY], False),
    ([("block", "tenant:a", NY)], SCOPES, 2, [NY], False),
    ([("block", "global", "+1212*")], SCOPES, 2, [NY], False),
    # Its upstream forwards blocked sends (it only monitors): counted.
    ([("block", "global", NY)], SCOPES, 0, [NY], True),
    # An allow entry more specific than the block in that scope: forwarded, counted.
    ([("block", "global", "+1212*"), ("allow", "global", NY)], SCOPES, 2, [NY], True),
    # Blocked in one scope, allowed in another: blocked (decide), not counted.
    ([("block", "global", NY), ("allow", "tenant:a", NY)], SCOPES, 2, [NY], False),
    # Equally specific block and allow in one scope: block wins in decide, but the
    # script counts (it leaves such ties to the screening, which takes the count back).
    ([("block", "global", NY), ("allow", "global", NY)], SCOPES, 2, [NY], True),
    # Held only by a referenced scope's list (a rule's input, not a list block): counted.
    ([("block", "risk:x", NY)], (*SCOPES, "risk:x"), 2, [NY], True),
    # Two numbers in one call: the script cannot tell whose the hits are: counted.
    ([("block", "global", NY)], SCOPES, 2, [NY, "+12125550199"], True),
], ids=["unlisted", "blocked", "blocked-second-scope", "blocked-prefix", "forwards-blocked",
        "allowed-more-specific", "blocked-and-allowed-elsewhere", "tie",
        "referenced-scope", "two-numbers"])
async def test_a_send_the_lists_block_is_not_counted(
        real_redis: Any, redis_server: str, entries: list[tuple[str, str, str]],
        probed: tuple[str, ...], own: int, numbers: list[str], counted: bool) -> None:
    """lookup_counting with the request's own scopes: a number the lists block is only
    looked at (no counter written, nothing to take back); anything else is counted."""
    store = await lists_store(redis_server, entries)
    countings = [Counting(NY, "global", "sms", ((LIMIT, NY[1:]),))]
    try:
        _, [result] = await store.lookup_counting(numbers, probed, "sms", countings, own)
    finally:
        await store.close()
    assert bool(result.counters) is counted
    assert await real_redis.zcard(f"gk:vel:global:sms:{LIMIT.spec}:{NY[1:]}") == counted


ENTRY_SPELLINGS = st.sampled_from([NY, "+1212555*", "+1212*", "+1*"])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["block", "allow"]), st.sampled_from(SCOPES),
                          ENTRY_SPELLINGS), max_size=5))
def test_a_send_left_uncounted_is_one_the_lists_block(
        entries: list[tuple[str, str, str]]) -> None:
    """Whatever the entries: when the script leaves a send uncounted, the screening's
    own rule (`decide`) blocks the number, so no forwarded send goes uncounted; and a
    number it does not block is counted (fakeredis, the same script)."""
    async def run() -> None:
        store = Store(fakeredis.FakeAsyncRedis(decode_responses=True), RedisConfig(),
                      StoreConfig())
        for name, scope, entry in entries:
            await store.add(name, scope, [ListItem(entry)], META)  # type: ignore[arg-type]
        countings = [Counting(NY, "global", "sms", ((LIMIT, NY[1:]),))]
        found, [result] = await store.lookup_counting([NY], SCOPES, "sms", countings, 2)
        await store.close()
        blocked = decide(NY, SCOPES, found[NY]).verdict == "blocked"
        if not result.counters:
            assert blocked
        if not blocked:
            assert result.counters

    asyncio.run(run())
