"""Credentials inside log text (exception messages, URLs, dumped headers and bodies)."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.observability import REDACTED, redact_secrets, redact_text

R = REDACTED


@pytest.mark.parametrize(("text", "redacted"), [
    ("Authorization: Basic QUMxOnNlY3JldA==", f"Authorization: Basic {R}"),
    ("authorization=Bearer abc.def-ghi", f"authorization=Bearer {R}"),
    ("header Bearer eyJhbGciOi.eyJzdWIi.c2ln", f"header Bearer {R}"),
    ("AccessKey live_4fJ9qLr2", f"AccessKey {R}"),
    ("App 003026bbc133714df1834b8638bb496e-8f4b", f"App {R}"),
    ("GET /sms/json?api_key=abc123&api_secret=s3cr3t&to=x",
     f"GET /sms/json?api_key={R}&api_secret={R}&to=x"),
    ("password=hunter2", f"password={R}"),
    ("?sig=abcdef&x=1", f"?sig={R}&x=1"),
    ("auth_token=tok; retry", f"auth_token={R}; retry"),
    ('body {"password":"correct horse","user":"u"}', f'body {{"password":"{R}","user":"u"}}'),
    ("{'api_key': 'k-123'}", f"{{'api_key': '{R}'}}"),
    (r'{\"password\":\"x1y2\"}', rf'{{\"password\":\"{R}\"}}'),
    ("X-Api-Key: abcdef", f"X-Api-Key: {R}"),
    ("redis://:pw0rd@127.0.0.1:6379/0", f"redis://:{R}@127.0.0.1:6379/0"),
    ("https://AC1:tok@api.example.com/x", f"https://AC1:{R}@api.example.com/x"),
], ids=["basic", "named-bearer", "bare-bearer", "accesskey", "infobip-app", "query",
        "password", "sig", "auth-token", "json", "python-dict", "escaped-json", "header",
        "redis-url", "url-userinfo"])
def test_credentials_in_text_are_redacted(text: str, redacted: str) -> None:
    """The credential goes; its name or scheme stays; redacting twice changes nothing."""
    assert redact_text(text) == redacted
    assert redact_text(redacted) == redacted


@pytest.mark.parametrize("text", [
    "App started", "KeyError: 'scope'", "tokens=5", "signature_version=2",
    "failed: token expired", "https://api.example.com/x?to=1", "key_name=ops",
    "Error 111 connecting to localhost:6379. Connection refused.",
], ids=lambda v: v[:20])
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Words next to credential names are not credentials."""
    assert redact_text(text) == text


@pytest.mark.parametrize(("event", "expected"), [
    ({"error": "cannot connect: redis://:pw@h:1"}, {"error": f"cannot connect: redis://:{R}@h:1"}),
    ({"mounts": {"/v": "https://api.example.com/x?api_key=k1"}},
     {"mounts": {"/v": f"https://api.example.com/x?api_key={R}"}}),
    ({"calls": [("Bearer t0k3n", 1)]}, {"calls": [[f"Bearer {R}", 1]]}),
    ({"size": 10, "ok": True, "none": None}, {"size": 10, "ok": True, "none": None}),
], ids=["error-message", "nested-url", "tuple", "non-strings"])
def test_redact_secrets_scans_values_too(event: dict[str, Any],
                                         expected: dict[str, Any]) -> None:
    """The processor redacts inside every string, at any depth, besides secret keys."""
    assert redact_secrets(None, "info", dict(event)) == expected


def test_objects_are_redacted_as_their_text() -> None:
    """A value rendered by its repr is redacted in that repr."""
    error = ValueError("Authorization: Bearer t0k3n")
    assert redact_secrets(None, "info", {"error": error}) == {
        "error": f"ValueError('Authorization: Bearer {R}')"}
