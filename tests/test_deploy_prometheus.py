"""The Prometheus and Grafana kit in deploy/: promtool's checks and unit tests of the
rules, the dashboard's shape, and a real Prometheus scraping `gatekeeper run --workers 2`
under real traffic (allowed, blocked, partial, policy, upstream failure, store outage),
where every family the README documents, the alerts and every panel query are checked
against what Prometheus really stored.

Needs Debian's `prometheus` package (prometheus and promtool): missing, the tests fail
(never skip) and say so."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY, TWILIO_CALLS, TWILIO_MESSAGES, TWILIO_SID
from tests.test_cli import free_port, http, wait_healthy, write_config
from tests.test_cli_workers import children, workers_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "gatekeeper-rules.yml"
RULES_TEST = PROMETHEUS_DIR / "gatekeeper-rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "gatekeeper.json"
GRAFANA_DATASOURCE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "gatekeeper.yml"
README = REPO / "README.md"

# Metric families Gatekeeper exposes that the README's Metrics section does not list,
# with their labels (none today: every family is documented there). The live test checks
# them against a real scrape like the README's.
NOT_IN_README: dict[str, frozenset[str]] = {}
# Labels Prometheus itself adds (target labels; `le` on histogram buckets), and the `pid`
# prometheus_client's multiprocess mode may add to a gauge several processes write.
ADDED_LABELS = frozenset({"job", "instance", "le", "pid"})
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

# Dashboard queries (panel title, refId) allowed to be empty after the live test's
# traffic, each with the reason. None: the traffic gives every panel data (a refused and
# an applied reload and a killed worker included).
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {}

# Grafana's variables, as the live test replaces them to run panel queries itself.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "5m",
                     "$job": "gatekeeper", "$instance": ".*"}


def tool(name: str) -> str:
    """The path of a binary of Debian's prometheus package; fails (never skips) without."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                   else None)
    if found is None:
        pytest.fail(f"{name} not found: these tests need Debian's prometheus package "
                    "(prometheus and promtool): apt-get install prometheus (as root), "
                    "or `make prometheus`")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool from the rules' directory (the test file names its rules relatively)."""
    return subprocess.run([tool("promtool"), *args], cwd=PROMETHEUS_DIR, text=True,
                          capture_output=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    """The dashboard's panels (rows' nested panels included), rows themselves left out."""
    found = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def panel_queries() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every dashboard query."""
    return [(panel["title"], target["refId"], target["expr"])
            for panel in panels() for target in panel["targets"] if target.get("expr")]


def readme_families() -> dict[str, frozenset[str]]:
    """The metric families the README's Metrics section documents, with their labels."""
    text = README.read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    families = {name: frozenset(filter(None, (labels or "").split(",")))
                for name, labels in re.findall(r"`(gatekeeper_[a-z_]+)(?:\{([a-z_,]+)\})?`",
                                               section)}
    assert "gatekeeper_decisions_total" in families, section
    return families


def known_families() -> dict[str, frozenset[str]]:
    return {**NOT_IN_README, **readme_families()}


def metric_names(expr: str) -> set[str]:
    """The Gatekeeper series names an expression reads (recording rules' names, which
    hold a colon, left out), plus Prometheus's own `up`."""
    names = set(re.findall(r"(?<![\w:])(gatekeeper_[a-z0-9_]+)(?![\w:])", expr))
    if re.search(r"(?<![\w:])up\{", expr):
        names.add("up")
    return names


def family_of(name: str, families: dict[str, frozenset[str]]) -> str | None:
    """The documented family a series name belongs to (a histogram's _bucket, _count and
    _sum series belong to the histogram), or None."""
    if name in families:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in families:
            return name.removesuffix(suffix)
    return None


def matcher_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names in its `{...}` matchers) for each selector."""
    return [(name, set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers)))
            for name, matchers in re.findall(r"(gatekeeper_[a-z0-9_]+)\{([^}]*)\}", expr)]


def every_expr() -> list[tuple[str, str]]:
    """(where, expr) of every rule and dashboard query."""
    found = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    found += [(f"panel {title!r} {ref}", expr) for title, ref, expr in panel_queries()]
    return found


# --- promtool ---------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_checks_the_config() -> None:
    """The example config (and the rule file it loads) is valid."""
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["gatekeeper-rules.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "gatekeeper"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8081"]


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_unit_tests_and_a_runbook() -> None:
    """Each alert: severity, summary, description and a runbook saying what it means,
    what to check first and what to do; and in the promtool tests, a case where it fires
    (with its labels and annotations) and one where it must not."""
    found = alerts()
    assert {"GatekeeperStoreUnavailable", "GatekeeperUpstreamErrors",
            "GatekeeperBlockedShareJump", "GatekeeperListStale",
            "GatekeeperEmbeddedStoreRestarted", "GatekeeperHighLatency",
            "GatekeeperWorkerMissing", "GatekeeperDown"} <= set(found)
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), (name, key)
        runbook = annotations["runbook"]
        assert all(part in runbook for part in ("Meaning:", "First check:", "Action:")), name
        assert len(runbook) > 300, name
    cases = [case for test in load_yaml(RULES_TEST)["tests"]
             for case in test.get("alert_rule_test", [])]
    assert {case["alertname"] for case in cases} <= set(found)
    for name in found:
        mine = [case for case in cases if case["alertname"] == name]
        firing = [case for case in mine if case.get("exp_alerts")]
        assert firing, f"{name}: no promtool case shows it firing"
        assert any(not case.get("exp_alerts") for case in mine), \
            f"{name}: no promtool case shows it silent"
        for case in firing:
            for expected in case["exp_alerts"]:
                assert set(expected["exp_annotations"]) == {"summary", "description",
                                                            "runbook"}, name
                assert expected["exp_labels"]["severity"] == found[name]["labels"]["severity"]


# --- the dashboard ----------------------------------------------------------------------


def test_the_dashboard_is_grafana_json_on_a_datasource_variable() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39
    assert board["uid"] == "gatekeeper"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, \
            panel["title"]
        targets = [t for t in panel.get("targets", []) if t.get("expr", "").strip()]
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert target["datasource"]["uid"] == "${datasource}"
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel.get("description"), panel["title"]


def test_the_dashboard_shows_what_the_operators_need() -> None:
    """Decisions by action and reason, top stopped, latency percentiles, upstream and
    store health, list sizes and ages, workers."""
    queries = {title: [expr for t, _, expr in panel_queries() if t == title]
               for title, _, _ in panel_queries()}
    used = {name for exprs in queries.values() for expr in exprs
            for name in metric_names(expr)}
    assert {"gatekeeper_decisions_total", "gatekeeper_request_duration_seconds_bucket",
            "gatekeeper_upstream_errors_total", "gatekeeper_upstream_duration_seconds_bucket",
            "gatekeeper_store_errors_total", "gatekeeper_store_restarts_total",
            "gatekeeper_list_age_seconds", "gatekeeper_list_entries",
            "gatekeeper_policy_rule_hits_total",
            "gatekeeper_workers_alive", "gatekeeper_workers_expected"} <= used
    assert any("by (action)" in e for e in queries["Decisions by action"])
    assert any("by (reason)" in e for e in queries["Decisions by reason"])
    latency = queries["Request latency percentiles"]
    assert [q for q in ("0.5", "0.9", "0.99")
            if any(f"histogram_quantile({q}," in e for e in latency)] == ["0.5", "0.9", "0.99"]
    assert any('reason="store_unavailable"' in e for e in
               queries["Decisions with reason store_unavailable"])
    assert any("gatekeeper_list_entries" in e for e in queries["List sizes"])


def test_every_metric_the_kit_reads_is_one_gatekeeper_exposes() -> None:
    """Every series name in the rules and the dashboard is a family the README documents
    (or one it does not list yet, NOT_IN_README), every label matched on is one of its
    labels, and every recording rule used is defined."""
    families = known_families()
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for where, expr in every_expr():
        for name in metric_names(expr) - {"up"}:
            assert family_of(name, families), f"{where}: {name} is not a Gatekeeper metric"
        for name, labels in matcher_labels(expr):
            family = family_of(name, families)
            assert family is not None
            assert labels <= families[family] | ADDED_LABELS, (where, name, labels)
        for used in re.findall(r"gatekeeper:[a-z0-9_:]+", expr):
            assert used in recorded, f"{where}: recording rule {used} is not defined"


def test_grafana_provisioning_points_at_the_dashboard_directory() -> None:
    [source] = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")
    [provider] = load_yaml(GRAFANA_PROVIDER)["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/var/lib/grafana/dashboards")
    # The comment says where to put the dashboard: the same directory.
    assert path in GRAFANA_PROVIDER.read_text().split("apiVersion")[0]


# --- a real Prometheus in front of `gatekeeper run --workers 2` -------------------------


class FakeGateway(BaseHTTPRequestHandler):
    """Answers every request like a gateway accepting a message."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"sid": "SM123", "status": "queued"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def fake_gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _die_with_the_test() -> None:
    # Prometheus gets SIGKILL if the test process dies without stopping it (Linux).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def prometheus_process(config: Path, data: Path, port: int, log: Path
                       ) -> Iterator[subprocess.Popen[bytes]]:
    """A real Prometheus on 127.0.0.1:port, in its own session; killed at the end."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
            preexec_fn=_die_with_the_test)  # noqa: PLW1509 - only prctl, no locks
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout}s; log:\n{log.read_text()[-4000:]}")


def send(url: str, body: bytes, content_type: str = "application/x-www-form-urlencoded"
         ) -> tuple[int, dict[str, str]]:
    """One request on a new connection (new connections spread over the workers)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers)


class PrometheusAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = json.loads(error.read())
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.base}/-/ready", timeout=1) as response:
            return bool(response.status == 200)


def rules_for_the_test(path: Path) -> Path:
    """The shipped rules with every alert's `for:` set to 0s: the live test checks that
    the expressions fire on real data, and cannot wait the shipped durations (2m for
    GatekeeperStoreUnavailable) within its time budget. The expressions are untouched;
    the promtool unit tests cover the `for:` durations."""
    text, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text())
    assert count >= 5
    path.write_text(text)
    return path


def worker_decisions(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """gatekeeper_decisions_total summed from each process's own counter file (a dead
    worker's counts stay in its file)."""
    counts = {}
    for source in metrics_dir.glob("counter_*.db"):
        pid = source.stem.removeprefix("counter_")
        alone = scratch / pid
        alone.mkdir(parents=True)
        shutil.copy(source, alone / source.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(alone))  # type: ignore[no-untyped-call]
        counts[pid] = sum(sample.value for family in registry.collect()
                          for sample in family.samples
                          if sample.name == "gatekeeper_decisions_total")
    return counts


@pytest.mark.integration
def test_a_real_prometheus_scrapes_two_workers_alerts_and_feeds_every_panel(
        tmp_path: Path) -> None:
    """`gatekeeper run --workers 2` on an external redis-server, scraped every second by
    a real Prometheus loading the shipped rules: after allowed, blocked, partial,
    policy-blocked and upstream-failing sends, a stale list, a refused and an applied
    reload, a killed worker and a store outage, every family is stored with its labels,
    the decisions add up over the workers, the alerts these events call for fire (and
    the others do not), every rule evaluates cleanly and every panel query has data."""
    tool("prometheus")  # missing: fail before starting anything
    proxy_port, admin_port, prom_port = free_port(), free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    gk_log, prom_log = tmp_path / "gatekeeper.log", tmp_path / "prometheus.log"
    store = EmbeddedRedis(tmp_path / "redis")
    endpoint = store.start()
    with contextlib.ExitStack() as stack:
        stack.callback(store.stop)
        gateway = stack.enter_context(fake_gateway())
        # An upstream that refuses connections: a socket bound and never listening.
        closed = stack.enter_context(socket.socket())
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        config = write_config(
            tmp_path / "gk.yaml", proxy={"host": "127.0.0.1", "port": proxy_port},
            admin={"host": "127.0.0.1", "port": admin_port},
            redis={"url": endpoint.url, "timeout": 0.5}, store={"sweep_interval": 1.0},
            upstreams=[
                {"name": "twilio", "url": gateway, "preset": "twilio", "region": "US"},
                {"name": "generic", "url": gateway + "/base", "preset": "generic",
                 "routes": [{"method": "POST", "path": "/v1/sms", "channel": "sms",
                             "destination": {"json": "messages[].to"}}]},
                {"name": "down", "url": f"http://127.0.0.1:{closed_port}",
                 "preset": "twilio"},
            ])
        parent = stack.enter_context(workers_process(config, gk_log, 2))
        wait_healthy(parent, admin, gk_log, timeout=20)
        workers = children(parent.pid)

        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_for_the_test(tmp_path / "gatekeeper-rules.yml"))],
            "scrape_configs": [{"job_name": "gatekeeper", "scrape_timeout": "1s",
                                "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}]}],
        }))
        stack.enter_context(prometheus_process(prom_config, tmp_path / "tsdb", prom_port,
                                               prom_log))
        api = PrometheusAPI(prom_port)
        wait_for("ready Prometheus", api.ready, 15, prom_log)

        # --- traffic while the store answers -------------------------------------------
        blocked = ["+14155550100", "+14155550101"]
        assert http("POST", f"{admin}/admin/v1/lists/block/entries",
                    {"entries": blocked})[0] == 200
        # A list imported three days after its data, with a max age of one day: stale.
        as_of = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        imported = urllib.request.Request(
            f"{admin}/admin/v1/lists/block/import?scope=tenant:registry&mode=replace"
            f"&as_of={as_of}&max_age_days=1", data=b"+14155550199\n", method="POST",
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "text/plain"})
        with urllib.request.urlopen(imported, timeout=5) as response:
            assert json.loads(response.read())["added"] == 1
        decisions = 0
        for n in range(6):      # allowed: forwarded, unlisted
            status, _ = send(proxy + TWILIO_MESSAGES, f"To=%2B1415555020{n}".encode())
            assert status == 201
            decisions += 1
        for n in range(4):      # blocked: rejected, blocked
            status, headers = send(proxy + TWILIO_MESSAGES,
                                   f"To={urllib.parse.quote(blocked[n % 2])}".encode())
            assert (status, headers.get("X-Gatekeeper-Decision")) == (403, "rejected")
            decisions += 1
        for n in range(2):      # partial: one of three recipients removed (3 decisions)
            body = {"messages": [{"to": blocked[0]}, {"to": f"+1415555030{n}"},
                                 {"to": f"+1415555031{n}"}]}
            status, headers = send(proxy + "/generic/v1/sms", json.dumps(body).encode(),
                                   "application/json")
            assert (status, headers.get("X-Gatekeeper-Decision")) == (201, "partial")
            decisions += 3
        for _ in range(2):      # a premium-rate call: the shipped global voice policy
            status, _ = send(proxy + TWILIO_CALLS, b"To=%2B19002345678&From=%2B14155550000")
            assert status == 403
            decisions += 1
        # An upstream that refuses: forwarded, then 502. The error counter's series
        # appears at its first error, which increase() cannot count: one error first,
        # stored before the others, as when an upstream starts failing under traffic.
        for n in range(7):
            status, _ = send(f"{proxy}/down/2010-04-01/Accounts/{TWILIO_SID}/Messages.json",
                             f"To=%2B1415555040{n}".encode())
            assert status == 502
            decisions += 1
            if n == 0:
                wait_for("the first upstream error in Prometheus", lambda: bool(api.query(
                    'gatekeeper_upstream_errors_total{upstream="down"}')), 10, gk_log)
        before_outage = decisions

        # --- a refused reload, an applied one, a worker killed -------------------------
        valid = config.read_text()
        config.write_text(valid + "no_such_key: 1\n")
        status, body = http("POST", f"{admin}/admin/v1/reload")
        assert (status, body["code"]) == (422, "config_invalid"), body
        config.write_text(valid)
        assert http("POST", f"{admin}/admin/v1/reload")[0] == 202
        wait_for("both workers' reloads in Prometheus", lambda: api.value(
            'sum(gatekeeper_config_reloads_total{outcome="applied"})') == 2, 10, gk_log)
        os.kill(workers[0], signal.SIGKILL)
        wait_for("a worker restarted, in Prometheus", lambda: api.value(
            'sum(gatekeeper_worker_restarts_total{cause="signal"})') == 1
            and api.value("max(gatekeeper_workers_alive)") == 2, 15, gk_log)
        wait_for(f"{before_outage} decisions in Prometheus",
                 lambda: api.value("sum(gatekeeper_decisions_total)") == before_outage,
                 10, gk_log)

        # --- the store goes away -----------------------------------------------------
        store.stop()
        for n in range(6):      # refused: store_unavailable (store.on_error: closed)
            status, _ = send(proxy + TWILIO_MESSAGES, f"To=%2B1415555050{n}".encode())
            assert status == 503
            decisions += 1
            time.sleep(0.3)
        wait_for("GatekeeperStoreUnavailable firing", lambda: bool(api.query(
            'ALERTS{alertname="GatekeeperStoreUnavailable", alertstate="firing"}')),
            20, gk_log)
        wait_for(f"{decisions} decisions in Prometheus",
                 lambda: api.value("sum(gatekeeper_decisions_total)") == decisions,
                 10, gk_log)
        # Every rule has had a few evaluations since the last sends.
        time.sleep(2.5)

        # --- what Prometheus stored ----------------------------------------------------
        [alert] = api.query('ALERTS{alertname="GatekeeperStoreUnavailable", '
                            'alertstate="firing"}')
        assert alert["metric"]["instance"] == f"127.0.0.1:{admin_port}"
        assert alert["metric"]["severity"] == "critical"
        upstream_alerts = api.query('ALERTS{alertname="GatekeeperUpstreamErrors", '
                                    'alertstate="firing"}')
        assert [a["metric"]["upstream"] for a in upstream_alerts] == ["down"]
        # Counters whose series appear at their first event (value 1): the alerts' own
        # `unless ... offset 15m` part sees them.
        [restarted] = api.query('ALERTS{alertname="GatekeeperWorkerRestarts", '
                                'alertstate="firing"}')
        assert restarted["metric"]["cause"] == "signal"
        assert api.query('ALERTS{alertname="GatekeeperConfigReloadRefused", '
                         'alertstate="firing"}')
        assert api.query('ALERTS{alertname="GatekeeperListStale", alertstate="firing", '
                         'scope="tenant:registry", list="block"}')
        # The killed worker was back within a second: no worker missing now.
        for quiet in ("GatekeeperDown", "GatekeeperEmbeddedStoreRestarted",
                      "GatekeeperWorkerMissing", "GatekeeperHighLatency",
                      "GatekeeperBlockedShareJump"):
            assert api.query(f'ALERTS{{alertname="{quiet}"}}') == [], quiet

        series = api.get("/api/v1/series", **{"match[]": '{__name__=~"gatekeeper_.+"}',
                                              "start": str(time.time() - 600)})
        stored: dict[str, set[str]] = {}
        for labels in series:
            stored.setdefault(labels["__name__"], set()).update(labels)
        exposed = set(stored)
        for family, labels in known_families().items():
            names = [family] if family in exposed else [
                family + suffix for suffix in HISTOGRAM_SUFFIXES]
            for name in names:
                assert name in exposed, f"{name} is not in Prometheus"
                assert stored[name] - {"__name__"} - ADDED_LABELS == labels, (
                    name, stored[name])

        # Decisions: Prometheus's sum, /metrics, and each worker's own file agree.
        assert api.value("sum(gatekeeper_decisions_total)") == decisions
        with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as response:
            exposition = response.read().decode()
        assert sum(sample.value for family in text_string_to_metric_families(exposition)
                   for sample in family.samples
                   if sample.name == "gatekeeper_decisions_total") == decisions
        expected = {("forwarded", "unlisted"): 13, ("rejected", "blocked"): 4,
                    ("partial", "blocked"): 2, ("partial", "unlisted"): 4,
                    ("rejected", "policy_number_type"): 2,
                    ("rejected", "store_unavailable"): 6}
        got = {(r["metric"]["action"], r["metric"]["reason"]): float(r["value"][1])
               for r in api.query("sum by (action, reason) (gatekeeper_decisions_total)")}
        assert got == expected
        assert sum(expected.values()) == decisions
        [metrics_dir] = tmp_path.glob("gatekeeper-metrics-*")
        per_process = worker_decisions(metrics_dir, tmp_path / "per-process")
        assert sum(per_process.values()) == decisions, per_process
        # The two first workers, and the one that replaced the killed one.
        assert len([pid for pid, count in per_process.items() if count > 0]) >= 2, \
            per_process
        used = {name for _, expr in every_expr() for name in metric_names(expr)}
        assert used - {"up"} <= exposed, used - exposed
        assert api.value('sum(gatekeeper_upstream_errors_total{upstream="down", '
                         'kind="unavailable"})') == 7
        assert (api.value('sum(gatekeeper_store_errors_total{operation="lookup"})') or 0) >= 6
        assert api.value('sum(gatekeeper_policy_rule_hits_total{rule="number_type", '
                         'outcome="block"})') == 2
        assert (api.value('gatekeeper_list_age_seconds{scope="tenant:registry", '
                          'list="block"}') or 0) > 2 * 86400

        assert api.value("max(gatekeeper_workers_alive)") == 2
        assert api.value("max(gatekeeper_workers_expected)") == 2
        assert api.value('gatekeeper_list_max_age_seconds{scope="tenant:registry", '
                         'list="block"}') == 86400
        [build] = api.query("gatekeeper_build_info")
        assert build["metric"]["version"]

        # Every rule evaluates without error; every recording rule has data.
        groups = api.get("/api/v1/rules")["groups"]
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule
        for rule in rules():
            if "record" in rule:
                assert api.query(rule["record"]), f"recording rule {rule['record']} is empty"

        # Every panel query runs and has data (or is allowed to be empty, and why).
        empty = []
        for title, ref, expr in panel_queries():
            query = expr
            for variable, value in GRAFANA_VARIABLES.items():
                query = query.replace(variable, value)
            assert "$" not in query, (title, query)
            result = api.query(query)   # fails on any query error
            if not result and (title, ref) not in NO_DATA_EXPECTED:
                empty.append((title, ref, query))
        assert empty == [], f"panel queries without data: {empty}"
        # The dashboard's variables find this Gatekeeper.
        for variable in dashboard()["templating"]["list"]:
            if variable["type"] == "query":
                parsed = re.fullmatch(r"label_values\((.+), (\w+)\)",
                                      variable["query"]["query"])
                assert parsed, variable
                metric, label = parsed.groups()
                values = api.get(f"/api/v1/label/{label}/values",
                                 **{"match[]": metric.replace("$job", "gatekeeper")})
                assert values, variable["name"]
