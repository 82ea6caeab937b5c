"""What the loopback fault proxies share: a threaded server and request forwarding."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
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


_HOP_BY_HOP = ("content-length", "transfer-encoding", "connection")


class ProxyHandler(BaseHTTPRequestHandler):
    """What every proxy's request handler shares: quiet, HTTP/1.1, read, answer, relay."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def request_body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def relay(self, proxy: LoopbackProxy, body: bytes) -> None:
        """Forward this request upstream and answer with what came back."""
        status, headers, payload = proxy.forward(
            self.command, self.path, dict(self.headers.items()), body
        )
        self.answer(status, {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP}, payload)


class ProxyFixture:
    """A proxy used as a context manager; subclasses set `_proxy` in their `__init__`."""

    _proxy: LoopbackProxy

    @property
    def endpoint(self) -> str:
        return self._proxy.endpoint

    def __enter__(self) -> Self:
        self._proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proxy.close()
