"""Path templates: how a preset's route table names the paths it checks.

A template is a path below the mount whose segments are literal words, `{name}` (any one
segment, captured), `{name:regex}` or `{:regex}` (one segment matching `regex`, the first
captured) or `*` (any one segment). Literals match in any case and `ext=True` lets the
last segment carry any `.suffix` (`Messages`, `Messages.json`, `Messages.xml`): matching
is wider than a gateway's own routing on purpose, so a send cannot slip past by how its
path is spelled. Templates are matched against `target.Target.match` (decoded, single
slashes, no trailing slash).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)?(?::(?P<regex>[^{}]+))?\}")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled path template."""

    template: str
    regex: re.Pattern[str]

    def match(self, path: str) -> dict[str, str] | None:
        """The captured segments when `path` matches, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {k: v for k, v in found.groupdict().items() if v is not None}


def _segment(text: str) -> str:
    if text == "*":
        return "[^/]+"
    out, pos = [], 0
    for part in _PART.finditer(text):
        out.append(re.escape(text[pos:part.start()]))
        body = part.group("regex") or "[^/]+"
        name = part.group("name")
        out.append(f"(?P<{name}>{body})" if name else f"(?:{body})")
        pos = part.end()
    out.append(re.escape(text[pos:]))
    return "".join(out)


def template(text: str, *, ext: bool = False, prefix: bool = False) -> PathPattern:
    """Compile a template; `prefix=True` also matches any path below it."""
    segments = [s for s in text.split("/") if s]
    body = "".join("/" + _segment(s) for s in segments) or "/?"
    if ext:
        body += r"(?:\.[A-Za-z0-9]+)?"
    if prefix:
        body += "(?:/.*)?"
    return PathPattern(text, re.compile(body, re.IGNORECASE))
