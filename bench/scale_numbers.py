"""bench.scale's numbers: the files of random US numbers it imports, and reading
them back in blocks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

READ_CHUNK = 1 << 20
LOOKUPS = 5_000


# US area codes drawn from: 201 to 989, or the first `--area-codes` of them.
AREA_CODES = 789


def write_numbers(path: Path, count: int, seed: int, lookups: int = LOOKUPS,
                  area_codes: int = AREA_CODES) -> list[str]:
    """`count` distinct random US numbers in E.164 over `area_codes` area codes, one per
    line; a sample of them."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    seen: set[int] = set()
    while len(seen) < count:
        need = count - len(seen)
        seen.update(int(f"1{rng.randint(201, 200 + area_codes)}{rng.randint(200, 999)}"
                        f"{rng.randint(0, 9999):04d}") for _ in range(need))
    numbers = list(seen)
    rng.shuffle(numbers)
    with path.open("w") as out:
        for start in range(0, count, 100_000):
            out.write("".join(f"+{n}\n" for n in numbers[start:start + 100_000]))
    return [f"+{n}" for n in rng.sample(numbers, min(lookups, count))]


async def chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(READ_CHUNK):
            yield block
