"""Phone numbers, list entries and scopes (gatekeeper.numbers): pure, table-driven."""

from __future__ import annotations

import dataclasses

import pytest

from gatekeeper.numbers import (
    MAX_PREFIX_DIGITS,
    Destination,
    DestinationKind,
    Entry,
    EntryError,
    is_known_region,
    is_valid_scope,
    lookup_candidates,
    mask_number,
    parse_destination,
    parse_entry,
)

# --------------------------------------------------------------------------- destinations

# (id, raw, region, kind, e164)
DESTINATIONS = [
    # Plain numbers.
    ("e164", "+33612345678", None, "phone", "+33612345678"),
    ("e164-spaced", "+33 6 12 34 56 78", None, "phone", "+33612345678"),
    ("e164-punctuated", "+1 (201) 555-0123", None, "phone", "+12015550123"),
    ("surrounding-whitespace", "  +44 20 7946 0958 ", None, "phone", "+442079460958"),
    ("e164-ignores-region", "+33612345678", "TR", "phone", "+33612345678"),
    ("national-with-region-tr", "0532 000 00 99", "TR", "phone", "+905320000099"),
    ("national-with-region-fr", "06 12 34 56 78", "FR", "phone", "+33612345678"),
    ("national-with-region-us", "(201) 555-0123", "US", "phone", "+12015550123"),
    ("international-prefix-00", "0033612345678", "FR", "phone", "+33612345678"),
    ("fullwidth-digits", "+" + "".join(chr(0xFF10 + int(d)) for d in "33612345678"), None,
     "phone", "+33612345678"),
    # whatsapp: and tel: carry a phone number.
    ("whatsapp", "whatsapp:+33612345678", None, "phone", "+33612345678"),
    ("whatsapp-scheme-case", "WhatsApp:+33612345678", None, "phone", "+33612345678"),
    ("whatsapp-national-with-region", "whatsapp:0532 000 00 99", "TR", "phone",
     "+905320000099"),
    ("tel", "tel:+1-201-555-0123", None, "phone", "+12015550123"),
    ("tel-scheme-case", "TEL:+33612345678", None, "phone", "+33612345678"),
    # sip:/sips: URIs whose user part is +digits are that number.
    ("sip-plus-digits", "sip:+33612345678@trunk.example", None, "phone", "+33612345678"),
    ("sip-plus-digits-user-param", "sip:+33612345678;user=phone@trunk.example", None,
     "phone", "+33612345678"),
    ("sips-plus-digits", "sips:+33612345678@trunk.example;transport=tls", None, "phone",
     "+33612345678"),
    ("sip-plus-digits-no-host", "sip:+33612345678", None, "phone", "+33612345678"),
    # RFC 3261/3966 visual separators in a global number: still that number.
    ("sip-punctuated-number", "sip:+33-6-12-34-56-78@trunk.example", None, "phone",
     "+33612345678"),
    # Other sip: and client: destinations are not phone numbers.
    ("sip-user", "sip:alice@pbx.example", None, "not_phone", None),
    ("sip-digits-without-plus", "sip:33612345678@trunk.example", None, "not_phone", None),
    ("sip-national-digits", "sip:0612345678@trunk.example", "FR", "not_phone", None),
    ("sip-scheme-case", "SIP:alice@pbx.example", None, "not_phone", None),
    ("client", "client:alice", None, "not_phone", None),
    ("client-looks-like-number", "client:+33612345678", None, "not_phone", None),
    # Anything else that is not a possible number is invalid.
    ("national-without-region", "0532 000 00 99", None, "invalid", None),
    ("national-with-wrong-region-length", "12345", "US", "invalid", None),
    ("seed-example-impossible-gr", "+30123456789", None, "invalid", None),
    ("seed-example-impossible-us", "+1234567890", None, "invalid", None),
    ("too-short", "+3361", None, "invalid", None),
    ("too-long", "+3361234567890123", None, "invalid", None),
    ("unknown-country-code", "+99912345678", None, "invalid", None),
    ("words", "hello", None, "invalid", None),
    ("empty", "", None, "invalid", None),
    ("blank", "   ", None, "invalid", None),
    ("whatsapp-empty", "whatsapp:", None, "invalid", None),
    ("tel-empty", "tel:", None, "invalid", None),
    ("whatsapp-not-a-number", "whatsapp:hello", None, "invalid", None),
    ("sip-impossible-number", "sip:+999@trunk.example", None, "invalid", None),
    ("unknown-scheme-mailto", "mailto:alice@example.com", None, "invalid", None),
    ("unknown-scheme-sms", "sms:+33612345678", None, "invalid", None),
    ("unknown-scheme-https", "https://example.com/+33612345678", None, "invalid", None),
    ("unknown-scheme-messenger", "messenger:+33612345678", None, "invalid", None),
]


@pytest.mark.parametrize(
    ("raw", "region", "kind", "e164"),
    [pytest.param(*case[1:], id=case[0]) for case in DESTINATIONS],
)
def test_parse_destination_classifies_and_normalises(
    raw: str, region: str | None, kind: DestinationKind, e164: str | None
) -> None:
    """A destination gets the specified kind and, for phones, its E.164 form."""
    assert parse_destination(raw, region) == Destination(kind, raw, e164)


@pytest.mark.parametrize(
    "raw", ["  +33612345678 ", "whatsapp:+33612345678", "sip:+33612345678@trunk.example"]
)
def test_parse_destination_keeps_the_raw_text(raw: str) -> None:
    """`raw` is the recipient exactly as sent, even when it had a scheme or spaces."""
    assert parse_destination(raw).raw == raw


# (id, raw, region, kind, e164) with msisdn=True: bare digits are international numbers.
MSISDN_DESTINATIONS = [
    ("uk-mobile", "447700900123", None, "phone", "+447700900123"),
    ("us-number", "14155550100", None, "phone", "+14155550100"),
    ("netherlands-mobile", "31612345678", None, "phone", "+31612345678"),
    ("international-prefix-00", "00447700900123", None, "phone", "+447700900123"),
    ("surrounding-whitespace", " 447700900123\n", None, "phone", "+447700900123"),
    ("region-does-not-apply", "447700900123", "US", "phone", "+447700900123"),
    ("digits-win-over-region", "5320000099", "TR", "phone", "+5320000099"),
    ("plus-still-accepted", "+447700900123", None, "phone", "+447700900123"),
    ("plus-ignores-region", "+33612345678", "TR", "phone", "+33612345678"),
    ("national-trunk-zero-uses-region", "05320000099", "TR", "phone", "+905320000099"),
    ("national-spaced-uses-region", "06 12 34 56 78", "FR", "phone", "+33612345678"),
    ("china-mobile", "8613800138000", None, "phone", "+8613800138000"),
    ("national-trunk-zero-without-region", "05320000099", None, "invalid", None),
    ("three-zeros", "000447700900123", None, "invalid", None),
    ("single-zero-then-country", "0447700900123", "GB", "invalid", None),
    ("spaced-digits-are-not-msisdn", "44 7700 900123", None, "invalid", None),
    ("dashed-digits-are-not-msisdn", "44-7700-900123", None, "invalid", None),
    ("sixteen-digits", "4477009001230000", None, "invalid", None),
    ("five-digits", "12345", None, "invalid", None),
    ("six-digits-not-possible", "123456", None, "invalid", None),
    ("unknown-country-code", "99912345678", None, "invalid", None),
    ("only-00", "00", None, "invalid", None),
    ("letters", "44770090012a", None, "invalid", None),
    ("fullwidth-digits-not-msisdn", "".join(chr(0xFF10 + int(d)) for d in "447700900123"),
     None, "invalid", None),
    ("whatsapp-bare-digits", "whatsapp:447700900123", None, "invalid", None),
    ("whatsapp-plus", "whatsapp:+447700900123", None, "phone", "+447700900123"),
    # An msisdn preset's SIP trunk dials digits as an international number.
    ("sip-digits-without-plus", "sip:447700900123@trunk.example", None, "phone",
     "+447700900123"),
    ("client", "client:447700900123", None, "not_phone", None),
]


@pytest.mark.parametrize(
    ("raw", "region", "kind", "e164"),
    [pytest.param(*case[1:], id=case[0]) for case in MSISDN_DESTINATIONS],
)
def test_parse_destination_msisdn(
    raw: str, region: str | None, kind: DestinationKind, e164: str | None
) -> None:
    """With msisdn, digits only (optionally after 00) are an international number."""
    assert parse_destination(raw, region, msisdn=True) == Destination(kind, raw, e164)


@pytest.mark.parametrize(
    ("raw", "region", "kind", "e164"),
    [
        pytest.param("447700900123", None, "invalid", None, id="no-region"),
        pytest.param("447700900123", "US", "invalid", None, id="us-region"),
        pytest.param("00447700900123", None, "invalid", None, id="00-without-region"),
        pytest.param("5320000099", "TR", "phone", "+905320000099", id="tr-national"),
        pytest.param("905320000099", "TR", "phone", "+905320000099",
                     id="country-code-with-region"),
    ],
)
def test_parse_destination_without_msisdn_reads_digits_as_national(
    raw: str, region: str | None, kind: DestinationKind, e164: str | None
) -> None:
    """Without msisdn (the default), bare digits are a national number for the region."""
    assert parse_destination(raw, region) == Destination(kind, raw, e164)
    assert parse_destination(raw, region, msisdn=False) == Destination(kind, raw, e164)


def test_parse_destination_cache_keeps_msisdn_apart() -> None:
    """The cached result for one msisdn setting is never returned for the other."""
    raw = "447700900124"
    assert parse_destination(raw, None, msisdn=False).kind == "invalid"
    assert parse_destination(raw, None, msisdn=True).e164 == "+447700900124"
    assert parse_destination(raw, None, False).kind == "invalid"
    assert parse_destination(raw, None, True).e164 == "+447700900124"


def test_destination_is_frozen() -> None:
    """A Destination cannot be modified (it is cached and shared)."""
    dest = parse_destination("+33612345678")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dest.e164 = "+14155550100"  # type: ignore[misc]


# --------------------------------------------------------------------------- list entries

# (id, raw, region, normalised value)
ACCEPTED_ENTRIES = [
    ("e164-exact", "+33612345678", None, "+33612345678"),
    ("seed-doc-example-gr-impossible", "+30123456789", None, "+30123456789"),
    ("seed-doc-example-us-impossible", "+1234567890", None, "+1234567890"),
    ("spaces-removed", "+33 6 12 34 56 78", None, "+33612345678"),
    ("dashes-removed", "+1-201-555-0123", None, "+12015550123"),
    ("dots-removed", "+33.6.12.34.56.78", None, "+33612345678"),
    ("parentheses-removed", "+1 (201) 555 0123", None, "+12015550123"),
    ("tabs-and-outer-space-removed", " \t+33\t612345678 \n", None, "+33612345678"),
    ("region-ignored-for-e164", "+33612345678", "TR", "+33612345678"),
    ("national-with-region-tr", "0532 000 00 99", "TR", "+905320000099"),
    ("national-with-region-fr", "06 12 34 56 78", "FR", "+33612345678"),
    ("national-with-region-us", "(201) 555-0123", "US", "+12015550123"),
    ("international-prefix-with-region", "0033612345678", "FR", "+33612345678"),
    ("non-geographic-country-code", "+800 1234 5678", None, "+80012345678"),
    ("fifteen-digits", "+123456789012345", None, "+123456789012345"),
    ("shortest-national-part", "+331234", None, "+331234"),
    ("one-digit-country-code", "+74951234567", None, "+74951234567"),
    ("three-digit-country-code", "+380441234567", None, "+380441234567"),
    ("prefix-country", "+33*", None, "+33*"),
    ("prefix-premium", "+1900*", None, "+1900*"),
    ("prefix-one-digit", "+7*", None, "+7*"),
    ("prefix-fourteen-digits", "+12345678901234*", None, "+12345678901234*"),
    ("prefix-spaced", "+33 6 *", None, "+336*"),
    ("prefix-punctuated", "+1 (900) *", None, "+1900*"),
    ("prefix-unknown-country-syntax-only", "+999*", None, "+999*"),
    ("prefix-region-ignored", "+33*", "TR", "+33*"),
]


@pytest.mark.parametrize(
    ("raw", "region", "value"),
    [pytest.param(*case[1:], id=case[0]) for case in ACCEPTED_ENTRIES],
)
def test_parse_entry_accepts_and_normalises(raw: str, region: str | None, value: str) -> None:
    """Valid entries come back as their normalised E.164 number or prefix."""
    assert parse_entry(raw, region) == Entry(value)


# (id, raw, region, words the reason must contain)
REJECTED_ENTRIES = [
    ("empty", "", None, "empty"),
    ("blank", "   ", None, "empty"),
    ("only-punctuation", " - ( ) . ", None, "empty"),
    ("national-without-region", "0532 000 00 99", None, "region"),
    ("digits-without-plus", "33612345678", None, "region"),
    ("leading-zero-after-plus", "+0612345678", None, "E.164"),
    ("sixteen-digits", "+1234567890123456", None, "E.164"),
    ("plus-only", "+", None, "E.164"),
    ("one-digit", "+3", None, "E.164"),
    ("letters-in-e164", "+33abc45678", None, "E.164"),
    ("star-in-middle", "+33*1", None, "E.164"),
    ("double-plus", "++33612345678", None, "E.164"),
    ("unknown-country-code", "+99912345678", None, "country calling code"),
    ("country-code-only", "+33", None, "too short"),
    ("national-part-too-short", "+33123", None, "too short"),
    ("national-too-short-for-region", "123", "TR", "too short"),
    ("not-a-number-for-region", "abc", "US", "region US"),
    ("unknown-region", "0612345678", "XX", "region XX"),
    ("prefix-without-plus", "33*", None, "prefix"),
    ("prefix-without-digits", "+*", None, "prefix"),
    ("prefix-fifteen-digits", "+123456789012345*", None, "prefix"),
    ("prefix-double-star", "+33**", None, "prefix"),
    ("prefix-letters", "+3a*", None, "prefix"),
    ("prefix-national-with-region", "0532*", "TR", "prefix"),
    ("prefix-leading-zero", "+0*", None, "0"),
    ("prefix-leading-zero-longer", "+0033*", None, "0"),
    ("bare-star", "*", None, "prefix"),
]


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTED_ENTRIES],
)
def test_parse_entry_refuses_with_a_reason(raw: str, region: str | None, reason: str) -> None:
    """Bad entries give an EntryError holding the raw text and a human reason."""
    result = parse_entry(raw, region)
    assert isinstance(result, EntryError)
    assert result.entry == raw
    assert reason in result.reason


@pytest.mark.parametrize(
    ("value", "is_prefix"),
    [
        pytest.param("+33*", True, id="prefix"),
        pytest.param("+33612345678", False, id="exact"),
    ],
)
def test_entry_is_prefix(value: str, is_prefix: bool) -> None:
    """Entry.is_prefix tells prefix entries (`+33*`) from exact numbers."""
    assert Entry(value).is_prefix is is_prefix


@pytest.mark.parametrize(
    "raw",
    ["+33612345678", "whatsapp:+33612345678", "sip:+33612345678@trunk.example",
     "+1 (201) 555-0123", "+447946095812"],
)
def test_parsed_destinations_are_accepted_entries(raw: str) -> None:
    """A destination's E.164 form is itself a valid, unchanged list entry."""
    e164 = parse_destination(raw).e164
    assert e164 is not None
    assert parse_entry(e164) == Entry(e164)


# --------------------------------------------------------------------------- lookups

@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        pytest.param(
            "+33612345678",
            ("+33612345678", "+3*", "+33*", "+336*", "+3361*", "+33612*", "+336123*",
             "+3361234*", "+33612345*", "+336123456*", "+3361234567*", "+33612345678*"),
            id="eleven-digits",
        ),
        pytest.param(
            "+123456789012345",
            ("+123456789012345", "+1*", "+12*", "+123*", "+1234*", "+12345*", "+123456*",
             "+1234567*", "+12345678*", "+123456789*", "+1234567890*", "+12345678901*",
             "+123456789012*", "+1234567890123*", "+12345678901234*"),
            id="fifteen-digits-stops-at-fourteen",
        ),
        pytest.param("+331234", ("+331234", "+3*", "+33*", "+331*", "+3312*", "+33123*",
                                 "+331234*"), id="short"),
    ],
)
def test_lookup_candidates(e164: str, expected: tuple[str, ...]) -> None:
    """Candidates are the number itself, then its prefixes shortest first."""
    assert lookup_candidates(e164) == expected


@pytest.mark.parametrize("e164", ["+33612345678", "+905320000099", "+123456789012345",
                                  "+12015550123", "+80012345678"])
def test_lookup_candidates_are_valid_matching_entries(e164: str) -> None:
    """Each candidate is a valid entry; each prefix matches the number, longest is 14 digits."""
    number, *prefixes = lookup_candidates(e164)
    assert number == e164
    lengths = [len(p) - 2 for p in prefixes]
    assert lengths == list(range(1, min(len(e164) - 1, MAX_PREFIX_DIGITS) + 1))
    for prefix in prefixes:
        assert e164.startswith(prefix[:-1])
        assert parse_entry(prefix) == Entry(prefix)


@pytest.mark.parametrize(
    ("entry", "number"),
    [("+33*", "+33612345678"), ("+1900*", "+19005550123"), ("+905*", "+905320000099")],
)
def test_prefix_entry_is_a_lookup_candidate_of_matching_numbers(entry: str, number: str) -> None:
    """A parsed prefix entry appears among the candidates of a number it covers."""
    parsed = parse_entry(entry)
    assert isinstance(parsed, Entry)
    assert parsed.value in lookup_candidates(number)


# --------------------------------------------------------------------------- masking

@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        pytest.param("+33612345789", "+3361****789", id="spec-example"),
        pytest.param("+905320000099", "+9053****099", id="twelve-digits"),
        pytest.param("+123456789012345", "+1234****345", id="fifteen-digits"),
        pytest.param("+3312345", "+33****45", id="short"),
        pytest.param("+1234567890", "+123****890", id="ten-digits-hides-four"),
        pytest.param("+14155550100", "+1415****100", id="eleven-digits"),
    ],
)
def test_mask_number(e164: str, masked: str) -> None:
    """mask_number hides the middle digits behind four stars."""
    assert mask_number(e164) == masked


@pytest.mark.parametrize("e164", ["+33612345789", "+905320000099", "+123456789012345",
                                  "+1234567890", "+4930123456"])
def test_mask_number_hides_at_least_four_digits(e164: str) -> None:
    """The masked form keeps at most len-4 digits of the number, never the whole."""
    masked = mask_number(e164)
    assert e164 not in masked
    shown = sum(c.isdigit() for c in masked)
    assert shown <= sum(c.isdigit() for c in e164) - 4


# --------------------------------------------------------------------------- scopes, regions

@pytest.mark.parametrize(
    ("scope", "valid"),
    [
        pytest.param("global", True, id="global"),
        pytest.param("tenant:acme", True, id="tenant"),
        pytest.param("agent:42", True, id="agent-numeric-id"),
        pytest.param("user:alice@example.com", True, id="email-id"),
        pytest.param("team_x-1:A.b+c-d", True, id="rich-kind-and-id"),
        pytest.param("tenant:" + "a" * 128, True, id="id-128-chars"),
        pytest.param("k" + "a" * 31 + ":x", True, id="kind-32-chars"),
        pytest.param("", False, id="empty"),
        pytest.param("Global", False, id="global-capitalised"),
        pytest.param("globals", False, id="global-suffixed"),
        pytest.param("tenant", False, id="kind-without-id"),
        pytest.param("tenant:", False, id="empty-id"),
        pytest.param(":acme", False, id="empty-kind"),
        pytest.param("Tenant:acme", False, id="uppercase-kind"),
        pytest.param("1tenant:acme", False, id="kind-starts-with-digit"),
        pytest.param("tenant:a,b", False, id="comma"),
        pytest.param("global,tenant:acme", False, id="comma-list"),
        pytest.param("tenant:*", False, id="glob-star"),
        pytest.param("tenant:ac?me", False, id="glob-question"),
        pytest.param("tenant:[ab]", False, id="glob-brackets"),
        pytest.param("tenant:ac me", False, id="space-in-id"),
        pytest.param(" global", False, id="leading-space"),
        pytest.param("global ", False, id="trailing-space"),
        pytest.param("global\n", False, id="trailing-newline"),
        pytest.param("tenant:acme\n", False, id="kind-id-trailing-newline"),
        pytest.param("tenant:ac\tme", False, id="tab"),
        pytest.param("tenant:a:b", False, id="two-colons"),
        pytest.param("tenant:" + "a" * 129, False, id="id-129-chars"),
        pytest.param("k" + "a" * 32 + ":x", False, id="kind-33-chars"),
    ],
)
def test_is_valid_scope(scope: str, valid: bool) -> None:
    """Scopes are `global` or `kind:id`; no commas, globs or whitespace."""
    assert is_valid_scope(scope) is valid


@pytest.mark.parametrize(
    ("region", "known"),
    [("TR", True), ("US", True), ("FR", True), ("tr", False), ("XX", False), ("", False),
     ("001", False)],
)
def test_is_known_region(region: str, known: bool) -> None:
    """Only upper-case regions phonenumbers supports are known."""
    assert is_known_region(region) is known
