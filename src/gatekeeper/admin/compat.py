"""Providers' own list APIs, served by the proxy on the upstream's mount.

Some gateways let their clients manage an allow or block list through their API
(Prelude's verification management, iletiMerkezi's blacklist). A client pointed at
Gatekeeper keeps calling those endpoints; the proxy hands them to the preset's
`CompatHandler` before any route matching, and the handler applies the change to
Gatekeeper's store in its own reply shape, so the provider's SDK works unchanged.

A handler is registered in `COMPAT` under its preset's name. It answers `matches()` for
the calls it serves and `handle()`s them: the store and logger come from the proxy, the
scope from the upstream's credential mapping (`upstreams[].credentials`, the FIRST scope
the credential maps to). `CompatReply.wrote` marks a write that succeeded here
(idempotent no-ops included): with `mirror: true` on the upstream, the proxy forwards
exactly those calls once to the provider, so its own list stays in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from gatekeeper.admin.iletimerkezi_lists import IletiMerkeziLists
from gatekeeper.admin.prelude_lists import PreludeLists
from gatekeeper.providers.base import Reply
from gatekeeper.store import Store

Logger = structlog.typing.FilteringBoundLogger


@dataclass(frozen=True, slots=True)
class CompatReply:
    """A handler's answer; `wrote` marks a successful list write (the calls mirrored)."""

    reply: Reply
    wrote: bool = False


@dataclass(frozen=True, slots=True)
class CompatCall:
    """One call of a provider's list API as the proxy received it."""

    request_id: str
    method: str
    path: str                       # below the mount, without the query
    headers: Mapping[str, str]
    body: bytes
    upstream: str                   # the upstream's name, for audit
    credentials: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def scope_for(self, identity: str | None) -> str | None:
        """The first scope `identity` maps to; None for a credential that maps to nothing."""
        scopes = self.credentials.get(identity, ()) if identity else ()
        return scopes[0] if scopes else None

    def answer(self, reply: Reply, *, wrote: bool = False) -> CompatReply:
        """Wrap a reply.

        Handlers build their replies through this: this module imports theirs for the
        table, so they import it only for type checking (no import cycle).
        """
        return CompatReply(reply, wrote)


class CompatHandler(Protocol):
    """A preset's list API: which calls it serves and how."""

    def matches(self, method: str, path: str) -> bool:
        """True for a call this handler answers (`path` is below the mount, raw)."""
        ...

    async def handle(self, call: CompatCall, store: Store, log: Logger) -> CompatReply:
        """Apply the call to the store and answer in the provider's shape.

        Store faults propagate as `StoreUnavailable` (the proxy answers 503).
        """
        ...


# The one table: preset name -> its list API. Presets absent here have none.
COMPAT: dict[str, CompatHandler] = {
    "prelude": PreludeLists(),
    "iletimerkezi": IletiMerkeziLists(),
}
