"""The admin console in a real headless Chromium (Debian's `chromium`, driven by
Playwright), against `gatekeeper run` with its embedded store and two admin keys (a write
key and a read-only one), a fake Twilio upstream and the proxy: sign-in, a blocked
number's explanation, adding and removing entries, a 10,000-line import with its
progress bar and report, a blocked send appearing in the live feed without a reload, a
read-only key's refused writes, and a 375 px wide screen.

Every page is checked with axe-core (no serious or critical violation) with the page's
real CSP in force (axe is served same-origin through Playwright's router, since an
inline script would be refused), and screenshots go to tests/artifacts/console/.

Never skipped: without chromium, Playwright or the console's assets, each test fails
saying what to install. Loopback only; every wait is bounded."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.console import STATIC

try:
    from playwright import sync_api
    HAVE_PLAYWRIGHT = True
except ImportError:  # each test fails saying how to install it
    HAVE_PLAYWRIGHT = False
from tests.conftest import ADMIN_KEY, TWILIO_MESSAGES, TWILIO_SID
from tests.test_cli import free_port, gatekeeper_process, wait_healthy, write_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
AXE_URL = "/console/__test__/axe.min.js"  # answered by Playwright's router, never the server
ARTIFACTS = REPO / "tests" / "artifacts" / "console"
READ_KEY = "console-read-only-key-0123456789"
WAIT_MS = 10_000


def _require_tools() -> None:
    """Fail (never skip) unless chromium, Playwright and the assets are all there."""
    if not CHROMIUM.is_file():
        pytest.fail(f"the console's browser tests need Debian's chromium at {CHROMIUM}: "
                    "apt-get install -y chromium (as root), or make chromium")
    if not HAVE_PLAYWRIGHT:
        pytest.fail("the console's browser tests need Playwright: .venv/bin/pip install "
                    "playwright (the dev extra; do not run `playwright install`, the tests "
                    "use /usr/bin/chromium)")
    missing = [str(p) for p in (AXE, STATIC / "vendor" / "uPlot.iife.min.js") if not p.is_file()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run make console-assets")


# --------------------------------------------------------------------- the server side


class _Upstream(BaseHTTPRequestHandler):
    """A fake Twilio: answers every send 201 (blocked sends never reach it)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"sid": "SM123", "status": "queued"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class Stack:
    """The running Gatekeeper: its admin and proxy URLs."""

    admin: str
    proxy: str
    log: Path

    def call(self, method: str, path: str, body: object = None, key: str = ADMIN_KEY
             ) -> tuple[int, Any]:
        """An admin API call with `key`; (status, decoded body)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.admin}/admin/v1{path}", data=data,
                                         method=method, headers={
                                             "Authorization": f"Bearer {key}",
                                             "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def block(self, entry: str, note: str, scope: str = "global") -> None:
        status, body = self.call("POST", "/lists/block/entries",
                                 {"entries": [entry], "scope": scope, "note": note})
        assert status == 200, body

    def send_sms(self, to: str) -> int:
        """A Twilio send through the proxy; its status."""
        form = urllib.parse.urlencode({"To": to, "From": "+15005550006",
                                       "Body": "hello"}).encode()
        auth = base64.b64encode(f"{TWILIO_SID}:token".encode()).decode()
        request = urllib.request.Request(f"{self.proxy}{TWILIO_MESSAGES}", data=form,
                                         method="POST", headers={
                                             "Authorization": f"Basic {auth}",
                                             "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`gatekeeper run` on an embedded store, a write key ($GATEKEEPER_ADMIN_KEY, `ops`)
    and a read-only key (`auditor`), in front of a fake Twilio on loopback."""
    _require_tools()
    tmp = tmp_path_factory.mktemp("console")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    admin_port, proxy_port = free_port(), free_port()
    config = write_config(
        tmp / "gatekeeper.yaml",
        upstreams=[{"name": "twilio", "url": f"http://127.0.0.1:{upstream.server_port}",
                    "preset": "twilio", "region": "US"}],
        proxy={"host": "127.0.0.1", "port": proxy_port},
        admin={"host": "127.0.0.1", "port": admin_port, "keys": [
            {"name": "ops", "secret_env": "GATEKEEPER_ADMIN_KEY", "role": "write",
             "scopes": ["*"]},
            {"name": "auditor", "secret": READ_KEY, "role": "read", "scopes": ["*"]}]},
        redis={"url": "embedded", "data_dir": str(tmp / "data")},
        log={"level": "warning"},
    )
    log = tmp / "gatekeeper.log"
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        with gatekeeper_process(config, log) as process:
            wait_healthy(process, admin, log)
            yield Stack(admin, f"http://127.0.0.1:{proxy_port}", log)
    finally:
        upstream.shutdown()
        upstream.server_close()


# --------------------------------------------------------------------- the browser side


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    _require_tools()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Tab:
    """A page in its own browser context, with what it logged."""

    page: Any
    stack: Stack
    problems: list[str] = field(default_factory=list)

    def open(self, view: str = "") -> None:
        self.page.goto(f"{self.stack.admin}/console/{'#' + view if view else ''}")

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        self.open()
        self.page.fill("#signin-key", key)
        self.page.click("#signin-form button[type=submit]")
        self.page.wait_for_selector("#whoami", state="visible")

    def view(self, name: str) -> None:
        self.page.click(f"#nav-{name}")
        self.page.wait_for_selector(f"#view-{name}", state="visible")

    def error_text(self) -> str:
        return str(self.page.inner_text("#errors"))

    def shoot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def axe(self, name: str) -> None:
        """axe-core on the page as it is: no serious or critical violation."""
        if not self.page.evaluate("() => typeof axe === 'object'"):
            self.page.add_script_tag(url=AXE_URL)
        result = self.page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']})")
        bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:5]}" for v in bad)

    def check_clean(self) -> None:
        """No script error and no CSP refusal (network error statuses are expected: the
        console shows the API's 4xx replies)."""
        assert not self.problems, self.problems


@pytest.fixture
def tab(browser: Any, stack: Stack) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    context.route(f"**{AXE_URL}", lambda route: route.fulfill(
        path=str(AXE), content_type="text/javascript; charset=utf-8"))
    page = context.new_page()
    opened = Tab(page, stack)
    page.on("pageerror", lambda error: opened.problems.append(f"page error: {error}"))
    page.on("console", lambda msg: opened.problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    try:
        yield opened
    finally:
        context.close()


def eventually(condition: Any, within: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met in {within}s"
        time.sleep(0.1)


# ------------------------------------------------------------------------- scenarios


def test_sign_in_keeps_the_key_in_session_storage_only(tab: Tab) -> None:
    """/console redirects to /console/; a wrong key is refused with the API's message; the
    right one shows its name and role; the key is only in sessionStorage (not in the URL,
    not in a cookie); signing out forgets it."""
    page = tab.page
    page.goto(f"{tab.stack.admin}/console")
    assert page.url == f"{tab.stack.admin}/console/"
    page.wait_for_selector("#signin-key", state="visible")
    # The CSP is in force: the browser refuses an inline script.
    with pytest.raises(sync_api.Error, match="Content Security Policy"):
        page.add_script_tag(content="window.inlineRan = true")
    assert page.evaluate("() => window.inlineRan") is None
    # check_clean() catches such refusals: this one was on purpose.
    eventually(lambda: any("Content Security Policy" in p for p in tab.problems),
               what="the CSP refusal logged")
    tab.problems.clear()
    tab.axe("sign-in")
    tab.shoot("signin")
    # Keyboard only: the skip link, the key field, then the button; Enter signs in.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "signin-key"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.type("wrong-key-that-is-long-enough")
    page.keyboard.press("Enter")
    page.wait_for_selector("#errors .msg-error")
    assert "401" in tab.error_text()
    assert "wrong admin key" in tab.error_text()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.is_visible("#signin-key")

    tab.sign_in()
    assert page.inner_text("#key-name") == "ops"
    assert page.inner_text("#key-role") in ("write", "unknown")
    assert page.evaluate("Object.values(sessionStorage)") == [ADMIN_KEY]
    assert ADMIN_KEY not in page.url
    assert page.context.cookies() == []
    assert page.input_value("#signin-key") == ""
    assert page.is_visible("#view-number")
    tab.axe("signed-in")

    page.click("#sign-out")
    page.wait_for_selector("#signin-key", state="visible")
    assert page.evaluate("sessionStorage.length") == 0
    assert not page.is_visible("#views-nav")
    tab.check_clean()


def test_check_explains_a_blocked_number_and_blocks_another(tab: Tab) -> None:
    """Number view: a blocked number shows "Blacklisted" with its entry's note and who
    added it; a number not listed is blocked from there and then shows blocked."""
    tab.stack.block("+33612345678", note="complaint #4521 <b>not markup</b>")
    tab.sign_in()
    page = tab.page
    page.fill("#check-number", "+33 6 12 34 56 78")
    page.fill("#check-scopes", "tenant:acme")
    page.click("#check-form button[type=submit]")
    page.wait_for_selector("#check-label")
    assert page.inner_text("#check-label").lower() == "blacklisted"
    assert page.is_visible("#check-label")
    matched = page.inner_text("#check-result table.matched")
    assert "+33612345678" in matched
    assert "ops" in matched
    # The note is text, never markup.
    assert "complaint #4521 <b>not markup</b>" in matched
    assert page.locator("#check-result b").count() == 0
    page.wait_for_selector("#number-attempts :is(table, p)")
    tab.axe("number-blocked")
    tab.shoot("number")

    page.fill("#check-number", "+1 415 555 0123")
    page.fill("#check-scopes", "")
    page.click("#check-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#check-label')?.textContent === 'unlisted'")
    page.fill("#nw-note", "asked by support")
    page.select_option("#nw-ttl", "86400")
    page.click("#nw-block")
    page.wait_for_selector("#number-write-result .msg-ok")
    assert "Added to the block list (global): +14155550123" in page.inner_text(
        "#number-write-result")
    page.wait_for_function(
        "() => document.querySelector('#check-label')?.textContent === 'Blacklisted'")
    assert "asked by support" in page.inner_text("#check-result table.matched")
    tab.check_clean()


def test_check_asks_with_region_intent_and_instant(tab: Tab) -> None:
    """Number view: a national number with its region, judged at 22:30 its local time, is
    refused by quiet hours for marketing and allowed for an OTP (policy set live)."""
    status, body = tab.stack.call("PUT", "/policy", {"policy": {"global": {
        "quiet_hours": {"action": "block", "intents": ["marketing"]}}}})
    assert status == 200, body
    try:
        tab.sign_in()
        page = tab.page
        page.fill("#check-number", "(415) 555-0188")
        page.fill("#check-region", "us")
        page.fill("#check-at", "22:30")
        page.select_option("#check-intent", "marketing")
        page.click("#check-form button[type=submit]")
        page.wait_for_selector("#check-label")
        # Refused for now by a rule, not blacklisted: the badge says "blocked".
        assert page.inner_text("#check-label").lower() == "blocked"
        assert page.locator("#check-label.badge-blocked").count() == 1
        facts = page.inner_text("#check-result dl.facts")
        assert "+14155550188" in facts
        assert "quiet_hours" in facts
        assert "marketing" in facts
        assert "quiet_hours" in page.inner_text("#check-result table")

        page.select_option("#check-intent", "otp")
        page.click("#check-form button[type=submit]")
        page.wait_for_function(
            "() => document.querySelector('#check-label')?.textContent === 'allowed'"
            " || document.querySelector('#check-label')?.textContent === 'unlisted'")
        assert "otp" in page.inner_text("#check-result dl.facts")
        tab.axe("number-policy")
        tab.check_clean()
    finally:
        status, body = tab.stack.call("DELETE", "/policy")
        assert status == 200, body


def test_lists_add_browse_search_remove_and_export(tab: Tab) -> None:
    """Lists view: the lists table, adding an entry, finding it by prefix, exporting the
    list, and removing the entry from its row."""
    tab.sign_in()
    tab.view("lists")
    page = tab.page
    page.fill("#edit-entries", "+447700900123, not-a-number")
    page.fill("#edit-note", "console test")
    page.click("#edit-add")
    page.wait_for_selector("#edit-result ul")
    result = page.inner_text("#edit-result")
    assert "Added (block, global): +447700900123" in result
    assert "Failed: not-a-number" in result
    page.wait_for_selector("#lists td")
    assert "block" in page.inner_text("#lists")

    page.fill("#browse-prefix", "+44 7700")
    page.click("#browse-form button[type=submit]")
    page.wait_for_selector("#entries")
    rows = page.locator("#entries tbody tr")
    assert rows.count() == 1
    assert "+447700900123" in rows.first.inner_text()
    assert "console test" in rows.first.inner_text()
    tab.axe("lists")
    tab.shoot("lists")

    with page.expect_download() as download_info:
        page.click("#export-form button[type=submit]")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    exported = Path(download.path()).read_text()
    assert exported.startswith("entry,channel,source,added_at,added_by,note,expires_at")
    assert "+447700900123" in exported
    assert "Saved" in page.inner_text("#export-status")

    page.click("#entries button[aria-label^='Remove +447700900123']")
    page.wait_for_function("() => document.querySelector('#browse-status').textContent"
                           ".startsWith('Removed +447700900123')")
    page.wait_for_selector("#browse-table p")  # no entry left with that prefix
    assert tab.stack.call("GET", "/check?number=%2B447700900123")[1]["decision"] == "unlisted"
    tab.check_clean()


def test_import_10000_lines_with_progress_and_report(tab: Tab, tmp_path: Path) -> None:
    """A 10,000-line file: the upload progress bar reaches 100% and the report shows
    the counts and the failed lines."""
    lines = [f"+3361{n:07d}" for n in range(9_998)] + ["not-a-number", "+0123"]
    upload = tmp_path / "numbers.txt"
    upload.write_text("\n".join(lines) + "\n")
    tab.sign_in()
    tab.view("lists")
    page = tab.page
    page.fill("#import-scope", "tenant:import")
    page.set_input_files("#import-file", str(upload))
    page.click("#import-start")
    page.wait_for_selector("#import-facts", timeout=30_000)
    assert page.evaluate("document.querySelector('#import-progress').value") == 100
    assert page.inner_text("#import-percent") == "100%"
    facts = page.inner_text("#import-facts")
    assert "Lines read\n10000" in facts
    assert "Added\n9998" in facts
    assert "Failed\n2" in facts
    report = page.inner_text("#import-report")
    assert "not-a-number" in report
    tab.axe("import")
    tab.shoot("import")
    status, body = tab.stack.call("GET", "/lists/block/entries?scope=tenant:import&limit=1")
    assert status == 200
    assert body["entries"][0]["entry"] == "+33610000000"
    tab.check_clean()


def test_blocked_send_appears_in_the_live_feed(tab: Tab) -> None:
    """Attempts view: a send blocked by the proxy shows up in the feed without a reload
    (the page's state survives), the charts and the summary follow, and filters apply."""
    blocked = "+33699999999"
    tab.stack.block(blocked, note="live feed test")
    tab.sign_in()
    tab.view("attempts")
    page = tab.page
    page.wait_for_function("() => document.querySelector('#feed-status').textContent"
                           ".includes(' since ')")
    page.evaluate("window.__notReloaded = true")
    assert tab.stack.send_sms(blocked) == 403
    row = page.locator("#feed tbody tr", has_text=blocked).first
    row.wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True
    text = row.inner_text()
    assert "twilio" in text
    assert "sms" in text
    assert "rejected" in text
    assert page.locator("#chart-reason canvas").count() == 1
    page.wait_for_selector("#totals-upstream table")
    assert "twilio" in page.inner_text("#totals-upstream")
    page.wait_for_function(
        f"() => document.querySelector('#summary').textContent.includes('{blocked}')")
    tab.axe("attempts")
    tab.shoot("attempts")

    # Filters: another upstream's attempts only (none), then twilio's again.
    page.fill("#att-upstream", "vonage")
    page.click("#attempts-form button[type=submit]")
    page.wait_for_selector("#feed p")
    assert blocked not in page.inner_text("#feed")
    page.fill("#att-upstream", "twilio")
    page.select_option("#att-channel", "sms")
    page.click("#attempts-form button[type=submit]")
    page.locator("#feed tbody tr", has_text=blocked).first.wait_for()
    tab.check_clean()


def test_read_only_key_cannot_write(tab: Tab) -> None:
    """A read key: with GET /admin/v1/key the write controls are hidden; in any case a
    write is refused by the API and its 403 message is shown."""
    tab.sign_in(READ_KEY)
    page = tab.page
    status, _ = tab.stack.call("GET", "/key", key=READ_KEY)
    if status == 200:
        assert page.inner_text("#key-role") == "read"
        assert page.inner_text("#key-name") == "auditor"
        assert "read-only" in page.inner_text("#role-note")
        tab.view("lists")
        assert not page.is_visible("#edit-form")
        assert not page.is_visible("#import-form")
        assert page.is_visible("#browse-form")
        # The hidden controls are no way around the API: it refuses the write.
        page.evaluate("document.body.dataset.role = 'write'")
    else:
        assert page.inner_text("#key-role") == "unknown"
        tab.view("lists")
    page.fill("#edit-entries", "+447700900999")
    page.click("#edit-add")
    page.wait_for_selector("#errors .msg-error")
    assert "403" in tab.error_text()
    assert "read-only" in tab.error_text()
    assert tab.stack.call("GET", "/check?number=%2B447700900999")[1]["decision"] == "unlisted"
    if status == 200:
        page.evaluate("document.body.dataset.role = 'read'")
    tab.axe("read-only")
    tab.shoot("read-only")
    tab.check_clean()


def test_usable_375_px_wide(browser: Any, stack: Stack) -> None:
    """At 375 px: no view is wider than the screen, and axe finds nothing serious."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    context.set_default_timeout(WAIT_MS)
    context.route(f"**{AXE_URL}", lambda route: route.fulfill(
        path=str(AXE), content_type="text/javascript; charset=utf-8"))
    try:
        tab = Tab(context.new_page(), stack)
        tab.page.on("pageerror", lambda error: tab.problems.append(str(error)))
        tab.sign_in()
        page = tab.page
        page.fill("#check-number", "+33612345678")
        page.click("#check-form button[type=submit]")
        page.wait_for_selector("#check-label")
        for name in ("number", "lists", "attempts"):
            tab.view(name)
            page.wait_for_timeout(300)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{name} is {width}px wide"
            tab.axe(f"narrow-{name}")
            tab.shoot(f"narrow-{name}")
        tab.check_clean()
    finally:
        context.close()


def _not_found(route: Any) -> None:
    route.fulfill(status=404, content_type="application/json", body=json.dumps({
        "code": "not_found", "message": "Not Found: GET /admin/v1/key.",
        "type": "not_found", "request_id": "simulated"}))


def _ignore_prefix(route: Any) -> None:
    """A server without `prefix=` on listings: it answers the whole list."""
    url = urllib.parse.urlsplit(route.request.url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(url.query) if k != "prefix"]
    route.continue_(url=urllib.parse.urlunsplit(url._replace(
        query=urllib.parse.urlencode(query))))


def _refuse_upstream(route: Any) -> None:
    """A server without `upstream=` on the attempts endpoints: 400, as it answers any
    unknown parameter."""
    if "upstream" not in dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            route.request.url).query)):
        route.continue_()
        return
    route.fulfill(status=400, content_type="application/json", body=json.dumps({
        "code": "invalid_parameter", "type": "bad_request", "request_id": "simulated",
        "message": "Unknown parameter 'upstream': expected one of channel, cursor, "
                   "direction, limit, number, region, scope, since, until."}))


def test_copes_without_the_api_additions(tab: Tab) -> None:
    """Against a server without GET /admin/v1/key (404), `prefix=` (ignored) and
    `upstream=` (400), simulated by Playwright's router: the role is "unknown" and the
    API's 403 is shown, the prefix search filters the page in the browser and says so,
    and the upstream filter's 400 is shown while the browser filters instead."""
    context = tab.page.context
    context.route("**/admin/v1/key", _not_found)
    context.route(re.compile(r".*/admin/v1/lists/[a-z]+/entries\?.*"), _ignore_prefix)
    context.route(re.compile(r".*/admin/v1/attempts(/summary)?\?.*"), _refuse_upstream)
    page = tab.page
    tab.sign_in(READ_KEY)
    assert page.inner_text("#key-role") == "unknown"
    assert "does not say" in page.inner_text("#role-note")
    tab.view("lists")
    assert page.is_visible("#edit-form")
    page.fill("#edit-entries", "+447700900998")
    page.click("#edit-add")
    page.wait_for_selector("#errors .msg-error")
    assert "403" in tab.error_text()
    assert "read-only" in tab.error_text()
    page.click("#sign-out")

    tab.stack.block("+447700900555", note="fallback", scope="tenant:fallback")
    tab.stack.block("+33612000000", note="fallback", scope="tenant:fallback")
    tab.sign_in()
    tab.view("lists")
    page.fill("#browse-scope", "tenant:fallback")
    page.fill("#browse-prefix", "+447700")
    page.click("#browse-form button[type=submit]")
    page.wait_for_selector("#entries")
    assert page.locator("#entries tbody tr").count() == 1
    assert "+447700900555" in page.inner_text("#entries")
    assert "does not filter by prefix" in page.inner_text("#browse-status")

    tab.view("attempts")
    page.fill("#att-upstream", "twilio")
    page.click("#attempts-form button[type=submit]")
    page.wait_for_selector("#att-note", state="visible")
    assert "Unknown parameter 'upstream'" in page.inner_text("#att-note")
    page.wait_for_selector("#summary p")
    assert not tab.error_text()
    tab.axe("fallbacks")
    tab.shoot("fallbacks")
    tab.check_clean()
