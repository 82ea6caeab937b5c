"""A loopback proxy that holds every request while it is closed: an endpoint gone silent.

Used to cut one worker off from KCL's lease table without stopping the process: its KCL
daemon cannot renew its leases (so another worker takes them over) and its record
processors' lease checks wait, then learn the truth when the gate opens.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_proxy import LoopbackProxy, ProxyFixture, ProxyHandler


class GateProxy(ProxyFixture):
    def __init__(self, upstream: str) -> None:
        self._open = threading.Event()
        self._open.set()
        self._count_lock = threading.Lock()
        self.held = 0
        """Requests that arrived while the gate was closed."""
        self._proxy = LoopbackProxy(upstream, self._handler())

    def close_gate(self) -> None:
        self._open.clear()

    def open_gate(self) -> None:
        self._open.set()

    def __exit__(self, *exc: object) -> None:
        self._open.set()  # release whatever still waits, then stop
        super().__exit__(*exc)

    def _hold_while_closed(self) -> None:
        if not self._open.is_set():
            with self._count_lock:
                self.held += 1
            self._open.wait(timeout=600)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(ProxyHandler):
            def do_POST(self) -> None:
                body = self.request_body()
                gate._hold_while_closed()
                self.relay(gate._proxy, body)

        return Handler
