"""What a bulk import is asked (ImportOptions), what it answers (ImportReport), and the
refusals that stop it as a whole."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from gatekeeper.bulk_fast import FormatOption
from gatekeeper.bulk_format import LineError
from gatekeeper.policy import ListName
from gatekeeper.times import expiry_instant
from gatekeeper.types import Channel

Mode = Literal["add", "replace"]
MODES: tuple[Mode, ...] = ("add", "replace")
MAX_FAILURES_SHOWN = 100


def expiry_from(ttl_seconds: str | int | None, expires_at: str | float | None,
                now: float | None = None) -> float | None:
    """The expiry instant of an import from a TTL or an instant (ISO 8601 or epoch
    seconds); ValueError, with a message for the operator, when they are unusable."""
    ttl: int | None = None
    if ttl_seconds is not None:
        try:
            ttl = int(ttl_seconds)
        except ValueError:
            ttl = 0  # refused below, with the range in the message
    return expiry_instant(ttl, expires_at, time.time() if now is None else now)


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What an import loads, where, and the metadata its entries get (an export's rows
    bring their own instead: see Importer)."""

    name: ListName
    scope: str
    mode: Mode = "add"
    added_by: str | None = None
    note: str | None = None
    expires_at: float | None = None
    region: str | None = None
    channel: Channel | None = None  # for lines without a channel column; None: both
    source: str = "import"
    allow_empty: bool = False  # a replace with no entry at all empties the list
    format: FormatOption = "auto"  # see bulk_fast.choose_format
    # The list's freshness record (freshness.py), written when the import completes.
    origin: str | None = None  # where the data came from; default "import"
    as_of: float | None = None  # the date the data is as of; default: now
    max_age_days: float | None = None  # stale after this; default: the config's


@dataclass(slots=True)
class ImportReport:
    """Counts of an import so far (or in the end).

    Every entry line is added, existing (already listed, or repeated in the input) or
    failed; `lines` also counts blank, comment and header lines.
    """

    mode: Mode
    scope: str
    name: ListName
    lines: int = 0
    bytes: int = 0
    added: int = 0
    existing: int = 0
    failed: int = 0
    failures: list[LineError] = field(default_factory=list)
    size: int | None = None  # the list's size after a replace
    restored: bool = False  # the input was an export: rows kept their own metadata
    format: str | None = None  # the fast format the file was read in (bulk_fast)
    removed: int = 0  # numbers a change file deleted

    def to_json(self) -> dict[str, Any]:
        """The reply body of an import (and the CLI's summary)."""
        body: dict[str, Any] = {
            "mode": self.mode, "scope": self.scope, "list": self.name, "lines": self.lines,
            "added": self.added, "existing": self.existing, "failed": self.failed,
            "failures": [f.to_json() for f in self.failures]}
        if self.mode == "replace":
            body["size"] = self.size
        if self.format is not None:
            body["format"] = self.format
        if self.format == "us-dnc-change":
            body["removed"] = self.removed
        return body

    def audit(self) -> dict[str, Any]:
        """The counts for the `list_changed` log event."""
        event: dict[str, Any] = {
            "scope": self.scope, "list": self.name, "op": "import", "mode": self.mode,
            "lines": self.lines, "added": self.added, "existing": self.existing,
            "failed": self.failed}
        if self.size is not None:
            event["size"] = self.size
        if self.restored:
            event["restored"] = True
        if self.format is not None:
            event["format"] = self.format
        if self.removed:
            event["removed"] = self.removed
        return event


class ImportRefused(Exception):
    """An import refused as a whole: a replace leaves the live list as it was."""


class NoValidEntries(ImportRefused):
    """A replace whose input had failed lines and no valid entry: refused, since applying
    it would empty the list (a wrong file, not an intent to clear it); `allow_empty`
    does not change that."""


class EmptyImport(ImportRefused):
    """A replace whose input holds no entry at all (empty, a header, comments): refused
    unless `allow_empty`, since it would empty the list."""


class ChangeFileReplace(ImportRefused):
    """A change file (additions and deletions) given to a replace: it describes changes
    to a list, not a whole list."""


class MetadataConflict(ImportRefused):
    """An export given with a note or an expiry: its rows carry their own, so which one
    applies would be a guess. Found at the header, before anything is loaded."""


REFUSALS: tuple[type[ImportRefused], ...] = (
    NoValidEntries, EmptyImport, ChangeFileReplace, MetadataConflict)
"""Every way an import is refused as a whole."""
