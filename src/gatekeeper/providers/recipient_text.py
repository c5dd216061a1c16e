"""Recipient strings: several recipients in one string (`a<b`), and what an e-mail
address is (a recipient that is not a number)."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^@\s:<>,;\"]+@[^@\s:<>,;\"]+")


def is_email(value: str) -> bool:
    """True for a plain e-mail address (`a@b.c`); `sip:+33...@host`, a display name or
    anything with a scheme is not one and stays a destination to decide."""
    return _EMAIL.fullmatch(value.strip()) is not None


def split_parts(value: str, separator: str | None) -> list[str]:
    """The recipients one string holds (`a<b` with separator `<`), blanks dropped."""
    parts = value.split(separator) if separator else [value]
    return [p for p in parts if p.strip()]
