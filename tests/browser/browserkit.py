"""Driving the browser verifier (custody/assets/verify.html) in headless Chromium.

The page is opened from a file:// URL, exactly as counsel would open it from the
bundle, and driven only through its stable hooks (issue 14, docs/verify-bundle.md):
`#bundle` (a .zip), `#bundle-folder` (a bundle folder, webkitdirectory), `#trust`
(the log's verifier key), `#verify`, `#verdict` (exactly VERIFIED or NOT VERIFIED when
done) and `#problems` (one element per failure).

Chromium's performance log records every network request the page makes
(`Network.requestWillBeSent`); `Page.requests` keeps them all so that a test can
assert that only the page itself (file://) and in-page data:/blob: URLs were loaded.

Used by tests/browser/test_browser_verifier.py and by `make bench`
(tests/browser/browser_bench.py).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# CUSTODY_VERIFIER_PAGE: another build of the page to test (default: the shipped one).
PAGE = Path(os.environ.get("CUSTODY_VERIFIER_PAGE") or ROOT / "custody" / "assets" / "verify.html")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:")
VERDICTS = ("VERIFIED", "NOT VERIFIED")


def chromium_paths() -> tuple[str, str] | None:
    """(browser, chromedriver) when both are installed (Debian: chromium, chromium-driver)."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def why_no_browser() -> str | None:
    """None when a browser test can run; else the reason, for pytest.skip."""
    if chromium_paths() is None:
        return "chromium and chromedriver are not installed (.ci/sysdeps.sh installs them)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Outcome:
    """What the page showed after one verification."""

    verdict: str
    problems: list[dict[str, str]]  # {"text", "check", "where"}: check/where from data-*
    seconds: float
    body: str = ""  # the whole page's text: per exhibit what was checked, and what not

    def texts(self) -> list[str]:
        return [p["text"] for p in self.problems]


@dataclass
class Page:
    """One headless Chromium with the verifier page; `verify` reloads it each time."""

    driver: Any
    url: str
    requests: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, page: Path = PAGE) -> Page:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        paths = chromium_paths()
        assert paths is not None, why_no_browser()
        browser, chromedriver = paths
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        return cls(driver, page.resolve().as_uri())

    def close(self) -> None:
        self.driver.quit()

    def _drain_network(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])

    def foreign_requests(self) -> list[str]:
        """Every request so far to anything but the page itself, data: or blob:."""
        self._drain_network()
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def verify(self, bundle: Path, key: str, *, timeout: float = 120.0) -> Outcome:
        """Open the page afresh, give it `bundle` (a folder or a .zip) and `key`, press
        verify and wait for the verdict."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        d = self.driver
        d.get(self.url)
        hook = "bundle-folder" if bundle.is_dir() else "bundle"
        d.find_element(By.ID, hook).send_keys(str(bundle.resolve()))
        trust = d.find_element(By.ID, "trust")
        trust.clear()
        trust.send_keys(key)
        assert d.find_element(By.ID, "verdict").text.strip() == "", "a verdict before verifying"
        start = time.perf_counter()
        d.find_element(By.ID, "verify").click()

        def done(drv: Any) -> str | None:
            text = str(drv.find_element(By.ID, "verdict").text).strip()
            return text if text in VERDICTS else None

        verdict = str(WebDriverWait(d, timeout, poll_frequency=0.05).until(done))
        seconds = time.perf_counter() - start
        problems = d.execute_script(
            "return [...document.getElementById('problems').children].map(e => ({"
            "text: e.textContent.trim(), check: e.dataset.check || '',"
            " where: e.dataset.where || ''}));"
        )
        body = str(d.execute_script("return document.body.innerText;"))
        self._drain_network()
        return Outcome(verdict, list(problems), seconds, body)
