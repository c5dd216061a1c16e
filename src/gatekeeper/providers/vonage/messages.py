"""Vonage Messages API recipients: v1 `to` and each `failover[].to`, and the endpoint
objects of the older v0.1 messages (`to`) and Dispatch (`workflow[].to`)."""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.providers.locators import JsonPosition, edited, json_leaves, members
from gatekeeper.providers.preset import BodyError, Message, Recipients
from gatekeeper.providers.vonage.endpoints import (
    Found,
    all_values,
    as_text,
    endpoints,
    json_object,
)


def message_to(item: object, where: str) -> Found | BodyError:
    """The recipient of one Messages API message (`to`, read by its `channel`)."""
    hits, exact = members(item, "to")
    if not hits:
        return BodyError("missing_destination", f"no destination at '{where}'")
    channels, clean = all_values(item, "channel")
    messenger = any(isinstance(c, str) and c.lower() == "messenger" for c in channels)
    out: list[tuple[str, JsonPosition]] = []
    for key, value in hits:
        text = as_text(value)
        if text is None:
            return BodyError("invalid_destination_field", f"'{where}' is not a string")
        # A Messenger recipient is a page-scoped id, not a phone number.
        out.append(("client:messenger" if messenger and len(channels) == 1 else text, (key,)))
    return Found(out, exact and clean and len(hits) == 1 and len(channels) <= 1)


@dataclass(frozen=True, slots=True)
class MessagesTo:
    """Messages API v1: `to` and the `to` of each `failover` message."""

    def find(self, message: Message) -> Recipients | BodyError:
        doc = json_object(message.body, "to")
        if isinstance(doc, BodyError):
            return doc
        primary = message_to(doc, "to")
        if isinstance(primary, BodyError):
            return primary
        failovers, exact = members(doc, "failover")
        backups: list[tuple[str, int]] = []
        for _, failover in failovers:
            if failover is None:
                continue
            if not isinstance(failover, list):
                return BodyError("invalid_destination_field", "'failover' is not an array")
            for i, item in enumerate(failover):
                if not isinstance(item, dict):
                    return BodyError("invalid_destination_field",
                                     f"'failover[{i}]' is not a message object")
                got = message_to(item, f"failover[{i}].to")
                if isinstance(got, BodyError):
                    return got
                exact = exact and got.exact
                backups.extend((raw, i) for raw, _ in got.items)
        values = (*(raw for raw, _ in primary.items), *(raw for raw, _ in backups))
        if not (exact and primary.exact and len(failovers) <= 1):
            return Recipients(values)
        key = failovers[0][0] if failovers else "failover"
        count = len(failovers[0][1]) if failovers and isinstance(failovers[0][1], list) else 0

        def remove(blocked: frozenset[str]) -> Message | None:
            if any(raw in blocked for raw, _ in primary.items):
                return None  # the message itself cannot lose its recipient
            gone = sorted({i for raw, i in backups if raw in blocked})
            if len(gone) == count:
                return edited(message, [(key,)])
            return edited(message, [(key, i) for i in gone])

        return Recipients(values, remove)


@dataclass(frozen=True, slots=True)
class EndpointAt:
    """Endpoint objects at `path` (`to`, `workflow[].to`); never rewritten."""

    path: str

    def find(self, message: Message) -> Recipients | BodyError:
        doc = json_object(message.body, self.path)
        if isinstance(doc, BodyError):
            return doc
        leaves = json_leaves(doc, self.path)
        if isinstance(leaves, BodyError):
            return leaves
        values: list[str] = []
        for node, pos in leaves.found:
            got = endpoints(node, pos, self.path)
            if isinstance(got, BodyError):
                return got
            values.extend(raw for raw, _ in got.items)
        if not values:
            return BodyError("missing_destination", f"no destination at '{self.path}'")
        return Recipients(tuple(values))
