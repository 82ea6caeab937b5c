"""Debian's headless chromium driven by Selenium: for the tests and the benches that open
our pages. `scripts/browser.sh` (run by `make test`) installs chromium and chromedriver where
they are missing; the driver is named explicitly, so Selenium never tries to download one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = "chromium and chromedriver are needed: scripts/browser.sh installs them"
    assert chromium, missing
    assert driver, missing
    return chromium, driver


@contextmanager
def headless_chromium(width: int = 1200, height: int = 800) -> Iterator[Any]:
    chromium, driver_path = browser_binaries()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch anything
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
