"""Micro-benchmarks of the pure hot path (normalise + decide), with pytest-benchmark.

They measure and print decisions per second; they assert only that the work is right,
never how fast it ran (these machines are shared and noisy)."""

from __future__ import annotations

from typing import Any

from gatekeeper.numbers import lookup_candidates, parse_destination
from gatekeeper.policy import Match, decide

SCOPES = ("global", "tenant:acme", "tenant:beta")
MATCHES = [Match("global", "block", "+336*"), Match("tenant:acme", "allow", "+33612345678"),
           Match("tenant:beta", "block", "+33*")]
NUMBERS = [f"+3361234{i:04d}" for i in range(5000)]


def report(benchmark: Any, label: str) -> None:
    """Print the decisions per second the benchmark measured (its mean)."""
    stats = benchmark.stats.stats
    print(f"\n{label}: {1 / stats.mean:,.0f} decisions/s (mean {stats.mean * 1e6:.2f} us)")


def test_bench_normalise_and_decide_cached(benchmark: Any) -> None:
    """A repeat number (normalisation cached) through decide()."""
    def once() -> str:
        destination = parse_destination("+33 6 12 34 56 78", "FR")
        assert destination.e164 is not None
        lookup_candidates(destination.e164)
        return decide(destination.e164, SCOPES, MATCHES).verdict

    assert benchmark(once) == "blocked"
    report(benchmark, "normalise (cached) + decide")


def test_bench_normalise_and_decide_fresh(benchmark: Any) -> None:
    """Numbers never seen before: phonenumbers parses each one."""
    def batch() -> int:
        parse_destination.cache_clear()
        blocked = 0
        for raw in NUMBERS[:200]:
            destination = parse_destination(raw, None)
            assert destination.e164 is not None
            lookup_candidates(destination.e164)
            blocked += decide(destination.e164, SCOPES, MATCHES).verdict == "blocked"
        return blocked

    assert benchmark(batch) == 200
    stats = benchmark.stats.stats
    print(f"\nnormalise (fresh) + decide: {200 / stats.mean:,.0f} decisions/s")
