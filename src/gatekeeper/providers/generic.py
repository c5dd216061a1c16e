"""The `generic` preset: routes come from config; replies use Gatekeeper's own shape."""

from __future__ import annotations

import re
from collections.abc import Mapping

from gatekeeper.config import RouteConfig, UpstreamConfig
from gatekeeper.providers.base import (
    Blocked,
    FormField,
    JsonPath,
    Locator,
    Message,
    Reply,
    Route,
    basic_user,
    gatekeeper_error,
    json_reply,
    token_digest,
)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_path(pattern: str) -> re.Pattern[str]:
    """`/v1/{account}/sms/*` -> a regex: `{name}` and `*` each match one path segment."""
    out, pos = [], 0
    for found in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:found.start()]).replace(r"\*", "[^/]+"))
        out.append(f"(?P<{found.group(1)}>[^/]+)")
        pos = found.end()
    out.append(re.escape(pattern[pos:]).replace(r"\*", "[^/]+"))
    body = "".join(out).rstrip("/") or "/"
    return re.compile(f"^{body}$")


def _locator(route: RouteConfig) -> Locator:
    if route.destination.source == "json":
        return JsonPath(route.destination.path)
    return FormField(route.destination.path)


class GenericPreset:
    """Any JSON or form gateway described entirely in config."""

    name = "generic"
    msisdn = False
    default_region: str | None = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return tuple(Route(r.method, compile_path(r.path), r.channel, _locator(r))
                     for r in upstream.routes)

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        found = (basic_user(message.headers), token_digest(message.headers))
        return tuple(i for i in found if i)

    def reject(self, blocked: Blocked) -> Reply:
        return gatekeeper_error(403, "destination_blocked",
                                "The destination is on a block list.",
                                blocked.request_id, "forbidden")

    def skip(self, blocked: Blocked) -> Reply:
        return json_reply(200, {"id": blocked.request_id, "status": "skipped"})


PRESET = GenericPreset()
