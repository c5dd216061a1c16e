"""observability.tally: counts the send path keeps as plain integers reach their
Prometheus counters exactly once, whoever reads them and whenever."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from gatekeeper.observability import Metrics
from gatekeeper.observability.tally import Tally
from gatekeeper.resources import RESOURCES, SETTLE_INTERVAL
from tests.conftest import TWILIO_MESSAGES, Running, decisions, sample
from tests.enforcement_helpers import FORM

LABELS = {"upstream": "twilio", "channel": "sms", "direction": "outbound",
          "action": "forwarded", "reason": "unlisted"}


def own_total(counter: Counter, **labels: str) -> float:
    """The counter's own sample, read from the metric, not through a registry (so
    nothing settles)."""
    return sum(s.value for family in counter.collect() for s in family.samples
               if s.name.endswith("_total") and s.labels == labels)


def test_a_count_is_pending_until_settled_then_added_once() -> None:
    """Adds wait in the tally; settling adds them to the child once, twice adds nothing."""
    counter = Counter("t_total", "t", ["kind"], registry=None)
    tally = Tally(counter)
    tally.pending[("a",)] = 3
    assert own_total(counter, kind="a") == 0.0
    tally.settle()
    assert own_total(counter, kind="a") == 3.0
    assert tally.pending == {}
    tally.settle()
    assert own_total(counter, kind="a") == 3.0


def test_reading_the_registry_settles_first() -> None:
    """A decision and monitor hits counted on the send path are in the registry's
    samples at once, with no explicit settle: the registry settles before it is read."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.decided("twilio", "sms", "outbound", "forwarded", "unlisted")
    metrics.decided("twilio", "sms", "outbound", "forwarded", "unlisted", 4)
    metrics.monitored((("quiet_hours", 2), ("country", 1)))  # one request, two rules
    metrics.monitored((("quiet_hours", 2), ("country", 1)))  # the same again
    metrics.monitored((("quiet_hours", 1),))
    metrics.policy_hit("quiet_hours", "block")
    assert own_total(metrics.decisions, **LABELS) == 0.0  # the counter itself: pending
    assert registry.get_sample_value("gatekeeper_decisions_total", LABELS) == 5
    assert sample(registry, "gatekeeper_policy_rule_hits_total", rule="quiet_hours",
                  outcome="monitor") == 5
    assert sample(registry, "gatekeeper_policy_rule_hits_total", rule="country",
                  outcome="monitor") == 2
    assert sample(registry, "gatekeeper_policy_rule_hits_total", rule="quiet_hours",
                  outcome="block") == 1


KINDS = ("quiet_hours", "country", "number_type")
HITS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 10_000)), min_size=1,
                max_size=3, unique_by=lambda hit: hit[0]).map(tuple)


@given(st.lists(st.one_of(
    st.tuples(st.just("decided"), st.sampled_from(["forwarded", "rejected"]),
              st.integers(1, 10_000)),
    st.tuples(st.just("monitored"), HITS, st.none()),
    st.tuples(st.just("settle"), st.none(), st.none()),
    st.tuples(st.just("read"), st.none(), st.none())), max_size=40))
def test_no_count_is_lost_or_added_twice(steps: list[tuple[str, object, int | None]]
                                         ) -> None:
    """Whatever the order of decisions, monitor hits, settles and reads, every read
    shows exactly the counts added before it, by label."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    decided = {"forwarded": 0, "rejected": 0}
    monitored = dict.fromkeys(KINDS, 0)
    for step, what, count in steps:
        if step == "decided":
            assert isinstance(what, str)
            assert count is not None
            metrics.decided("u", "sms", "outbound", what, "r", count)
            decided[what] += count
        elif step == "monitored":
            assert isinstance(what, tuple)
            metrics.monitored(what)
            for kind, hits in what:
                monitored[kind] += hits
        elif step == "settle":
            metrics.settle()
        for action, total in decided.items():
            labels = {"upstream": "u", "channel": "sms", "direction": "outbound",
                      "action": action, "reason": "r"}
            assert (registry.get_sample_value("gatekeeper_decisions_total", labels)
                    or 0.0) == total
        for kind, total in monitored.items():
            assert sample(registry, "gatekeeper_policy_rule_hits_total", rule=kind,
                          outcome="monitor") == total


async def send_one(gatekeeper: Running) -> None:
    """One unlisted Twilio send, forwarded."""
    resp = await gatekeeper.proxy.post(TWILIO_MESSAGES, data=b"To=%2B14155550100",
                                       headers={"Content-Type": FORM})
    assert resp.status == 201


async def test_a_serving_process_settles_every_second_unread(gatekeeper: Running) -> None:
    """Unread, a process's counts reach the counter itself (and, with workers, its
    metrics file) within a settle interval: the job, not the scrape, settles them."""
    metrics = gatekeeper.app[RESOURCES].metrics
    await send_one(gatekeeper)
    assert own_total(metrics.decisions, **LABELS) == 0.0
    await asyncio.sleep(2 * SETTLE_INTERVAL)
    assert own_total(metrics.decisions, **LABELS) == 1.0
    assert decisions(gatekeeper.registry, "twilio", "sms", "forwarded", "unlisted") == 1.0


async def test_a_closing_process_settles_what_it_counted(gatekeeper: Running) -> None:
    """What a process counted after the last settle is in its counters once it has
    closed (a worker's last second reaches its file)."""
    metrics = gatekeeper.app[RESOURCES].metrics
    await send_one(gatekeeper)
    assert own_total(metrics.decisions, **LABELS) == 0.0
    await gatekeeper.admin.close()
    await gatekeeper.proxy.close()
    assert own_total(metrics.decisions, **LABELS) == 1.0
