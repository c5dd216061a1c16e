"""Each log record leaves in one write with its newline (observability/logs.py
`LineLogger`), so that processes sharing a file or pipe never mix records on a line."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
import structlog

from gatekeeper.config import LogConfig
from gatekeeper.observability import configure_logging
from gatekeeper.observability.logs import LineLogger


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
