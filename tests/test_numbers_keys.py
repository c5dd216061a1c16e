"""Destination keys (gatekeeper.numbers, gatekeeper.readings): every spelling of a number
gives that number among its keys, whatever its kind; tables, then properties."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gatekeeper.numbers import Destination, DestinationKind, parse_destination

FR = "+33612345678"
KEY = re.compile(r"\+[1-9][0-9]{1,14}")


def fullwidth(text: str) -> str:
    return "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in text)


def script_digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)


# (id, raw, region, msisdn, kind, e164, keys that must be present)
SPELLINGS: list[tuple[str, str, str | None, bool, DestinationKind, str | None, tuple[str, ...]]] = [
    # SIP URIs (RFC 3261): scheme case, brackets, display names, separators, encoding.
    ("sip-upper-scheme", "SIP:+33612345678@h", None, False, "phone", FR, ()),
    ("sips-mixed-case", "SiPs:+33612345678@h", None, False, "phone", FR, ()),
    ("sip-angle-brackets", "<sip:+33612345678@h>", None, False, "phone", FR, ()),
    ("sip-quoted-display-name", '"Bob" <sip:+33612345678@h>', None, False, "phone", FR, ()),
    ("sip-display-quote-escape", '"B\\"o<b" <sip:+33612345678@h>;tag=9', None, False,
     "phone", FR, ()),
    ("sip-token-display-name", "Bob Smith <sip:+33612345678@h>", None, False, "phone", FR,
     ()),
    ("sip-visual-separators", "sip:+33-6-12.34(56)78@h", None, False, "phone", FR, ()),
    ("sip-percent-plus", "sip:%2B33612345678@h", None, False, "phone", FR, ()),
    ("sip-percent-digits", "sip:%2b%33%336%312345678@h", None, False, "phone", FR, ()),
    ("sip-percent-space", "sip:+33%206%2012345678@h", None, False, "phone", FR, ()),
    ("sip-double-percent", "sip:%252B33612345678@h", None, False, "not_phone", None, (FR,)),
    ("sip-user-phone", "sip:+33612345678;user=phone@h", None, False, "phone", FR, ()),
    ("sip-uri-params", "sip:+33612345678@h;user=phone;transport=tls", None, False, "phone",
     FR, ()),
    ("sip-headers", "sip:+33612345678@h?Subject=x&Priority=urgent", None, False, "phone",
     FR, ()),
    ("sip-password", "sip:+33612345678:secret@h", None, False, "phone", FR, ()),
    ("sip-no-host-params", "sip:+33612345678;user=phone", None, False, "phone", FR, ()),
    ("sip-host-port", "sip:+33612345678@h:5060", None, False, "phone", FR, ()),
    ("sip-phone-context", "sip:612345678;phone-context=+33@h;user=phone", None, False,
     "phone", FR, ()),
    ("sip-ext", "sip:+33612345678;ext=12@h", None, False, "phone", FR, ()),
    ("sip-isub", "sip:+33612345678;isub=1234@h", None, False, "phone", FR, ()),
    ("sip-slashes", "sip://+33612345678@h", None, False, "phone", FR, ()),
    ("sip-msisdn-digits", "sip:33612345678@h", None, True, "phone", FR, ()),
    ("sip-msisdn-00-digits", "sip:0033612345678@h", None, True, "phone", FR, ()),
    ("sip-digits-both-readings", "sip:33612345678@h", "FR", False, "not_phone", None,
     (FR,)),
    ("sip-national-digits-fr", "sip:0612345678@h", "FR", False, "not_phone", None, (FR,)),
    ("sip-digits-us-both", "sip:2015550123@h", "US", False, "not_phone", None,
     ("+12015550123", "+2015550123")),
    ("sip-user-name", "sip:alice@h", None, False, "not_phone", None, ()),
    ("sip-user-name-display", '"Alice" <sip:alice@h>', None, False, "not_phone", None, ()),
    ("sip-impossible-display", '"X" <sip:+999@h>', None, False, "invalid", None, ("+999",)),
    ("sip-user-name-digits", "sip:alice33612345678@h", None, False, "not_phone", None, ()),
    # tel URIs (RFC 3966).
    ("tel-lower", "tel:+33612345678", None, False, "phone", FR, ()),
    ("tel-upper", "TEL:+33612345678", None, False, "phone", FR, ()),
    ("tel-dashes", "tel:+33-6-12-34-56-78", None, False, "phone", FR, ()),
    ("tel-parentheses-dots", "tel:+33.6.(12).34.56.78", None, False, "phone", FR, ()),
    ("tel-ext-isub", "tel:+33612345678;ext=12;isub=3", None, False, "phone", FR, ()),
    ("tel-phone-context-global", "tel:612345678;phone-context=+33", None, False, "phone",
     FR, ()),
    ("tel-phone-context-trunk-zero", "tel:0612345678;phone-context=+33", None, False,
     "phone", FR, ()),
    ("tel-phone-context-separators", "tel:555-0123;phone-context=+1-201", None, False,
     "phone", "+12015550123", ()),
    ("tel-phone-context-domain", "tel:0612345678;phone-context=example.com", "FR", False,
     "phone", FR, ()),
    ("tel-percent", "tel:%2B33612345678", None, False, "phone", FR, ()),
    ("tel-display-name", '"Shop" <tel:+33612345678>', None, False, "phone", FR, ()),
    ("tel-msisdn-digits", "tel:33612345678", None, True, "phone", FR, ()),
    # whatsapp: and client: as before.
    ("whatsapp-spaced", "whatsapp:+33 6 12 34 56 78", None, False, "phone", FR, ()),
    ("whatsapp-msisdn-digits", "whatsapp:33612345678", None, True, "invalid", None, (FR,)),
    ("client", "client:+33612345678", None, False, "not_phone", None, ()),
    # Unicode digits (any Nd) and Unicode separators.
    ("fullwidth", "+" + fullwidth("33612345678"), None, False, "phone", FR, ()),
    ("fullwidth-plus", "\uff0b" + fullwidth("33612345678"), None, False, "phone", FR, ()),
    ("arabic-indic", "+" + script_digits("33612345678", 0x660), None, False, "phone", FR,
     ()),
    ("persian", "+" + script_digits("33612345678", 0x6F0), None, False, "phone", FR, ()),
    ("devanagari", "+" + script_digits("33612345678", 0x966), None, False, "phone", FR, ()),
    ("bengali", "+" + script_digits("33612345678", 0x9E6), None, False, "phone", FR, ()),
    ("thai", "+" + script_digits("33612345678", 0xE50), None, False, "phone", FR, ()),
    ("math-bold", "+" + script_digits("33612345678", 0x1D7CE), None, False, "phone", FR,
     ()),
    ("nbsp", "+33\u00a06\u00a012\u00a034\u00a056\u00a078", None, False, "phone", FR, ()),
    ("narrow-nbsp-thin", "+33\u202f6\u200912345678", None, False, "phone", FR, ()),
    ("en-em-dash", "+33\u20136\u201412345678", None, False, "phone", FR, ()),
    ("minus-sign", "+33\u22126\u221212345678", None, False, "phone", FR, ()),
    ("zero-width", "+33\u200b6\u206012345678\ufeff", None, False, "phone", FR, ()),
    ("ideographic-space", "+33\u30006\u300012345678", None, False, "phone", FR, ()),
    ("fullwidth-in-sip", "sip:+" + fullwidth("33612345678") + "@h", None, False, "phone",
     FR, ()),
    ("fullwidth-msisdn", fullwidth("33612345678"), None, True, "invalid", None, (FR,)),
    # International dialling prefixes.
    ("idd-00-us", "0033612345678", "US", False, "invalid", None, (FR,)),
    ("idd-00-no-region", "0033612345678", None, False, "invalid", None, (FR,)),
    ("idd-011-us", "01133612345678", "US", False, "phone", FR, ()),
    ("idd-011-no-region", "01133612345678", None, False, "invalid", None, (FR,)),
    ("idd-0011-au", "0011 33 6 12 34 56 78", "AU", False, "phone", FR, ()),
    ("idd-010-jp", "01033612345678", "JP", False, "phone", FR, ()),
    ("idd-810-ru", "8~10 33612345678", "RU", False, "phone", FR, ()),
    ("idd-carrier-br", "001533612345678", "BR", False, "phone", FR, ()),
    ("idd-00-spaced", "00 33 6 12 34 56 78", "FR", False, "phone", FR, ()),
    ("idd-after-plus", "+0033612345678", None, False, "invalid", None, (FR,)),
    ("idd-msisdn-011", "01133612345678", None, True, "invalid", None, (FR,)),
    # Pause, extension and DTMF suffixes.
    ("comma-dtmf", "+18004247767,ww200", None, False, "phone", "+18004247767", ()),
    ("comma", "+33612345678,1", None, False, "phone", FR, ()),
    ("semicolon", "+33612345678;1", None, False, "phone", FR, ()),
    ("wait-lower", "+33612345678w1", None, False, "phone", FR, ()),
    ("wait-upper", "+33612345678W1", None, False, "phone", FR, ()),
    ("pause-lower", "+33612345678p1", None, False, "phone", FR, ()),
    ("pause-upper", "+33612345678P12", None, False, "phone", FR, ()),
    ("x-extension", "+33612345678x12", None, False, "phone", FR, ()),
    ("ext-spaced", "+33 6 12 34 56 78 ext. 12", None, False, "phone", FR, ()),
    ("hash", "+33612345678#", None, False, "phone", FR, ()),
    ("hash-dtmf", "+33612345678#123#", None, False, "phone", FR, ()),
    ("ext-param", "+33612345678;ext=99", None, False, "phone", FR, ()),
    ("junk-after", "+33612345678abc", None, False, "invalid", None, (FR,)),
    # phonenumbers reads on past the pause; a dialler stops at it: both are keys.
    ("digits-split-by-pause", "+3361234p5678", None, False, "phone", FR, ("+3361234",)),
    # Values no phone library accepts still give their digit readings.
    ("seed-example-gr", "+30123456789", None, False, "invalid", None, ("+30123456789",)),
    ("seed-example-us", "+1234567890", None, False, "invalid", None, ("+1234567890",)),
    ("seed-example-us-spaced", "+1 234 567 890", None, False, "invalid", None,
     ("+1234567890",)),
    ("seed-example-in-sip", "sip:+1234567890@h", None, False, "invalid", None,
     ("+1234567890",)),
    ("unknown-country-code", "+99912345678", None, False, "invalid", None,
     ("+99912345678",)),
    ("sms-scheme", "sms:+33612345678?body=hi", None, False, "invalid", None, (FR,)),
    ("percent-plain", "%2B33612345678", None, False, "invalid", None, (FR,)),
    # Plivo's `a<b` list, unsplit: read as the URI, the number before it still a key.
    ("plivo-joined", "33612345678<sip:john@h", None, True, "not_phone", None, (FR,)),
    ("msisdn-spaced", "33 6 12 34 56 78", None, True, "invalid", None, (FR,)),
    ("nul-inside", "+336\x0012345678", None, False, "invalid", None, ("+336", FR)),
    ("bare-no-region", "33612345678", None, False, "invalid", None, (FR,)),
]


@pytest.mark.parametrize(
    ("raw", "region", "msisdn", "kind", "e164", "present"),
    [pytest.param(*case[1:], id=case[0]) for case in SPELLINGS],
)
def test_spellings_kind_e164_and_keys(raw: str, region: str | None, msisdn: bool,
                                      kind: DestinationKind, e164: str | None,
                                      present: tuple[str, ...]) -> None:
    """Each spelling gets its kind and canonical number; the keys hold every reading."""
    destination = parse_destination(raw, region, msisdn)
    assert (destination.kind, destination.e164) == (kind, e164)
    if e164 is not None:
        assert destination.keys[0] == e164
    assert set(present) <= set(destination.keys)
    assert all(KEY.fullmatch(key) for key in destination.keys)
    assert len(set(destination.keys)) == len(destination.keys)


@pytest.mark.parametrize(
    ("raw", "region", "msisdn", "keys"),
    [
        pytest.param("+33612345678", None, False, (FR,), id="plain-e164"),
        pytest.param("+4407700900123", None, False, ("+447700900123", "+4407700900123"),
                     id="national-zero-after-country-code"),
        pytest.param("+30123456789", None, False, ("+30123456789",), id="impossible"),
        pytest.param("+99912345678", None, False, ("+99912345678",), id="unknown-cc"),
        pytest.param("hello", None, False, (), id="words"),
        pytest.param("", None, False, (), id="empty"),
        pytest.param("sip:alice@pbx.example", None, False, (), id="sip-name"),
        pytest.param("client:alice", None, False, (), id="client"),
        pytest.param("mailto:alice@example.com", None, False, (), id="mailto"),
        pytest.param("https://example.com/+33612345678", None, False, (), id="url"),
        pytest.param("+3361", None, False, ("+3361",), id="short-but-e164-syntax"),
        pytest.param("+3361234567890123", None, False, (), id="sixteen-digits"),
        pytest.param("2015550123", "US", False, ("+12015550123",),
                     id="national-possible-no-international-reading"),
    ],
)
def test_exact_keys(raw: str, region: str | None, msisdn: bool, keys: tuple[str, ...]) -> None:
    """Keys hold no more than the readings: words and names give none."""
    assert parse_destination(raw, region, msisdn).keys == keys


def test_keys_are_not_compared() -> None:
    """Equality is kind, raw and e164; keys depend on region and preset, not identity."""
    assert parse_destination("+33612345678") == Destination("phone", "+33612345678",
                                                            "+33612345678")
    assert Destination("phone", "x", FR).keys == (FR,)
    assert Destination("phone", "x", FR, ("+1", FR)).keys == (FR, "+1")
    assert Destination("invalid", "x").keys == ()


def test_canonical_plus_e164_is_unchanged() -> None:
    """The common case: `e164`, kind and a single key, as before keys existed."""
    destination = parse_destination("+14155550100", "US", True)
    assert destination == Destination("phone", "+14155550100", "+14155550100")
    assert destination.keys == ("+14155550100",)


# --------------------------------------------------------------------------- properties

def _possible_numbers() -> list[tuple[str, str]]:
    """(region, national significant number) of each region's example mobile/fixed line."""
    out: list[tuple[str, str]] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out.append((region, phonenumbers.national_significant_number(number)))
    return out


EXAMPLES = _possible_numbers()
SEPARATORS = [" ", "-", ".", "(", ")", "/", "\u00a0", "\u202f", "\u2009", "\u2011",
              "\u2013", "\u2014", "\u2212", "\u200b", "\u2060", "\u3000", "\ufeff", "~",
              "\uff0d", "\u00ad"]
DIGIT_ZEROS = [0x30, 0xFF10, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE, 0x1D7EC, 0x1040]
SUFFIXES = ["", ",", ",ww200", ";ext=12", " x12", " ext. 7", "#", "#12#", "p123", "w",
            "W1", "P", ";isub=9"]


@st.composite
def possible_number(draw: st.DrawFn) -> tuple[str, str]:
    """(E.164, national part) of a possible number: an example with its tail redrawn."""
    region, national = draw(st.sampled_from(EXAMPLES))
    tail = min(4, len(national) - 1)
    digits = national[:-tail] + "".join(draw(st.sampled_from("0123456789"))
                                        for _ in range(tail))
    parsed = phonenumbers.parse(digits, region)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    national_part = phonenumbers.national_significant_number(parsed)
    assume(phonenumbers.is_possible_number(parsed) and e164 == f"+{parsed.country_code}"
           f"{national_part}")
    return e164, national_part


@st.composite
def spelled(draw: st.DrawFn, digits: str) -> str:
    """`digits` with separators between them and each digit in some Unicode script."""
    zero = draw(st.sampled_from(DIGIT_ZEROS))
    out: list[str] = []
    for digit in digits:
        if out and draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(SEPARATORS)))
        out.append(chr(zero + int(digit)))
    return "".join(out)


def percent_encode_some(draw: st.DrawFn, text: str) -> str:
    return "".join(f"%{ord(c):02X}" if c.isascii() and draw(st.booleans()) else c
                   for c in text)


@st.composite
def spelling(draw: st.DrawFn) -> tuple[str, str, str | None, bool]:
    """(spelling, E.164 number it names, region, msisdn) for any of the spelling forms."""
    e164, national = draw(possible_number())
    digits = e164[1:]
    country = digits[: len(digits) - len(national)]
    suffix = draw(st.sampled_from(SUFFIXES))
    form = draw(st.sampled_from(["plus", "00", "011", "msisdn", "sip", "sips", "tel",
                                 "display", "context", "percent", "whatsapp", "sip-digits",
                                 "password", "au-0011"]))
    body = draw(spelled(digits))
    region: str | None = None
    msisdn = False
    if form == "plus":
        text = "+" + body + suffix
    elif form in ("00", "011"):
        text = form + body + suffix
    elif form == "au-0011":
        text, region = "0011" + body + suffix, "AU"
    elif form == "msisdn":
        text, msisdn = body + suffix, True
    elif form in ("sip", "sips"):
        params = draw(st.sampled_from(["", ";user=phone", ";transport=tls", "?X=1"]))
        text = f"{form.upper() if draw(st.booleans()) else form}:+{body}@trunk{params}"
    elif form == "tel":
        text = "tel:+" + body + draw(st.sampled_from(["", ";ext=1", ";isub=2"]))
    elif form == "display":
        text = f'"Name" <sip:+{body}@h>'
    elif form == "context":
        text = f"tel:{draw(spelled(national))};phone-context=+{country}"
    elif form == "percent":
        text = "sip:" + percent_encode_some(draw, "+" + digits) + "@h"
    elif form == "whatsapp":
        text = "whatsapp:+" + body + suffix
    elif form == "sip-digits":
        text, msisdn = f"sip:{body}@h", draw(st.booleans())
    else:
        text = f"sip:+{body}:pw@h;user=phone"
    return text, e164, region, msisdn


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spelling())
@example(("+" + "\uff13\uff13\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
          FR, None, False))
@example(("0033612345678", FR, "US", False))
def test_every_spelling_of_a_possible_number_keys_it(case: tuple[str, str, str | None, bool]
                                                     ) -> None:
    """Any spelling of a possible number N has N among its keys, e164 first when set."""
    text, e164, region, msisdn = case
    destination = parse_destination(text, region, msisdn)
    assert e164 in destination.keys
    if destination.e164 is not None:
        assert destination.keys[0] == destination.e164


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from([None, "US", "FR", "TR", "AU", "RU", "XX"]),
       st.booleans())
def test_parse_destination_never_raises(raw: str, region: str | None, msisdn: bool) -> None:
    """Any text parses to a Destination whose keys are E.164 by syntax."""
    destination = parse_destination(raw, region, msisdn)
    assert destination.raw == raw
    assert all(KEY.fullmatch(key) for key in destination.keys)
    assert (destination.kind == "phone") == (destination.e164 is not None)
