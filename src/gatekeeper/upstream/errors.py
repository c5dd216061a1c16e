"""A forward that failed: UpstreamError and its bounded kinds."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["timeout", "unavailable", "broken_reply"]


class UpstreamError(Exception):
    """A forward that failed. `kind` is a bounded label: timeout, unavailable (nothing
    usable came back) or broken_reply (the reply started and then broke off)."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind: ErrorKind = kind
