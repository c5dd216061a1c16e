"""The limits, patterns and enumerations the document states, the same as the handlers'.

tests/test_openapi.py compares each with the handler's own value.
"""

from __future__ import annotations

from typing import get_args

from gatekeeper.policy import ListName, Verdict

# native.py's limits: it imports this module, so importing them would be a cycle (the
# test compares them).
MAX_ENTRIES_PER_CALL = 10_000
MAX_PAGE = 1000
DEFAULT_PAGE = 100

LISTS: tuple[ListName, ...] = get_args(ListName)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
SCOPE_PATTERN = r"^(global|[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._@+-]{1,128})$"
# Stored entries: E.164 (`+` then up to 15 digits, no leading 0) or a prefix `+33*`.
ENTRY_PATTERN = r"^\+[1-9]([0-9]{1,14}|[0-9]{0,13}\*)$"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
STREAM_ID_PATTERN = r"^([0-9]{1,20})-([0-9]{1,20})$"
