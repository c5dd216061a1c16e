"""Instants as the APIs write them: ISO 8601 or epoch seconds in, ISO 8601 UTC out."""

from __future__ import annotations

import math
from datetime import UTC, datetime

# An entry may be set to expire at most this far ahead (and a TTL may be at most this).
MAX_TTL = 10 * 365 * 24 * 3600
# 9999-12-31T23:59:59Z: later instants cannot be written back as dates.
LAST_INSTANT = 253402300799.0


def iso(timestamp: float, timespec: str = "seconds") -> str:
    """`2026-11-21T19:24:52+00:00` (UTC)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec=timespec)


def parse_instant(value: object) -> float | None:
    """Epoch seconds from a number, a numeric string or an ISO 8601 date-time (no zone
    means UTC); None for anything else, non-finite, or outside 1970-9999."""
    instant: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            instant = float(value)
        except OverflowError:  # an integer beyond any float
            return None
    elif isinstance(value, str):
        try:
            instant = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            instant = parsed.timestamp()
    if instant is None or not math.isfinite(instant) or not 0 <= instant <= LAST_INSTANT:
        return None
    return instant


def expiry_instant(ttl_seconds: int | None, expires_at: object, now: float) -> float | None:
    """When an entry expires, from a TTL or an instant (at most one, in the future, at most
    MAX_TTL ahead); ValueError with a message for the operator otherwise."""
    if ttl_seconds is not None and expires_at is not None:
        raise ValueError("give 'ttl_seconds' or 'expires_at', not both")
    if ttl_seconds is not None:
        if not 1 <= ttl_seconds <= MAX_TTL:
            raise ValueError(f"'ttl_seconds' must be an integer from 1 to {MAX_TTL}")
        return now + ttl_seconds
    if expires_at is None:
        return None
    instant = parse_instant(expires_at)
    if instant is None:
        raise ValueError("'expires_at' must be an ISO 8601 date-time or epoch seconds")
    if instant <= now:
        raise ValueError("'expires_at' is in the past")
    if instant > now + MAX_TTL:
        raise ValueError(f"'expires_at' is too far ahead: at most {MAX_TTL} seconds from now")
    return instant
