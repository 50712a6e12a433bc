"""A real browser for the console's tests: Debian's headless chromium, driven by Selenium through chromium-driver.

Both binaries are given by path (``/usr/bin/chromium``, ``/usr/bin/chromedriver``; override with
``MORALSCOPE_CHROMIUM`` / ``MORALSCOPE_CHROMEDRIVER``), so Selenium Manager never looks for, or
downloads, a browser. ``make test`` installs the two Debian packages when they are missing.

:class:`Browser` keeps what the pages did: every request's URL (from Chrome's performance log, the
DevTools ``Network`` events) and every console message, so a test can assert that a page made no
request beyond the server under test and logged no error. Screenshots (full pages) go to
``build/screenshots/`` for people to look at; the run prints the folder. Helpers for the console's
pages (log in, read a progress bar, enter a job's embedded report), for jobs through the API, and a page
on another site that forges a form post complete it.
"""

from __future__ import annotations

import html
import http.server
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from service_support import REPO_ROOT, tiny_spec, wait_until

CHROMIUM = Path(os.environ.get("MORALSCOPE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MORALSCOPE_CHROMEDRIVER", "/usr/bin/chromedriver"))
SCREENSHOTS = REPO_ROOT / "build" / "screenshots"
WINDOW = (1280, 900)
TAKEN: list[Path] = []
"""Screenshots saved in this test session (the terminal summary names their folder)."""
TERMINAL = ("completed", "failed", "cancelled")


def console_spec(name: str, *, delay_s: float = 0.4, **overrides: Any) -> dict[str, Any]:
    """The tiny spec for a server on the fake engine (tests/support/fake_engine.py): one request per shard and
    ``delay_s`` per batch, so a job's progress moves in 26 visible steps."""
    spec = tiny_spec(name=name, shard_size=1, **overrides)
    for model in spec["models"]:
        model["engine_options"] = {"delay_s": delay_s}
    return spec


def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
    """Submit through the JSON API; the job's id."""
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_for_state(client: httpx.Client, job_id: str, states: tuple[str, ...] = TERMINAL, timeout: float = 240) -> str:
    """Poll the API until the job is in one of ``states``; that state."""
    state: str = wait_until(
        lambda: (s := client.get(f"/v1/jobs/{job_id}").json()["state"]) in states and s,
        timeout=timeout,
        interval=0.5,
        what=f"job {job_id} to reach {states}",
    )
    return state


@contextmanager
def cross_site_page(action: str, fields: dict[str, str]) -> Iterator[str]:
    """The URL of a page on another site (``localhost``, where the console is ``127.0.0.1``) that posts a
    form with ``fields`` to ``action`` as soon as it loads: what a forged cross-site request looks like."""
    inputs = "".join(f'<input name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items())
    body = (
        f'<!doctype html><title>another site</title><form id="f" method="post" action="{html.escape(action)}">'
        f"{inputs}</form><script>document.getElementById('f').submit()</script>"
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{site.server_address[1]}/"
    finally:
        site.shutdown()


_RECORDER = """
const scope = arguments[0];
window.consoleTestSamples = [];
const sample = () => {
  const root = document.querySelector(scope);
  const bar = root && root.querySelector('progress[data-field="progress"]');
  if (bar) window.consoleTestSamples.push([root.dataset.state, Math.round(bar.value), Math.round(bar.max)]);
};
sample();
window.setInterval(sample, 200);
"""


class Browser:
    """One headless chromium window on the server at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
        if missing:
            pytest.fail(
                f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
                "`make test` installs them as root, else run `sudo apt-get install chromium chromium-driver`"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless=new",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--lang=en-US",
            *(["--no-sandbox"] if os.geteuid() == 0 else []),
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.base_url = base_url.rstrip("/")
        self.origin = urlsplit(self.base_url).netloc
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        self.driver.set_page_load_timeout(60)
        self.urls: list[str] = []
        """Every URL the pages requested, in order (read from the performance log)."""
        self.console: list[dict[str, Any]] = []
        """Every console message the pages logged."""
        self._url_mark = self._console_mark = 0

    # -- driving ---------------------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        """The current page's path and query (what the address bar shows past the origin)."""
        parts = urlsplit(self.driver.current_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all_css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
        """Poll ``condition`` (exceptions count as not yet) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = condition()
            except Exception as exc:  # the page may be mid-update or mid-reload
                last_error, value = exc, None
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} on {self.path} (last error: {last_error})")

    # -- the console's pages ------------------------------------------------------------------------
    def log_in(self, key: str) -> None:
        """Fill in and send the login form the browser is on."""
        self.css("#key").send_keys(key)
        self.css("form.login button[type=submit]").click()
        self.wait_for(lambda: not self.path.startswith("/login"), timeout=20, what="the login to finish")

    def progress(self, scope: str) -> tuple[str, int, int]:
        """(state, completed, total) as the page shows them in ``scope`` (a list row or the job's article)."""
        root = self.css(scope)
        bar = root.find_element("css selector", 'progress[data-field="progress"]')
        return (
            root.get_attribute("data-state"),
            int(float(bar.get_property("value"))),
            int(float(bar.get_property("max"))),
        )

    def record_progress(self, scope: str) -> None:
        """Sample, in the page itself, what ``scope``'s progress bar shows, five times a second, from now on."""
        self.js(_RECORDER, scope)

    def recorded_progress(self) -> list[tuple[str, int, int]] | None:
        """The (state, completed, total) samples of :meth:`record_progress`; None once the page has reloaded
        (a reload starts a new page, without the recorder)."""
        samples = self.js("return window.consoleTestSamples || null")
        return None if samples is None else [(state, done, total) for state, done, total in samples]

    @contextmanager
    def report_frame(self, job_id: str) -> Iterator[Browser]:
        """Open a completed job's page and work inside its embedded report."""
        self.open(f"/jobs/{job_id}")
        self.driver.switch_to.frame(self.css("iframe.report"))
        try:
            self.wait_for(lambda: self.css("h1").text.startswith("moralscope report"), timeout=20, what="the report")
            yield self
        finally:
            self.driver.switch_to.default_content()

    # -- evidence --------------------------------------------------------------------------------
    def screenshot(self, name: str) -> Path:
        """Save the whole page as build/screenshots/<name>.png (the window grows to the page's height for it,
        so frames below the fold are painted too)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        width, height = WINDOW
        page_height = int(self.js("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, max(height, page_height))
        try:
            time.sleep(0.3)  # let frames paint at the new size
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(width, height)
        TAKEN.append(path)
        return path

    def collect(self) -> None:
        """Move the browser's new log entries into :attr:`urls` and :attr:`console`."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.urls.append(message["params"]["request"]["url"])
        self.console.extend(self.driver.get_log("browser"))

    def problems(self, *, since_url: int = 0, since_console: int = 0, status: int | None = None) -> list[str]:
        """Console errors and requests to anywhere but the server under test, after the given positions.

        ``status``: the page is meant to answer with this error status (a form sent back with its
        errors, a 404 page); Chrome's note of exactly that status, for the page itself, is expected.
        """
        self.collect()
        expected = (
            f"{self.driver.current_url} - Failed to load resource: the server responded with a status of {status} "
            if status is not None
            else None
        )
        found = [
            f"console {entry['level']}: {entry['message']}"
            for entry in self.console[since_console:]
            if entry["level"] in ("SEVERE", "ERROR") and not (expected and entry["message"].startswith(expected))
        ]
        for url in self.urls[since_url:]:
            parts = urlsplit(url)
            if parts.scheme in ("data", "about", "blob"):
                continue
            if parts.scheme not in ("http", "https") or parts.netloc != self.origin:
                found.append(f"external request: {url}")
        return found

    def assert_clean(self, *, status: int | None = None) -> None:
        """No console error and no request beyond the server, since the last check (``status``: see problems)."""
        found = self.problems(since_url=self._url_mark, since_console=self._console_mark, status=status)
        self.forget()
        assert not found, "\n".join(found)

    def forget(self) -> None:
        """Start the next :meth:`assert_clean` from here (e.g. after a page that is meant to fail)."""
        self.collect()
        self._url_mark, self._console_mark = len(self.urls), len(self.console)

    def quit(self) -> None:
        self.driver.quit()
