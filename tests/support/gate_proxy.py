"""A loopback proxy that holds every request while it is closed: an endpoint gone silent.

Used to cut one worker off from KCL's lease table without stopping the process: its KCL
daemon cannot renew its leases (so another worker takes them over) and its record
processors' lease checks wait, then learn the truth when the gate opens.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback_proxy import LoopbackProxy


class GateProxy:
    def __init__(self, upstream: str) -> None:
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.held = 0
        """Requests that arrived while the gate was closed."""
        self._proxy = LoopbackProxy(upstream, self._handler())

    @property
    def endpoint(self) -> str:
        return self._proxy.endpoint

    def close_gate(self) -> None:
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def __enter__(self) -> GateProxy:
        self._proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.set()
        self._proxy.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not gate._open.is_set():
                    with gate._lock:
                        gate.held += 1
                    gate._open.wait(timeout=600)
                status, headers, answer = gate._proxy.forward(
                    "POST", self.path, dict(self.headers.items()), body
                )
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler
