"""Instants: parsing ISO 8601 / epoch seconds and the expiry rules shared by every API."""

from __future__ import annotations

import pytest

from gatekeeper.times import LAST_INSTANT, MAX_TTL, expiry_instant, iso, parse_instant

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0.0), (1.5, 1.5), ("1800000000", NOW), ("2027-01-15T08:00:00Z", 1_800_000_000.0),
    ("2027-01-15T09:00:00+01:00", NOW), ("2027-01-15T08:00:00", NOW),
    (True, None), (None, None), ("soon", None), (float("inf"), None), (float("nan"), None),
    ("nan", None), (10**400, None), (-1, None), (LAST_INSTANT + 1, None), ([NOW], None),
], ids=["zero", "float", "numeric-string", "iso-z", "iso-offset", "iso-naive-is-utc",
        "bool", "none", "words", "inf", "nan", "nan-string", "huge-int", "before-1970",
        "after-9999", "list"])
def test_parse_instant(value: object, expected: float | None) -> None:
    """Numbers, numeric strings and ISO 8601 parse; anything else, or out of range, is None."""
    assert parse_instant(value) == expected


@pytest.mark.parametrize(("ttl", "expires", "result"), [
    (None, None, None), (60, None, NOW + 60), (None, NOW + 60, NOW + 60),
    (None, "2027-01-15T08:01:00Z", NOW + 60), (MAX_TTL, None, NOW + MAX_TTL),
], ids=["neither", "ttl", "epoch", "iso", "longest-ttl"])
def test_expiry_instant(ttl: int | None, expires: object, result: float | None) -> None:
    """A TTL or an instant in the future gives the expiry instant."""
    assert expiry_instant(ttl, expires, NOW) == result


@pytest.mark.parametrize(("ttl", "expires", "message"), [
    (60, NOW + 60, "not both"), (0, None, "from 1 to"), (MAX_TTL + 1, None, "from 1 to"),
    (None, NOW, "in the past"), (None, NOW + MAX_TTL + 1, "too far ahead"),
    (None, "tomorrow", "ISO 8601"), (None, float("inf"), "ISO 8601"),
], ids=["both", "zero-ttl", "ttl-too-long", "now-is-past", "too-far", "words", "inf"])
def test_expiry_instant_refusals(ttl: int | None, expires: object, message: str) -> None:
    """Unusable expiries are refused with a message for the operator."""
    with pytest.raises(ValueError, match=message):
        expiry_instant(ttl, expires, NOW)


def test_iso_is_utc() -> None:
    """Instants are written in UTC, seconds by default."""
    assert iso(NOW) == "2027-01-15T08:00:00+00:00"
    assert iso(NOW + 0.25, "milliseconds") == "2027-01-15T08:00:00.250+00:00"
