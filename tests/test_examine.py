"""examine.py's pure parts: the monitor-only hits of a screening, counted once per
distinct number and rule kind (one destination or many)."""

from __future__ import annotations

import pytest

from gatekeeper.examine import _monitored
from gatekeeper.policy import Decision
from gatekeeper.rules import RuleResult
from gatekeeper.screening import Screened

NY, LA = "+12125550123", "+13105550123"
COUNTRY = RuleResult("country", "global", "monitor")
QUIET = RuleResult("quiet_hours", "global", "monitor")
QUIET_TENANT = RuleResult("quiet_hours", "tenant:a", "monitor")


def screened(*decisions: tuple[str, str, tuple[RuleResult, ...]]) -> Screened:
    """A screening of (raw destination, its number, its monitored rules)."""
    return Screened({}, {raw: Decision(number, "unlisted", monitored=monitored)
                         for raw, number, monitored in decisions})


@pytest.mark.parametrize(("given", "hits"), [
    (screened(), ()),
    (screened((NY, NY, ())), ()),
    (screened((NY, NY, (COUNTRY,))), (("country", 1),)),
    (screened((NY, NY, (QUIET, COUNTRY, QUIET_TENANT))), (("quiet_hours", 1), ("country", 1))),
    (screened((NY, NY, ()), (LA, LA, ())), ()),
    (screened((NY, NY, (COUNTRY,)), (LA, LA, (COUNTRY, QUIET))),
     (("country", 2), ("quiet_hours", 1))),
    # Two spellings of one number: one count.
    (screened((NY, NY, (QUIET,)), ("(212) 555-0123", NY, (QUIET,))), (("quiet_hours", 1),)),
], ids=["nothing", "one-unhit", "one-hit", "one-two-kinds-three-hits", "two-unhit",
        "two-hit", "one-number-two-spellings"])
def test_monitored_hits_count_each_number_once_per_rule_kind(
        given: Screened, hits: tuple[tuple[str, int], ...]) -> None:
    assert _monitored(given) == hits
