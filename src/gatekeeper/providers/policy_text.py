"""Words a preset's reject reply uses when a policy rule (rules.py), not a list entry,
refused the send: which rule it was, on which channel, and the sentence saying why.

A reply whose `Blocked.rule` is None (a list entry) keeps its old text byte for byte;
presets call `policy_rule` first and only reword when it returns a rule.
"""

from __future__ import annotations

from gatekeeper.providers.preset import Blocked
from gatekeeper.rules import RULE_KINDS, RuleResult
from gatekeeper.types import Channel

# Number types that may be a mobile line, or are not known not to be one: a "not a
# mobile number" code would be wrong for them.
_MAYBE_MOBILE = frozenset({"mobile", "fixed_line_or_mobile", "unknown"})


def policy_rule(blocked: Blocked) -> RuleResult | None:
    """The country, number-type or quiet-hours rule that refused the send; None when a
    list entry did (or the rule is of a kind `blocked_because` words as a list)."""
    rule = blocked.rule
    return rule if rule is not None and rule.kind in RULE_KINDS else None


def because(lead: str, blocked: Blocked) -> str:
    """`lead` (a provider's own wording, no final stop), a colon and why, ending with a
    stop: `Attempt to send to a blocked recipient: sending to region KP is not
    permitted by policy.` Names no number."""
    return f"{lead}: {blocked.why}."


def rule_channel(rule: RuleResult, blocked: Blocked) -> Channel | None:
    """The channel the rule was evaluated on, else the route's (None: either)."""
    return rule.channel or blocked.channel


def is_premium(rule: RuleResult) -> bool:
    """A number-type rule refusing a premium-rate number."""
    return rule.kind == "number_type" and rule.detail == "premium_rate"


def is_not_mobile(rule: RuleResult) -> bool:
    """A number-type rule refusing a number known not to be a mobile line (a landline,
    premium, toll-free, VoIP... number)."""
    return rule.kind == "number_type" and rule.detail not in _MAYBE_MOBILE
