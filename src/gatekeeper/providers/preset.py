"""The preset contract: a gateway preset is a table of routes plus a few replies.

A `Route` names the requests that are sends (methods and path templates), their channel,
where their recipients are (a `Locator`), and the replies a blocked send gets: `reject`
(the gateway's own error, which its SDK raises) and `skip` (its success shape, nothing
sent). A `Preset` holds its routes, the credentials it reads (mapped to scopes), its
401 reply, the writes it knows to send nothing, and its list API if it has one.
Locators never raise for bad input; they return a `BodyError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gatekeeper.providers.routing import PathPattern, template
from gatekeeper.replies import Reply
from gatekeeper.rules import Intent, RuleResult, blocked_because
from gatekeeper.types import Channel

if TYPE_CHECKING:
    from gatekeeper.config import UpstreamConfig
    from gatekeeper.providers.listapi import ListApi

# Methods that write; a route naming POST also takes PUT and PATCH (see `match_route`).
WRITES = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class BodyError:
    """Why a request could not be checked; `code` is returned to the client."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Message:
    """The parts of a request a locator reads and may rewrite."""

    body: bytes
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recipients:
    """The recipients of one send, and how to drop some of them from the request.

    `remover` is None when the request must not be edited (a lone recipient field, a
    signed request, a field some server could read another way).
    """

    values: tuple[str, ...]
    remover: Callable[[frozenset[str]], Message | None] | None = None

    def without(self, blocked: frozenset[str]) -> Message | None:
        """The request without the `blocked` recipients, or None if it cannot be edited."""
        return None if self.remover is None else self.remover(blocked)

    def fixed(self) -> Recipients:
        """The same recipients, never edited."""
        return Recipients(self.values)


class Locator(Protocol):
    """Finds the recipients of a send."""

    def find(self, message: Message) -> Recipients | BodyError:
        """The recipients, or why the request is unusable."""
        ...


@dataclass(frozen=True, slots=True)
class Blocked:
    """What a reply needs to describe a blocked send."""

    request_id: str
    channel: Channel | None
    destination: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    message: Message = field(default_factory=lambda: Message(b""))
    destinations: tuple[str, ...] = ()
    rule: RuleResult | None = None
    """The policy rule that blocked `destination` (rules.py); None: a list entry."""

    @property
    def why(self) -> str:
        """Why it was blocked, in words a reply can carry (never the number)."""
        return blocked_because(self.rule)


ReplyFn = Callable[[Blocked], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    """A send: methods, path templates, channel, recipients, and its two replies.

    `reads_query`: the locator reads the query string itself (a GET send, a gateway that
    takes parameters in either place); otherwise phone numbers in the query of a send
    are decided too and make the request uneditable.
    """

    methods: frozenset[str]
    paths: tuple[PathPattern, ...]
    channel: Channel | None  # None: a send by either channel (sms- and voice-only entries count)
    locator: Locator
    reject: ReplyFn
    skip: ReplyFn
    reads_query: bool = False
    intent: Intent | None = None  # None: the upstream's


def route(methods: str, paths: str | tuple[str, ...], channel: Channel | None,
          locator: Locator,
          reject: ReplyFn, skip: ReplyFn, *, ext: bool = False,
          reads_query: bool = False, intent: Intent | None = None) -> Route:
    """A route table row: `methods` space-separated, one template or several."""
    templates = (paths,) if isinstance(paths, str) else paths
    return Route(frozenset(methods.split()), tuple(template(p, ext=ext) for p in templates),
                 channel, locator, reject, skip, reads_query, intent)


def match_route(routes: tuple[Route, ...], method: str, path: str
                ) -> tuple[Route, dict[str, str]] | None:
    """The first route taking `method` on `path` (a `Target.match`), with its captures.

    A PUT or PATCH on a path whose route names only POST is checked as that send: a
    gateway may take either, and a send must not slip past by its method.
    """
    fallback: tuple[Route, dict[str, str]] | None = None
    for candidate in routes:
        for pattern in candidate.paths:
            params = pattern.match(path)
            if params is None:
                continue
            if method in candidate.methods:
                return candidate, params
            if fallback is None and method in WRITES and "POST" in candidate.methods:
                fallback = (candidate, params)
    return fallback


class Preset(Protocol):
    """A gateway preset: one module each, registered in `providers.PRESETS`."""

    name: str
    # Digits-only recipients are international numbers without `+` (e.g. `447700900123`).
    msisdn: bool
    # Region for national-format numbers when the upstream sets none.
    default_region: str | None
    # Writes known to send nothing although they may carry numbers (buying a number...):
    # not deep-scanned as unknown writes.
    quiet_writes: tuple[PathPattern, ...]
    # The provider's own list API, answered from Gatekeeper's store (None: it has none).
    list_api: ListApi | None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        """The send routes for this upstream (built once at start-up)."""
        ...

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        """Credentials the request carries (path is `Target.match` below the mount), as
        keys of `upstreams[].credentials`."""
        ...

    def unauthorized(self, request_id: str) -> Reply:
        """The gateway's own 401, for a credential Gatekeeper cannot map to scopes."""
        ...

    def refuse(self, blocked: Blocked) -> Reply:
        """The gateway's own refusal of a blocked destination on a path no route
        describes (a scanned write)."""
        ...
