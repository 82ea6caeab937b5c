"""What the loopback fault proxies share: a threaded server and request forwarding."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from clickstream.local.settings import LOOPBACK


class LoopbackProxy:
    """A server on a free loopback port that forwards to `upstream` what it does not answer."""

    def __init__(self, upstream: str, handler: type[BaseHTTPRequestHandler]) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname or LOOPBACK, target.port or 80)
        self._server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            if body or method in ("POST", "PUT"):
                headers["Content-Length"] = str(len(body))
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()
