"""The policy set through the admin API (`PUT /admin/v1/policy`), shared by every
process: its document (the `policy:` section as JSON) and a version each process polls
to pick a change up (resources.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from gatekeeper.store.base import StoreBase
from gatekeeper.store.faults import guarded


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """The stored policy: `doc` None when the admin API cleared it (the config's
    applies), with who changed it and when."""

    version: int
    doc: str | None
    updated_by: str
    updated_at: float


class PolicyDocMixin(StoreBase):
    """Reading and writing the admin API's policy document."""

    @property
    def _policy_key(self) -> str:
        return f"{self.keys.prefix}policy"

    @guarded
    async def policy_version(self) -> int:
        """The stored policy's version (0: never set)."""
        return int(cast(str | None, await self.client.hget(self._policy_key, "version"))
                   or 0)

    @guarded
    async def policy_document(self) -> PolicyDocument | None:
        """The stored policy, None if the admin API never set one."""
        raw = cast(dict[str, str], await self.client.hgetall(self._policy_key))
        if not raw.get("version"):
            return None
        return PolicyDocument(int(raw["version"]), raw.get("doc") or None,
                              raw.get("updated_by", ""), float(raw.get("updated_at") or 0))

    @guarded
    async def put_policy_document(self, doc: str | None, by: str) -> int:
        """Store a policy document (None: clear it, the config's applies); its version."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._policy_key, "version", 1)
            pipe.hset(self._policy_key, mapping={
                "doc": doc or "", "updated_by": by, "updated_at": repr(time.time())})
            version, _ = await pipe.execute()
        await self._settle(self._policy_key)
        return int(version)
