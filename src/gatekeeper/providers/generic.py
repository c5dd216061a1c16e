"""The `generic` preset: routes come from config; replies use Gatekeeper's own shape."""

from __future__ import annotations

from gatekeeper.config import RouteConfig, UpstreamConfig
from gatekeeper.providers.credentials import basic_user, token_digest
from gatekeeper.providers.locators import FormField, JsonPath
from gatekeeper.providers.policy_text import because, policy_rule
from gatekeeper.providers.preset import Blocked, Locator, Message, Route, route
from gatekeeper.replies import Reply, gatekeeper_error, json_reply


def _locator(config: RouteConfig) -> Locator:
    if config.destination.source == "json":
        return JsonPath(config.destination.path)
    return FormField(config.destination.path)


def reject(blocked: Blocked) -> Reply:
    """403 in Gatekeeper's own error shape: `destination_blocked` for a list entry,
    `policy_blocked` with why for a policy rule."""
    if policy_rule(blocked) is None:
        return gatekeeper_error(403, "destination_blocked",
                                "The destination is on a block list.", blocked.request_id,
                                "forbidden")
    return gatekeeper_error(403, "policy_blocked", because("The destination is blocked", blocked),
                            blocked.request_id, "forbidden")


def skip(blocked: Blocked) -> Reply:
    """200 `{"id", "status": "skipped"}`."""
    return json_reply(200, {"id": blocked.request_id, "status": "skipped"})


class GenericPreset:
    """Any JSON or form gateway described entirely in config: a `{name}` or `*` in a
    route's path matches one segment."""

    name = "generic"
    msisdn = False
    default_region: str | None = None
    quiet_writes = ()
    list_api = None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        return tuple(route(r.method, r.path, r.channel, _locator(r), reject, skip,
                           intent=r.intent)
                     for r in upstream.routes)

    def identities(self, message: Message, path: str) -> tuple[str, ...]:
        found = (basic_user(message.headers), token_digest(message.headers))
        return tuple(i for i in found if i)

    def unauthorized(self, request_id: str) -> Reply:
        return gatekeeper_error(401, "unauthorized",
                                "The request's credential maps to no configured scope.",
                                request_id)


    def refuse(self, blocked: Blocked) -> Reply:
        return reject(blocked)

PRESET = GenericPreset()
