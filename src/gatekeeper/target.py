"""The request target, read once at the edge: what is forwarded and what routes match.

Gateways differ in how they read a path (decoding, case, slashes, path parameters), so
each character class is either read the widest way every server could read it, or the
request is refused with 400 `invalid_path`; no request reaches an upstream whose path
Gatekeeper read differently from it. The table (also in the README):

| in the path                                         | handling                                  |
|-----------------------------------------------------|-------------------------------------------|
| letters, digits, `-._~`, `!$&'()*+,=:@` (raw or %XX) | matched decoded; forwarded as sent        |
| letter case                                         | matched case-insensitively                |
| repeated or trailing `/`                            | ignored for matching; forwarded as sent   |
| `.` / `..` segments, raw or encoded                 | refused                                   |
| `;` raw or `%3B` (path parameters)                  | refused: some servers drop `;...`         |
| `%2F`, `\\`, `%5C`                                  | refused: some servers read them as `/`    |
| `%25` (an encoded `%`)                              | refused: double-decoding servers          |
| `%3F`, `%23`, a `#` fragment                        | refused                                   |
| controls, space, `%00`-`%20`, `%7F`, bytes >= 0x80   | refused                                   |
| any other character (`"<>^`{|}`), bad `%` escapes    | refused                                   |
| a target not starting with `/` (absolute, `*`)      | refused                                   |

The query string is forwarded exactly as sent and read by the locators (forms.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Characters that may stand raw in a path and mean the same to every server.
_RAW_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    "-._~!$&'()*+,=:@/%")
# Bytes a %XX escape may encode: the raw-safe set without `/` and `%`.
_DECODED_OK = frozenset(ord(c) for c in _RAW_OK - {"/", "%"})
_ESCAPE = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Target:
    """A request target read once: `path` and `query` as sent, `match` for routing."""

    path: str    # the path exactly as sent (what is forwarded)
    match: str   # decoded, one `/` between segments, no trailing `/` (what routes see)
    query: str   # the query exactly as sent, without the `?`


@dataclass(frozen=True, slots=True)
class TargetError:
    """Why a target was refused (returned to the client as `invalid_path`)."""

    reason: str


def read_target(raw: str) -> Target | TargetError:
    """Split and check a request target (origin-form only)."""
    path, _, query = raw.partition("?")
    if "#" in raw:
        return TargetError("a request target cannot carry a fragment ('#')")
    match = match_path(path)
    if isinstance(match, TargetError):
        return match
    return Target(path, match, query)


@lru_cache(maxsize=4096)
def match_path(path: str) -> str | TargetError:
    """The path routes are matched on, or why the path is refused. Cached: the same few
    paths come back on every request."""
    if not path.startswith("/"):
        return TargetError("the request target must be a path starting with '/'")
    bad = next((c for c in path if c not in _RAW_OK), None)
    if bad is not None:
        return TargetError(f"character {bad!r} is not accepted in a path")
    if "%" in path:
        if path.count("%") != len(_ESCAPE.findall(path)):
            return TargetError("malformed percent-encoding in the path")
        for found in _ESCAPE.finditer(path):
            if int(found.group("hex"), 16) not in _DECODED_OK:
                return TargetError(f"encoded character %{found.group('hex').upper()} is not "
                                   "accepted in a path")
        path = _ESCAPE.sub(lambda m: chr(int(m.group("hex"), 16)), path)
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        return TargetError("paths with '.' or '..' segments are refused")
    return "/" + "/".join(segments)
