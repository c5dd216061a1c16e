"""Each log record leaves in one write with its newline (observability/logs.py
`LineLogger`), so that processes sharing a file or pipe never mix records on a line;
and a JSON record is one ASCII line (`render_json`)."""

from __future__ import annotations

import io
import json
import logging
import math
import os
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.config import LogConfig
from gatekeeper.observability import configure_logging
from gatekeeper.observability.logs import LineLogger, render_json


def test_a_record_is_one_write_to_the_descriptor(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Records of any length (here up to 20 KB) go out in one os.write each, newline
    included."""
    writes: list[bytes] = []
    real = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real(fd, data)

    monkeypatch.setattr("gatekeeper.observability.logs.os.write", spy)
    with (tmp_path / "log").open("a") as stream:
        logger = LineLogger(stream)
        for size in (10, 5000, 20000):
            logger.msg("x" * size)
    assert [len(w) for w in writes] == [11, 5001, 20001]
    assert all(w.endswith(b"\n") for w in writes)
    assert (tmp_path / "log").read_text().splitlines() == ["x" * n for n in (10, 5000, 20000)]


def test_a_stream_without_a_descriptor_gets_one_write_call() -> None:
    """StringIO (tests): one write() of the record and its newline."""
    stream = io.StringIO()
    LineLogger(stream).msg('{"event": "a"}')
    assert stream.getvalue() == '{"event": "a"}\n'


def test_structlog_and_stdlib_records_go_through_it(tmp_path: Path) -> None:
    """configure_logging's output: structlog events and stdlib records, one JSON per line."""
    try:
        with (tmp_path / "log").open("a") as stream:
            configure_logging(LogConfig(level="info"), stream)
            structlog.get_logger("gatekeeper").info("hello", n=1)
            logging.getLogger("aiohttp.server").warning("from stdlib")
    finally:
        # Never leave logging on a closed file (its descriptor number gets reused).
        configure_logging(LogConfig(level="info"), io.StringIO())
    lines = (tmp_path / "log").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["hello", "from stdlib"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


def finite(value: object) -> object:
    """What a log line holds for `value`: infinite floats as null (JSON has no
    infinity)."""
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5))
def test_a_json_line_is_ascii_one_line_and_reads_back_as_json_would_write_it(
        event: dict[str, object]) -> None:
    """`render_json` (orjson, or `json` past what orjson takes: big integers, lone
    surrogates, text beyond ASCII): always one ASCII line, newline included, of strict
    JSON, that reads back as the standard library's rendering of the same event does,
    but for an infinite float, which is null."""
    line = render_json(None, "info", event)
    assert line.isascii()
    assert line.endswith(b"\n")
    assert b"\n" not in line[:-1]
    assert json.loads(line, parse_constant=reject) == json.loads(
        json.dumps(finite(event), default=repr))


def reject(constant: str) -> object:
    """json.loads' hook for Infinity and NaN, which strict JSON has not."""
    raise AssertionError(f"not JSON: {constant}")


@pytest.mark.parametrize(("event", "expected"), [
    ({"event": "x", "n": 1}, b'{"event":"x","n":1}\n'),  # ASCII: orjson's own
    ({"event": "caf\u00e9"}, b'{"event": "caf\\u00e9"}\n'),  # escaped, by json
    ({"event": "x", "n": 2**70}, b'{"event": "x", "n": 1180591620717411303424}\n'),
    ({"event": "\ud800"}, b'{"event": "\\ud800"}\n'),  # a lone surrogate
    ({"event": "x", "at": object}, b'{"event":"x","at":"<class \'object\'>"}\n'),  # repr
    ({"event": "x", "by": {(1, 2): "y"}}, b'{"event": "x", "by": {"(1, 2)": "y"}}\n'),
    ({"event": "x", "v": float("inf")}, b'{"event":"x","v":null}\n'),  # orjson's
    ({"event": "\u00e9", "v": [float("-inf")]}, b'{"event": "\\u00e9", "v": [null]}\n'),
], ids=["ascii", "accented", "big-integer", "surrogate", "unknown-object", "tuple-key",
        "infinite", "infinite-escaped"])
def test_json_line_table(event: dict[str, object], expected: bytes) -> None:
    assert render_json(None, "info", event) == expected
