"""bench.instructions: how it reads valgrind's report and what it computes (the runs
themselves take minutes under valgrind and are not part of the suite)."""

from __future__ import annotations

import pytest
from bench import instructions
from bench.params import BENCH_POLICY, BENCH_RULES


def test_the_count_is_valgrinds_last_collected_line() -> None:
    """callgrind's `Collected : N` (the last one, should there be several)."""
    report = "==1== Callgrind\n==1== Collected : 12\n==1==\n==1== Collected : 6810107013\n"
    assert instructions.collected(0, report) == 6_810_107_013


@pytest.mark.parametrize(("returncode", "report"), [
    (1, "==1== Collected : 5\n"),       # the child failed after counting
    (0, "Traceback (most recent call last):\n"),  # no count at all
])
def test_a_failed_child_stops_the_bench_with_its_output(returncode: int, report: str) -> None:
    """Never a figure from a run that did not finish."""
    with pytest.raises(SystemExit, match="the child failed"):
        instructions.collected(returncode, report)


def test_per_request_is_the_long_runs_extra_over_its_extra_requests() -> None:
    """Start-up and warm-up, alike in both runs, cancel out."""
    assert instructions.per_request(6_000_000, 10_000_000, 2_000) == 2_000.0


def test_the_rows_are_the_bench_rows_configuration() -> None:
    """The same policies as bench.run's rows, one Twilio upstream, logs at warning."""
    assert instructions.row_config("lists", "redis://x", 1, 2).get("policy") is None
    assert instructions.row_config("rules", "redis://x", 1, 2)["policy"] == BENCH_RULES
    config = instructions.row_config("policy", "redis://x", 1, 2)
    assert config["policy"] == BENCH_POLICY
    assert config["log"]["level"] == "warning"
    assert config["upstreams"][0]["url"] == "http://127.0.0.1:2"


def test_the_pool_is_the_same_every_run() -> None:
    """Drawn from a fixed seed: the runs compared send to the same numbers."""
    assert instructions.pool_of(50) == instructions.pool_of(50)
    assert len(set(instructions.pool_of(50))) == 50


@pytest.mark.parametrize("argv", [["--rows", "lists,nope"], ["--requests", "2"],
                                  ["--against", "/nonexistent"]])
def test_bad_options_are_refused(argv: list[str]) -> None:
    """A usage error (exit 2), before anything starts."""
    with pytest.raises(SystemExit) as exc:
        instructions.main(argv)
    assert exc.value.code == 2


def test_gatekeepers_own_share_is_each_row_less_the_direct_row() -> None:
    """The client and the gateway, alike in every row, are taken out; nothing without
    both the direct and the lists row."""
    counts = {"direct": 600.0, "lists": 1500.0, "policy": 1545.0}
    assert instructions.gatekeepers_own(counts) == {"lists": 900.0, "policy": 945.0}
    assert instructions.gatekeepers_own({"lists": 1.0, "policy": 2.0}) == {}
