"""What judging one number against the policy rules costs, in process: cold (numbers
never seen: phonenumbers' metadata read; alone, and after the proxy's own parse, as a
send has it), warm (the verdict kept), and a minute later (kept until the number's quiet
hours open or close, since 2026-12-07: judged again before), over random US numbers.

    .venv/bin/python -m bench.judge [--numbers 5000]

Measures and prints; asserts nothing. The policy is the bench's (bench/run.py)."""

from __future__ import annotations

import argparse
import random
import time

from bench.run import BENCH_POLICY
from gatekeeper.config import parse_config
from gatekeeper.facts import us_state
from gatekeeper.numbers import parse_destination
from gatekeeper.rules import judge

SCOPES = ("global", "tenant:acme", "tenant:beta")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = parse_config({"policy": BENCH_POLICY}).policy
    rng = random.Random(args.seed)  # noqa: S311 - test data
    numbers: list[str] = []
    us_state("+12125550100")  # the geocoder's data loads once per process: not timed
    now = time.time()
    # Cold twice: alone, and as in the proxy, which has parsed the number already (the
    # parse is shared, numbers.parse_plus); other numbers each time (caches cold).
    for label in ("cold", "cold, parsed by the proxy", "warm", "a minute later"):
        if label.startswith("cold"):
            numbers = [f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}"
                       f"{rng.randint(0, 9999):04d}" for _ in range(args.numbers)]
        if label == "cold, parsed by the proxy":
            for number in numbers:
                parse_destination(number)
        if label == "a minute later":
            now += 60
        started = time.process_time()
        for number in numbers:
            judge(number, SCOPES, policy, "sms", "marketing", now)
        spent = (time.process_time() - started) / len(numbers) * 1e6
        print(f"{label}: {spent:.1f} us per number (CPU), {len(numbers)} numbers")


if __name__ == "__main__":
    main()
