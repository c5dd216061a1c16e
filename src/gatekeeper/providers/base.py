"""What a gateway preset is: its intercepted routes, where recipients sit, its replies.

A preset module defines a `Preset`: `routes()` for an upstream (precomputed at start-up),
`identities()` (credentials that map to scopes), and `reject()` / `skip()` replies built
from a `Blocked` context. A route's locator finds the recipients of a send and can
rewrite the request without some of them, keeping its shape and encoding. Locators never
raise for bad input; they return a `BodyError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol
from urllib.parse import quote_plus, unquote, unquote_plus

from gatekeeper.config import UpstreamConfig
from gatekeeper.types import Channel

JsonDoc = object
# A concrete position in a JSON document: keys and list indices from the root.
JsonPosition = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP reply a preset builds without contacting the upstream."""

    status: int
    body: bytes
    content_type: str = "application/json"


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
class Blocked:
    """What a preset needs to shape a reject or skip reply."""

    request_id: str
    channel: Channel
    destination: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    message: Message = field(default_factory=lambda: Message(b""))
    destinations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recipients:
    """The recipients of one send, and how to drop some of them from the request."""

    values: tuple[str, ...]
    remover: Callable[[frozenset[str]], Message | None] | None = None

    def without(self, blocked: frozenset[str]) -> Message | None:
        """The request without the `blocked` recipients, or None if it cannot be edited."""
        return None if self.remover is None else self.remover(blocked)


class Locator(Protocol):
    """Finds the recipients of a send."""

    def find(self, message: Message) -> Recipients | BodyError:
        """The recipients, or why the request is unusable."""
        ...


# ------------------------------------------------------------------ forms and queries

@dataclass(frozen=True, slots=True)
class FormPair:
    """One `name=value` field of a form, decoded, with its raw text kept."""

    name: str
    value: str
    raw: str


def parse_form_pairs(text: str) -> list[FormPair] | BodyError:
    """Decode url-encoded fields (UTF-8), keeping each field's raw text."""
    pairs: list[FormPair] = []
    try:
        for raw in text.split("&"):
            if not raw:
                continue  # `a=1&&b=2` and a trailing `&` are harmless
            name, sep, value = raw.partition("=")
            if not sep:
                return BodyError("invalid_form", f"form field {name[:40]!r} has no '='")
            pairs.append(FormPair(unquote_plus(name, errors="strict"),
                                  unquote_plus(value, errors="strict"), raw))
    except UnicodeDecodeError:
        return BodyError("invalid_form", "the form is not valid UTF-8 once decoded")
    return pairs


def parse_form(body: bytes) -> dict[str, list[str]] | BodyError:
    """Decode an `application/x-www-form-urlencoded` body into lists of values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return BodyError("invalid_form", "the body is not UTF-8")
    pairs = parse_form_pairs(text)
    if isinstance(pairs, BodyError):
        return pairs
    form: dict[str, list[str]] = {}
    for pair in pairs:
        form.setdefault(pair.name, []).append(pair.value)
    return form


def _split(value: str, separator: str | None) -> list[str]:
    parts = value.split(separator) if separator else [value]
    return [p for p in parts if p.strip()]


@dataclass(frozen=True, slots=True)
class FormField:
    """Recipients in a url-encoded field of the body (or of the query string).

    Every occurrence counts; with a `separator` one field holds several recipients.
    Removing recipients drops their fields (or their parts) and keeps every other
    field's raw bytes as they were.
    """

    name: str
    separator: str | None = None
    in_query: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        if self.in_query:
            text = message.query
        else:
            try:
                text = message.body.decode("utf-8")
            except UnicodeDecodeError:
                return BodyError("invalid_form", "the body is not UTF-8")
        pairs = parse_form_pairs(text)
        if isinstance(pairs, BodyError):
            return pairs
        values = [part for p in pairs if p.name == self.name
                  for part in _split(p.value, self.separator)]
        if not values:
            where = "query parameter" if self.in_query else "form field"
            return BodyError("missing_destination", f"{where} '{self.name}' is missing")

        def remove(blocked: frozenset[str]) -> Message | None:
            kept: list[str] = []
            for pair in pairs:
                if pair.name != self.name:
                    kept.append(pair.raw)
                    continue
                parts = [p for p in _split(pair.value, self.separator) if p not in blocked]
                if parts == _split(pair.value, self.separator):
                    kept.append(pair.raw)
                elif parts:
                    joined = (self.separator or "").join(parts)
                    kept.append(f"{pair.raw.partition('=')[0]}={quote_plus(joined, safe='')}")
            text = "&".join(kept)
            if self.in_query:
                return replace(message, query=text)
            return replace(message, body=text.encode())

        return Recipients(tuple(values), remove)


# ------------------------------------------------------------------ JSON

def load_json(body: bytes) -> JsonDoc | BodyError:
    """Decode a JSON body; bad input is a BodyError, never an exception."""
    try:
        return json.loads(body)  # type: ignore[no-any-return]
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting too deep for the decoder (`[[[[...`), still bad input.
        return BodyError("invalid_json", "the body is not valid JSON")


def dump_json(doc: JsonDoc) -> bytes:
    """Encode a rewritten document (UTF-8, compact)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _parse_steps(path: str) -> tuple[tuple[str, bool], ...]:
    return tuple((part.removesuffix("[]"), part.endswith("[]")) for part in path.split("."))


def json_leaves(doc: JsonDoc, path: str, one_or_many: frozenset[str] = frozenset()
                ) -> list[tuple[object, JsonPosition]] | BodyError:
    """The values at a dotted path with their positions; `a[]` walks into array `a`.

    Names in `one_or_many` may hold an array or a single object. A leaf that is an array
    yields each element (a `to` that is a string or an array of strings).
    """
    nodes: list[tuple[object, JsonPosition]] = [(doc, ())]
    for name, is_array in _parse_steps(path):
        found: list[tuple[object, JsonPosition]] = []
        for node, pos in nodes:
            if not isinstance(node, dict) or name not in node:
                continue
            value = node[name]
            if is_array:
                if isinstance(value, list):
                    found.extend((v, (*pos, name, i)) for i, v in enumerate(value))
                elif name in one_or_many and isinstance(value, dict):
                    found.append((value, (*pos, name)))
                else:
                    return BodyError("invalid_destination_field",
                                     f"'{path}': '{name}' is not an array")
            else:
                found.append((value, (*pos, name)))
        nodes = found
    leaves: list[tuple[object, JsonPosition]] = []
    for node, pos in nodes:
        if isinstance(node, list):
            leaves.extend((v, (*pos, i)) for i, v in enumerate(node))
        else:
            leaves.append((node, pos))
    return leaves


def _container(doc: JsonDoc, pos: JsonPosition) -> object:
    node = doc
    for key in pos:
        node = node[key]  # type: ignore[index]
    return node


def remove_positions(doc: JsonDoc, positions: Iterable[JsonPosition]) -> bool:
    """Delete, for each position, the element of the innermost array holding it.

    An array emptied that way is itself removed from the next array out, so a message
    left with no destination disappears. False when a position is in no array (a lone
    recipient field, which cannot be removed without breaking the request).
    """
    doomed: set[JsonPosition] = set()
    for pos in positions:
        cut = max((i for i, key in enumerate(pos) if isinstance(key, int)), default=None)
        if cut is None:
            return False
        doomed.add(pos[:cut + 1])
    while doomed:
        # Deepest first, highest index first, so earlier indices stay valid.
        by_parent: dict[JsonPosition, list[int]] = {}
        for pos in doomed:
            by_parent.setdefault(pos[:-1], []).append(pos[-1])  # type: ignore[arg-type]
        deepest = max(len(p) for p in by_parent)
        doomed = {p for p in doomed if len(p) - 1 != deepest}
        for parent, indices in by_parent.items():
            if len(parent) != deepest:
                continue
            array = _container(doc, parent)
            assert isinstance(array, list)
            for index in sorted(indices, reverse=True):
                del array[index]
            if not array:
                outer = max((i for i, key in enumerate(parent) if isinstance(key, int)),
                            default=None)
                if outer is not None:
                    doomed.add(parent[:outer + 1])
    return True


@dataclass(frozen=True, slots=True)
class JsonPath:
    """Recipients at a dotted JSON path (`to`, `messages[].destinations[].to`).

    `separator` splits one string into several recipients (Plivo's `a<b`);
    `numbers` accepts JSON numbers as recipients (MessageBird's MSISDNs);
    `one_or_many` names steps that may be an object or an array of them.
    """

    path: str
    separator: str | None = None
    numbers: bool = False
    one_or_many: frozenset[str] = frozenset()

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json(message.body)
        if isinstance(doc, BodyError):
            return doc
        leaves = json_leaves(doc, self.path, self.one_or_many)
        if isinstance(leaves, BodyError):
            return leaves
        found: list[tuple[str, JsonPosition]] = []
        for leaf, pos in leaves:
            value = leaf
            if self.numbers and isinstance(leaf, int) and not isinstance(leaf, bool):
                value = str(leaf)
            if not isinstance(value, str):
                return BodyError("invalid_destination_field",
                                 f"'{self.path}' holds a {type(leaf).__name__}, not a string")
            found.extend((part, pos) for part in _split(value, self.separator))
        if not found:
            return BodyError("missing_destination", f"no destination at '{self.path}'")

        def remove(blocked: frozenset[str]) -> Message | None:
            # A fresh copy each call: `without` may be asked more than once. Parsing again
            # cannot fail (it succeeded above) and nests no deeper than the first parse.
            work = json.loads(message.body)
            whole: list[JsonPosition] = []
            for _, pos in leaves:
                value = _container(work, pos)
                text = str(value) if self.numbers and isinstance(value, int) else value
                assert isinstance(text, str)
                parts = _split(text, self.separator)
                kept = [p for p in parts if p not in blocked]
                if len(kept) == len(parts):
                    continue
                if kept:
                    parent = _container(work, pos[:-1])
                    parent[pos[-1]] = (self.separator or "").join(kept)  # type: ignore[index]
                else:
                    whole.append(pos)
            if whole and not remove_positions(work, whole):
                return None
            return replace(message, body=dump_json(work))

        return Recipients(tuple(value for value, _ in found), remove)


@dataclass(frozen=True, slots=True)
class Converted:
    """Recipients checked in a converted form; removal maps them back to the raw ones."""

    inner: Locator
    convert: Callable[[str], str]

    def find(self, message: Message) -> Recipients | BodyError:
        found = self.inner.find(message)
        if isinstance(found, BodyError):
            return found
        raws = found.values

        def remove(blocked: frozenset[str]) -> Message | None:
            return found.without(frozenset(r for r in raws if self.convert(r) in blocked))

        return Recipients(tuple(self.convert(r) for r in raws), remove)


# ------------------------------------------------------------------ routes and presets

@dataclass(frozen=True, slots=True)
class Route:
    """An intercepted route: method, path pattern (on the path below the mount), channel."""

    method: str
    pattern: re.Pattern[str]
    channel: Channel
    locator: Locator


@lru_cache(maxsize=4096)
def normalise_path(raw: str) -> str:
    """The path routes are matched on: decoded, no repeated or trailing slashes, and
    `.` / `..` segments resolved (RFC 3986 5.2.4; `..` stops at the root). Cached: the
    same few paths come back on every request.

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
                # An optional group that did not take part is "", not None.
                return route, found.groupdict(default="")
    return None


def json_reply(status: int, payload: object, content_type: str = "application/json") -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(payload).encode(), content_type)


def gatekeeper_error(status: int, code: str, message: str, request_id: str,
                     error_type: str) -> Reply:
    """Gatekeeper's own error shape: code, message, type, request_id."""
    return json_reply(status, {"code": code, "message": message, "type": error_type,
                               "request_id": request_id})


def basic_user(headers: Mapping[str, str]) -> str | None:
    """The user name of `Authorization: Basic ...`, if any."""
    return _basic_user(headers.get("Authorization", ""))


@lru_cache(maxsize=1024)
def _basic_user(authorization: str) -> str | None:
    # Cached: a sender's few credentials come back on every request.
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def digest_of(token: str) -> str:
    """`sha256:<hex>` of a credential: how tokens appear in config and logs."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def token_digest(headers: Mapping[str, str], scheme: str = "Bearer") -> str | None:
    """`sha256:<hex>` of the token in `Authorization: <scheme> <token>`, if any.

    Credentials map to scopes by this digest, so tokens are never kept in clear.
    """
    given, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if given.lower() != scheme.lower() or not token:
        return None
    return digest_of(token)


class Preset(Protocol):
    """A gateway preset: one small module each, registered in `providers.PRESETS`."""

    name: str
    # Digits-only recipients are international numbers without `+` (e.g. `447700900123`).
    msisdn: bool
    # Region for national-format numbers when the upstream sets none.
    default_region: str | None

    def routes(self, upstream: UpstreamConfig) -> tuple[Route, ...]:
        """The intercepted routes for this upstream (built once at start-up)."""
        ...

    def identities(self, message: Message, path_params: Mapping[str, str]) -> tuple[str, ...]:
        """Credentials this request carries, as keys of `upstreams[].credentials`."""
        ...

    def reject(self, blocked: Blocked) -> Reply:
        """The refusal this gateway's SDK turns into its normal error."""
        ...

    def skip(self, blocked: Blocked) -> Reply:
        """A success in this gateway's own shape, sent without contacting it."""
        ...
