"""Parameter checks every admin API shares: a scope, a region. Bad values are a 400."""

from __future__ import annotations

from gatekeeper.admin.auth import BadRequest
from gatekeeper.numbers import is_known_region, is_valid_scope


def scope_param(value: object) -> str:
    """A valid scope (`global` or `kind:id`), or BadRequest `invalid_scope`."""
    if not isinstance(value, str) or not is_valid_scope(value):
        raise BadRequest("invalid_scope",
                         f"Invalid scope {value!r}: expected 'global' or 'kind:id'.")
    return value


def region_param(value: object) -> str | None:
    """A known region, upper-cased; None when absent or empty; else BadRequest
    `invalid_region`."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not is_known_region(value.upper()):
        raise BadRequest("invalid_region", f"Unknown region {value!r}: expected e.g. 'TR'.")
    return value.upper()
