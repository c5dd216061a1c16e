"""stdlib `logging` (aiohttp, asyncio, redis, ...) routed through structlog: one JSON line
per record, level kept, exceptions as redacted and masked fields, nothing on stderr."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pytest
import structlog

from gatekeeper.config import LogConfig
from gatekeeper.observability import REDACTED, configure_logging

TOKEN = "sk_live_4fJ9qLr2XwPz81Kd"
NUMBER = "+33612345678"


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Each line of `buffer` as a JSON object (every line must be one)."""
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def fail_with_secrets() -> None:
    """Raise an error whose message holds a credential and a phone number."""
    message = f"peer reset; Authorization: Bearer {TOKEN} while sending to {NUMBER}"
    raise ConnectionResetError(message)


def test_aiohttp_server_exception_is_one_redacted_json_line(
        capfd: pytest.CaptureFixture[str]) -> None:
    """`.exception()` inside an except block: one JSON line on stdout, none on stderr."""
    configure_logging(LogConfig(level="info"))  # to sys.stdout, which capfd captures
    try:
        fail_with_secrets()
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s",
                                                      "10.0.0.7")
    out, err = capfd.readouterr()
    assert err == ""
    [line] = out.splitlines()
    event = json.loads(line)
    assert event == event | {
        "event": "Error handling request from 10.0.0.7", "logger": "aiohttp.server",
        "level": "error", "exc_type": "ConnectionResetError",
        "exc_message": f"peer reset; Authorization: Bearer {REDACTED} while sending to "
                       "+3361****678"}
    assert "exc_traceback" not in event  # only when logging at debug
    assert TOKEN not in line
    assert NUMBER not in line
    assert "Traceback" not in out + err


def test_traceback_only_at_debug_and_redacted_too() -> None:
    """At debug the traceback comes along, as one field, redacted and masked."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="debug"), buffer)
    try:
        fail_with_secrets()
    except ConnectionResetError:
        logging.getLogger("aiohttp.web").exception("Unhandled exception")
    [event] = lines(buffer)
    trace = event["exc_traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "fail_with_secrets" in trace
    assert f"Bearer {REDACTED}" in trace
    assert TOKEN not in buffer.getvalue()
    assert NUMBER not in buffer.getvalue()


@pytest.mark.parametrize(("level", "logged"), [
    ("debug", ["debug", "info", "warning", "error", "critical"]),
    ("info", ["info", "warning", "error", "critical"]),
    ("error", ["error", "critical"]),
], ids=["debug", "info", "error"])
def test_levels_are_kept_and_filtered(level: str, logged: list[str]) -> None:
    """A record keeps its level name; records below the configured level are dropped."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level=level), buffer)
    log = logging.getLogger("asyncio")
    for name in ("debug", "info", "warning", "error", "critical"):
        log.log(logging.getLevelNamesMapping()[name.upper()], "at %s", name)
    events = lines(buffer)
    assert [e["level"] for e in events] == logged
    assert [e["event"] for e in events] == [f"at {n}" for n in logged]
    assert {e["logger"] for e in events} == {"asyncio"}


def test_custom_level_goes_to_the_standard_one_below() -> None:
    """structlog knows five levels: a level 25 record is logged as info."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="info"), buffer)
    logging.getLogger("redis").log(25, "notice")
    [event] = lines(buffer)
    assert (event["event"], event["level"]) == ("notice", "info")


@pytest.mark.parametrize("format_", ["json", "console"])
def test_a_multi_line_record_is_one_line(format_: Any) -> None:
    """Line breaks in a message or a traceback never split a record over lines."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="debug", format=format_), buffer)
    try:
        raise ValueError("first\nsecond\r\nthird")
    except ValueError:
        logging.getLogger("aiohttp.access").exception("one\ntwo")
    assert len(buffer.getvalue().splitlines()) == 1
    assert buffer.getvalue().endswith("\n")


def test_bad_format_arguments_keep_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record whose arguments do not fit its format is logged with the format string."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="info"), buffer)
    # pytest's own capture handler fails the test on such a record: leave it out.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [h for h in root.handlers
                                           if type(h).__module__ != "_pytest.logging"])
    logging.getLogger("x").error("%d items", "many")
    [event] = lines(buffer)
    assert event["event"] == "%d items"


def test_reconfiguring_replaces_the_handler() -> None:
    """configure_logging twice: records go to the new stream only, once."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LogConfig(level="info"), first)
    configure_logging(LogConfig(level="info"), second)
    logging.getLogger("aiohttp.server").warning("hello")
    assert first.getvalue() == ""
    assert [e["event"] for e in lines(second)] == ["hello"]


def test_a_failing_stream_prints_nothing_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """A record that cannot be written is dropped, not reported with a traceback."""
    stream = io.StringIO()
    configure_logging(LogConfig(level="info"), stream)
    stream.close()
    logging.getLogger("asyncio").error("lost")
    assert capfd.readouterr().err == ""


def test_structlog_exception_events_get_the_same_fields() -> None:
    """Gatekeeper's own `log.exception()` renders like a stdlib one (no `exc_info`)."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="info"), buffer)
    try:
        fail_with_secrets()
    except ConnectionResetError:
        structlog.get_logger("gatekeeper").exception("send_failed")
    [event] = lines(buffer)
    assert event["exc_type"] == "ConnectionResetError"
    assert REDACTED in event["exc_message"]
    assert "exc_info" not in event
    assert "logger" not in event


def test_exception_objects_and_types_outside_builtins() -> None:
    """`exc_info=<exception>` works outside an except block; other modules' types are
    named with their module."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="info"), buffer)
    structlog.get_logger().error("failed", exc_info=json.JSONDecodeError("bad", "{}", 1))
    [event] = lines(buffer)
    assert event["exc_type"] == "json.decoder.JSONDecodeError"
    assert event["exc_message"].startswith("bad")


def test_records_written_to_stderr_are_json_too(capfd: pytest.CaptureFixture[str]) -> None:
    """With `stream=sys.stderr` (the CLI's list commands), stderr holds JSON lines only."""
    configure_logging(LogConfig(level="info"), sys.stderr)
    try:
        fail_with_secrets()
    except ConnectionResetError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    _, err = capfd.readouterr()
    [line] = err.splitlines()
    assert json.loads(line)["logger"] == "asyncio"
    assert TOKEN not in err
