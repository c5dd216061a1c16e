"""bench.misses: how it reads cachegrind's report and out file and what it computes
(the runs themselves take minutes under valgrind and are not part of the suite)."""

from __future__ import annotations

import pytest
from bench import misses

REPORT = """==17580== Cachegrind, a cache and branch-prediction profiler
==17580== I   refs:      127,677
==17580== I1  misses:      1,091
==17580== D   refs:       39,655  (29,390 rd   + 10,265 wr)
==17580== D1  misses:      1,572  ( 1,228 rd   +    344 wr)
==17580== LLd misses:      1,330  ( 1,018 rd   +    312 wr)
==17580== LL misses:       2,402  ( 2,090 rd   +    312 wr)
"""

OUT_FILE = """desc: LL cache:         2097152 B, 64 B, 16-way associative
events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
fl=Objects/dictobject.c
fn=_Py_dict_lookup
10 5 0 0 3 2 1 0 0 0
11 2 0 0 1 1 1 1 1 4
fl=string/memcpy.S
fn=__memcpy_avx_unaligned_erms
20 9 0 0 2 2 2 2 2 3
fn=_Py_dict_lookup
12 1 0 0 1 1 7
"""


def test_the_totals_are_cachegrinds_summary_lines() -> None:
    """References and misses, thousands separators and padding read."""
    assert misses.summary(0, REPORT) == {"I refs": 127_677, "D refs": 39_655,
                                         "D1 misses": 1_572, "LL misses": 2_402}


@pytest.mark.parametrize(("returncode", "report"), [
    (1, REPORT),                                   # the child failed after counting
    (0, "Traceback (most recent call last):\n"),   # no summary at all
    (0, "==1== I   refs:      12\n"),              # a summary cut short
])
def test_a_failed_child_stops_the_bench_with_its_output(returncode: int, report: str) -> None:
    """Never a figure from a run that did not finish."""
    with pytest.raises(SystemExit, match="the child failed"):
        misses.summary(returncode, report)


def test_misses_by_function_add_read_and_write_last_level_data_misses() -> None:
    """DLmr + DLmw per function, over every line of it (a function may come back under
    another file's name), lines shorter than the event list read as zeros past their end."""
    found = misses.misses_by_function(OUT_FILE.splitlines())
    assert found == {"_Py_dict_lookup": 1 + 5 + 7, "__memcpy_avx_unaligned_erms": 2 + 3}


def test_differences_are_the_largest_changes_either_way() -> None:
    """Ranked by the size of the change, not its sign; a function one side lacks is 0."""
    a = {"f": 10.0, "g": 50.0, "h": 1.0}
    b = {"f": 40.0, "g": 5.0, "new": 2.0}
    assert misses.differences(a, b, 2) == [("g", 50.0, 5.0), ("f", 10.0, 40.0)]
    assert misses.differences(a, b, 9)[-1] == ("h", 1.0, 0.0)


@pytest.mark.parametrize("argv", [["--rows", "lists,nope"], ["--requests", "2"],
                                  ["--pool", "0"], ["--against", "/nonexistent"]])
def test_bad_options_are_refused(argv: list[str]) -> None:
    """A usage error (exit 2), before anything starts."""
    with pytest.raises(SystemExit) as exc:
        misses.main(argv)
    assert exc.value.code == 2
