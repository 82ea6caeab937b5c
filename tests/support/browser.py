"""Debian's headless chromium driven by Selenium, and a loopback server for sample pages.

`scripts/browser.sh` (run by `make test`) installs chromium and chromedriver where they are
missing; the driver is named explicitly, so Selenium never tries to download one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clickstream.kernel.paths import PROJECT_ROOT
from clickstream.local.settings import LOOPBACK
from clickstream.tools.browser import browser_binaries, headless_chromium

ARTIFACTS = Path(os.environ.get("CLICKSTREAM_TEST_ARTIFACTS", PROJECT_ROOT / "test-artifacts"))
"""Where browser tests leave their screenshots (CI keeps them)."""

__all__ = ["browser_binaries", "headless_chromium", "page_server"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def page_server(root: Path) -> Iterator[str]:
    """Serves `root` on a free loopback port: a site of the test's own, another origin than
    the collector's."""
    server = ThreadingHTTPServer((LOOPBACK, 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
