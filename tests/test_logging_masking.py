"""Phone numbers in logs: the masking step (any string, any depth), its allowlisted keys,
and the masked `destination_blocked` event."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from gatekeeper.config import LogConfig
from gatekeeper.observability import (
    NEVER_MASKED,
    configure_logging,
    mask_entry,
    mask_phone_numbers,
    mask_text,
)
from tests.conftest import (
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    log_events,
    make_config,
)


@pytest.mark.parametrize(("text", "masked"), [
    ("+33612345678", "+3361****678"),
    ("to +33 6 12 34 56 78 now", "to +3361****678 now"),
    ("+1 (415) 555-0100", "+1415****100"),
    ("+44-7700-900123.", "+4477****123."),
    ("tel:+33612345678", "tel:+3361****678"),
    ("sip:+33612345678@trunk.example;user=phone", "sip:+3361****678@trunk.example;user=phone"),
    ("SIPS:+33612345678@h", "SIPS:+3361****678@h"),
    ("whatsapp:+447700900123", "whatsapp:+4477****123"),
    ("WhatsApp:447700900123", "WhatsApp:4477****123"),
    ("tel:0612345678", "tel:061****678"),
    ("To=%2B33612345678&Body=hi", "To=+3361****678&Body=hi"),
    ("447700900123", "4477****123"),
    ("/sms/json?to=447700900123&from=Acme", "/sms/json?to=4477****123&from=Acme"),
    ('{"to": "447700900123"}', '{"to": "4477****123"}'),
    ("+336123456*", "+3361*****"),
    ("+33612345*", "+33612345*"),
    ("+336*", "+336*"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_numbers_in_text_are_masked(text: str, masked: str) -> None:
    """Every spelling of a number becomes the masked shape; short prefixes stay."""
    assert mask_text(text) == masked
    assert mask_text(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize("text", [
    "2024-01-15T10:00:00.123456+01:00", "req-12345678901234567890", "1234567",
    "port 6379 refused", "AC0123456789abcdef0123456789abcdef", "offset +12:30",
    "v1.2.3", "duration 123456789 ms", "0x7f3a12345678", "+123456",
], ids=lambda v: v[:20])
def test_text_without_numbers_is_left_alone(text: str) -> None:
    """Dates, ids, short digit runs and digits inside words are not numbers."""
    assert mask_text(text) == text


@pytest.mark.parametrize(("entry", "shown", "masked"), [
    ("+33612345678", 8, "+3361****678"),
    ("+33*", 8, "+33*"),
    ("+33612345*", 8, "+33612345*"),
    ("+336123456*", 8, "+3361*****"),
    ("+33612*", 4, "+3361*****"),
    ("+3361*", 4, "+3361*"),
    ("+1415*", 3, "+141*****"),
], ids=["exact", "short-prefix", "eight-digits", "nine-digits", "past-number-head",
        "at-number-head", "us-number-head"])
def test_mask_entry(entry: str, shown: int, masked: str) -> None:
    """Exact entries are masked like numbers; long prefixes keep only their head."""
    assert mask_entry(entry, shown) == masked


@pytest.mark.parametrize(("key", "value"), [
    ("request_id", "12345678901234"),
    ("request_id", "tel:447700900123"),
    ("request_id", "call-447700900123-retry"),
    ("timestamp", "2024-01-15T10:00:00.123456Z"),
    ("upstream", "447700900123"),
    ("level", "info"),
    ("logger", "aiohttp.server"),
], ids=lambda v: v if isinstance(v, str) else "list")
def test_allowlisted_keys_are_kept_whole(key: str, value: Any) -> None:
    """Top-level request ids, timestamps and such are never masked (they would be
    damaged); the same value under another key is."""
    assert key in NEVER_MASKED
    event = {"event": "x", key: value, "note": "+447700900123"}
    assert mask_phone_numbers(None, "info", event) == {
        "event": "x", key: value, "note": "+4477****123"}
    if mask_text(value) != value:
        assert mask_phone_numbers(None, "info", {"other": value}) != {"other": value}


@pytest.mark.parametrize(("key", "value", "masked"), [
    ("scope", "tenant:acme", "tenant:acme"),
    ("scope", "agent:447700900123", "agent:447700900123"),
    ("scopes", ["global", "tenant:12345678901", "agent:42"],
     ["global", "tenant:12345678901", "agent:42"]),
    ("matched_scope", "agent:+447700900123", "agent:+4477****123"),
    ("event", "destination_blocked", "destination_blocked"),
    ("key_name", "webhook:sms-in", "webhook:sms-in"),
], ids=["scope", "digit-id", "scopes", "number-id", "event", "key-name"])
def test_names_are_masked_only_where_they_hold_a_number(key: str, value: Any,
                                                        masked: Any) -> None:
    """Scopes and event names are not allowlisted: ordinary ones come out unchanged, a
    scope whose id is a `+` number is masked."""
    assert key not in NEVER_MASKED
    assert mask_phone_numbers(None, "info", {key: value}) == {key: masked}


def test_every_depth_and_dict_keys_are_masked() -> None:
    """Numbers inside lists, dicts, tuples, dict keys and objects' text are masked;
    an allowlisted name deeper down is masked like any key."""
    class Recipient:
        def __repr__(self) -> str:
            return "Recipient(+447700900123)"

    event = {"event": "recipients", "body": {
        "to": ["+33612345678", ("whatsapp:+447700900123", 7)],
        "+33699999999": {"request_id": "447700900123"},
        "who": Recipient(), "count": 447700900123, "ok": True, "none": None}}
    assert mask_phone_numbers(None, "info", event) == {"event": "recipients", "body": {
        "to": ["+3361****678", ["whatsapp:+4477****123", 7]],
        "+3369****999": {"request_id": "4477****123"},
        "who": "Recipient(+4477****123)", "count": 447700900123, "ok": True, "none": None}}


def test_event_names_and_stdlib_messages_are_masked() -> None:
    """`event` is not allowlisted: stdlib records put their message there."""
    event = {"event": "Error handling request to +33612345678"}
    assert mask_phone_numbers(None, "info", event)["event"] == (
        "Error handling request to +3361****678")


@pytest.mark.parametrize(("mask", "shown"), [
    (True, "+3361****678"), (False, "+33612345678"),
], ids=["masked", "unmasked"])
def test_masking_step_follows_the_config(mask: bool, shown: str) -> None:
    """`log.mask_numbers: false` leaves the masking step out."""
    buffer = io.StringIO()
    configure_logging(LogConfig(mask_numbers=mask), buffer)
    structlog.get_logger().warning("store_unavailable",
                                   error="NOSCRIPT for +33612345678", request_id="123456789")
    event = json.loads(buffer.getvalue())
    assert event["error"] == f"NOSCRIPT for {shown}"
    assert event["request_id"] == "123456789"


@pytest.mark.parametrize(("entry", "matched"), [
    ("+33612345789", "+3361****789"),
    ("+336123*", "+3361*****"),
    ("+3361*", "+3361*"),
    ("+33*", "+33*"),
], ids=["exact", "long-prefix", "prefix-at-head", "country"])
async def test_blocked_attempt_masks_the_matched_entry(
        gatekeeper: Running, log_output: io.StringIO, entry: str, matched: str) -> None:
    """`matched_entry` shows no digit of the number that `number` hides."""
    await gatekeeper.block(entry)
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345789"})
    assert resp.status == 403
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert (event["number"], event["matched_entry"]) == ("+3361****789", matched)
    assert "33612345789" not in log_output.getvalue()


async def test_unmasked_app_shows_numbers_in_every_event(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """An app with `log.mask_numbers: false` shows numbers in the events of its requests,
    although the process's logging (configured by the test set-up) masks."""
    gk = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                            log={"mask_numbers": False}))
    await gk.block("+33612345789")
    await gk.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345789"})
    [event] = [e for e in log_events(log_output) if e["event"] == "destination_blocked"]
    assert (event["number"], event["matched_entry"]) == ("+33612345789", "+33612345789")
    structlog.get_logger().info("outside_a_request", note="+33612345789")
    assert log_events(log_output)[-1]["note"] == "+3361****789"
