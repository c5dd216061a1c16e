"""Helpers shared by the preset tests: requests routed the way the proxy routes them.

The proxy reads the request target once (`target.match_path`: decoded, single slashes,
no trailing slash, odd spellings refused) and matches the preset's routes on that path.
These helpers take a raw path below the mount, as a client would send it, and do the
same, so a table of raw spellings reads like the requests it stands for.
"""

from __future__ import annotations

import json
from typing import Any

from gatekeeper.providers.preset import BodyError, Locator, Message, Recipients, Route, match_route
from gatekeeper.replies import Reply
from gatekeeper.target import TargetError, match_path
from gatekeeper.types import Channel

# Outcomes of a request line other than a matched route's channel (None: both channels).
PASSES = "passes"    # no send route: not checked as a send
REFUSED = "refused"  # the target itself is refused at the edge (400 invalid_path)


def canonical(raw_path: str) -> str:
    """The path routes are matched on; fails the test when the target is refused."""
    path = match_path(raw_path)
    assert not isinstance(path, TargetError), f"{raw_path!r} is refused: {path.reason}"
    return path


def match(routes: tuple[Route, ...], method: str, raw_path: str
          ) -> tuple[Route, dict[str, str]] | None:
    """`match_route` on the canonical form of `raw_path`."""
    return match_route(routes, method, canonical(raw_path))


def route_for(routes: tuple[Route, ...], method: str, raw_path: str) -> Route:
    """The route a request matches; fails the test when it matches none."""
    found = match(routes, method, raw_path)
    assert found is not None, f"{method} {raw_path} matches no route"
    return found[0]


def outcome(routes: tuple[Route, ...], method: str, raw_path: str) -> Channel | str | None:
    """What the proxy makes of a request line: REFUSED, PASSES, or the channel of the
    route it matches (None for a route decided on both channels)."""
    path = match_path(raw_path)
    if isinstance(path, TargetError):
        return REFUSED
    found = match_route(routes, method, path)
    return PASSES if found is None else found[0].channel


def found(locator: Locator, message: Message) -> Recipients:
    """The locator's recipients; fails the test on a BodyError."""
    result = locator.find(message)
    assert isinstance(result, Recipients), result
    return result


def refused(locator: Locator, message: Message) -> BodyError:
    """The locator's BodyError; fails the test when it finds recipients."""
    result = locator.find(message)
    assert isinstance(result, BodyError), result
    return result


def reply_json(reply: Reply) -> Any:
    """A reply's JSON body."""
    return json.loads(reply.body)
