"""Logging set-up, secret redaction, request ids and metrics on an injected registry."""

from __future__ import annotations

import gc
import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from gatekeeper.config import LogConfig
from gatekeeper.observability import (
    REDACTED,
    Metrics,
    configure_logging,
    redact_secrets,
)
from gatekeeper.serve import GC_YOUNG_THRESHOLD, tune_collector
from tests.conftest import (
    TWILIO_MESSAGES,
    FakeUpstream,
    Running,
    StartGatekeeper,
    make_config,
)


@pytest.mark.parametrize(("event", "expected"), [
    ({"authorization": "Basic x"}, {"authorization": REDACTED}),
    ({"Authorization": "Bearer x"}, {"Authorization": REDACTED}),
    ({"api_key": "k", "apiKey": "k", "auth_token": "t"},
     {"api_key": REDACTED, "apiKey": REDACTED, "auth_token": REDACTED}),
    ({"body": {"request": {"authentication": {"key": "k", "hash": "h"}}}},
     {"body": {"request": {"authentication": {"key": REDACTED, "hash": REDACTED}}}}),
    ({"headers": [{"password": "p"}, {"x": 1}]},
     {"headers": [{"password": REDACTED}, {"x": 1}]}),
    ({"sig": "abc", "signature": "abc", "cookie": "c"},
     {"sig": REDACTED, "signature": REDACTED, "cookie": REDACTED}),
    ({"key_name": "ops", "upstream": "twilio", "number": "+3361****789"},
     {"key_name": "ops", "upstream": "twilio", "number": "+3361****789"}),
], ids=["authorization", "case-insensitive", "api-keys-and-tokens", "nested-credentials",
        "inside-lists", "signatures-and-cookies", "ordinary-fields-kept"])
def test_redact_secrets(event: dict[str, Any], expected: dict[str, Any]) -> None:
    """Credential-like fields are replaced at any depth; others are left alone."""
    assert redact_secrets(None, "info", dict(event)) == expected


def test_json_lines_and_level_filter() -> None:
    """configure_logging writes one JSON object per line and drops lower levels."""
    buffer = io.StringIO()
    configure_logging(LogConfig(level="warning"), buffer)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud", api_key="k")
    [line] = buffer.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "loud"
    assert event["level"] == "warning"
    assert event["api_key"] == REDACTED
    assert "timestamp" in event


def test_metrics_live_on_the_injected_registry() -> None:
    """Two Metrics on two registries do not collide and count separately."""
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first).decisions.labels("u", "sms", "outbound", "forwarded", "unlisted").inc()
    Metrics(second)
    labels = {"upstream": "u", "channel": "sms", "direction": "outbound", "action": "forwarded",
              "reason": "unlisted"}
    assert first.get_sample_value("gatekeeper_decisions_total", labels) == 1
    assert second.get_sample_value("gatekeeper_decisions_total", labels) is None


def test_a_serving_process_counts_the_collectors_time_by_generation() -> None:
    """tune_collector installs the clock once; each collection's time reaches
    gatekeeper_gc_seconds_total when settled (reading the registry settles), only once."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    thresholds = gc.get_threshold()
    try:
        tune_collector(metrics)
        tune_collector(metrics)  # a second call does not time collections twice
        assert gc.callbacks.count(metrics.collector_clock) == 1
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        gc.collect()
        gc.collect(0)
    finally:
        gc.callbacks.remove(metrics.collector_clock)
        gc.unfreeze()
        gc.set_threshold(*thresholds)

    def sample(generation: str) -> float:
        value = registry.get_sample_value("gatekeeper_gc_seconds_total",
                                          {"generation": generation})
        assert value is not None
        return value

    unsettled = [s.value for family in metrics.gc_seconds.collect() for s in family.samples
                 if s.name.endswith("_total")]
    assert unsettled == [0.0, 0.0, 0.0]  # the counter itself, before anything settled
    full, young = sample("2"), sample("0")
    assert full > 0.0
    assert young > 0.0
    assert sample("1") == 0.0
    metrics.settle()  # nothing new: nothing added
    assert (sample("2"), sample("0")) == (full, young)


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("bad id", False),
    ("x\u00e9", False),
], ids=["simple", "max-length", "too-long", "space", "non-ascii"])
async def test_request_id_is_reused_only_when_sane(gatekeeper: Running, given: str,
                                                   kept: bool) -> None:
    """A caller's X-Request-Id comes back when it is safe to log, else a new one."""
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"},
                                       headers={"X-Request-Id": given})
    returned = resp.headers["X-Request-Id"]
    assert (returned == given) is kept
    assert returned


async def test_admin_replies_carry_a_request_id(gatekeeper: Running) -> None:
    """The admin listener answers with X-Request-Id too."""
    resp = await gatekeeper.admin.get("/healthz")
    assert resp.headers["X-Request-Id"]


async def test_request_event_logged_once_per_request(
        start_gatekeeper: StartGatekeeper, upstream: FakeUpstream, tmp_path: Path,
        log_output: io.StringIO) -> None:
    """With log.access, each proxied request is one `request` event (decision, status)."""
    gatekeeper = await start_gatekeeper(make_config(upstream.url, tmp_path,
                                                    log={"access": True}))
    await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"},
                                headers={"X-Request-Id": "r1"})
    events = [json.loads(x) for x in log_output.getvalue().splitlines()]
    [event] = [e for e in events if e["event"] == "request"]
    assert event["request_id"] == "r1"
    assert event["decision"] == "forwarded"
    assert event["status"] == 201
    assert event["upstream"] == "twilio"


async def test_no_access_log_by_default(gatekeeper: Running, log_output: io.StringIO) -> None:
    """Without log.access, forwarded requests log nothing (blocked attempts still do)."""
    await gatekeeper.block("+33612345678")
    await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+14155550100"})
    await gatekeeper.proxy.post(TWILIO_MESSAGES, data={"To": "+33612345678"})
    events = [json.loads(x)["event"] for x in log_output.getvalue().splitlines()]
    assert "request" not in events
    assert events.count("destination_blocked") == 1
