"""DUMP payloads of packed buckets (store/dumps.py): byte for byte what the real server's
DUMP gives, restored exactly, refused when they could mislead an intset; and packed
loads written by RESTORE where the server takes it, by SADD where it does not."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.bulk import Importer, ImportOptions
from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.store import Store, connect
from gatekeeper.store.dumps import (
    RESTORE_MAX,
    crc64,
    intset_dump,
    rdb_length,
    restore_command,
)
from gatekeeper.store.keys import ListKeys
from tests.test_store_packed_split import body


def as_array(members: list[int]) -> Any:
    return np.array(members, dtype=np.int64)


def test_crc64_is_the_redis_catalogue_crc() -> None:
    """CRC-64/REDIS: the RevEng catalogue's check value, and 0 for nothing."""
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA
    assert crc64(b"") == 0


@pytest.mark.parametrize(("length", "encoded"), [
    (0, b"\x00"), (63, b"\x3f"), (64, b"\x40\x40"), (16383, b"\x7f\xff"),
    (16384, b"\x80\x00\x00\x40\x00"), (2**32 - 1, b"\x80\xff\xff\xff\xff"),
    (2**32, b"\x81\x00\x00\x00\x01\x00\x00\x00\x00"),
])
def test_rdb_length_encoding(length: int, encoded: bytes) -> None:
    """6-bit, 14-bit (big-endian), 32-bit and 64-bit lengths, as rdbSaveLen writes."""
    assert rdb_length(length) == encoded


@pytest.mark.parametrize("members", [
    [], [2, 1], [1, 1], [-1, 5], [0, 2**31], [3, 2, 7],
], ids=["empty", "descending", "repeated", "negative", "too-big", "unsorted"])
def test_no_payload_for_what_an_intset_cannot_hold_as_given(members: list[int]) -> None:
    """Redis does not check a payload's order: members not strictly increasing, negative
    or beyond 32 bits get no payload (the bucket then goes as SADD)."""
    assert intset_dump(as_array(members)) is None


def test_restore_command_is_resp_with_a_binary_payload() -> None:
    """The payload travels as it is, \\r\\n and all, with its length."""
    assert restore_command("k", b"a\r\nb") == (
        b"*4\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$4\r\na\r\nb\r\n")


MEMBER_SETS = {
    "one": [7],
    "int16-edge": [0, 1, 32767],
    "int32": [1, 32768],
    "6-bit-blob": list(range(20)),             # 8 + 40 bytes: one length byte
    "14-bit-blob": list(range(0, 9000, 3)),    # 6008 bytes: two
    "32-bit-blob": list(range(0, 9_999_999, 97)),  # 412,380 bytes: five
}


@pytest.mark.parametrize("members", MEMBER_SETS.values(), ids=MEMBER_SETS.keys())
async def test_payload_is_what_the_server_dumps(real_redis: Any, members: list[int]) -> None:
    """A set built by SADD, dumped by the real server (compression off, as the payload
    is never compressed), is byte for byte our payload; restored, it is the same set and
    an intset."""
    await real_redis.config_set("rdbcompression", "no")
    try:
        await real_redis.sadd("built", *members)
        assert await real_redis.dump("built") == intset_dump(as_array(members))
    finally:
        await real_redis.config_set("rdbcompression", "yes")
    payload = intset_dump(as_array(members))
    assert payload is not None
    await real_redis.restore("restored", 0, payload)
    assert await real_redis.object("encoding", "restored") in ("intset", b"intset")
    assert {int(m) for m in await real_redis.smembers("restored")} == set(members)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=2**31 - 1), min_size=1, max_size=300),
       st.integers(min_value=0, max_value=2**31 - 1))
async def test_restored_set_holds_exactly_the_members(
        redis_server: str, members: set[int], probe: int) -> None:
    """Whatever the members: the restored set answers SISMEMBER exactly as the set of
    them does, and holds nothing else."""
    ordered = sorted(members)
    payload = intset_dump(as_array(ordered))
    assert payload is not None
    client = aioredis.Redis.from_url(redis_server)
    try:
        await client.delete("prop")
        await client.restore("prop", 0, payload)
        assert await client.scard("prop") == len(ordered)
        for one in (probe, ordered[0], ordered[-1], ordered[-1] + 1):
            assert bool(await client.sismember("prop", one)) == (one in members)
    finally:
        await client.delete("prop")
        await client.aclose()


def store_on(url: str) -> Store:
    config = RedisConfig(url=url)
    return Store(connect(config), config, StoreConfig(), url)


def numbers(count: int, seed: int = 5) -> list[str]:
    """`count` distinct US numbers, most of them in one exchange block (a bucket bigger
    than RESTORE_MAX) and the rest spread."""
    rng = random.Random(seed)
    crowded = [f"+1212{n:07d}" for n in rng.sample(range(10**7), RESTORE_MAX + 5000)]
    spread = {f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
              for _ in range(count)}
    return sorted(set(crowded) | spread)


async def load_and_check(store: Store, entries: list[str]) -> None:
    report = await Importer(store, ImportOptions("block", "global", "replace")).run(
        body(entries))
    assert report.added == len(entries)
    sample = random.Random(1).sample(entries, 300)
    for number in sample:
        assert {m.entry for m in (await store.lookup([number], ["global"], "sms"))[number]
                } == {number}
    absent = f"+1213{0:07d}"
    assert absent not in entries
    assert not (await store.lookup([absent], ["global"], "sms"))[absent]


async def packed_buckets(client: Any, keys: ListKeys) -> list[str]:
    """The bucket keys of the list's packed load (a client decoding replies)."""
    base = await client.hget(keys.packed, "base")
    return [k for k in await client.keys(f"{base}*")
            if not k.endswith(("index", "probe", "filter"))]


async def test_a_load_is_restored_and_found_exactly(redis_server: str, real_redis: Any
                                                   ) -> None:
    """On a server that takes RESTORE: the load is written (a bucket beyond RESTORE_MAX
    too: restored, then the rest added) and every number is found; the probe key is
    gone; every bucket is an intset."""
    store = store_on(redis_server)
    try:
        entries = numbers(3000)
        await real_redis.config_resetstat()
        await load_and_check(store, entries)
        keys = store.keys.of("block", "global")
        buckets = await packed_buckets(real_redis, keys)
        assert buckets
        stats = await real_redis.info("commandstats")
        # One RESTORE a bucket and the probe's; SADD for the big bucket's rest (and one
        # in the swap's script), not a bucket's members.
        assert stats["cmdstat_restore"]["calls"] == len(buckets) + 1
        assert len(buckets) > 500
        assert stats["cmdstat_sadd"]["calls"] <= 2
        assert not await real_redis.keys("*probe")
        encodings = {await real_redis.object("encoding", k) for k in buckets}
        assert encodings == {"intset"}
        sizes = [await real_redis.scard(k) for k in buckets]
        assert max(sizes) > RESTORE_MAX
        assert sum(sizes) == len(entries)
    finally:
        await store.close()


async def test_a_server_refusing_restore_gets_sadd(redis_server: str, real_redis: Any
                                                   ) -> None:
    """A user whose ACL refuses RESTORE: the same load goes as SADD and every number is
    found all the same."""
    await real_redis.acl_setuser("norestore", enabled=True, passwords=["+pw-norestore"],
                                 keys=["*"], commands=["+@all", "-restore"])
    host_port = redis_server.rsplit("@", 1)[-1].split("/", maxsplit=1)[0]
    store = store_on(f"redis://norestore:pw-norestore@{host_port}/0")
    try:
        with pytest.raises(Exception, match=r"NOPERM|no permissions"):
            await store.client.restore("x", 0, intset_dump(as_array([1])) or b"")
        entries = numbers(500, seed=9)
        await real_redis.config_resetstat()
        await load_and_check(store, entries)
        keys = store.keys.of("block", "global")
        buckets = await packed_buckets(real_redis, keys)
        assert sum([await real_redis.scard(k) for k in buckets]) == len(entries)
        stats = await real_redis.info("commandstats")
        assert stats.get("cmdstat_restore", {}).get("calls", 0) == 0
        assert stats["cmdstat_sadd"]["calls"] >= len(buckets)
    finally:
        await store.close()
        await real_redis.acl_deluser("norestore")
