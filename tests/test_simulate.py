"""`gatekeeper policy simulate`: a generated file of past sends replayed against a
policy, counted by rule; unreadable rows reported, never guessed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from gatekeeper.cli import main
from gatekeeper.config import parse_config
from gatekeeper.simulate import simulate

POLICY = {"global": {"countries": {"block": ["KP"]}, "quiet_hours": {"action": "block"}},
          "tenant:a": {"countries": {"home": ["US"]}, "mode": {"country": "monitor"}}}
NIGHT_NY = "2026-12-03T23:30:00-05:00"
DAY_NY = "2026-12-03T15:00:00-05:00"
# (row, what it should count as)
KINDS = [
    ("+85023812345,{day},sms,,", "country"),
    ("+12125550123,{night},sms,,marketing", "quiet_hours"),
    ("+12125550123,{night},sms,,otp", None),
    ("+33899123456,{day},voice,,otp", "number_type"),
    ("+33899123456,{day},sms,,otp", None),
    ("+447700900123,{day},sms,tenant:a,", "monitor:country"),
    ("+12125550123,{day},,,", None),
]


def generated(count: int, seed: int = 5) -> tuple[list[str], dict[str, int], int]:
    """`count` rows drawn from KINDS (plus bad rows); the expected tallies."""
    rng = random.Random(seed)
    lines = ["number,time,channel,scope,intent"]
    blocked: dict[str, int] = {}
    monitored = 0
    for _ in range(count):
        row, kind = rng.choice(KINDS)
        lines.append(row.format(day=DAY_NY, night=NIGHT_NY))
        if kind == "monitor:country":
            monitored += 1
        elif kind is not None:
            blocked[kind] = blocked.get(kind, 0) + 1
    return lines, blocked, monitored


def test_a_generated_file_is_counted_by_rule() -> None:
    """Every row replayed; blocks by rule and monitor hits exactly as drawn."""
    lines, blocked, monitored = generated(500)
    tally = simulate([f"{line}\n" for line in lines], parse_config({"policy": POLICY}).policy)
    assert tally.rows == 500
    assert dict(tally.blocked) == blocked
    assert tally.monitored["country"] == monitored
    assert tally.errors == 0


@pytest.mark.parametrize(("row", "why"), [
    ("12,2026-12-03T15:00:00-05:00,sms,,", "not a phone number"),
    ("+12125550123,2026-12-03T15:00:00,sms,,", "offset"),
    ("+12125550123,yesterday,sms,,", "Invalid isoformat"),
    ("+12125550123,1764792000,fax,,", "channel"),
    ("+12125550123,1764792000,sms,Tenant A,", "invalid scope"),
    ("+12125550123,1764792000,sms,,promo", "intent"),
], ids=["number", "naive-time", "time", "channel", "scope", "intent"])
def test_unreadable_rows_are_reported_by_line(row: str, why: str) -> None:
    """A bad row is counted and shown with its line, and the rest still replayed."""
    lines = ["number,time,channel,scope,intent\n", f"{row}\n",
             "+85023812345,1764792000,sms,,\n"]
    tally = simulate(lines, parse_config({"policy": POLICY}).policy)
    assert (tally.rows, tally.errors, tally.blocked["country"]) == (2, 1, 1)
    [(line, error)] = tally.shown_errors
    assert line == 2
    assert why in error


def test_a_header_without_the_needed_columns_is_refused() -> None:
    """No `time` column: refused as a whole (exit 2 from the command)."""
    with pytest.raises(ValueError, match="time"):
        simulate(["number,channel\n", "+12125550123,sms\n"], parse_config({}).policy)


def test_the_command_prints_the_tally(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    """`gatekeeper policy simulate FILE --json` with the configured policy."""
    lines, blocked, _ = generated(200, seed=9)
    sends = tmp_path / "sends.csv"
    sends.write_text("\n".join(lines) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"policy": POLICY,
                                      "redis": {"data_dir": str(tmp_path / "d")}}))
    assert main(["policy", "simulate", str(sends), "--config", str(config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["blocked_by_rule"] == blocked
    assert out["would_block"] == sum(blocked.values())
    assert main(["policy", "simulate", str(tmp_path / "none.csv"), "--config",
                 str(config)]) == 2


def test_velocity_limits_are_replayed_in_time_order() -> None:
    """3 per hour to one number: of 5 sends (given out of order) 2 would have been
    blocked; a send an hour after the first ones passes again; a monitored country
    limit only counts its hits."""
    policy = parse_config({"policy": {"global": {"velocity": [
        {"per": "number", "limit": "3/hour"},
        {"per": "country", "limit": "2/day", "action": "monitor"}]}}}).policy
    times = [5, 1, 3, 2, 4, 3600 + 2]
    lines = ["number,time,channel\n"] + [f"+12125550123,{1764792000 + t},sms\n"
                                         for t in times]
    tally = simulate(lines, policy)
    assert dict(tally.blocked) == {"velocity": 2}
    # The 3rd and 4th forwarded sends of the day reach the monitored country limit.
    assert tally.monitored["velocity"] == 2
