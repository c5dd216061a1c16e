"""Lookups of several numbers in one call: each candidate member is sent once, made of
slices of the numbers' cached encodings, and every number gets exactly the matches it
gets when looked up alone (on the lean pipe of a real redis-server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.config import RedisConfig, StoreConfig
from gatekeeper.embedded import EmbeddedRedis
from gatekeeper.store import EntryMeta, ListItem, Store, connect
from gatekeeper.store.lookup import _candidates, _joined
from gatekeeper.store.pipe import resp_bulk
from gatekeeper.types import Channel

pytestmark = pytest.mark.integration

# Numbers that share prefixes often: few digits to choose from, varied lengths.
NUMBERS = st.builds(lambda digits: "+" + digits,
                    st.text(alphabet="1230", min_size=2, max_size=15).filter(
                        lambda d: not d.startswith("0")))
CHANNELS: st.SearchStrategy[Channel | None] = st.sampled_from([None, "sms", "voice"])


@given(numbers=st.lists(NUMBERS, min_size=2, max_size=40, unique=True), channel=CHANNELS)
def test_joined_sends_every_member_once(numbers: list[str], channel: Channel | None) -> None:
    """The union of the numbers' members, no duplicate, encoded as resp_bulk would."""
    members, encoded = _joined(numbers, channel)
    union = {m for n in numbers for m in _candidates(n, channel)[0]}
    assert len(members) == len(set(members))
    assert set(members) == union
    assert encoded == b"".join(resp_bulk(m) for m in members)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[asyncio.Runner, Store]]:
    """A store on a redis-server of this module's own, with prefixes and numbers listed."""
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("joined-redis")))
    url = server.start().url
    config = RedisConfig(url=url)
    try:
        with asyncio.Runner() as runner:
            found = Store(connect(config, url), config, StoreConfig(), url)

            async def load() -> None:
                await found.prepare()
                meta = EntryMeta("test", time.time())
                await found.add("block", "global", [
                    ListItem("+1*"), ListItem("+123*"), ListItem("+1203", "sms"),
                    ListItem("+2*", "voice"), ListItem("+3210")], meta)
                await found.add("allow", "global", [ListItem("+12*"), ListItem("+1203")],
                                meta)
                await found.add("block", "tenant:a", [ListItem("+1*"), ListItem("+31*")],
                                meta)

            runner.run(load())
            yield runner, found
            runner.run(found.close())
    finally:
        server.stop()


@settings(max_examples=40, deadline=None)
@given(numbers=st.lists(NUMBERS, min_size=1, max_size=40, unique=True), channel=CHANNELS)
def test_several_numbers_match_as_each_alone(
        store: tuple[asyncio.Runner, Store], numbers: list[str],
        channel: Channel | None) -> None:
    """One call for all the numbers finds, per number, the matches of its own call."""
    runner, found = store
    scopes = ("global", "tenant:a")
    together = runner.run(found.lookup(numbers, scopes, channel))
    for number in numbers:
        alone = runner.run(found.lookup([number], scopes, channel))
        assert sorted(map(repr, together[number])) == sorted(map(repr, alone[number]))
