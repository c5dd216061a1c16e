"""bench.spy_diff (two py-spy raw profiles side by side, per request), a short run
of bench.screen_loop (the screening looped for a profiler) on the embedded store, and
bench.opcodes (opcodes per request by function, two runs side by side)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench import opcodes, spy_diff

REPO = Path(__file__).resolve().parent.parent

# py-spy's raw format: a stack (outermost first, ";"-joined), a space, its samples.
RAW = """\
<module> (loop.py:1);run (runners.py:44);screen (/x/screening.py:169) 6
<module> (loop.py:1);run (runners.py:44);screen (/x/screening.py:170);plan (velocity.py:9) 3
<module> (loop.py:1);select (selectors.py:468) 1
"""


@pytest.mark.parametrize(("function", "inclusive", "own"), [
    ("<module> (loop.py)", 20.0, 0.0),
    ("run (runners.py)", 18.0, 0.0),
    ("screen (screening.py)", 18.0, 12.0),   # two lines of one function: one row
    ("plan (velocity.py)", 6.0, 6.0),
    ("select (selectors.py)", 2.0, 2.0),
])
def test_samples_become_microseconds_per_request(tmp_path: Path, function: str,
                                                 inclusive: float, own: float) -> None:
    """Ten samples over 20 us a request: each sample is 2 us, line numbers dropped."""
    path = tmp_path / "raw.txt"
    path.write_text(RAW)
    inclusive_us, own_us = spy_diff.per_request(path, 20.0)
    assert inclusive_us[function] == pytest.approx(inclusive)
    assert own_us.get(function, 0.0) == pytest.approx(own)


def test_the_table_puts_what_the_second_run_spent_most_more_in_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A function only the second run has leads the table."""
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("main (m.py:1) 10\n")
    second.write_text("main (m.py:1) 5\nmain (m.py:1);extra (e.py:3) 5\n")
    spy_diff.table("inclusive", *(spy_diff.per_request(p, 10.0)[0]
                                  for p in (first, second)), 5)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["0.00", "5.00", "+5.00", "extra", "(e.py)"]


def test_screen_loop_runs_each_mode_and_prints_its_cpu_per_request() -> None:
    """A short loop of lists and of policy on the embedded store ends by itself with a
    figure."""
    for mode in ("lists", "policy"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.screen_loop", mode, "0.2", "--numbers", "64"],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        words = done.stdout.split()
        assert words[0] == f"{mode}:", done.stdout
        assert float(words[1]) > 0, done.stdout


def test_opcodes_per_request_are_the_long_runs_over_the_short_ones() -> None:
    """Counts of a long run less a short one's, over the extra requests; a function only
    one run has counts from zero."""
    short = {("a.py", "f"): 100, ("a.py", "g"): 40}
    long = {("a.py", "f"): 500, ("b.py", "h"): 200}
    assert opcodes.per_request(short, long, 100) == {
        ("a.py", "f"): 4.0, ("a.py", "g"): -0.4, ("b.py", "h"): 2.0}


def test_the_opcode_table_leads_with_the_largest_difference_and_totals_first() -> None:
    """The total first, then functions by the size of their difference (either sign),
    equal counts left out."""
    a = {("s.py", "screen"): 200.0, ("v.py", "plan"): 80.0, ("x.py", "same"): 5.0}
    b = {("s.py", "screen"): 150.0, ("v.py", "plan_one"): 30.0, ("x.py", "same"): 5.0}
    lines = opcodes.table(a, b, 10)
    assert lines[0] == "total opcodes a request: 285 -> 185 (-100)"
    assert [line.split()[-1] for line in lines[1:]] == ["plan", "screen", "plan_one"]
    assert lines[1].split()[:4] == ["-80.0", "80.0", "->", "0.0"]


def test_opcodes_counts_a_short_run_of_two_rows(tmp_path: Path) -> None:
    """A short run of lists against policy on the embedded store ends by itself, and
    only the policy row runs the counting lookup."""
    out = tmp_path / "ops.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.opcodes", "--rows", "lists,policy", "--requests",
         "8", "--pool", "4", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("total opcodes a request:"), done.stdout
    lists, policy = (
        {name for _, name, count in run if count > 0}
        for run in json.loads(out.read_text())["per_request"])
    assert "VelocityMixin.lookup_counting" in policy
    assert "VelocityMixin.lookup_counting" not in lists
    assert "LookupMixin.lookup" in lists
