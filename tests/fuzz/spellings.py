"""Number spellings: every way of writing a destination for one upstream, where it may
stand (a send route's field, an inline call script, a scanned write), and the
destinations drawn from the lists' numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.fuzz.lists import (
    ALLOWED,
    EXACT_BLOCKED,
    SMS_ONLY,
    TENANT_ONLY,
    UNLISTED,
    VOICE_ONLY,
    MountInfo,
    Num,
)

_SEPARATORS = (" ", "-", ".", "\u00a0", "\u2009", "\u2011", "\u202f", "  ", " - ")
_FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
_ARABIC = {str(d): chr(0x0660 + d) for d in range(10)}
_DEVANAGARI = {str(d): chr(0x0966 + d) for d in range(10)}
_SUFFIXES = (",,123", ",ww12", "w1", "p12", " ext. 12", " x12", "#", ",1*")
_HOSTS = ("trunk.example.com", "10.0.0.7:5060", "pbx.example.org;transport=tls")
# Kinds of spelling, by where they may stand.
ANYWHERE = ("e164", "grouped", "paren", "trunk0", "idd00", "idd011", "plus00", "tel",
            "tel_grouped", "tel_context", "tel_slashes", "sip_plus", "sip_bare", "sip_phone",
            "sip_password", "sip_display", "tel_display", "sip_nohost", "sips", "whatsapp",
            "pct_plus", "pct_all", "fullwidth", "arabic", "devanagari", "suffix", "sip_pct",
            "upper_scheme", "invisible", "padded", "nul_tail", "uri_headers", "angle",
            "paren_cc")
# Regions whose national numbers start with a trunk `0` (`+44 (0) 7700...` is +447700...).
TRUNK_ZERO = frozenset({"GB", "DE", "TR", "FR", "AU", "JP", "BR"})


def rare(draw: st.DrawFn, n: int) -> bool:
    """True about once in `n` draws; False in the simplest example (what shrinking aims at),
    so a failure shrinks to the request with the fewest mutations."""
    return draw(st.sampled_from((False,) * (n - 1) + (True,)))


def _group(digits: str, seps: Sequence[str], cuts: Sequence[int]) -> str:
    out, last = [], 0
    for i, cut in enumerate(sorted({c for c in cuts if 0 < c < len(digits)})):
        out.append(digits[last:cut])
        out.append(seps[i % len(seps)])
        last = cut
    out.append(digits[last:])
    return "".join(out)


@st.composite
def spelling(draw: st.DrawFn, num: Num, info: MountInfo, where: str) -> tuple[str, str]:
    """(kind, text): one way of writing `num` for `info`'s upstream.

    `where`: `field` (a send route's recipient field), `script` (a dial target in an
    inline call script), `scan` (anywhere in a write no route describes: only spellings
    the deep scan documents, i.e. international ones; bare digits on msisdn presets).
    """
    kinds = list(ANYWHERE)
    if info.msisdn:
        kinds += ["msisdn", "msisdn", "msisdn00"]
    # National spellings name the number only in the upstream's own region, and only
    # where a route reads a recipient (the deep scan reads international spellings).
    national = where != "scan" and num.region is not None and num.region == info.region
    if national:
        kinds += ["national", "national_digits"]
    if info.preset == "iletimerkezi" and num.region == "TR":
        # iletiMerkezi's own `905XXXXXXXXX`; the scan reads bare digits there too.
        kinds += ["tr_msisdn", "national_digits"]
    if num.region not in TRUNK_ZERO:
        kinds.remove("trunk0")
    kind = draw(st.sampled_from(kinds))
    d, cc, nsn = num.digits, num.cc, num.nsn
    host = draw(st.sampled_from(_HOSTS))
    seps = draw(st.lists(st.sampled_from(_SEPARATORS), min_size=1, max_size=3))
    cuts = draw(st.lists(st.integers(1, max(1, len(nsn) - 1)), max_size=3))
    text: str
    if kind == "e164":
        text = "+" + d
    elif kind == "grouped":
        text = "+" + cc + draw(st.sampled_from(_SEPARATORS)) + _group(nsn, seps, cuts)
    elif kind == "paren":
        text = f"+{cc} ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}"
    elif kind == "trunk0":
        text = f"+{cc} (0) {nsn}"
    elif kind == "idd00":
        text = "00" + cc + draw(st.sampled_from(("", " ", "-"))) + nsn
    elif kind == "idd011":
        text = "011 " + cc + " " + nsn
    elif kind == "plus00":
        text = "+00" + d
    elif kind == "tel":
        text = "tel:+" + d + draw(st.sampled_from(("", ";ext=12", ";isub=7", ";postd=pp12")))
    elif kind == "tel_grouped":
        text = "tel:+" + cc + "-" + _group(nsn, ["-"], cuts)
    elif kind == "tel_context":
        text = f"tel:{nsn};phone-context=+{cc}"
    elif kind == "tel_slashes":
        text = "tel://+" + d
    elif kind == "sip_plus":
        text = f"sip:+{d}@{host}"
    elif kind == "sip_bare":
        text = f"sip:{d}@{host}"
    elif kind == "sip_phone":
        text = f"sip:+{d}@{host};user=phone"
    elif kind == "sip_password":
        text = f"sip:+{d}:pa55word@{host}"
    elif kind == "sip_display":
        text = f'"Front Desk" <sip:+{d}@{host}>'
    elif kind == "tel_display":
        text = f"Desk <tel:+{d}>"
    elif kind == "sip_nohost":
        text = f"sip:+{d}"
    elif kind == "sips":
        text = f"sips:+{d}@{host}"
    elif kind == "whatsapp":
        text = "whatsapp:+" + d
    elif kind == "pct_plus":
        text = "%2B" + d
    elif kind == "pct_all":
        text = "".join(f"%{ord(c):02X}" for c in "+" + d)
    elif kind == "fullwidth":
        text = "\uff0b" + "".join(_FULLWIDTH[c] for c in d)
    elif kind == "arabic":
        text = "+" + "".join(_ARABIC[c] for c in d)
    elif kind == "devanagari":
        text = "+" + "".join(_DEVANAGARI[c] for c in d)
    elif kind == "suffix":
        text = "+" + d + draw(st.sampled_from(_SUFFIXES))
    elif kind == "sip_pct":
        text = f"sip:%2B{d}@{host}"
    elif kind == "upper_scheme":
        text = draw(st.sampled_from((f"TEL:+{d}", f"Tel:+{d}", f"SIP:+{d}@{host}")))
    elif kind == "invisible":
        # Zero-width space, soft hyphen, BOM, word joiner, bidi marks: format characters.
        mark = draw(st.sampled_from(("\u200b", "\u00ad", "\ufeff", "\u2060", "\u200e")))
        at = draw(st.integers(1, len(d) - 1))
        text = "+" + d[:at] + mark + d[at:]
        if draw(st.booleans()):
            text = draw(st.sampled_from(("\u202e", "\u2066"))) + text + "\u2069"
    elif kind == "padded":
        text = draw(st.sampled_from((" ", "\t", "\u00a0"))) + "+" + d + \
            draw(st.sampled_from((" ", "\n", "\r\n", "")))
    elif kind == "nul_tail":
        text = "+" + d + "\x00" + draw(st.sampled_from(("", "junk", "\x00")))
    elif kind == "uri_headers":
        text = draw(st.sampled_from((f"tel:+{d}?x=1", f"sip:+{d}@{host}?Subject=hi",
                                     f"sip:+{d}@{host}>")))
    elif kind == "angle":
        text = f"<sip:+{d}@{host}>"
    elif kind == "paren_cc":
        text = f"+({cc}){nsn}"
    elif kind == "msisdn":
        text = d
    elif kind == "msisdn00":
        text = "00" + d
    elif kind == "national":
        text = num.national()
    elif kind == "national_digits":
        text = ("0" + nsn) if num.region in TRUNK_ZERO else nsn
    else:  # tr_msisdn: iletiMerkezi's own documented `905XXXXXXXXX`
        text = d if num.region == "TR" else "+" + d
    return kind, text


def prefix_number() -> st.SearchStrategy[Num]:
    """A number under the blocked prefix `+3361*`."""
    return st.text("0123456789", min_size=7, max_size=7).map(
        lambda rest: Num("+3361" + rest, "FR", "prefix"))


def numbers() -> st.SearchStrategy[Num]:
    """A destination: mostly blocked ones, some allowed and unlisted (partial sends)."""
    return st.one_of(
        st.sampled_from(EXACT_BLOCKED), st.sampled_from(EXACT_BLOCKED), prefix_number(),
        st.sampled_from((VOICE_ONLY, SMS_ONLY, TENANT_ONLY)), st.just(ALLOWED),
        st.sampled_from(UNLISTED), st.sampled_from(UNLISTED))


@dataclass(frozen=True, slots=True)
class Dest:
    """A destination placed in a request: the number, how it is spelled, as text."""

    num: Num
    kind: str
    text: str


@st.composite
def dest(draw: st.DrawFn, info: MountInfo, where: str = "field") -> Dest:
    num = draw(numbers())
    kind, text = draw(spelling(num, info, where))
    return Dest(num, kind, text)


def as_json_value(draw: st.DrawFn, d: Dest, *, ints: bool) -> object:
    """A destination as a JSON value: the text, or an integer (an MSISDN) now and then."""
    if ints and d.kind == "msisdn" and rare(draw, 4):
        return int(d.text)
    return d.text
