"""Vonage Voice API: what a call dials, its `to[]` and the connect actions of inline NCCO
call scripts, on create (`POST /v1/calls`) and on a transfer (`PUT /v1/calls/{uuid}`)."""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.providers.locators import JsonPosition, edited, members, plan_deletions
from gatekeeper.providers.preset import BodyError, Message, Recipients
from gatekeeper.providers.vonage.endpoints import Found, all_values, endpoints, json_object


def _connects(ncco: object, pos: JsonPosition, where: str) -> Found | BodyError:
    """The endpoints of every `connect` action of an inline NCCO."""
    if not isinstance(ncco, list):
        return Found([])
    out = Found([])
    for i, action in enumerate(ncco):
        names, exact = all_values(action, "action")
        if not any(isinstance(n, str) and n.lower() == "connect" for n in names):
            continue
        hits, clean = members(action, "endpoint")
        if not hits:
            return BodyError("invalid_destination_field", f"'{where}[{i}]' has no endpoint")
        for key, endpoint in hits:
            got = endpoints(endpoint, (*pos, i, key), f"{where}[{i}].endpoint")
            if isinstance(got, BodyError):
                return got
            out = Found(out.items + got.items,
                        out.exact and exact and clean and got.exact and len(names) == 1)
    return out


@dataclass(frozen=True, slots=True)
class CallEndpoints:
    """What a Voice request dials: `to[]` (create) and inline NCCO connect endpoints.

    `create=False` reads a call update (`PUT /v1/calls/{uuid}`): only a transfer to an
    inline NCCO dials anything; other updates have no recipients.
    """

    create: bool = True

    def find(self, message: Message) -> Recipients | BodyError:
        if not self.create and not message.body.strip():
            return Recipients(())
        doc = json_object(message.body, "to")
        if isinstance(doc, BodyError):
            return doc
        found = Found([])
        targets = 0
        nccos: list[tuple[object, JsonPosition]] = []
        if self.create:
            hits, clean = members(doc, "to")
            for key, value in hits:
                got = endpoints(value, (key,), "to")
                if isinstance(got, BodyError):
                    return got
                found = Found(found.items + got.items, found.exact and got.exact)
            if not found.items:
                return BodyError("missing_destination", "no destination at 'to'")
            targets = len(found.items)
            found = Found(found.items, found.exact and clean and len(hits) == 1)
            ncco_hits, clean = members(doc, "ncco")
            nccos = [(v, (k,)) for k, v in ncco_hits]
        else:
            actions, clean_action = all_values(doc, "action")
            if not any(isinstance(a, str) and a.lower() == "transfer" for a in actions):
                return Recipients(())
            destinations, clean = members(doc, "destination")
            for key, destination in destinations:
                inner, clean_inner = members(destination, "ncco")
                nccos.extend((v, (key, k)) for k, v in inner)
                clean = clean and clean_inner
            clean = clean and clean_action and len(destinations) <= 1
        for ncco, at in nccos:
            got = _connects(ncco, at, ".".join(map(str, at)))
            if isinstance(got, BodyError):
                return got
            found = Found(found.items + got.items, found.exact and got.exact)
        exact = found.exact and clean and len(nccos) <= 1
        values = tuple(raw for raw, _ in found.items)
        if not exact:
            return Recipients(values)
        ncco_list = nccos[0] if nccos else None

        def remove(blocked: frozenset[str]) -> Message | None:
            if targets and all(raw in blocked for raw, _ in found.items[:targets]):
                return None  # a call needs someone to call
            doomed = plan_deletions(doc, [pos for raw, pos in found.items if raw in blocked])
            if doomed is None:
                return None  # a lone `to` object
            if ncco_list is not None and isinstance(ncco_list[0], list) and ncco_list[0] and \
                    all((*ncco_list[1], i) in doomed for i in range(len(ncco_list[0]))):
                return None  # nothing left for the call to do
            return edited(message, doomed)

        return Recipients(values, remove)
