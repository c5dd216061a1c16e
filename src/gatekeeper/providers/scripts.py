"""Inline call scripts sent with a request (TwiML, TeXML, NCCO, call flows): every
target they dial, transfer to or message is a recipient of the request, decided like
its `To`. Scripts fetched later from a URL (`Url`, `answer_url`) cannot be seen here.
Script targets are never removed one by one: a blocked one refuses the whole request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gatekeeper.providers.forms import parse_pairs, read_field
from gatekeeper.providers.locators import json_leaves, load_json_all
from gatekeeper.providers.preset import BodyError, Message, Recipients
from gatekeeper.scan import ScanError, scan_request, script_targets

# More targets than this in one script is not a call script: refused (too_many_values).
MAX_SCRIPT_TARGETS = 10_000


def targets(text: str, *, bare_digits: bool) -> tuple[str, ...] | BodyError:
    """The targets of one script's text (XML or JSON)."""
    found = script_targets(text, bare_digits=bare_digits, max_values=MAX_SCRIPT_TARGETS)
    if isinstance(found, ScanError):
        return BodyError(found.code, found.message)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class FormScript:
    """A script in a form field (Twilio `Twiml`, Telnyx TeXML `Texml`); absent: none."""

    name: str
    bare_digits: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        try:
            text = message.body.decode("utf-8")
        except UnicodeDecodeError:
            return BodyError("invalid_form", "the body is not UTF-8")
        pairs = parse_pairs(text)
        if isinstance(pairs, BodyError):
            return pairs
        found: list[str] = []
        for value in read_field(pairs, self.name).values:
            got = targets(value, bare_digits=self.bare_digits)
            if isinstance(got, BodyError):
                return got
            found.extend(got)
        return Recipients(tuple(found))


@dataclass(frozen=True, slots=True)
class JsonScript:
    """A script in a JSON body at a dotted path: a JSON structure (NCCO, call flow) or a
    string holding XML or JSON; absent: none."""

    path: str
    bare_digits: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        doc = load_json_all(message.body)
        if isinstance(doc, BodyError):
            return doc
        leaves = json_leaves(doc, self.path)
        if isinstance(leaves, BodyError):
            return Recipients(())  # not where a script would be: the field reads it
        found: list[str] = []
        for leaf, _ in leaves.found:
            if leaf is None:
                continue
            text = leaf if isinstance(leaf, str) else json.dumps(leaf)
            got = targets(text, bare_digits=self.bare_digits)
            if isinstance(got, BodyError):
                return got
            found.extend(got)
        return Recipients(tuple(found))


@dataclass(frozen=True, slots=True)
class FormUrlQuery:
    """Numbers in the query string of a URL a form field names (a TwiML Bin `Url` such as
    `https://handler.twilio.com/twiml/EH..?To=%2B1...` dials the `{{To}}` it is given)."""

    name: str
    bare_digits: bool = False

    def find(self, message: Message) -> Recipients | BodyError:
        try:
            text = message.body.decode("utf-8")
        except UnicodeDecodeError:
            return BodyError("invalid_form", "the body is not UTF-8")
        pairs = parse_pairs(text)
        if isinstance(pairs, BodyError):
            return pairs
        found: list[str] = []
        for url in read_field(pairs, self.name).values:
            query = url.partition("?")[2].partition("#")[0]
            if not query:
                continue
            got = scan_request(query, b"", "", bare_digits=self.bare_digits,
                               max_values=MAX_SCRIPT_TARGETS)
            if isinstance(got, ScanError):
                return BodyError(got.code, got.message)
            found.extend(got)
        return Recipients(tuple(found))
