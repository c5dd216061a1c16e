"""Smoke test of the benchmark harness (bench/): it runs every row end to end and writes
a complete report. It asserts that the bench works, never how fast anything is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.together import monitored_share

REPO = Path(__file__).resolve().parent.parent
ROWS = ("direct", "passthrough", "gatekeeper-empty", "gatekeeper-lists")
MODES = ("concurrency", "rate")


@pytest.mark.integration
def test_bench_quick_run_reports_every_row(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("the benchmark smoke test needs wrk on PATH: install it with "
                    "`apt-get install wrk` (Debian/Ubuntu)")
    output = tmp_path / "bench.json"
    # --quick: 10k numbers and 100 prefixes; 1 s windows keep CPU figures (tens of ms)
    # 10 ms resolution of /proc/<pid>/stat even in the fixed-rate mode. No warm-up: the
    # figures are not asserted, and it saves 8 s of the suite.
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--duration", "1", "--warmup", "0",
         "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(output.read_text())
    rows = {(r["row"], r["mode"]): r for r in report["rows"]}
    assert set(rows) == {(row, mode) for row in ROWS for mode in MODES}
    for key, row in rows.items():
        assert row["requests"] > 0, key
        assert row["requests_per_s"] > 0, key
        assert row["cpu_us_per_req"] > 0, key
        assert row["latency_ms"]["p99"] > 0, key
        assert row["unexpected_errors"] == 0, (key, row["errors"], row["status"])
        assert row["checks"] == [], (key, row["checks"])
        assert row["cpu_ratio_to_passthrough"] is not None, key
        if row["row"].startswith("gatekeeper"):
            assert row["syscalls_per_req"] > 0, key  # uvloop's socket reads and writes
            assert row["redis_cpu_us_per_req"] is not None, key
            assert row["gc_us_per_req"] is not None, key  # its /metrics scraped
            assert row["waits_per_req"] > 0, key  # its loop slept between batches
    # Blocked numbers are refused by Gatekeeper only when the lists are loaded.
    assert rows[("gatekeeper-lists", "concurrency")]["expected_rejections"] > 0
    assert rows[("gatekeeper-empty", "concurrency")]["status"]["403"] == 0
    assert report["failures"] == []
    assert report["machine"]["wrk"]
    assert report["lists"]["numbers"] == 10_000


@pytest.mark.integration
def test_bench_batches_quick_run_reports_both_phases(tmp_path: Path) -> None:
    """bench/batches.py (small sends with and without large batches) runs end to end and
    reports its figures; how they compare is for the reader, never asserted."""
    if shutil.which("wrk") is None:
        pytest.fail("the benchmark smoke test needs wrk on PATH: install it with "
                    "`apt-get install wrk` (Debian/Ubuntu)")
    output = tmp_path / "batches.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.batches", "--quick", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, f"bench.batches failed:\n{done.stdout}\n{done.stderr}"
    assert "p99(B)/p99(A)" in done.stdout
    report = json.loads(output.read_text())
    assert report["failures"] == []
    assert [(p["repetition"], p["phase"]) for p in report["phases"]] == [(1, "A"), (1, "B")]
    for phase in report["phases"]:
        small = phase["small"]
        assert small["requests"] > 0, phase["phase"]
        assert small["latency_ms"]["p99"] > 0, phase["phase"]
        assert small["unexpected_errors"] == 0, (small["errors"], small["status"])
    batches = report["phases"][1]["batches"]
    assert report["phases"][0]["batches"] is None
    assert batches["overlapping_window"] > 0
    assert batches["unexpected"] == 0
    # Every batch with blocked numbers was cut down (partial), the others forwarded whole.
    assert batches["partial"] + batches["forwarded"] == batches["sent"]
    assert report["summary"]["median_p99_ratio"] is not None
    assert report["repetitions"][0]["p99_ratio"] is not None
    stages = report["summary"]["anatomy"]["stages"]
    assert stages["parse destinations"]["ms"] > 0
    assert stages["rewrite without the blocked"]["ok"] is True


def test_bench_scale_small_run_reports_every_figure(tmp_path: Path) -> None:
    """bench/scale.py (national-scale lists) runs end to end on its own embedded server
    and reports memory, import rate, RSS and lookup costs for both layouts; the figures
    are for the reader, never asserted beyond being there."""
    output = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--numbers", "20000", "--add-up-to", "20000",
         "--lookups", "200", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, f"bench.scale failed:\n{done.stdout}\n{done.stderr}"
    [row] = json.loads(output.read_text())["rows"]
    assert row["numbers"] == 20_000
    for mode in ("add", "replace"):
        figures = row[mode]
        assert figures["added"] == 20_000, mode
        assert figures["lines_per_s"] > 0, mode
        assert figures["bytes_per_entry"] > 0, mode
        assert figures["lookup_p99_ms"]["during"] >= 0, mode
        assert figures["send_p99_ms"]["steady"] > 0, mode  # whole sends, through `run`
    assert row["replace"]["send_p99_ms"]["writing_seconds"] >= 0
    for kind in ("unlisted", "listed"):
        assert set(row["lookup"][kind]) >= {"big", "small", "empty", "ratios_big_to_small"}


def test_bench_script_cost_small_run_reports_every_variant(tmp_path: Path) -> None:
    """bench/script_cost.py (the lookup script's time with a packed load, and variants of
    the script) runs end to end; the figures are for the reader, never compared."""
    output = tmp_path / "script.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.script_cost", "--numbers", "20000", "--lookups",
         "100", "--rounds", "1", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"bench.script_cost failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(output.read_text())
    medians = report["usec_per_call_median"]
    assert set(medians) == {"shipped", "no-sismember", "no-packed"}
    for by_case in medians.values():
        assert set(by_case) == {"packed, listed", "packed, unlisted",
                                "packed, unlisted, no copy", "no list"}
        assert all(us > 0 for us in by_case.values())
    # The filter copy was taken, and skips the load only where it may: never for listed
    # numbers, never without a copy or a load; for most unlisted numbers.
    assert report["filter_copies"][0] == 1
    skipped = report["lookups_skipping_the_load"]
    assert skipped["packed, listed"] == skipped["packed, unlisted, no copy"] == 0
    assert skipped["no list"] == 0
    assert skipped["packed, unlisted"] >= 90


@pytest.mark.integration
def test_bench_together_runs_the_rows_at_once_and_reports_their_ratios(
        tmp_path: Path) -> None:
    """bench/together.py serves lists, rules, policy and (--against) a second policy
    process at once and reports each one's CPU per request and ratio to lists per
    window; the figures are for the reader, never compared. The warm-up loads the rows
    at once, and with --alternate the windows load them one at a time: both ways run."""
    output = tmp_path / "together.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.together", "--windows", "1", "--duration", "1",
         "--warmup", "1", "--numbers", "3000", "--against", str(REPO), "--alternate",
         "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, f"bench.together failed:\n{done.stdout}\n{done.stderr}"
    summary = json.loads(output.read_text())["summary"]
    assert list(summary) == ["gatekeeper-lists", "gatekeeper-rules", "gatekeeper-policy",
                             "gatekeeper-policy-against"]
    for name, row in summary.items():
        assert row["cpu_us_per_req"] > 0, name
        assert len(row["ratios"]) == 1, name
        assert row["unexpected_errors"] == 0, name
        assert row["checks"] == [], name
    assert summary["gatekeeper-lists"]["ratios"] == [1.0]
    assert json.loads(output.read_text())["alternate"] is True
    shares = json.loads(output.read_text())["monitored_share"]
    assert 0.0 <= shares["start"] <= 1.0
    assert 0.0 <= shares["end"] <= 1.0


def test_bench_together_tells_how_many_destinations_the_rules_monitor_at_that_hour(
        tmp_path: Path) -> None:
    """The bench policy's quiet hours (monitor mode, marketing) hit a New York number
    at 03:00 its time and not at noon: the share `bench.together` reports follows the
    hour, since each hit is counted in the rules and policy rows."""
    pool = tmp_path / "pool.txt"
    pool.write_text("u +12125550123\nu +12125550124\n")
    thursday = 1_764_806_400.0  # 2025-12-04 00:00 UTC: no holiday
    night, noon = thursday + 8 * 3600, thursday + 17 * 3600  # 03:00, 12:00 in New York
    assert monitored_share(pool, night) == 1.0
    assert monitored_share(pool, noon) == 0.0


@pytest.mark.integration
def test_bench_cluster_quick_run_reports_both_stores(tmp_path: Path) -> None:
    """bench/cluster.py (sends on one redis-server, then on a 3+3 Redis Cluster) runs end
    to end and reports both phases and their ratios; how they compare is for the reader,
    never asserted."""
    if shutil.which("wrk") is None:
        pytest.fail("the benchmark smoke test needs wrk on PATH: install it with "
                    "`apt-get install wrk` (Debian/Ubuntu)")
    output = tmp_path / "cluster.json"
    # No warm-up and no idle window: about 11 s, most of it the cluster and six imports.
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--quick", "--duration", "1", "--warmup",
         "0", "--idle", "0", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, f"bench.cluster failed:\n{done.stdout}\n{done.stderr}"
    assert "CPU per request (gatekeeper + redis) B/A" in done.stdout
    report = json.loads(output.read_text())
    assert report["failures"] == []
    assert [(p["repetition"], p["phase"]) for p in report["phases"]] == [(1, "A"), (1, "B")]
    for phase in report["phases"]:
        m = phase["measurement"]
        assert m["requests"] > 0, phase["phase"]
        assert m["latency_ms"]["p99"] > 0, phase["phase"]
        assert m["unexpected_errors"] == 0, (m["errors"], m["status"])
        assert m["expected_rejections"] > 0, phase["phase"]
        assert m["redis_cpu_us_per_req"] is not None, phase["phase"]
    assert len(report["phases"][0]["redis_cpu_us_per_req_by_process"]) == 1
    assert len(report["phases"][1]["redis_cpu_us_per_req_by_process"]) == 6
    assert report["repetitions"][0]["total_cpu"] is not None
    assert report["lists"]["numbers"] == 10_000
