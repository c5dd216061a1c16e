"""Property tests: whatever the event's shape, a rendered log line holds no credential
and, with masking on, no phone number's digits; with masking off numbers are shown."""

from __future__ import annotations

import base64
import io
import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import phonenumbers
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.config import LogConfig
from gatekeeper.observability import REDACTED, configure_logging

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
COUNTRY_CODES = sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if c)


@dataclass(frozen=True)
class Leaf:
    """A string value of an event and what must not (or must) appear once rendered."""

    text: str
    numbers: tuple[str, ...] = ()   # digits of each full number in `text`
    spelled: tuple[str, ...] = ()   # each number as written in `text`
    secrets: tuple[str, ...] = ()


# Filler without digits or words that name a credential, so that only the planted numbers
# and secrets matter (and so that, unmasked, nothing else hides a number).
filler = st.text(alphabet="xyzXYZ ,;!_\u00e9", max_size=12)


@st.composite
def e164(draw: st.DrawFn) -> str:
    """The digits of a random number: a real country code, 10 to 15 digits in all."""
    code = draw(st.sampled_from(COUNTRY_CODES))
    size = draw(st.integers(10, 15)) - len(code)
    return code + draw(st.text(alphabet=string.digits, min_size=size, max_size=size))


@st.composite
def grouped(draw: st.DrawFn, digits: str) -> str:
    """`digits` cut into groups joined by separators people type: `33 6-12.34 ...`."""
    out, rest = digits[0], digits[1:]
    while rest:
        size = draw(st.integers(1, 4))
        out += draw(st.sampled_from([" ", "-", ".", "", " (", ") ", "/"])) + rest[:size]
        rest = rest[size:]
    return out


@st.composite
def spelled_number(draw: st.DrawFn) -> Leaf:
    """A number as some system writes it, alone or inside a sentence."""
    digits = draw(e164())
    style = draw(st.sampled_from(["plus", "grouped", "url", "tel", "sip", "whatsapp",
                                  "bare-uri", "bare", "query", "quoted"]))
    spellings: dict[str, Callable[[], str]] = {
        "plus": lambda: f"+{digits}",
        "grouped": lambda: "+" + draw(grouped(digits)),
        "url": lambda: f"To=%2B{digits}&Body=hi",
        "tel": lambda: f"tel:+{digits}",
        "sip": lambda: f"sip:+{digits}@trunk.example.com;user=phone",
        "whatsapp": lambda: f"whatsapp:+{digits}",
        "bare-uri": lambda: f"{draw(st.sampled_from(['tel', 'sips', 'whatsapp']))}:{digits}",
        "bare": lambda: digits,
        "query": lambda: f"/send?to={digits}&from=Acme",
        "quoted": lambda: f'{{"to": "{digits}"}}',
    }
    spelled = spellings[style]()
    if style != "bare":  # digits alone count as a number only as the whole value
        spelled = f"{draw(filler)} {spelled} {draw(filler)}"
    return Leaf(spelled, numbers=(digits,), spelled=(spelled,))


@st.composite
def planted_secret(draw: st.DrawFn) -> Leaf:
    """A random credential in one of the shapes that leak through messages."""
    token = draw(st.text(alphabet=string.ascii_letters + string.digits, min_size=12,
                         max_size=40).filter(lambda t: not t.isdigit() and not t.isalpha()))
    basic = base64.b64encode(token.encode()).decode()
    shape = draw(st.sampled_from([
        f"Authorization: Basic {basic}", f"authorization: bearer {token}", f"Bearer {token}",
        f"AccessKey {token}", f"App {token}-{token}", f"Basic {basic}",
        f"GET /sms?api_key={token}&to=x", f"?api_secret={token}", f"password={token}",
        f"&sig={token}&x=1", f"auth_token={token}", f'{{"password":"{token}"}}',
        f'{{"password": "{token}", "user": "u"}}', f"{{'api_key': '{token}'}}",
        f"https://AC1:{token}@api.example.com/x", f"redis://:{token}@127.0.0.1:6379/0",
        f"X-Api-Key: {token}", f"token={token}", f"Proxy-Authorization: Basic {basic}",
    ]))
    text = f"{draw(filler)} {shape} {draw(filler)}"
    return Leaf(text, secrets=(token, basic) if basic in shape else (token,))


leaves = st.one_of(filler.map(Leaf), spelled_number(), planted_secret())
keys = st.text(alphabet="abcdefgh_", min_size=1, max_size=8)
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children,
                                                                       max_size=4),
    max_leaves=12)


def flatten(tree: Any, found: list[Leaf]) -> Any:
    """`tree` with its leaves as plain strings; the leaves are added to `found`."""
    if isinstance(tree, Leaf):
        found.append(tree)
        return tree.text
    if isinstance(tree, list):
        return [flatten(t, found) for t in tree]
    return {k: flatten(v, found) for k, v in tree.items()}


def render(fields: dict[str, Any], mask: bool) -> str:
    """The output of one warning event carrying `fields`."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="debug", mask_numbers=mask), buffer)
    structlog.get_logger().warning("probe", **fields)
    return buffer.getvalue()


def event_of(top: dict[str, Any]) -> tuple[dict[str, Any], list[Leaf]]:
    """Plain event fields from generated trees (their keys prefixed: never reserved)."""
    found: list[Leaf] = []
    return {f"f_{k}": flatten(v, found) for k, v in top.items()}, found


@PROPERTY
@given(st.dictionaries(keys, trees, min_size=1, max_size=5))
def test_no_number_or_secret_in_a_masked_line(top: dict[str, Any]) -> None:
    """Masking on: no number's digits and no secret anywhere in the line."""
    fields, found = event_of(top)
    line = render(fields, mask=True)
    assert line.count("\n") == 1
    assert json.loads(line)["event"] == "probe"
    for leaf in found:
        for digits in leaf.numbers:
            assert digits not in line, (leaf.text, line)
        for secret in leaf.secrets:
            assert secret not in line, (leaf.text, line)


@PROPERTY
@given(st.dictionaries(keys, trees, min_size=1, max_size=5))
def test_numbers_shown_and_secrets_hidden_when_unmasked(top: dict[str, Any]) -> None:
    """Masking off: each number is rendered as written; secrets are still redacted."""
    fields, found = event_of(top)
    line = render(fields, mask=False)
    for leaf in found:
        for spelled in leaf.spelled:
            assert json.dumps(spelled)[1:-1] in line
        for secret in leaf.secrets:
            assert secret not in line
    if any(leaf.secrets for leaf in found):
        assert REDACTED in line


@PROPERTY
@given(st.from_regex(r"[A-Za-z0-9._:-]{0,40}[0-9]{8,20}[A-Za-z0-9._:-]{0,40}",
                     fullmatch=True).filter(lambda r: len(r) <= 128))
def test_request_ids_are_never_masked(request_id: str) -> None:
    """A sane request id (however many digits it holds) is logged exactly as given."""
    line = render({"request_id": request_id}, mask=True)
    assert json.loads(line)["request_id"] == request_id


@pytest.mark.parametrize("mask", [True, False], ids=["masked", "unmasked"])
def test_secret_keys_redacted_at_any_depth(mask: bool) -> None:
    """Redaction by key name still applies with or without masking."""
    line = render({"body": {"auth": [{"api_key": "k1"}, {"x": "Bearer t0k3n"}]}}, mask)
    assert json.loads(line)["body"] == {
        "auth": [{"api_key": REDACTED}, {"x": f"Bearer {REDACTED}"}]}
