"""Locators: where a send's recipients are, read every way a server could read them, and
how to remove some of them without changing any other byte of the request.

JSON is read with every duplicate key kept and keys matched in any case (some servers
take the first duplicate, some the last; some decoders ignore case), so every value any
reading yields is a recipient; such a read is inexact and the request is never edited.
Rewrites cut bytes out of the body as sent (`jsonedit`, raw form pairs); where that
cannot be done exactly, the locator offers no rewrite and `on_block` applies whole.

The pieces: json_docs.py (JSON bodies: reading, deletions), recipient_text.py (split
strings, e-mail addresses), json_locator.py (`JsonPath`), form_locator.py (`FormField`);
this module combines locators (`Converted`, `Both`, `ByBody`, `QueryOrBody`) and
re-exports the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gatekeeper.providers.form_locator import FormField, cut_raw_parts
from gatekeeper.providers.json_docs import (
    JsonObject,
    JsonPosition,
    Leaves,
    dump_json,
    edited,
    json_leaves,
    load_json,
    load_json_all,
    members,
    plan_deletions,
)
from gatekeeper.providers.json_locator import JsonPath
from gatekeeper.providers.preset import BodyError, Locator, Message, Recipients
from gatekeeper.providers.recipient_text import is_email, split_parts

__all__ = [
    "Both",
    "ByBody",
    "Converted",
    "FormField",
    "JsonObject",
    "JsonPath",
    "JsonPosition",
    "Leaves",
    "QueryOrBody",
    "cut_raw_parts",
    "dump_json",
    "edited",
    "is_email",
    "json_leaves",
    "load_json",
    "load_json_all",
    "members",
    "plan_deletions",
    "relabelled",
    "split_parts",
]


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

        values = tuple(self.convert(r) for r in raws)
        return Recipients(values, remove if found.remover is not None else None)


def relabelled(found: Recipients, label: Callable[[str], str]) -> Recipients:
    """Recipients shown under labels (`client:email:...`); removal maps the blocked
    labels back to the raw values, so a label can never hide a recipient from it."""
    raws = found.values
    if found.remover is None:
        return Recipients(tuple(label(r) for r in raws))

    def remove(blocked: frozenset[str]) -> Message | None:
        return found.without(frozenset(r for r in raws if label(r) in blocked))

    return Recipients(tuple(label(r) for r in raws), remove)


@dataclass(frozen=True, slots=True)
class Both:
    """The recipients of several locators together (a field and an inline script);
    the request is edited only through the first, and only when the others found none."""

    parts: tuple[Locator, ...]

    def find(self, message: Message) -> Recipients | BodyError:
        results: list[Recipients] = []
        for locator in self.parts:
            found = locator.find(message)
            if isinstance(found, BodyError):
                return found
            results.append(found)
        values = tuple(v for r in results for v in r.values)
        if any(r.values for r in results[1:]):
            return Recipients(values)
        return Recipients(values, results[0].remover)


@dataclass(frozen=True, slots=True)
class ByBody:
    """A JSON locator for a body that opens like JSON, a form locator otherwise (APIs
    that take either, whatever the Content-Type says)."""

    json: Locator
    form: Locator

    def find(self, message: Message) -> Recipients | BodyError:
        opens = message.body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        return (self.json if opens in (b"{", b"[") else self.form).find(message)


@dataclass(frozen=True, slots=True)
class QueryOrBody:
    """A send that takes its parameters in the query (a GET API): the query's field, and
    the same field in any body (servlets' getParameter and PHP's $_REQUEST merge them).
    Rewritten only when the body names none."""

    name: str
    separator: str | None = None

    def find(self, message: Message) -> Recipients | BodyError:
        query = FormField(self.name, self.separator, in_query=True, optional=True)
        body = ByBody(JsonPath(self.name, self.separator, numbers=True, optional=True),
                      FormField(self.name, self.separator, optional=True))
        found = Both((query, body)).find(message) if message.body.strip() else \
            query.find(message)
        if isinstance(found, Recipients) and not found.values:
            return BodyError("missing_destination",
                             f"parameter '{self.name}' is in neither the query nor the body")
        return found
