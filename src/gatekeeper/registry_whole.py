"""Whole-chunk fast paths of the registry readers (pure): when every line of a chunk has
one exact NANP shape, the chunk is checked and read by slices of the whole buffer at C
speed instead of line by line (registry_formats.py falls back to its line readers).
"""

from __future__ import annotations

# What an NPA (area code) and an NXX (exchange code) may start with.
_NPA_FIRST = b"23456789"


def _whole_nanp(data: bytes, count: int, comma: bool) -> list[int] | None:
    """The numbers when every line is exactly NPA-NXX-XXXX digits (with `comma`, also
    every line `NPA,NXXXXXX`), checked over the whole buffer by slices at C speed."""
    if not count:
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    if comma and len(data) == 12 * count and data[3::12] == b"," * count:
        data = data.replace(b",", b"")
    if len(data) != 11 * count or data[10::11] != b"\n" * count:
        return None
    if (data.translate(None, b"0123456789\n") or data[0::11].translate(None, _NPA_FIRST)
            or data[3::11].translate(None, _NPA_FIRST)):
        return None
    # A leading 1 on every line makes int() give the E.164 digits directly.
    return list(map(int, (b"1" + data[:-1].replace(b"\n", b"\n1")).split(b"\n")))


def _whole_e164_nanp(data: bytes, count: int) -> list[int] | None:
    """The numbers when every line is exactly `+1` NPA-NXX-XXXX (a plain E.164 list of
    NANP numbers: what `_e164` takes line by line), checked over the whole buffer by
    slices at C speed."""
    if not count:
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    if len(data) != 13 * count or data[12::13] != b"\n" * count \
            or data[0::13] != b"+" * count or data[1::13] != b"1" * count:
        return None
    if (data.translate(None, b"+0123456789\n") or data.count(b"+") != count
            or data[2::13].translate(None, _NPA_FIRST)
            or data[5::13].translate(None, _NPA_FIRST)):
        return None
    return list(map(int, data[1:-1].split(b"\n+")))
