"""The web console in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven
by Selenium) against a real ``dbwatch run`` process.

Starts: two throwaway PostgreSQL 15 servers (tests/pgcluster.py; one is stopped half-way, as a target going
down), one throwaway Redis (tests/redisserver.py), a threaded webhook receiver (tests/test_alerting_e2e.Hook),
a target on a loopback port nothing listens on (down from its first collection), and the agent watching them.

Screenshots of every page (laptop and phone width, light and dark) are saved under ``.artifacts/console/``.
"""

from __future__ import annotations

import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.agentproc import AgentProcess, sample_value
from tests.helpers import free_port, wait_for
from tests.pgcluster import PostgresServer
from tests.redisserver import RedisServer
from tests.test_alerting_e2e import Hook

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / ".artifacts" / "console"
PROBE = "console_probe_table"

pytestmark = pytest.mark.skipif(not Path(CHROMEDRIVER).exists() or not shutil.which("chromium"),
                                reason="needs chromium and chromium-driver (make setup)")


def make_browser() -> "webdriver.Chrome":
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def shoot(driver: "webdriver.Chrome", name: str) -> Path:
    """A full-page screenshot under .artifacts/console/ (light, laptop width unless the caller changed it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return window.innerWidth")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": min(int(height), 6000), "deviceScaleFactor": 1, "mobile": False})
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


@pytest.fixture(scope="module")
def servers():
    live, gone, cache = PostgresServer().start(), PostgresServer().start(), RedisServer().start()
    live.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    live.psql(f"CREATE TABLE {PROBE} (id int primary key, note text)")
    live.psql(f"INSERT INTO {PROBE} SELECT g, 'n' || g FROM generate_series(1, 2000) g")
    live.psql(f"CREATE INDEX probe_note ON {PROBE} (note); CREATE INDEX probe_note_again ON {PROBE} (note)")
    yield live, gone, cache
    for server in (live, gone, cache):
        server.destroy()


@pytest.fixture(scope="module")
def hook():
    receiver = Hook()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory, servers, hook):
    live, gone, cache = servers
    config = {
        "targets": [
            {"name": "pg-live", "engine": "postgres", "dsn": live.dsn(), "interval": "1s", "timeout": "5s",
             "labels": {"env": "test"},
             "collectors": {"statements": {"interval": "1s"}, "advisor": {"enabled": True, "interval": "5s"}}},
            {"name": "pg-gone", "engine": "postgres", "dsn": gone.dsn(), "interval": "1s", "timeout": "3s",
             "collectors": {"statements": {"enabled": False}}},
            {"name": "cache", "engine": "redis", "dsn": cache.dsn(), "interval": "1s"},
            {"name": "pg-nowhere", "engine": "postgres", "interval": "1s", "timeout": "2s",
             "dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
             "collectors": {"statements": {"enabled": False}}},
        ],
        "receivers": [{"name": "oncall", "type": "webhook", "url": hook.url, "group_wait": "0s"}],
        "rules": {"overrides": {"TargetDown": {"for": "0s"}}},
    }
    process = AgentProcess(tmp_path_factory.mktemp("console"), config).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    driver = make_browser()
    yield driver
    driver.quit()


def rows(driver) -> dict[str, str]:
    """The overview's rows: target name -> the row's text."""
    return {row.find_element(By.CSS_SELECTOR, "th a").text: row.text
            for row in driver.find_elements(By.CSS_SELECTOR, "table.fleet tbody tr") if row.find_elements(By.CSS_SELECTOR, "th a")}


def reload_until(driver, url: str, condition, timeout: float, what: str):
    def attempt():
        driver.get(url)
        return condition()
    return wait_for(attempt, timeout, what, interval=0.5)


def test_the_overview_lists_every_target_problems_first_and_filters_on_the_server(agent, browser):
    url = agent.url("/")
    # Every target's first collection landed (the schedule spreads first runs over ticks of 0.1 s: pg-live and
    # cache may be up before pg-nowhere's first connection has been refused).
    reload_until(browser, url, lambda: "up" in rows(browser).get("pg-live", "") and "up" in rows(browser).get("cache", "")
                 and "down" in rows(browser).get("pg-nowhere", ""), 60, "pg-live and cache up, pg-nowhere down")
    found = rows(browser)
    assert set(found) == {"pg-live", "pg-gone", "cache", "pg-nowhere"}
    assert list(found)[0] == "pg-nowhere", "a target down is listed first"
    assert "postgres" in found["pg-live"] and "redis" in found["cache"]
    assert "15." in found["pg-live"], "the server's version"
    assert "primary" in found["pg-live"]
    shoot(browser, "overview")
    # Keyboard: the first Tab offers to skip to the content; "/" jumps to the filter, a plain GET the server answers.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    assert browser.find_element(By.CSS_SELECTOR, "th[aria-sort]").text.startswith("State")
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "filter"
    browser.switch_to.active_element.send_keys("env=test", Keys.ENTER)
    wait_for(lambda: "q=env%3Dtest" in browser.current_url, 10, "the filtered page")
    assert list(rows(browser)) == ["pg-live"]
    browser.get(agent.url("/?state=down&sort=name"))
    assert list(rows(browser)) == ["pg-nowhere"]


def test_the_target_page_shows_a_statement_the_test_ran_with_its_sparkline(agent, browser, servers):
    live, _, _ = servers

    def probe_shown() -> bool:
        live.psql(f"SELECT count(*) FROM {PROBE} WHERE note LIKE '%7%'")
        browser.get(agent.url("/targets/pg-live"))
        cells = browser.find_elements(By.CSS_SELECTOR, "table.statements td.query code")
        return any(PROBE in cell.text for cell in cells)

    wait_for(probe_shown, 90, f"a statement on {PROBE} on the target page", interval=1.0)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "table.statements tbody tr") if PROBE in r.text)
    assert row.find_elements(By.CSS_SELECTOR, "svg.spark polyline"), "the last hour as an inline SVG"
    detail = agent.get("/api/v1/targets/pg-live")
    [stmt] = [s for s in detail["statements"] if PROBE in (s["query"] or "")]
    assert stmt["calls"] >= 1 and stmt["mean_ms"] is not None and len(stmt["last_hour"]) == 60
    assert detail["sessions"]["summary"]["connections"] >= 1
    shoot(browser, "target")
    assert agent.get("/targets/nope", check=False) == 404


def test_the_target_page_shows_advice_with_its_evidence_and_sql_to_copy(agent, browser):
    def advice():
        browser.get(agent.url("/targets/pg-live"))
        return next((a for a in browser.find_elements(By.CSS_SELECTOR, "article.advice")
                     if "probe_note" in a.text and "duplicate" in a.text), None)

    article = wait_for(advice, 90, "the duplicate index advice on the target page", interval=1.0)
    sql = article.find_element(By.CSS_SELECTOR, ".sql pre").text
    assert sql.startswith("DROP INDEX") and "probe_note" in sql
    article.find_element(By.CSS_SELECTOR, "details summary").click()
    assert article.find_element(By.CSS_SELECTOR, "details dl").text, "the evidence"
    browser.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
                                                         "origin": agent.url("")})
    button = article.find_element(By.CSS_SELECTOR, "button.copy")
    button.click()
    wait_for(lambda: button.text == "Copied", 10, "the copy button's answer")
    copied = browser.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('error: ' + e));")
    assert copied == sql
    article.location_once_scrolled_into_view
    shoot(browser, "target-advice")


def test_the_target_page_shows_live_sessions_and_who_blocks_whom(agent, browser, servers):
    live, _, _ = servers
    holder = psycopg.connect(live.dsn(), application_name="holder")
    waiter = psycopg.connect(live.dsn(), application_name="waiter", autocommit=True)
    try:
        holder.execute(f"LOCK TABLE {PROBE} IN ACCESS EXCLUSIVE MODE")  # and the transaction stays open
        holder_pid = holder.info.backend_pid
        blocked = threading.Thread(target=lambda: waiter.execute(f"SELECT count(*) FROM {PROBE} WHERE note <> 'hunter2-secret'"), daemon=True)
        blocked.start()

        def blocked_row():
            browser.get(agent.url("/targets/pg-live"))
            return next((r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.live tr.blocked")
                         if f"blocked by {holder_pid}" in r.text), None)

        row = wait_for(blocked_row, 60, "the waiting session, blocked by the holder, on the target page", interval=0.5)
        assert str(waiter.info.backend_pid) in row and PROBE in row
        assert "hunter2" not in browser.page_source and "note <> '?'" in row, "literals never reach the page"
        sessions = agent.get("/api/v1/targets/pg-live")["sessions"]["live"]
        [holding] = [s for s in sessions if s["pid"] == holder_pid]
        assert holding["state"] == "idle in transaction" and holding["xact_seconds"] > 0
        assert not [s for s in sessions if s["application_name"] == "dbwatch"], "the agent's own sessions are left out"
        browser.find_element(By.ID, "sessions").location_once_scrolled_into_view
        shoot(browser, "target-lock-wait")
    finally:
        holder.rollback()
        holder.close()
        blocked.join(30)
        waiter.close()


def test_a_silence_made_on_the_page_mutes_the_webhook_and_expiring_it_there_delivers(agent, browser, servers, hook):
    _, gone, _ = servers
    # pg-nowhere is down from the start: its TargetDown reaches the webhook (nothing silences it).
    wait_for(lambda: [a for a in hook.alerts("TargetDown", "firing") if a["labels"]["target"] == "pg-nowhere"], 60,
             "pg-nowhere's TargetDown at the webhook")
    browser.get(agent.url("/alerts"))
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "a.silence") if "pg-nowhere" in b.get_attribute("data-labels"))
    button.click()
    form = browser.find_element(By.ID, "silence-form")
    matchers = form.find_element(By.NAME, "matchers")
    assert matchers.get_attribute("value").split() == ["alertname=TargetDown", "target=pg-nowhere"], "prefilled"
    assert browser.switch_to.active_element.get_attribute("name") == "comment"
    # The same alert for pg-gone, before its planned maintenance.
    matchers.clear()
    matchers.send_keys("alertname=TargetDown\ntarget=pg-gone")
    form.find_element(By.NAME, "duration").clear()
    form.find_element(By.NAME, "duration").send_keys("10m")
    form.find_element(By.NAME, "createdBy").send_keys("ann")
    form.find_element(By.NAME, "comment").send_keys("planned restart of pg-gone")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: "created" in form.find_element(By.CSS_SELECTOR, ".status").text or
             "Not created" in form.find_element(By.CSS_SELECTOR, ".status").text, 20, "the form's answer")
    assert "created" in form.find_element(By.CSS_SELECTOR, ".status").text
    [silence] = agent.get("/api/v1/silences")
    assert silence["createdBy"] == "ann" and silence["status"]["state"] == "active"
    assert {m["name"]: m["value"] for m in silence["matchers"]} == {"alertname": "TargetDown", "target": "pg-gone"}

    gone.stop()
    reload_until(browser, agent.url("/"), lambda: "down" in rows(browser).get("pg-gone", ""), 60,
                 "pg-gone down on the overview")
    shoot(browser, "overview-target-down")
    alert = wait_for(lambda: next((a for a in agent.get("/api/v1/alerts") if a["labels"]["target"] == "pg-gone"
                                   and a["labels"]["alertname"] == "TargetDown" and a["state"] == "firing"), None),
                     60, "pg-gone's TargetDown firing")
    assert alert["silenced"]
    reload_until(browser, agent.url("/"), lambda: "1 firing" in rows(browser).get("pg-gone", ""), 30,
                 "pg-gone's alert on the overview")
    assert list(rows(browser))[:2] == ["pg-gone", "pg-nowhere"], "down and alerting: first"
    browser.get(agent.url("/alerts"))
    firing = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-firing]").text
    assert "TargetDown" in firing and "pg-gone" in firing and "silenced" in firing
    assert sample_value(agent.metrics(), "dbwatch_notification_queue_length", receiver="oncall") == 0
    assert not [a for a in hook.alerts("TargetDown", "firing") if a["labels"]["target"] == "pg-gone"], "muted"
    shoot(browser, "alerts")
    # Expired from the page: the alert goes out.
    browser.find_element(By.CSS_SELECTOR, f"button.expire[data-id='{silence['id']}']").click()
    wait_for(lambda: agent.get("/api/v1/silences")[0]["status"]["state"] == "expired", 20, "the silence expired")
    wait_for(lambda: [a for a in hook.alerts("TargetDown", "firing") if a["labels"]["target"] == "pg-gone"], 60,
             "pg-gone's TargetDown at the webhook once the silence expired")
    reload_until(browser, agent.url("/alerts"),
                 lambda: "delivered" in browser.find_element(By.CSS_SELECTOR, "table.notifications").text, 30,
                 "the delivered notifications listed")
    assert "TargetDown on pg-gone" in browser.find_element(By.CSS_SELECTOR, "table.notifications").text
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=h-firing] tbody tr")
               if "pg-gone" in r.text)
    row.find_element(By.CSS_SELECTOR, "details.history summary").click()
    history = row.find_element(By.CSS_SELECTOR, "details.history").text
    assert "pending" in history and "fired" in history and "firing sent to oncall" in history, history
    shoot(browser, "alerts-history")


def test_pages_read_on_a_phone_and_in_dark_mode(agent, browser):
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        browser.get(agent.url("/"))
        background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 20, 25)", background
        shoot(browser, "overview-dark")
        browser.get(agent.url("/targets/pg-live"))
        shoot(browser, "target-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    browser.set_window_size(390, 844)
    try:
        for path, name in (("/", "overview-phone"), ("/targets/pg-live", "target-phone"), ("/alerts", "alerts-phone")):
            browser.get(agent.url(path))
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{path} scrolls sideways on a phone by {overflow}px (tables scroll in their box)"
            ids = browser.execute_script("return [...document.querySelectorAll('[id]')].map(e => e.id)")
            assert len(ids) == len(set(ids)), f"{path}: an id used twice"
            assert len(browser.find_elements(By.TAG_NAME, "h1")) == 1
            shoot(browser, name)
    finally:
        browser.set_window_size(1366, 900)


def test_with_basic_auth_configured_the_console_asks_for_it(tmp_path, browser):
    import bcrypt

    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  oncall: " + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    agent = AgentProcess(tmp_path, {"targets": [], "server": {"web_config_file": str(web)}},
                         basic_auth=("oncall", "s3cret")).start()
    try:
        for path in ("/", "/alerts", "/api/v1/targets", "/static/console.css"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(agent.url(path), timeout=10)
            assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"].startswith("Basic")
        # Chromium answers the challenge with its password prompt (headless: a blank page, nothing of the console).
        browser.get(agent.url("/"))
        assert not browser.find_elements(By.CSS_SELECTOR, "h1, table") and browser.title == ""
        browser.get(agent.url("/").replace("http://", "http://oncall:s3cret@"))
        assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Fleet"
        assert browser.execute_script("return getComputedStyle(document.querySelector('.top')).display") == "flex", \
            "the stylesheet loads with the same credentials"
    finally:
        agent.stop()


def test_with_actions_on_a_long_statement_is_cancelled_from_the_page_after_a_confirmation(tmp_path, browser, servers):
    live, _, _ = servers
    import bcrypt

    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  oncall: " + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    agent = AgentProcess(tmp_path, {
        "targets": [{"name": "pg-live", "engine": "postgres", "dsn": live.dsn(), "interval": "1s",
                     "collectors": {"statements": {"enabled": False}}}],
        "server": {"web_config_file": str(web), "console": {"actions": True}}}, basic_auth=("oncall", "s3cret")).start()
    sleeper = psycopg.connect(live.dsn(), application_name="sleeper", autocommit=True)
    outcome: list[str] = []

    def sleep() -> None:
        try:
            sleeper.execute("SELECT pg_sleep(60)")
            outcome.append("finished")
        except psycopg.errors.QueryCanceled:
            outcome.append("cancelled")

    running = threading.Thread(target=sleep, daemon=True)
    running.start()
    try:
        page = agent.url("/targets/pg-live").replace("http://", "http://oncall:s3cret@")

        def cancel_button():
            browser.get(page)
            return next((r.find_element(By.CSS_SELECTOR, "button[data-action=cancel]")
                         for r in browser.find_elements(By.CSS_SELECTOR, "table.live tbody tr") if "pg_sleep" in r.text),
                        None)

        button = wait_for(cancel_button, 60, "the sleeping session with a Cancel button", interval=0.5)
        assert button.get_attribute("data-pid") == str(sleeper.info.backend_pid)
        button.click()
        prompt = wait_for(lambda: _alert(browser), 10, "the confirmation")
        assert f"backend {sleeper.info.backend_pid} on pg-live" in prompt.text
        prompt.accept()
        wait_for(lambda: outcome or _alert(browser), 30, "the statement cancelled")
        failure = _alert(browser)
        assert failure is None, failure.text
        running.join(30)
        assert outcome == ["cancelled"]
        wait_for(lambda: "outcome=cancelled" in agent.log(), 10, "the audit line")
        assert "user=oncall" in agent.log() and "s3cret" not in agent.log()
    finally:
        running.join(60)
        sleeper.close()
        agent.stop()


def _alert(browser):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return browser.switch_to.alert
    except NoAlertPresentException:
        return None
