"""The web console in a real browser: headless chromium (Debian) driven by Selenium, against `moralscope serve`.

One live server for the module, with two API keys, on a fast fake engine (``MORALSCOPE_ENGINE_FACTORY``:
tests/support/fake_engine.py, a fixed delay per batch so progress is visible), and one browser. Every
page is checked for console errors and for requests beyond the server; screenshots of each page go to
``build/screenshots/``.

To add a test: take ``logged_in`` (the browser with key A's session), submit with ``api`` and
``console_spec`` (or any spec), wait with ``wait_for_state``; ``browser.report_frame(job_id)`` opens the
job's page and switches into its embedded report (as the sweep figure's test does), and
``browser.assert_clean()`` checks the page's console and requests (see browser_support.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import TERMINAL, Browser, console_spec, cross_site_page, submit, wait_for_state
from service_support import MODEL, LiveServer, server_env, tiny_spec

pytestmark = pytest.mark.slow

KEY_A, KEY_B = "console-key-a-7Hq2", "console-key-b-9Zx4"
WRONG_KEY = "console-wrong-key-3Vt8"
FAKE_ENGINE = "tests.support.fake_engine:fake_engine_factory"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    state = tmp_path_factory.mktemp("console")
    env = server_env(
        state,
        MORALSCOPE_API_KEYS=f"{KEY_A},{KEY_B}",
        MORALSCOPE_SESSION_SECRET="browser-test-session-secret",
        MORALSCOPE_ENGINE_FACTORY=FAKE_ENGINE,
        MORALSCOPE_LOG_LEVEL="INFO",
    )
    live = LiveServer(env, state / "server.log")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser(server: LiveServer) -> Iterator[Browser]:
    window = Browser(server.url)
    yield window
    window.quit()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    """The JSON API as key A (how the SDK talks to it)."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as client:
        yield client


@pytest.fixture
def logged_in(browser: Browser) -> Browser:
    """The browser with key A's session (logging in when it has none)."""
    browser.open("/")
    if browser.path.startswith("/login"):
        browser.log_in(KEY_A)
    browser.forget()
    return browser


def test_the_console_asks_for_a_key_once_and_keeps_a_strict_http_only_session(browser: Browser) -> None:
    browser.open("/submit")
    assert browser.path == "/login?next=/submit"
    browser.screenshot("login")
    browser.assert_clean()
    browser.css("#key").send_keys(WRONG_KEY)
    browser.css("form.login button[type=submit]").click()
    error = browser.wait_for(lambda: browser.css("#key-error"), timeout=20, what="the wrong key's error")
    assert "not valid for this server" in error.text
    assert browser.css("#key").get_attribute("value") == ""  # the page does not send the key back
    browser.screenshot("login-wrong-key")
    browser.assert_clean(status=401)
    browser.log_in(KEY_A)
    assert browser.path == "/submit"
    [cookie] = [c for c in browser.driver.get_cookies() if c["name"] == "moralscope_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert KEY_A not in cookie["value"]
    assert browser.js("return document.cookie") == ""  # scripts cannot read it
    browser.open("/")
    assert browser.path == "/"  # no second login
    browser.assert_clean()


def _advanced(samples: list[tuple[str, int, int]] | None) -> bool:
    """Whether the samples show a running job's bar at two different places short of its end."""
    partial = {done for state, done, total in samples or [] if state == "in_progress" and 0 < done < total}
    return len(partial) >= 2


def test_a_running_job_advances_to_completed_in_the_list_and_on_its_page(logged_in: Browser, api: httpx.Client) -> None:
    browser = logged_in
    job_id = submit(api, console_spec("watched job", delay_s=0.5))
    row = f'tr[data-job-id="{job_id}"]'
    browser.open("/")  # the list in one tab, the job's page in another: both follow the job at once
    list_tab = browser.driver.current_window_handle
    browser.record_progress(row)
    browser.driver.switch_to.new_window("tab")
    job_tab = browser.driver.current_window_handle
    browser.open(f"/jobs/{job_id}")
    browser.record_progress("article.job")
    browser.wait_for(lambda: _advanced(browser.recorded_progress()), timeout=180, what="the job page's bar to move")
    browser.screenshot("job-running")

    browser.driver.switch_to.window(list_tab)
    browser.screenshot("jobs-running")
    samples = browser.wait_for(
        lambda: (found := browser.recorded_progress()) and found[-1][0] in TERMINAL and found,
        timeout=120,
        what="the job to end in the list",
    )
    _, _, total = samples[-1]
    assert samples[-1] == ("completed", total, total)
    assert _advanced(samples)  # seen moving in this page, which never reloaded (its recorder is still there)
    assert [done for _, done, _ in samples] == sorted(done for _, done, _ in samples)
    assert browser.css(f"{row} [data-field=eta]").text == "0 s"
    browser.screenshot("jobs-completed")
    browser.assert_clean()

    browser.driver.switch_to.window(job_tab)
    browser.wait_for(  # at its end the job's page reloads once, to show the results
        lambda: browser.recorded_progress() is None and browser.all_css("ul.downloads a"),
        timeout=60,
        what="the job page to show the results",
    )
    assert browser.progress("article.job") == ("completed", total, total)
    links = {a.text: a.get_attribute("href") for a in browser.all_css("ul.downloads a")}
    assert set(links) == {"samples.parquet", "metrics.parquet", "metrics.csv", "spec.json", "report.html"}
    assert httpx.get(links["spec.json"], headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 200
    with browser.report_frame(job_id) as frame:
        assert "watched job" in frame.css("h1").text
    browser.screenshot("job-completed")
    browser.assert_clean()
    browser.driver.close()
    browser.driver.switch_to.window(list_tab)


def test_a_two_point_sweep_gets_a_sweep_figure_with_a_line_per_condition(logged_in: Browser, api: httpx.Client) -> None:
    """The embedded model twice (the real engine: ``real_engine``), labelled as two sizes: the report embedded in
    the job's page draws winogender's ρ against params_b, one line (and band) per condition."""
    browser = logged_in
    spec = tiny_spec(name="two-point sweep", benchmarks={"winogender": {"limit": 3}}, conditions=["Q", "Q+IF"])
    spec["models"] = [
        {"name": MODEL, "alias": alias, "labels": {"params_b": size}, "engine_options": {"real_engine": True}}
        for alias, size in (("smol-small", 0.135), ("smol-large", 0.36))
    ]
    job_id = submit(api, spec)
    assert wait_for_state(api, job_id, timeout=600) == "completed"
    with browser.report_frame(job_id) as report:
        figure = report.css('figure.sweep.headlines[data-benchmark="winogender"]')
        assert figure.get_attribute("data-x") == "params_b"
        lines = figure.find_elements("css selector", 'g[id*="-line-"]')
        assert [line.get_attribute("id") for line in lines] == [
            "ms-winogender-headlines-p0-line-0-q",
            "ms-winogender-headlines-p0-line-1-q-if",
        ]
        assert all(line.rect["width"] > 10 for line in lines)  # drawn: each spans the two sizes
        assert len(figure.find_elements("css selector", 'g[id*="-band-"]')) == 2
        legend = figure.find_elements("css selector", 'g[id^="ms-winogender-headlines-legend-"] text')
        assert [entry.text for entry in legend] == ["Q", "Q+IF"]
        ticks = {t.text for t in figure.find_elements("css selector", "text")}
        assert {"0.135", "0.36", "pearson_r"} <= ticks
        assert "interval" in figure.find_element("css selector", "figcaption").text
        assert report.css('figure.sweep.effects[data-benchmark="winogender"]')
    browser.screenshot("job-sweep")
    browser.assert_clean()


def test_the_submit_form_shows_a_422_at_the_field_it_names(logged_in: Browser, api: httpx.Client) -> None:
    browser = logged_in
    browser.open("/submit")
    area = browser.css("textarea#spec")
    bad = "name: typo\nmodels:\n  - name: smollm2-135m-instruct\n    dtype: float64\nbenchmarks:\n  winogender: {}\n"
    browser.js("arguments[0].value = arguments[1]", area, bad)
    browser.css("form.submit button[type=submit]").click()
    alert = browser.wait_for(lambda: browser.css("#spec-error"), timeout=20, what="the error")
    assert alert.get_attribute("data-error-field") == "models.0.dtype"
    assert browser.css("#spec-error code.field").text == "models.0.dtype"
    assert "got 'float64'" in alert.text
    assert browser.css("#spec-error .line.marked").text.endswith("dtype: float64")
    area = browser.css("textarea#spec")
    assert area.get_attribute("aria-invalid") == "true"
    assert area.get_property("value") == bad  # kept, to be fixed
    selected = browser.js("const a = arguments[0]; return a.value.slice(a.selectionStart, a.selectionEnd)", area)
    assert selected == "    dtype: float64"  # the script points at the line
    browser.screenshot("submit-422")
    browser.assert_clean(status=422)

    browser.js("arguments[0].value = arguments[1]", area, bad.replace("float64", "float32"))
    browser.css("form.submit button[type=submit]").click()
    browser.wait_for(lambda: browser.path.startswith("/jobs/job_"), timeout=20, what="the job page")
    job_id = browser.path.removeprefix("/jobs/")
    assert browser.css("h1").text.startswith("typo")
    browser.css("article.job form button.danger").click()  # the cancel button, a form post
    browser.wait_for(
        lambda: browser.css("article.job").get_attribute("data-state") in ("cancelling", "cancelled"),
        timeout=20,
        what="the job to be cancelled",
    )
    assert wait_for_state(api, job_id) == "cancelled"
    browser.assert_clean()


def test_another_keys_jobs_stay_invisible(logged_in: Browser, server: LiveServer) -> None:
    browser = logged_in
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY_B}"}) as other:
        theirs = submit(other, console_spec("job of key b"))
        other.post(f"/v1/jobs/{theirs}/cancel")
    browser.open("/")
    assert theirs not in browser.driver.page_source
    assert "job of key b" not in browser.driver.page_source
    browser.assert_clean()
    browser.open(f"/jobs/{theirs}")
    assert browser.css("h1").text == "Not found"
    assert "job of key b" not in browser.driver.page_source
    browser.screenshot("not-found")
    browser.assert_clean(status=404)


def test_a_cross_site_form_post_is_refused(logged_in: Browser, api: httpx.Client, server: LiveServer) -> None:
    browser = logged_in
    before = api.get("/v1/jobs").json()["count"]
    browser.open("/")  # logged in, with a live session cookie
    with cross_site_page(f"{server.url}/submit", {"spec": "models: [{name: smollm2-135m-instruct}]"}) as page:
        browser.driver.get(page)  # another site (localhost, not 127.0.0.1) posts a form to the console
        browser.wait_for(lambda: browser.path == "/submit", timeout=20, what="the forged post to land")
    assert browser.css("h1").text == "Refused"
    assert "cross-site request refused" in browser.css("main").text
    browser.screenshot("cross-site-refused")
    assert api.get("/v1/jobs").json()["count"] == before
    browser.forget()  # the other site's page is meant to be external
    browser.open("/")
    assert browser.path == "/"  # and the session survived the forged request


def test_pages_load_clean_and_the_key_is_in_no_url_and_no_log(
    logged_in: Browser, api: httpx.Client, server: LiveServer
) -> None:
    browser = logged_in
    job_id = api.get("/v1/jobs", params={"state": "completed"}).json()["data"][0]["id"]
    for name, path in (("jobs", "/"), ("jobs-filtered", "/?state=completed"), ("submit", "/submit")):
        browser.open(path)
        browser.screenshot(f"page-{name}")
        browser.assert_clean()
    with browser.report_frame(job_id):  # the job's page, once its report has loaded
        pass
    browser.screenshot("page-job")
    browser.assert_clean()
    browser.collect()
    for key in (KEY_A, KEY_B, WRONG_KEY):
        assert not [url for url in browser.urls if key in url]
        assert key not in Path(server.log_path).read_text(errors="replace")
    assert "GET /jobs/" in server.log_tail(200_000)  # the access log is on, and was read


def test_logging_out_ends_the_session(logged_in: Browser, api: httpx.Client) -> None:
    browser = logged_in
    browser.css("form.logout button").click()
    browser.wait_for(lambda: browser.path.startswith("/login"), timeout=20, what="the login page")
    browser.open("/")
    assert browser.path == "/login"
    browser.assert_clean()
