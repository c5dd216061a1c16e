"""List entries as the store hands them out: the entry, its metadata, pages of them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from gatekeeper.types import Channel

# The longest note an entry carries (metadata is stored beside every entry).
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class ListItem:
    """A normalised list entry and the channel it is limited to (None: every channel)."""

    entry: str
    channel: Channel | None = None


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """Where an entry came from, when, and until when (kept beside it)."""

    source: str
    added_at: float
    added_by: str | None = None
    note: str | None = None
    expires_at: float | None = None

    def to_json(self) -> str:
        """Compact JSON, without unset fields."""
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> EntryMeta | None:
        """Parse stored metadata; None when absent or unreadable."""
        if not text:
            return None
        try:
            raw = json.loads(text)
            expires = raw.get("expires_at")
            return cls(str(raw["source"]), float(raw["added_at"]), raw.get("added_by"),
                       raw.get("note"), None if expires is None else float(expires))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a listing, with its metadata when known."""

    item: ListItem
    meta: EntryMeta | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; `next_cursor` is None on the last page."""

    entries: tuple[Listed, ...]
    next_cursor: str | None
