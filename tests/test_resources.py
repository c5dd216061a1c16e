"""resources.py: what a process loads before a policy is in force, without stalling.

Runs in its own interpreter: the geocoder's data, once imported by another test of
this worker, could not be loaded again."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent("""
    import asyncio, json, sys, time
    from gatekeeper.app import create_app
    from gatekeeper.config import load_config
    from gatekeeper.resources import RESOURCES

    resources = create_app(load_config(sys.argv[1]))[RESOURCES]

    async def main():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.05)
        loaded_before = "phonenumbers.geocoder" in sys.modules
        before, start = ticks, time.perf_counter()
        await resources.preload(resources.policy)
        took = time.perf_counter() - start
        ticker.cancel()
        print(json.dumps({"before": loaded_before, "after":
                          "phonenumbers.geocoder" in sys.modules,
                          "ticks": ticks - before, "seconds": took}))

    asyncio.run(main())
""")


def test_a_policy_with_quiet_hours_loads_the_geocoder_while_the_loop_runs_on(
        tmp_path: Path) -> None:
    """The geocoder's data (seconds of import) is loaded by `preload` in a thread: the
    loop keeps taking turns meanwhile (before, it stood still for the whole import,
    and a policy changed live stalled every send)."""
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(json.dumps({"redis": {"data_dir": str(tmp_path / "data")},
                                "upstreams": [{"name": "twilio", "url": "http://127.0.0.1:9",
                                               "preset": "twilio"}],
                                "policy": {"global": {"quiet_hours": {"action": "block"}}}}))
    result = subprocess.run([sys.executable, "-c", PROGRAM, str(path)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])  # after the log lines
    assert (seen["before"], seen["after"]) == (False, True)
    # One turn every 5 ms asked for: at least a few while an import of 0.3 s or more runs.
    assert seen["ticks"] >= 5, seen
