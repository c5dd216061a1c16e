"""Client faults on the listeners: a malformed request (what aiohttp's parser refused, or
a target that is not a path) and a body that did not arrive in time, each with the reply
Gatekeeper gives: a status, an error `type` and a fixed message.

aiohttp's messages quote the request bytes they failed on (a header that may hold a
credential), so they are never shown or logged: `classify` picks a fixed message by the
exception's class, or by llhttp's reason at the start of the message for the classes
llhttp uses for many faults.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    ContentLengthError,
    DecompressSizeError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)


class BodyTimeout(OSError):
    """The request body did not arrive within the body timeout.

    An OSError like the other ways a client fails to deliver a body, so handlers that clean
    up after a client gone mid-body do so here too.
    """


class UnsupportedTarget(BadHttpMessage):
    """A request target that is not a path: absolute, authority or asterisk form."""

    def __init__(self) -> None:
        super().__init__("request target not in origin-form")


@dataclass(frozen=True, slots=True)
class Fault:
    """How a client's fault is answered: status, `type` and a message free of request bytes."""

    status: int
    type: str
    message: str


_BAD = "bad_request"
_TOO_LARGE = "request_header_fields_too_large"
_NOT_HTTP = "The request is not valid HTTP/1.1."
# llhttp's reasons (the text before ":" in aiohttp's message, which then quotes the
# request bytes), matched by prefix; any other gets _NOT_HTTP.
_REASONS: tuple[tuple[str, Fault], ...] = (
    ("Too many headers", Fault(431, _TOO_LARGE, "The request has too many header fields.")),
    ("Pause on PRI/Upgrade", Fault(400, _BAD, "HTTP/2 is not supported here: use HTTP/1.1.")),
    ("Invalid header value char", Fault(400, _BAD, "A header value has an invalid character.")),
    ("Invalid header token", Fault(400, _BAD, "A header name is invalid.")),
    ("Unexpected whitespace", Fault(400, _BAD, "A header line is folded or has stray "
                                                "whitespace.")),
    ("Invalid character in chunk", Fault(400, _BAD, "The chunked body encoding is malformed.")),
    ("Invalid character in Content-Length", Fault(400, _BAD, "Content-Length is not a number.")),
    ("Transfer-Encoding can't be present with Content-Length",
     Fault(400, _BAD, "Content-Length and Transfer-Encoding are both present.")),
    ("Request has invalid `Transfer-Encoding`",
     Fault(400, _BAD, "The Transfer-Encoding is not supported.")),
)
# By class, most specific first.
_CLASSES: tuple[tuple[type[BaseException], Fault], ...] = (
    (LineTooLong, Fault(431, _TOO_LARGE, "The request line or a header field is too long.")),
    (UnsupportedTarget, Fault(400, _BAD, "The request target must be a path: absolute, "
                                         "authority and asterisk forms are refused.")),
    (BadHttpMethod, Fault(400, _BAD, "The request does not start with an HTTP method "
                                     "(TLS or another protocol on an HTTP port?).")),
    (BadStatusLine, Fault(400, _BAD, "The request line is malformed.")),
    (InvalidURLError, Fault(400, _BAD, "The request target is malformed.")),
    (InvalidHeader, Fault(400, _BAD, "A header field is malformed.")),
    (TransferEncodingError, Fault(400, _BAD, "The chunked body encoding is malformed.")),
    (ContentLengthError, Fault(400, _BAD, "The body does not match its Content-Length.")),
    (DecompressSizeError, Fault(400, _BAD, "The body is too large once decompressed.")),
    (ContentEncodingError, Fault(400, _BAD, "The body cannot be decoded with its "
                                            "Content-Encoding.")),
)


def classify(exc: BaseException | None) -> tuple[Fault, str] | None:
    """The reply for a malformed request and the error class to log, or None when `exc` is
    not the client's fault. Never uses the exception's text, which quotes request bytes."""
    if isinstance(exc, web.RequestPayloadError):
        # aiohttp wraps the parser's error for the handler reading the body.
        cause = exc.__cause__
        if isinstance(cause, HttpProcessingError):
            exc = cause
        else:
            return Fault(400, _BAD, "The request body is malformed."), type(exc).__name__
    if not isinstance(exc, HttpProcessingError):
        return None
    name = type(exc).__name__
    for cls, fault in _CLASSES:
        if isinstance(exc, cls):
            return fault, name
    reason = exc.message if isinstance(exc.message, str) else ""
    for prefix, fault in _REASONS:
        if reason.startswith(prefix):
            return fault, name
    return Fault(400, _BAD, _NOT_HTTP), name
