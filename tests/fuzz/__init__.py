"""Send requests in every spelling, and a checker that reads what an upstream received
every way: the strategies and harness of the invariant fuzzer (tests/test_invariant_*.py).

The invariant: nothing an upstream receives, decoded any way (percent once and twice,
`+` as space and as plus, JSON, XML, HTML/XML character references, JSON escapes,
Unicode digits, separators inside digit runs), holds the digits of a blocked number,
unless that upstream is in `monitor`.

Layout: the numbers (blocked, allowed, unlisted, and how the lists are loaded) and the
fuzzing config (lists.py); number spellings (spellings.py); request bodies: forms, JSON
with duplicate keys, XML, inline call scripts (bodies.py); the send before and as written
(specs.py); one builder per documented send of each preset (builders_<preset>.py, two
presets a module, as tests/test_invariant_fuzz.py groups them); the unknown-endpoint
builder (builders_unknown.py); mutations: path, method, fields, query, content type,
headers (mutations.py); a send drawn, mutated and written out (sends.py); the checker
(checker.py); the raw HTTP client (client.py); and the harness that runs Hypothesis in a
worker thread against a Gatekeeper on the test's loop (harness.py).
"""

from tests.fuzz.bodies import dump_json, encode_form, jobj, xml_attr, xml_escape
from tests.fuzz.checker import View, leaks_in, record_texts
from tests.fuzz.harness import Harness, KnownIssue, examples, explain
from tests.fuzz.lists import MONITOR, Num, mounts
from tests.fuzz.sends import preset_sends, unknown_sends
from tests.fuzz.specs import Send
from tests.fuzz.spellings import ANYWHERE, Dest, numbers, spelling

__all__ = [
    "ANYWHERE",
    "MONITOR",
    "Dest",
    "Harness",
    "KnownIssue",
    "Num",
    "Send",
    "View",
    "dump_json",
    "encode_form",
    "examples",
    "explain",
    "jobj",
    "leaks_in",
    "mounts",
    "numbers",
    "preset_sends",
    "record_texts",
    "spelling",
    "unknown_sends",
    "xml_attr",
    "xml_escape",
]
