"""How many registry-file lines a second parse_chunk reads: `python -m bench.parse_rate`.

Generates the files in memory (random valid numbers, fixed seed), cuts them into chunks
at line boundaries as the bulk importer would, and times only the parse_chunk calls;
prints the best of a few runs per variant. Measures, never asserts.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable

from gatekeeper.registry_formats import Format, parse_chunk

_Line = Callable[[random.Random], str]


def _us(rng: random.Random) -> str:
    """Ten NANP digits: NPA and NXX start with 2-9."""
    return f"{rng.randrange(200, 1000)}{rng.randrange(200, 1000)}{rng.randrange(10_000):04d}"


def _us_sometimes_bad(rng: random.Random) -> str:
    """One line in a thousand has an area code starting with 1 (an error)."""
    number = _us(rng)
    return "1" + number[1:] if rng.randrange(1000) == 0 else number


def _us_comma(rng: random.Random) -> str:
    """`NPA,NXXXXXX`, the full-list layout a vendor's guide describes."""
    number = _us(rng)
    return f"{number[:3]},{number[3:]}"


def _us_formatted(rng: random.Random) -> str:
    number = _us(rng)
    return f"({number[:3]}) {number[3:6]}-{number[6:]}"


def _us_e164(rng: random.Random) -> str:
    return "+1" + _us(rng)


def _us_change(rng: random.Random) -> str:
    return f"{_us_comma(rng)},2024-01-15,{rng.choice('AD')}"


def _gb(rng: random.Random) -> str:
    """An eleven-digit UK national number (0 + ten-digit NSN)."""
    return f"0{rng.choice('12378')}{rng.randrange(1_000_000_000):09d}"


def _tps_spaced(rng: random.Random) -> str:
    """The TPS 12-character record: 5-character dialling code field, 7-character rest."""
    number = _gb(rng)
    return f"{number[:4]:<5}{number[4:]:>7}"


def _tps_padded(rng: random.Random) -> str:
    return f"{_gb(rng):<12}"


def _gb_e164(rng: random.Random) -> str:
    return "+44" + _gb(rng)[1:]


VARIANTS: list[tuple[str, Format, str, _Line, str, str]] = [
    # name, format, region, line maker, line ending, header
    ("us-dnc 10 digits LF", "us-dnc", "US", _us, "\n", ""),
    ("us-dnc 10 digits CRLF", "us-dnc", "US", _us, "\r\n", ""),
    ("plain US 10 digits LF", "plain", "US", _us, "\n", ""),
    ("us-dnc 10 digits, 0.1% bad (per line)", "us-dnc", "US", _us_sometimes_bad, "\n", ""),
    ("us-dnc NPA,NXXXXXX (csv variant)", "us-dnc", "US", _us_comma, "\n", ""),
    ("csv US (202) 555-0123 + header", "csv", "US", _us_formatted, "\n", "phone\n"),
    ("plain E.164 +1", "plain", "US", _us_e164, "\n", ""),
    ("us-dnc-change NPA,NXXXXXX,date,A/D", "us-dnc-change", "US", _us_change, "\n", ""),
    ("tps spaced 12-char CRLF (gb variant)", "tps", "GB", _tps_spaced, "\r\n", ""),
    ("tps padded 12-char CRLF", "tps", "GB", _tps_padded, "\r\n", ""),
    ("plain GB national 0...", "plain", "GB", _gb, "\n", ""),
    ("plain E.164 +44", "plain", "GB", _gb_e164, "\n", ""),
]


def _chunks(data: bytes, size: int) -> list[tuple[bytes, int]]:
    """Cut at the last newline before each `size` bytes, with first line numbers."""
    out: list[tuple[bytes, int]] = []
    start, line = 0, 1
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1 if start + size < len(data) else 0
        end = end if end > start else len(data)
        piece = data[start:end]
        out.append((piece, line))
        line += piece.count(b"\n")
        start = end
    return out


def measure(lines: int, chunk_bytes: int, repeat: int, seed: int) -> None:
    """Print lines/s for every variant."""
    print(f"{'variant':40} {'lines':>10} {'best s':>8} {'lines/s':>12}  outcome")
    for name, fmt, region, make, ending, header in VARIANTS:
        rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        text = header + ending.join(make(rng) for _ in range(lines)) + ending
        chunks = _chunks(text.encode(), chunk_bytes)
        total = header.count("\n") + lines
        best = float("inf")
        counts = (0, 0, 0, 0)
        for _ in range(repeat):
            began = time.perf_counter()
            parsed = [parse_chunk(piece, fmt, region, first) for piece, first in chunks]
            best = min(best, time.perf_counter() - began)
            counts = (sum(len(c.adds) for c in parsed), sum(len(c.deletes) for c in parsed),
                      sum(len(c.slow) for c in parsed), sum(len(c.errors) for c in parsed))
            del parsed
        print(f"{name:40} {total:>10,} {best:>8.3f} {total / best:>12,.0f}  "
              f"adds={counts[0]:,} deletes={counts[1]:,} slow={counts[2]:,} "
              f"errors={counts[3]:,}")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this CPU (-1: no pin)")
    args = parser.parse_args()
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
        print(f"pinned to CPU {args.cpu}")
    print(f"{args.lines:,} lines per variant, chunks of {args.chunk_bytes:,} bytes, "
          f"best of {args.repeat}")
    measure(args.lines, args.chunk_bytes, args.repeat, args.seed)


if __name__ == "__main__":
    main()
