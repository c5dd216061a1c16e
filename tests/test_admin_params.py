"""Parameter checks shared by the admin APIs: scopes and regions."""

from __future__ import annotations

import pytest

from gatekeeper.admin.auth import BadRequest
from gatekeeper.admin.params import region_param, scope_param


@pytest.mark.parametrize("value", ["global", "tenant:acme", "agent:42"])
def test_valid_scopes_pass_unchanged(value: str) -> None:
    """`global` and `kind:id` scopes are returned as given."""
    assert scope_param(value) == value


@pytest.mark.parametrize("value", ["", "tenant", "Tenant:acme", "tenant:", 42, None])
def test_invalid_scopes_are_bad_requests(value: object) -> None:
    """Anything else is a 400 `invalid_scope` naming the value."""
    with pytest.raises(BadRequest) as raised:
        scope_param(value)
    assert raised.value.code == "invalid_scope"
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("tr", "TR"), ("US", "US"),
])
def test_regions_are_upper_cased_or_absent(value: object, expected: str | None) -> None:
    """A known region comes back upper-cased; none given is None."""
    assert region_param(value) == expected


@pytest.mark.parametrize("value", ["XX", "turkey", 90])
def test_unknown_regions_are_bad_requests(value: object) -> None:
    """An unknown region is a 400 `invalid_region`."""
    with pytest.raises(BadRequest) as raised:
        region_param(value)
    assert raised.value.code == "invalid_region"
