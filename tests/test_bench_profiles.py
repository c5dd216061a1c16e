"""bench.spy_diff (two py-spy raw profiles side by side, per request) and a short run
of bench.screen_loop (the screening looped for a profiler) on the embedded store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench import spy_diff

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
