"""bench.together's pure parts: the order rows are loaded in with `--alternate`, and
its options (a whole run is in tests/test_bench.py, serial)."""

from __future__ import annotations

import pytest
from bench import together


@pytest.mark.parametrize(("rows", "window", "order"), [
    (3, 1, [0, 1, 2]),
    (3, 2, [1, 2, 0]),
    (3, 3, [2, 0, 1]),
    (3, 4, [0, 1, 2]),   # round again
    (4, 2, [1, 2, 3, 0]),
    (1, 5, [0]),
])
def test_alternate_turns_the_order_by_one_each_window(rows: int, window: int,
                                                       order: list[int]) -> None:
    """Each row is loaded once a window, and first in turn."""
    assert together.turned(rows, window) == order


def test_over_as_many_windows_as_rows_each_row_takes_each_place_once() -> None:
    """Drift within a window weighs on every row alike over a full turn."""
    rows = 4
    places = [together.turned(rows, w) for w in range(1, rows + 1)]
    for row in range(rows):
        assert sorted(order.index(row) for order in places) == list(range(rows))


@pytest.mark.parametrize(("argv", "alternate"), [([], False), (["--alternate"], True)])
def test_alternate_is_off_unless_asked_for(argv: list[str], alternate: bool) -> None:
    """The default stays the rows loaded at once."""
    assert together.options(argv).alternate is alternate
