"""The open-file limit check (fdlimit.py), with getrlimit/setrlimit replaced."""

from __future__ import annotations

import io
import resource
from pathlib import Path

import pytest
import structlog

from gatekeeper import fdlimit
from gatekeeper.fdlimit import FD_TARGET, check_fd_limit, fd_need
from tests.conftest import log_events
from tests.test_server import timed_config

FD_CASES = [
    # (soft, hard, setrlimit fails, soft after, events)
    (1024, 524_288, False, FD_TARGET, ["fd_limit_raised"]),
    (256, resource.RLIM_INFINITY, False, FD_TARGET, ["fd_limit_raised"]),
    (20_000, 20_000, False, 20_000, []),
    (100_000, resource.RLIM_INFINITY, False, 100_000, []),  # never lowered
    (1024, 1024, False, 1024, ["fd_limit_low"]),
    (1024, 1500, False, 1500, ["fd_limit_low"]),
    (1024, 524_288, True, 1024, ["fd_limit_low"]),
]


@pytest.mark.parametrize(("soft", "hard", "fails", "after", "events"), FD_CASES)
def test_fd_limit_raised_towards_hard_limit_and_low_limit_warned(
        soft: int, hard: int, fails: bool, after: int, events: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO) -> None:
    """The soft limit goes to min(hard, 65536) when lower; `fd_limit_low` when it stays
    under what 1000 clients and the upstream pools need."""
    calls: list[tuple[int, int]] = []

    def setrlimit(which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        if fails:
            raise ValueError("not allowed")
        calls.append(limits)

    monkeypatch.setattr(fdlimit.resource, "getrlimit", lambda _which: (soft, hard))
    monkeypatch.setattr(fdlimit.resource, "setrlimit", setrlimit)
    config = timed_config(tmp_path)
    result = check_fd_limit(config, structlog.get_logger("gatekeeper"))
    assert result.soft == after
    assert result.needed == fd_need(config) == 1000 + 2 * 256 + 128
    assert calls == ([] if after == soft or fails else [(after, hard)])
    logged = [e for e in log_events(log_output) if e["event"].startswith("fd_limit")]
    assert [e["event"] for e in logged] == events
    if events == ["fd_limit_low"]:
        assert logged[0]["level"] == "warning"
        assert logged[0]["limit"] == after
        assert logged[0]["needed"] == result.needed
        assert "concurrent client connections" in logged[0]["message"]
