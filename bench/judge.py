"""What judging one number against the policy rules costs, in process: cold (numbers
never seen: phonenumbers' metadata read) and warm (cached), over random US numbers.

    .venv/bin/python -m bench.judge [--numbers 5000]

Measures and prints; asserts nothing. The policy is the bench's (bench/run.py)."""

from __future__ import annotations

import argparse
import random
import time

from bench.run import BENCH_POLICY
from gatekeeper.config import parse_config
from gatekeeper.facts import describe, us_state
from gatekeeper.rules import judge

SCOPES = ("global", "tenant:acme", "tenant:beta")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = parse_config({"policy": BENCH_POLICY}).policy
    rng = random.Random(args.seed)  # noqa: S311 - test data
    numbers = [f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
               for _ in range(args.numbers)]
    us_state("+12125550100")  # the geocoder's data loads once per process: not timed
    describe.cache_clear()
    us_state.cache_clear()
    now = time.time()
    for label in ("cold", "warm"):
        started = time.process_time()
        for number in numbers:
            judge(number, SCOPES, policy, "sms", "marketing", now)
        spent = (time.process_time() - started) / len(numbers) * 1e6
        print(f"{label}: {spent:.1f} us per number (CPU), {len(numbers)} numbers")


if __name__ == "__main__":
    main()
