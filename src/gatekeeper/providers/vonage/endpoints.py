"""Vonage endpoint objects (Voice `to[]` and NCCO connects, Messages v0.1 `to`): the
recipients each stands for, with their positions in the JSON body."""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.providers.locators import JsonPosition, load_json_all, members
from gatekeeper.providers.preset import BodyError

# Endpoint types that never reach a phone number (Voice and Messages v0.1).
_NOT_PHONE = frozenset({"websocket", "app", "vbc", "messenger"})


def as_text(value: object) -> str | None:
    """A string, or an integer written as one (MSISDNs sent as JSON numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def all_values(node: object, key: str) -> tuple[list[object], bool]:
    """Every value some reader takes for `key` of `node` (any case, every duplicate)."""
    found, exact = members(node, key)
    return [value for _, value in found], exact


@dataclass(frozen=True, slots=True)
class Found:
    """Recipients with their positions, and whether every reading agrees on them."""

    items: list[tuple[str, JsonPosition]]
    exact: bool = True


def endpoint_values(endpoint: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """The recipients an endpoint object stands for.

    Phone-like endpoints give their `number`; `sip` its `uri`; websocket, app, vbc and
    messenger endpoints are not phone numbers and give `client:<type>`. A bare number
    where an object belongs is still a number.
    """
    bare = as_text(endpoint)
    if bare is not None:
        return Found([(bare, pos)])
    if not isinstance(endpoint, dict):
        return BodyError("invalid_destination_field", f"'{where}' is not an endpoint object")
    kinds, exact_kind = all_values(endpoint, "type")
    names = {k.lower() for k in kinds if isinstance(k, str)}
    numbers, exact_number = all_values(endpoint, "number")
    uris, exact_uri = all_values(endpoint, "uri")
    values: list[str] = []
    if numbers or "phone" in names:
        for number in numbers or [None]:
            text = as_text(number)
            if text is None:
                return BodyError("invalid_destination_field", f"'{where}.number' is not a string")
            values.append(text)
    if names & {"sip", "sips"}:
        for uri in uris or [None]:
            if not isinstance(uri, str):
                return BodyError("invalid_destination_field", f"'{where}.uri' is not a string")
            values.append(uri)
    if not values:
        if not names or not names <= _NOT_PHONE:
            # A phone-like or unknown type without a number: refuse rather than guess.
            return BodyError("invalid_destination_field", f"'{where}' has no number")
        values = [f"client:{kind}" for kind in sorted(names)]
    exact = exact_kind and exact_number and exact_uri and len(kinds) <= 1 and \
        len(numbers) + len(uris) <= 1
    return Found([(v, pos) for v in values], exact)


def endpoints(value: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """Each endpoint of an array (or of a lone object or number) with its position."""
    items = [(v, (*pos, i)) for i, v in enumerate(value)] if isinstance(value, list) else \
        [(value, pos)]
    out = Found([])
    for item, at in items:
        got = endpoint_values(item, at, where)
        if isinstance(got, BodyError):
            return got
        out = Found(out.items + got.items, out.exact and got.exact)
    return out


def json_object(body: bytes, path: str) -> dict[str, object] | BodyError:
    doc = load_json_all(body)
    if isinstance(doc, BodyError):
        return doc
    if not isinstance(doc, dict):
        return BodyError("missing_destination", f"no destination at '{path}'")
    return doc
