"""Providers' own list APIs, served by the proxy on the upstream's mount.

Some gateways let clients manage an allow or block list through their API (Prelude's
verification management, iletiMerkezi's blacklist). A client pointed at Gatekeeper
keeps calling those endpoints; the proxy hands them to the preset's `ListApi` before any
route matching, and it applies the change to Gatekeeper's store in the provider's reply
shape, so the provider's SDK works unchanged.

The scope comes from the upstream's credential mapping (`upstreams[].credentials`, the
FIRST scope the credential maps to). A list API removes only entries that a list API
of the same provider added: an entry an operator added (admin API, import, opt-out)
stays, the caller gets the provider's "not found" answer and the refusal is logged.
`ListReply.wrote` marks a write that succeeded here (idempotent no-ops included): with
`mirror: true` on the upstream, the proxy forwards exactly those calls once to the
provider, so its own list stays in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from gatekeeper.providers.credentials import identity_key
from gatekeeper.replies import Reply
from gatekeeper.store import ListItem, Store
from gatekeeper.types import CHANNELS, ListName

Logger = structlog.typing.FilteringBoundLogger


@dataclass(frozen=True, slots=True)
class ListReply:
    """A list API's answer; `wrote` marks a successful list write (the calls mirrored)."""

    reply: Reply
    wrote: bool = False


@dataclass(frozen=True, slots=True)
class ListCall:
    """One call of a provider's list API as the proxy received it."""

    request_id: str
    method: str
    path: str                       # below the mount, as routes match it (Target.match)
    headers: Mapping[str, str]
    body: bytes
    upstream: str                   # the upstream's name, for audit
    credentials: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def scope_for(self, identity: str | None) -> str | None:
        """The first scope `identity` maps to; None for a credential that maps to nothing."""
        scopes = self.credentials.get(identity_key(identity), ()) if identity else ()
        return scopes[0] if scopes else None

    def answer(self, reply: Reply, *, wrote: bool = False) -> ListReply:
        """Wrap a reply (`wrote`: a list write that succeeded, mirrored if configured)."""
        return ListReply(reply, wrote)


class ListApi(Protocol):
    """A preset's list API: which calls it serves and how."""

    def matches(self, method: str, path: str) -> bool:
        """True for a call this API answers (`path` as routes match it)."""
        ...

    async def handle(self, call: ListCall, store: Store, log: Logger) -> ListReply:
        """Apply the call to the store and answer in the provider's shape.

        Store faults propagate as `StoreUnavailable` (the proxy answers 503).
        """
        ...


async def remove_own(call: ListCall, store: Store, log: Logger, name: ListName, scope: str,
                     number: str, source: str) -> bool | None:
    """Remove `number` if this list API's `source` added it: True when removed, None
    when absent, False when another source added it (kept, and the refusal logged)."""
    item = ListItem(number)
    if await store.remove_if_source(name, scope, item, source):
        return True
    # An operator's entry for one channel (`+30...#sms`) is theirs too: kept, refused.
    matches = [m for channel in CHANNELS
               for m in (await store.lookup([number], [scope], channel))[number]]
    if not any(m.list == name and m.entry == number for m in matches):
        return None
    log.warning("list_api_remove_refused", request_id=call.request_id,
                upstream=call.upstream, scope=scope, list=name, source=source,
                reason="the entry was not added through this list API")
    return False
