"""The attempts stream: blocked sends appended as they happen, read back newest first."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import cast

from gatekeeper.store.base import StoreBase
from gatekeeper.store.faults import guarded


@dataclass(frozen=True, slots=True)
class BlockedAttempt:
    """One blocked (or would-be-blocked) attempt, as appended to the attempts stream."""

    request_id: str
    upstream: str
    channel: str
    direction: str
    number: str
    scopes: str
    scope: str
    list: str
    entry: str
    action: str
    rule: str = "list"
    """What blocked it: `list`, or a policy rule kind (`country`, `number_type`...)."""
    detail: str = ""
    """The rule's detail (a region, a number type, a quiet-hours place)."""


class AttemptsMixin(StoreBase):
    """The attempts-stream operations of the Store."""

    @guarded
    async def append_attempt(self, attempt: BlockedAttempt) -> str:
        """Append a blocked attempt to the capped stream; returns its stream id."""
        fields: Mapping[str, str] = {"ts": f"{time.time():.3f}", **asdict(attempt)}
        # On the lookup transport (the lean pipe when there is one): one per blocked send.
        return await self._transport.append(self.keys.attempts, fields,
                                            self._attempts_max_len)

    @guarded
    async def read_attempts(self, newest: str = "+", oldest: str = "-", count: int = 500
                            ) -> list[tuple[str, dict[str, str]]]:
        """Up to `count` attempts between two stream ids, newest first."""
        entries = await self.client.xrevrange(self.keys.attempts, newest, oldest,
                                              count=count)
        return [(str(i), dict(f)) for i, f in cast(list[tuple[str, dict[str, str]]], entries)]
