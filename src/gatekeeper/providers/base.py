"""What a gateway preset is: its intercepted routes, where recipients sit, its replies.

A preset module defines a `Preset`: `routes()` for an upstream (precomputed at start-up),
and `reject()` / `skip()` replies built from a `Blocked` context. Locators find the
recipients in a body; they never raise for bad input, they return a `BodyError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, unquote

from gatekeeper.config import Channel, UpstreamConfig


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP reply a preset builds without contacting the upstream."""

    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class BodyError:
    """Why a body could not be checked; `code` is returned to the client."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """What a preset needs to shape a reject or skip reply."""

    request_id: str
    channel: Channel
    destination: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)


class Locator(Protocol):
    """Finds the recipients of a send in its body."""

    def find(self, body: bytes) -> list[str] | BodyError:
        """The destination strings, or why the body is unusable."""
        ...


def parse_form(body: bytes) -> dict[str, list[str]] | BodyError:
    """Decode an `application/x-www-form-urlencoded` body (UTF-8)."""
    try:
        # Empty fields (`a=1&&b=2`, a trailing `&`) are harmless; a field without `=` is not.
        text = "&".join(part for part in body.decode("utf-8").split("&") if part)
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        return BodyError("invalid_form", "the body is not a valid UTF-8 url-encoded form")
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


@dataclass(frozen=True, slots=True)
class FormField:
    """Recipients in a form field (every occurrence counts)."""

    name: str

    def find(self, body: bytes) -> list[str] | BodyError:
        form = parse_form(body)
        if isinstance(form, BodyError):
            return form
        values = [v for v in form.get(self.name, []) if v.strip()]
        if not values:
            return BodyError("missing_destination", f"form field '{self.name}' is missing")
        return values


@dataclass(frozen=True, slots=True)
class JsonPath:
    """Recipients at a dotted JSON path; `name[]` walks into an array (`a[].b`)."""

    path: str
    steps: tuple[tuple[str, bool], ...] = field(init=False)

    def __post_init__(self) -> None:
        steps = tuple((part.removesuffix("[]"), part.endswith("[]"))
                      for part in self.path.split("."))
        object.__setattr__(self, "steps", steps)

    def find(self, body: bytes) -> list[str] | BodyError:
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            # RecursionError: nesting too deep for the decoder (`[[[[...`), still bad input.
            return BodyError("invalid_json", "the body is not valid JSON")
        nodes: list[object] = [doc]
        for name, is_array in self.steps:
            found: list[object] = []
            for node in nodes:
                if not isinstance(node, dict) or name not in node:
                    continue
                value = node[name]
                if is_array:
                    if not isinstance(value, list):
                        return BodyError("invalid_destination_field",
                                         f"'{self.path}': '{name}' is not an array")
                    found.extend(value)
                else:
                    found.append(value)
            nodes = found
        values: list[str] = []
        for node in nodes:
            # A leaf may be one recipient or a list of them (`to` as string or array).
            leaves = node if isinstance(node, list) else [node]
            for leaf in leaves:
                if not isinstance(leaf, str):
                    return BodyError("invalid_destination_field",
                                     f"'{self.path}' holds a {type(leaf).__name__}, not a string")
                if leaf.strip():
                    values.append(leaf)
        if not values:
            return BodyError("missing_destination", f"no destination at '{self.path}'")
        return values


@dataclass(frozen=True, slots=True)
class Route:
    """An intercepted route: method, path pattern (on the path below the mount), channel."""

    method: str
    pattern: re.Pattern[str]
    channel: Channel
    locator: Locator


def normalise_path(raw: str) -> str:
    """The path routes are matched on: decoded, no repeated or trailing slashes, and
    `.` / `..` segments resolved (RFC 3986 5.2.4; `..` stops at the root).

    Matching is looser than the gateway's own routing on purpose: a request that could
    reach a send endpoint must not slip past the check by spelling its path oddly.
    """
    segments: list[str] = []
    for segment in unquote(raw).split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments)


def match_route(routes: tuple[Route, ...], method: str, raw_path: str
                ) -> tuple[Route, dict[str, str]] | None:
    """The first route matching the request, with the pattern's named groups."""
    path = normalise_path(raw_path)
    for route in routes:
        if route.method == method:
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
    return None


def json_reply(status: int, payload: object, content_type: str = "application/json") -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(payload).encode(), content_type)


def gatekeeper_error(status: int, code: str, message: str, request_id: str,
                     error_type: str) -> Reply:
    """Gatekeeper's own error shape: code, message, type, request_id."""
    return json_reply(status, {"code": code, "message": message, "type": error_type,
                               "request_id": request_id})


class Preset(Protocol):
    """A gateway preset: one small module each, registered in `providers.PRESETS`."""

    name: str

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        """The intercepted routes for this upstream (built once at start-up)."""
        ...

    def reject(self, blocked: Blocked) -> Reply:
        """The refusal this gateway's SDK turns into its normal error."""
        ...

    def skip(self, blocked: Blocked) -> Reply:
        """A success in this gateway's own shape, sent without contacting it."""
        ...
