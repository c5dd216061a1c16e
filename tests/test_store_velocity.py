"""The velocity script's reply on a real redis-server: the integer 0 when every number
came out clear (the common case, cheaper to read), the per-number arrays otherwise; and
the store reads both the same way."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.rules import VelocityLimit
from gatekeeper.store.scripts import VELOCITY_LUA
from gatekeeper.store.velocity import _read
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
    batch = (group, [], b"", b"", 0, counters, firsts)
    assert _read(batch, "m", 0) == _read(batch, "m", [[0, 0, 0, 0] for _ in group])
