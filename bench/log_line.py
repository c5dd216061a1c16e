"""What one log line costs: Gatekeeper's logging (observability/logs.py, as `gatekeeper
run` configures it at level info, JSON, numbers masked) writing the lines a send can
log, `policy_monitored` and `destination_blocked`, to /dev/null; CPU per line, the
median of the rounds.

    .venv/bin/python -m bench.log_line [--lines 20000] [--rounds 5]

Run it from two trees (PYTHONPATH=TREE/src) to compare two versions of the logging.
Measures and prints, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import structlog

from gatekeeper.config import LogConfig
from gatekeeper.observability import configure_logging

# The fields each event carries when a send logs it (sending.py, observability).
EVENTS: dict[str, dict[str, object]] = {
    "policy_monitored": {"request_id": "5f0c2a9e8b7d4c1f", "upstream": "twilio",
                         "rules": {"quiet_hours": 1}},
    "destination_blocked": {
        "request_id": "5f0c2a9e8b7d4c1f", "upstream": "twilio", "channel": "sms",
        "direction": "outbound", "scopes": ["global"], "matched_entry": "+1212****23",
        "matched_scope": "global", "list": "block", "action": "rejected",
        "number": "+12125550123"},
}


def per_line(event: str, lines: int) -> float:
    """Microseconds of this process's CPU per line of `event`."""
    log = structlog.get_logger("gatekeeper")
    fields = EVENTS[event]
    write = log.warning if event == "destination_blocked" else log.info
    started = time.process_time()
    for _ in range(lines):
        write(event, **fields)
    return (time.process_time() - started) / lines * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:
        configure_logging(LogConfig(level="info", format="json"), sink)
        for event in EVENTS:
            rounds = [per_line(event, args.lines) for _ in range(args.rounds)]
            print(f"{event:20} {statistics.median(rounds):5.2f} us per line "
                  f"(rounds: {', '.join(f'{r:.2f}' for r in rounds)})")


if __name__ == "__main__":
    main()
