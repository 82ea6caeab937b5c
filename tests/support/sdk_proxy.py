"""A loopback proxy in front of the collector that counts the requests an SDK makes, by path,
and can answer the next few with 503 and Retry-After (back-pressure, as the collector gives
it) without passing them on: how an SDK's retries are seen and counted."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_proxy import LoopbackProxy, ProxyFixture, ProxyHandler


class SdkProxy(ProxyFixture):
    def __init__(self, upstream: str) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        """POSTs seen, by path (a retry counts again)."""
        self.preflights: Counter[str] = Counter()
        """CORS preflights (OPTIONS) seen, by path."""
        self.answered_503 = 0
        self._refuse_next = 0
        self._proxy = LoopbackProxy(upstream, self._handler())

    def refuse_next(self, count: int) -> None:
        """Answer the next `count` POSTs with 503 and Retry-After: 1, passing nothing on."""
        with self._lock:
            self._refuse_next = count

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.preflights.clear()
            self.answered_503 = 0

    def _take_refusal(self, method: str, path: str) -> bool:
        with self._lock:
            if method == "OPTIONS":
                self.preflights[path] += 1
                return False
            self.requests[path] += 1
            if method == "POST" and self._refuse_next > 0:
                self._refuse_next -= 1
                self.answered_503 += 1
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(ProxyHandler):
            def _serve(self) -> None:
                body = self.request_body()
                if proxy._take_refusal(self.command, self.path.split("?")[0]):
                    answer = {"success": False, "code": "service_unavailable", "message": "busy"}
                    self.answer(
                        503,
                        {
                            "Content-Type": "application/json",
                            "Retry-After": "1",
                            "Access-Control-Allow-Origin": "*",
                        },
                        json.dumps(answer).encode(),
                    )
                    return
                self.relay(proxy._proxy, body)

            do_GET = do_POST = do_OPTIONS = _serve

        return Handler
