"""Hypothesis strategies for list entries with metadata, as exports show them: shared by
the restore tests of the file format and of the admin API."""

from __future__ import annotations

from hypothesis import strategies as st

from gatekeeper.store import EntryMeta, Listed, ListItem
from gatekeeper.times import MAX_TTL
from gatekeeper.types import Channel

# A fixed "now" for format-level tests; expiries are drawn after it.
NOW = 1_700_000_000.0
SOURCES = ("api", "import", "opt-out", "agent-api", "prelude", "iletimerkezi")
# Free text meant to trip the CSV and the spreadsheet defusing: delimiters, quotes, line
# breaks, formula starts, apostrophes, non-ASCII, control characters.
TRICKY = ",;\t\"'\n\r=+-@# é€😀\x00\u2028"

# Everything but lone surrogates (not encodable as UTF-8, refused by the API anyway).
_TEXT = st.characters(codec="utf-8")
text = st.text(st.one_of(st.sampled_from(TRICKY), _TEXT), max_size=40)
long_text = st.text(st.one_of(st.sampled_from(TRICKY), _TEXT), max_size=500)

_COUNTRY = st.sampled_from(["1", "33", "44", "49", "90", "34"])


@st.composite
def entries(draw: st.DrawFn) -> str:
    """A normalised entry: a number (`+33612345678`) or a prefix (`+4479*`)."""
    country = draw(_COUNTRY)
    if draw(st.booleans()):
        return f"+{country}{draw(st.text('0123456789', min_size=9, max_size=10))}"
    return f"+{country}{draw(st.text('0123456789', max_size=6))}*"


channels: st.SearchStrategy[Channel | None] = st.sampled_from([None, "sms", "voice"])


def metas(now: float = NOW) -> st.SearchStrategy[EntryMeta]:
    """Metadata as an export shows it (whole seconds) and a restore at `now` loads it
    (an expiry after `now`, at most MAX_TTL ahead of it)."""
    return st.builds(
        EntryMeta,
        source=st.sampled_from(SOURCES),
        added_at=st.integers(0, int(now)).map(float),
        added_by=st.one_of(st.none(), text.filter(bool)),
        note=st.one_of(st.none(), long_text.filter(bool)),
        expires_at=st.one_of(st.none(),
                             st.integers(int(now) + 3600, int(now) + MAX_TTL - 3600)
                             .map(float)))


def listed(now: float = NOW) -> st.SearchStrategy[Listed]:
    """One entry with its metadata (now and then none, as for entries stored without)."""
    return st.builds(Listed, st.builds(ListItem, entries(), channels),
                     st.one_of(metas(now), metas(now), metas(now), st.none()))
