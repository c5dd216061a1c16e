"""Logging set-up: structlog JSON lines with credentials redacted and phone numbers
masked (at known fields and inside any string), stdlib `logging` routed through the same
processors, one line per event."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TextIO

import orjson
import structlog

from gatekeeper.config import LogConfig
from gatekeeper.numbers import mask_number

REDACTED = "[redacted]"
# Keys whose values are credentials wherever they appear in an event (matched lowercased).
_SECRET_KEY = re.compile(
    r"(authorization|auth_token|token|api_?key|apikey|secret|password|passwd|hash|"
    r"credential|cookie|signature|^sig$|^key$)")

# Credentials inside text (an exception message, a URL, a dumped header or body). Each
# branch keeps its lead (the name, scheme or URL user) so the line still says what was
# there: `name: "value"`, `name=value` (an auth scheme after the name stays, possessively:
# never retaken as the value once that is `[redacted]`), a bare
# `Basic`/`Bearer`/`AccessKey` token, Infobip's `App <key>` (16+ characters, since "App"
# is also a word), and the password of `scheme://user:password@host`.
_CREDENTIAL_NAMES = (
    r"(?i:proxy-authorization|authorization|x-api-key|api[_-]?(?:key|secret)|apikey|"
    r"(?:auth|access|refresh)[_-]?token|client[_-]?secret|secret|password|passwd|pwd|"
    r"signature|sig|token|credentials?|hash|key)")
_NAMED = rf"(?<![A-Za-z0-9]){_CREDENTIAL_NAMES}\\*[\"']?\s*[:=]\s*"
_SECRET_TEXT = re.compile(
    rf"(?P<quoted>{_NAMED}\\*(?P<q>[\"']))(?:(?!(?P=q))[^\\])+"
    rf"|(?P<named>{_NAMED}(?:(?i:basic|bearer|accesskey|app|token|digest)\s+)?+)"
    r"[^\s\"'\\&,;<>()\[\]{}]+"
    r"|(?P<scheme>(?<![A-Za-z0-9])(?i:basic|bearer|accesskey)\s+)[A-Za-z0-9._~+/-]+=*"
    r"|(?P<app>(?<![A-Za-z0-9])App\s+)[A-Za-z0-9._~+/-]{16,}=*"
    r"|(?P<userinfo>://[^/\s:@]*:)[^/\s@]+(?=@)")
# Every branch above holds one of these (lowercased): a cheap test that lets most text
# skip the costly expression (case-insensitive matching is slow in `re`).
_SECRET_HINT = re.compile(r"auth|key|secret|pass|pwd|sig|token|credential|hash|basic|"
                          r"bearer|app|://")

# Phone numbers inside text, one expression per spelling, each tried only when the text
# holds the characters it needs (one expression of many branches costs microseconds on
# every string): a tel:/sip:/sips:/whatsapp: URI's numeric user part (5+
# digits); `+` (or `%2B`) and 7+ digits, separators allowed, a trailing `*` making it a
# prefix entry; a query parameter or quoted value that is wholly 8-15 digits.
_URI_NUMBER = re.compile(
    r"(?P<lead>(?:tel|sips?|whatsapp|Tel|Sips?|Whats[Aa]pp|TEL|SIPS?|WHATSAPP):)"
    r"(?P<user>\+?\d(?:[ .()-]{0,2}\d){4,})")
_URI_HINT = re.compile(r":\+?\d")
_PLUS_NUMBER = re.compile(r"(?:\+|%2[Bb])(?P<digits>\d(?:[ \t.()/-]{0,2}\d){6,14}\d*)(?P<star>\*)?")
_DIGITS_VALUE = re.compile(r"(?P<lead>[?&][\w.\[\]-]+=|[\"'])(?P<digits>\d{8,15})(?=[&#\s\"']|$)")
_ALL_DIGITS = re.compile(r"\d{8,15}")
_NOT_DIGIT = re.compile(r"\D")
_ANY_DIGIT = re.compile(r"\d")
# Prefix entries this short cover a thousand numbers or more: shown whole.
PREFIX_SHOWN_DIGITS = 8
# Top-level keys the masking step skips: generated or configured, never a phone number,
# and masking could damage them (a caller's request id may be `tel:...` or all digits).
# Not `event` (a stdlib record's message) nor scopes (`agent:<id>` may be a number):
# ordinary names have nothing the masking step changes. Deeper keys are all masked.
NEVER_MASKED = frozenset({"timestamp", "level", "logger", "request_id", "upstream"})
# Set while serving a request of an app built with `log.mask_numbers: false` (see
# `numbers_shown`).
_NUMBERS_SHOWN: ContextVar[bool] = ContextVar("gatekeeper_numbers_shown", default=False)

def _scrub(value: object, text: Callable[[str], str]) -> object:
    """`value` with `text` applied to every string in it, dict keys included."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, int | float | None):
        return value
    if isinstance(value, Mapping):
        return {text(k) if isinstance(k, str) else k: _scrub(v, text)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, text) for v in value]
    # Rendered as its repr anyway (JSON fallback, console): scrub that text instead.
    return text(repr(value))


def redact_text(text: str) -> str:
    """`text` with credential-looking substrings replaced by `[redacted]`."""
    if _SECRET_HINT.search(text.lower()) is None:
        return text
    return _SECRET_TEXT.sub(_redacted, text)


def _redacted(match: re.Match[str]) -> str:
    lead = (match["quoted"] or match["named"] or match["scheme"] or match["app"]
            or match["userinfo"])
    return f"{lead}{REDACTED}"


@lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # Event keys are a small set of names: each is matched once.
    return _SECRET_KEY.search(key.lower()) is not None


def _redact(value: object) -> object:
    if isinstance(value, str):  # the common case first: a Mapping check is slow
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and _is_secret_key(k) else _redact(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return _scrub(value, redact_text)


def redact_secrets(_logger: object, _name: str, event: MutableMapping[str, Any]
                   ) -> dict[str, Any]:
    """structlog processor: credential-like fields become `[redacted]` at any depth, and
    so do credential-looking substrings of any string (see `redact_text`)."""
    return {k: REDACTED if _is_secret_key(k) else _redact(v) for k, v in event.items()}


def mask_entry(entry: str, shown: int = PREFIX_SHOWN_DIGITS) -> str:
    """A list entry for logs: an exact one masked like a number; a prefix of more than
    `shown` digits keeps only its head (`+336123456*` -> `+3361*****`)."""
    if not entry.endswith("*"):
        return mask_number(entry)
    if len(entry) - 2 <= shown:
        return entry
    return f"{entry[:1 + min(shown, 4)]}*****"


def _mask_bare(digits: str) -> str:
    # The shape of a masked number, without the `+` the digits did not have.
    return mask_number(f"+{digits}")[1:]


def _masked_uri(match: re.Match[str]) -> str:
    user = match["user"]
    digits = _NOT_DIGIT.sub("", user)
    shown = mask_number(f"+{digits}") if user[0] == "+" else _mask_bare(digits)
    return f"{match['lead']}{shown}"


def _masked_plus(match: re.Match[str]) -> str:
    digits = _NOT_DIGIT.sub("", match["digits"])
    return mask_entry(f"+{digits}*") if match["star"] else mask_number(f"+{digits}")


def _masked_value(match: re.Match[str]) -> str:
    return f"{match['lead']}{_mask_bare(match['digits'])}"


def mask_text(text: str) -> str:
    """`text` with phone numbers masked: a value of 8-15 digits alone, or numbers inside
    it (`+` and digits, tel:/sip:/whatsapp: URIs, digit-only query or quoted values)."""
    if _ANY_DIGIT.search(text) is None:
        return text
    if _ALL_DIGITS.fullmatch(text):
        return _mask_bare(text)
    if ":" in text and _URI_HINT.search(text):
        text = _URI_NUMBER.sub(_masked_uri, text)
    if "+" in text or "%2" in text:
        text = _PLUS_NUMBER.sub(_masked_plus, text)
    if "=" in text or '"' in text or "'" in text:
        text = _DIGITS_VALUE.sub(_masked_value, text)
    return text


@contextmanager
def numbers_shown() -> Iterator[None]:
    """Within this block (this task's context), the masking step leaves numbers shown: for
    the requests of an app built with `log.mask_numbers: false` when the process masks
    (several apps in one process, as in tests)."""
    token = _NUMBERS_SHOWN.set(True)
    try:
        yield
    finally:
        _NUMBERS_SHOWN.reset(token)


def mask_phone_numbers(_logger: object, _name: str, event: MutableMapping[str, Any]
                       ) -> MutableMapping[str, Any]:
    """structlog processor: phone numbers masked in every string at any depth, except
    under the top-level keys of `NEVER_MASKED`."""
    if _NUMBERS_SHOWN.get():
        return event
    return {k: v if k in NEVER_MASKED else _scrub(v, mask_text) for k, v in event.items()}


class _ExceptionFields:
    """structlog processor: `exc_info` becomes plain fields the later steps redact and
    mask: `exc_type`, `exc_message` and, when logging at debug, `exc_traceback`."""

    def __init__(self, with_traceback: bool) -> None:
        self.with_traceback = with_traceback

    def __call__(self, _logger: object, _name: str, event: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        exc_info = event.pop("exc_info", None)
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[1] is None:
            return event
        kind, exc, tb = exc_info
        module = kind.__module__
        event["exc_type"] = (kind.__qualname__ if module == "builtins"
                             else f"{module}.{kind.__qualname__}")
        try:
            event["exc_message"] = str(exc)
        except Exception:  # a broken __str__ must not lose the event
            event["exc_message"] = "<unprintable>"
        if self.with_traceback:
            event["exc_traceback"] = "".join(traceback.format_exception(kind, exc, tb))
        return event


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def render_json(_logger: object, _name: str, event: MutableMapping[str, Any]) -> bytes:
    """structlog renderer: the event as one JSON line, newline included, in ASCII
    (orjson, about a fifth of `json`'s time per event). An event with text beyond ASCII
    goes through `json`, which escapes it (no control or look-alike character from a
    client reaches the log raw), and so does what orjson refuses (an integer past 64
    bits, a lone surrogate): never a lost event. A float that is not finite is written
    null either way, as orjson writes it (`json` would write `Infinity`, which is not
    JSON and which strict readers refuse)."""
    try:
        line = orjson.dumps(event, default=repr, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError
        line = b""
    if line and line.isascii():
        return line
    finite = _finite(event)
    try:
        return (json.dumps(finite, default=repr) + "\n").encode()
    except TypeError:  # a key neither text nor a number (a tuple): written as text
        return (json.dumps(_text_keys(finite), default=repr) + "\n").encode()


def _finite(value: object) -> object:
    """`value` with every float that is not finite made None, at any depth (mappings
    keep their keys)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _text_keys(value: object) -> object:
    """`value` with every mapping's keys made text, at any depth."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else repr(k): _text_keys(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text_keys(v) for v in value]
    return value


def _one_line(render: structlog.typing.Processor) -> structlog.typing.Processor:
    """`render`, with line breaks escaped so that one event is one line (the console
    renderer writes messages and values as they are; JSON escapes them already)."""
    def rendered(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        return str(render(logger, name, event)).replace("\r", "\\r").replace("\n", "\\n")
    return rendered


class _StdlibToStructlog(logging.Handler):
    """A root `logging` handler: each record becomes one structlog event (`logger` is the
    record's logger name) through the same processors as Gatekeeper's own events."""

    def __init__(self, log: Any, level: int) -> None:
        super().__init__(level)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            try:
                message = record.getMessage()
            except Exception:  # bad arguments: keep the format string
                message = str(record.msg)
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            # structlog knows the five standard levels; others go to the one below.
            level = min(logging.CRITICAL, max(logging.DEBUG, record.levelno // 10 * 10))
            self._log.log(level, message, **fields)
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        """Drop the record: logging's default prints a raw traceback on stderr."""


class LineLogger:
    """structlog's output: each record and its newline in ONE write to the stream's file
    descriptor, so that the records of several processes (`run --workers N`) sharing
    one file or pipe never mix within a line (print() writes the text and the newline
    apart, and a buffered stream may split a long record)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # StringIO in tests: no descriptor
            self._fd = None
        self._lock = threading.Lock()

    def msg(self, message: str | bytes) -> None:
        """Write one record: text, or a whole line's UTF-8 (`render_json`'s)."""
        with self._lock:
            if self._fd is None:
                self._stream.write(message.decode() if isinstance(message, bytes)
                                   else message + "\n")
                self._stream.flush()
                return
            self._stream.flush()  # anything print() left in the buffer goes first
            data = message if isinstance(message, bytes) else \
                (message + "\n").encode("utf-8", "replace")
            # A regular file or a pipe takes it whole; a short write (a full
            # non-blocking pipe) goes on where it stopped.
            while data:
                written = os.write(self._fd, data)
                data = data[written:]

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class LineLoggerFactory:
    """Makes the one `LineLogger` of a stream (structlog's logger_factory)."""

    def __init__(self, stream: TextIO) -> None:
        self._logger = LineLogger(stream)

    def __call__(self, *_args: object) -> LineLogger:
        return self._logger


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Configure structlog once at start-up: JSON lines (or console), secrets redacted,
    numbers masked unless `mask_numbers` is off; stdlib `logging` (aiohttp, asyncio,
    ...) goes through the same steps, one line per record, via a root handler."""
    level = logging.getLevelNamesMapping()[config.level.upper()]
    renderer: structlog.typing.Processor = (
        render_json if config.format == "json"
        else _one_line(structlog.dev.ConsoleRenderer(colors=False)))
    processors: list[structlog.typing.Processor] = [
        _ExceptionFields(with_traceback=level <= logging.DEBUG),
        redact_secrets,
    ]
    if config.mask_numbers:
        processors.append(mask_phone_numbers)
    # Added after the scrubbing, which they need not go through (generated, never a
    # secret nor a number); still last in the line, as before.
    processors += [structlog.processors.add_log_level,
                   structlog.processors.TimeStamper(fmt="iso", utc=True), renderer]
    out = stream or sys.stdout
    factory = LineLoggerFactory(out)
    wrapper = structlog.make_filtering_bound_logger(level)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibToStructlog)]:
        root.removeHandler(old)
    # Same processors and stream (and so the same write lock) as structlog's own events.
    log = structlog.wrap_logger(factory(), processors=processors,
                                wrapper_class=wrapper).bind()
    root.addHandler(_StdlibToStructlog(log, level))
    root.setLevel(level)
