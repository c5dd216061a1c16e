"""`gatekeeper policy simulate FILE`: replay past sends against the policy rules and
count what they would have blocked, by rule, before the policy is turned on.

The file is CSV with a header naming its columns, in any order: `number` (E.164, or
national with `--region`), `time` (ISO 8601 with its offset, or Unix seconds), and
optionally `channel` (sms, voice; empty: both), `scope` (extra scopes, `;`-separated;
`global` always applies) and `intent` (otp, transactional, marketing; default
marketing). Rows are replayed in time order; velocity limits count, in memory, the
sends that would have been forwarded (a row with no channel is not counted, as a
scanned write is not). Lists are not consulted (an allow or block entry would decide before the
rules: `gatekeeper check` tells per number); rows that cannot be read are counted and
reported by line, never guessed.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from gatekeeper.numbers import is_valid_scope, parse_destination
from gatekeeper.rules import INTENTS, Intent, Policy, judge
from gatekeeper.types import CHANNELS, Channel

REQUIRED = ("number", "time")
KNOWN = (*REQUIRED, "channel", "scope", "intent")
# Bad rows reported by line; past this many, only counted.
SHOWN_ERRORS = 20


@dataclass
class Tally:
    """What a replay found."""

    rows: int = 0
    blocked: Counter[str] = field(default_factory=Counter)     # by rule kind
    monitored: Counter[str] = field(default_factory=Counter)   # by rule kind
    by_detail: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: int = 0
    shown_errors: list[tuple[int, str]] = field(default_factory=list)

    def error(self, line: int, why: str) -> None:
        self.errors += 1
        if len(self.shown_errors) < SHOWN_ERRORS:
            self.shown_errors.append((line, why))

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "would_block": sum(self.blocked.values()),
                "blocked_by_rule": dict(self.blocked.most_common()),
                "monitored_by_rule": dict(self.monitored.most_common()),
                "top_details": [{"rule": k, "detail": d, "count": n}
                                for (k, d), n in self.by_detail.most_common(10)],
                "unreadable_rows": self.errors,
                "errors": [{"line": n, "error": e} for n, e in self.shown_errors]}


def _instant(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time needs its offset (or Unix seconds)")
    return moment.timestamp()


@dataclass(frozen=True, slots=True)
class _Row:
    number: str
    at: float
    channel: Channel | None
    scopes: tuple[str, ...]
    intent: Intent


def _read(row: dict[str, str], region: str | None) -> _Row:
    """One CSV row, or ValueError saying what is wrong with it."""
    destination = parse_destination(row.get("number") or "", region)
    if destination.e164 is None:
        raise ValueError("not a phone number")
    at = _instant(row.get("time") or "")
    channel = (row.get("channel") or "").strip().lower() or None
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    extra = [s.strip() for s in (row.get("scope") or "").split(";") if s.strip()]
    bad = next((s for s in extra if not is_valid_scope(s)), None)
    if bad is not None:
        raise ValueError(f"invalid scope {bad!r}")
    intent = (row.get("intent") or "marketing").strip().lower()
    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {', '.join(INTENTS)}")
    return _Row(destination.e164, at, channel, tuple(dict.fromkeys(["global", *extra])),
                intent)


def rows_of(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV text with a header; ValueError on a bad header."""
    reader = csv.DictReader(lines)
    names = [n.strip().lower() for n in reader.fieldnames or ()]
    missing = [n for n in REQUIRED if n not in names]
    unknown = [n for n in names if n not in KNOWN]
    if missing or unknown:
        raise ValueError(f"the header must name {', '.join(REQUIRED)} (and may name "
                         f"channel, scope, intent); missing {missing}, unknown {unknown}")
    reader.fieldnames = names
    for row in reader:
        yield reader.line_num, row


class _Windows:
    """Velocity limits replayed in memory, as the store counts them: sliding windows of
    the sends that would have been forwarded, and pumping-guard holds."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, ...], deque[float]] = defaultdict(deque)
        self.held: dict[tuple[str, ...], float] = {}

    def weigh(self, row: _Row, policy: Policy, free: bool) -> tuple[str | None, bool]:
        """(the limit that blocks the row, or None; whether a monitored one is
        reached); counts the send when nothing blocks it and `free`."""
        counted: list[deque[float]] = []
        seen = False
        for scope in row.scopes:
            rules = policy.scopes.get(scope)
            if rules is None or row.channel is None or rules.safe.covering(row.number):
                continue
            for limit in rules.on(row.channel).velocity:
                subject = limit.subject(row.number)
                if row.intent not in limit.intents or subject is None:
                    continue
                key = (scope, row.channel, limit.spec, subject)
                window = self.sent[key]
                while window and window[0] <= row.at - limit.window:
                    window.popleft()
                over = len(window) >= limit.count or self.held.get(key, 0) > row.at
                if over and (limit.action == "monitor" or "velocity" in rules.monitor):
                    seen = True
                elif over:
                    if limit.block_for and self.held.get(key, 0) <= row.at:
                        self.held[key] = row.at + limit.block_for
                    return limit.spec, seen
                counted.append(window)
        if free:
            for window in counted:
                window.append(row.at)
        return None, seen


def simulate(lines: Iterable[str], policy: Policy, region: str | None = None) -> Tally:
    """Replay every row of a CSV against `policy`, in time order (velocity limits
    count the sends that would have been forwarded)."""
    tally = Tally()
    rows: list[_Row] = []
    for line, raw in rows_of(lines):
        tally.rows += 1
        try:
            rows.append(_read(raw, region))
        except ValueError as exc:
            tally.error(line, str(exc))
    windows = _Windows()
    for row in sorted(rows, key=lambda r: r.at):
        verdict = judge(row.number, row.scopes, policy, row.channel, row.intent, row.at)
        over, seen = windows.weigh(row, policy, verdict.blocked_by is None)
        if over is not None:
            tally.blocked["velocity"] += 1
            tally.by_detail[("velocity", over)] += 1
        elif verdict.blocked_by is not None:
            tally.blocked[verdict.blocked_by.kind] += 1
            tally.by_detail[(verdict.blocked_by.kind, verdict.blocked_by.detail)] += 1
        kinds = dict.fromkeys([*(r.kind for r in verdict.monitored),
                               *(["velocity"] if seen else [])])
        for kind in kinds:
            tally.monitored[kind] += 1
    return tally


def report(tally: Tally) -> str:
    """The tally as text for a terminal."""
    out = [f"{tally.rows} sends replayed; {sum(tally.blocked.values())} would have been "
           "blocked"]
    for kind, count in tally.blocked.most_common():
        out.append(f"  {kind:<12} {count}")
    if tally.monitored:
        out.append("monitored (would have blocked, not enforced):")
        out += [f"  {kind:<12} {count}" for kind, count in tally.monitored.most_common()]
    if tally.by_detail:
        out.append("most frequent:")
        out += [f"  {kind:<12} {detail or '-':<24} {count}"
                for (kind, detail), count in tally.by_detail.most_common(10)]
    if tally.errors:
        out.append(f"{tally.errors} rows could not be read:")
        out += [f"  line {line}: {why}" for line, why in tally.shown_errors]
    return "\n".join(out)
