"""Vonage request parameters where the legacy APIs read them: the query and the body (JSON
or form), the `sig` that signs them, and the legacy SMS API's `to` (or Verify's `number`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import unquote_plus

from gatekeeper.providers.credentials import header
from gatekeeper.providers.locators import FormField, JsonPath, load_json
from gatekeeper.providers.preset import BodyError, Locator, Message, Recipients


def names(text: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a query or form, read leniently: a malformed pair
    must not hide a well-formed `sig` or `api_key` beside it."""
    pairs = []
    for raw in text.split("&"):
        name, _, value = raw.partition("=")
        pairs.append((unquote_plus(name, errors="replace"),
                      unquote_plus(value, errors="replace")))
    return pairs


def body_params(body: bytes) -> list[tuple[str, str | object]]:
    """Top-level parameters of a body read both as JSON and as a form (lenient)."""
    found: list[tuple[str, str | object]] = []
    doc = load_json(body)
    if isinstance(doc, dict):
        found.extend(doc.items())
    found.extend(names(body.decode("utf-8", errors="replace")))
    return found


def is_signed(message: Message) -> bool:
    """True when `sig` is a parameter anywhere: query, form body or JSON body."""
    params = [*names(message.query), *body_params(message.body)]
    return any(name.strip().casefold() == "sig" for name, _ in params)


@dataclass(frozen=True, slots=True)
class Signed:
    """Another locator's recipients, made uneditable when the request carries `sig`."""

    inner: Locator

    def find(self, message: Message) -> Recipients | BodyError:
        found = self.inner.find(message)
        if isinstance(found, BodyError) or not is_signed(message):
            return found
        return found.fixed()


# ------------------------------------------------------------------ legacy SMS

BodyKind = Literal["json", "form"]


def body_kind(message: Message) -> BodyKind | BodyError | None:
    """How the body is encoded: by Content-Type, sniffed when that says nothing useful."""
    if not message.body.strip():
        return None
    media = header(message.headers, "Content-Type").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media.startswith("multipart/"):
        # Parameters in multipart parts would go unseen: refuse rather than miss a `to`.
        return BodyError("invalid_form", "multipart bodies are not checked; send the "
                                         "parameters url-encoded or as JSON")
    return "json" if message.body.lstrip()[:1] in (b"{", b"[") else "form"


@dataclass(frozen=True, slots=True)
class SmsParams:
    """`to` wherever the legacy SMS API reads parameters: the query and the body."""

    name: str = "to"

    def find(self, message: Message) -> Recipients | BodyError:
        kind = body_kind(message)
        if isinstance(kind, BodyError):
            return kind
        sources: list[tuple[str, Locator]] = [("query", FormField(self.name, in_query=True))]
        if kind == "form":
            sources.append(("body", FormField(self.name)))
            if message.body.lstrip()[:1] in (b"{", b"["):
                # JSON labelled as a form: a gateway that sniffs reads the JSON.
                sources.append(("json", JsonPath(self.name, numbers=True)))
        elif kind == "json":
            sources.append(("body", JsonPath(self.name, numbers=True)))
        parts: list[tuple[str, Recipients]] = []
        for where, locator in sources:
            found = locator.find(message)
            if isinstance(found, BodyError):
                if found.code != "missing_destination":
                    return found
                continue
            parts.append((where, found))
        if not parts:
            return BodyError("missing_destination",
                             f"parameter '{self.name}' is in neither the query nor the body")

        values = tuple(v for _, part in parts for v in part.values)
        if len(parts) > 1:
            # Named in the query and in the body: which one Vonage reads is not ours to
            # guess, so both are decided and the request is never edited.
            return Recipients(values)
        where, part = parts[0]
        if part.remover is None:
            return Recipients(values)

        def remove(blocked: frozenset[str]) -> Message | None:
            without = part.without(blocked)
            if without is None:
                return None
            return replace(message, query=without.query) if where == "query" else \
                replace(message, body=without.body)

        return Recipients(values, remove)
