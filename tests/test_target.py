"""The request target read at the edge (`gatekeeper.target`): the path routes are matched
on, or the refusal, for each row of the table in the module's docstring."""

from __future__ import annotations

import pytest

from gatekeeper.providers.routing import template
from gatekeeper.target import Target, TargetError, match_path, read_target

REFUSED = None  # the target is refused (400 invalid_path)

# (id, raw path, match path or REFUSED); grouped by the docstring table's rows.
PATHS: list[tuple[str, str, str | None]] = [
    # letters, digits, `-._~`, `!$&'()*+,=:@` (raw or %XX): matched decoded.
    ("plain", "/a/b", "/a/b"),
    ("root", "/", "/"),
    ("unreserved", "/v1/a-b_c.d~e", "/v1/a-b_c.d~e"),
    ("sub-delims", "/v1/!$&'()*+,=:@", "/v1/!$&'()*+,=:@"),
    ("plus-is-not-a-space", "/v1/sms+mms", "/v1/sms+mms"),
    ("percent-letter", "/a/%62", "/a/b"),
    ("percent-letter-lower-hex", "/a/%6a", "/a/j"),
    ("percent-digit", "/v%31/sms", "/v1/sms"),
    ("percent-dot-inside-a-segment", "/Calls%2Ejson", "/Calls.json"),
    ("percent-plus", "/a%2Bb", "/a+b"),
    ("percent-sub-delims", "/%21%24%26%27%28%29%2A%2C%3D%3A%40", "/!$&'()*,=:@"),
    ("all-percent", "".join(f"%{b:02X}" if chr(b) != "/" else "/" for b in b"/v1/sms"),
     "/v1/sms"),
    ("three-dots-is-a-name", "/a/...", "/a/..."),
    ("dot-inside-a-name", "/a/.b/c.", "/a/.b/c."),
    # letter case: kept here, matched case-insensitively by the routes (below).
    ("case-kept", "/V1/Messages", "/V1/Messages"),
    # repeated or trailing `/`: ignored for matching.
    ("trailing-slash", "/a/b/", "/a/b"),
    ("doubled-slashes", "//a///b//", "/a/b"),
    ("only-slashes", "///", "/"),
    # `.` / `..` segments, raw or encoded: refused.
    ("dot", "/a/./b", REFUSED),
    ("dot-dot", "/a/x/../b", REFUSED),
    ("trailing-dot", "/a/b/.", REFUSED),
    ("trailing-dot-dot", "/a/b/..", REFUSED),
    ("dot-dot-above-root", "/../../a", REFUSED),
    ("encoded-dot-dot", "/a/x/%2E%2E/b", REFUSED),
    ("encoded-dot-dot-lower", "/a/x/%2e%2e/b", REFUSED),
    ("half-encoded-dot-dot", "/a/.%2E/b", REFUSED),
    ("encoded-dot", "/a/%2E/b", REFUSED),
    ("dot-dot-after-doubled-slash", "/a//../b", REFUSED),
    # `;` raw or `%3B` (path parameters): refused.
    ("semicolon", "/a/b;jsessionid=1", REFUSED),
    ("encoded-semicolon", "/a/b%3Bx", REFUSED),
    ("encoded-semicolon-lower", "/a/b%3bx", REFUSED),
    # `%2F`, `\`, `%5C`: refused.
    ("encoded-slash", "/a%2Fb", REFUSED),
    ("encoded-slash-lower", "/a%2fb", REFUSED),
    ("backslash", "/a\\b", REFUSED),
    ("encoded-backslash", "/a%5Cb", REFUSED),
    # `%25` (an encoded `%`): refused.
    ("encoded-percent", "/a%25b", REFUSED),
    ("double-encoded-slash", "/a%252Fb", REFUSED),
    # `%3F`, `%23`: refused (a raw `#` is tested with read_target below).
    ("encoded-question-mark", "/a%3Fb", REFUSED),
    ("encoded-hash", "/a%23b", REFUSED),
    ("raw-hash", "/a#b", REFUSED),
    # controls, space, `%00`-`%20`, `%7F`, bytes >= 0x80: refused.
    ("control", "/a\x01b", REFUSED),
    ("tab", "/a\tb", REFUSED),
    ("space", "/a b", REFUSED),
    ("delete", "/a\x7fb", REFUSED),
    ("encoded-nul", "/a%00b", REFUSED),
    ("encoded-unit-separator", "/a%1Fb", REFUSED),
    ("encoded-space", "/a%20b", REFUSED),
    ("encoded-delete", "/a%7Fb", REFUSED),
    ("encoded-high-byte", "/a%80b", REFUSED),
    ("encoded-utf8", "/caf%C3%A9", REFUSED),
    ("raw-non-ascii", "/caf\u00e9", REFUSED),
    # any other character, bad `%` escapes: refused.
    ("double-quote", '/a"b', REFUSED),
    ("less-than", "/a<b", REFUSED),
    ("greater-than", "/a>b", REFUSED),
    ("caret", "/a^b", REFUSED),
    ("backtick", "/a`b", REFUSED),
    ("open-brace", "/a{b", REFUSED),
    ("pipe", "/a|b", REFUSED),
    ("close-brace", "/a}b", REFUSED),
    ("encoded-brace", "/a%7Bb", REFUSED),
    ("lone-percent", "/a%b", REFUSED),
    ("percent-at-end", "/a%", REFUSED),
    ("short-escape", "/a%4", REFUSED),
    ("bad-hex", "/a%G1", REFUSED),
    # a target not starting with `/` (absolute form, `*`, empty): refused.
    ("absolute-form", "http://api.example/a", REFUSED),
    ("asterisk", "*", REFUSED),
    ("relative", "a/b", REFUSED),
    ("empty", "", REFUSED),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in PATHS],
                         ids=[c[0] for c in PATHS])
def test_match_path(raw: str, expected: str | None) -> None:
    """Each spelling is read the widest way every server could read it, or refused."""
    found = match_path(raw)
    if expected is REFUSED:
        assert isinstance(found, TargetError)
        assert found.reason
    else:
        assert found == expected


# (id, raw target, expected Target or REFUSED)
TARGETS: list[tuple[str, str, Target | None]] = [
    ("path-only", "/v1/sms", Target("/v1/sms", "/v1/sms", "")),
    ("path-forwarded-as-sent", "//V1/%73ms/", Target("//V1/%73ms/", "/V1/sms", "")),
    ("query-kept-as-sent", "/v1/sms?to=%2B1&to=+2&x=%ZZ;y",
     Target("/v1/sms", "/v1/sms", "to=%2B1&to=+2&x=%ZZ;y")),
    ("query-may-hold-slashes-and-dots", "/a?next=/../b", Target("/a", "/a", "next=/../b")),
    ("empty-query", "/a?", Target("/a", "/a", "")),
    ("second-question-mark-is-query", "/a?b?c", Target("/a", "/a", "b?c")),
    ("fragment", "/a#frag", REFUSED),
    ("fragment-after-query", "/a?b=1#frag", REFUSED),
    ("refused-path-with-a-query", "/a/../b?x=1", REFUSED),
    ("absolute-form", "https://api.example/a?x=1", REFUSED),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in TARGETS],
                         ids=[c[0] for c in TARGETS])
def test_read_target(raw: str, expected: Target | None) -> None:
    """The path and query are kept exactly as sent for forwarding; `match` is for routing."""
    found = read_target(raw)
    if expected is REFUSED:
        assert isinstance(found, TargetError)
        assert found.reason
    else:
        assert found == expected


@pytest.mark.parametrize("raw", ["/v1/messages", "/V1/MESSAGES", "/v1/Messages/",
                                 "/v1/%4Dessages", "//v1//messages"])
def test_spellings_reach_the_same_route(raw: str) -> None:
    """Case, slashes and escapes read through `match_path` all match one route template."""
    path = match_path(raw)
    assert isinstance(path, str)
    assert template("/v1/messages").match(path) == {}
