"""Two py-spy raw profiles (`py-spy record -f raw`) side by side: each function's
samples (inclusive, and its own), scaled to microseconds per request by the CPU per
request each run printed, sorted by how much more the second run spent there.

    .venv/bin/python -m bench.spy_diff rules.txt 30.6 policy.txt 41.0 [--top 25]

Line numbers are dropped from frame names, so that a function is one row. Reads and
prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FILE = re.compile(r" \((?:.*/)?([^/]+?)(?::\d+)?\)$")


def per_request(path: Path, us_per_request: float) -> tuple[dict[str, float], dict[str, float]]:
    """Inclusive and own microseconds per request of each function in one profile."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        count = int(samples)
        total += count
        frames = [_FILE.sub(r" (\1)", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    scale = us_per_request / max(total, 1)
    return ({k: v * scale for k, v in inclusive.items()},
            {k: v * scale for k, v in own.items()})


def table(title: str, a: dict[str, float], b: dict[str, float], top: int) -> None:
    """The `top` functions the second run spent most more in."""
    print(f"{title}: first, second, difference (us per request)")
    for name in sorted(set(a) | set(b), key=lambda k: a.get(k, 0.0) - b.get(k, 0.0))[:top]:
        first, second = a.get(name, 0.0), b.get(name, 0.0)
        print(f"{first:7.2f} {second:7.2f} {second - first:+7.2f}  {name[:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("first_us", type=float)
    parser.add_argument("second", type=Path)
    parser.add_argument("second_us", type=float)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    a_in, a_own = per_request(args.first, args.first_us)
    b_in, b_own = per_request(args.second, args.second_us)
    table("inclusive", a_in, b_in, args.top)
    table("own", a_own, b_own, args.top)


if __name__ == "__main__":
    main()
