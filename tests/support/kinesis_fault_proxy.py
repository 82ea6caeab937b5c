"""A loopback HTTP proxy in front of kinesis-mock that fails chosen PutRecords entries.

For a PutRecords call it forwards only the entries it lets through, then answers with the
emulator's results for those and a ProvisionedThroughputExceededException for the others,
exactly as Kinesis reports a partial failure. Every call's entries are recorded, so a test
can see what a client sent again.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback_proxy import LoopbackProxy, ProxyFixture, ProxyHandler

FailurePolicy = Callable[[int, int, bytes], bool]
"""(call number, entry index, entry data) -> whether to fail that entry."""


class KinesisFaultProxy(ProxyFixture):
    def __init__(self, upstream: str, should_fail: FailurePolicy) -> None:
        self._should_fail = should_fail
        self.delay_seconds = 0.0
        """How long each PutRecords call is held before it is handled (a slow stream)."""
        self.put_records_calls: list[list[bytes]] = []
        self.failed_entries: list[bytes] = []
        self._lock = threading.Lock()
        self._proxy = LoopbackProxy(upstream, self._handler())

    def _put_records(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        request: dict[str, Any] = json.loads(body)
        entries = request["Records"]
        data = [base64.b64decode(e["Data"]) for e in entries]
        with self._lock:
            call = len(self.put_records_calls)
            self.put_records_calls.append(data)
        failing = {i for i, d in enumerate(data) if self._should_fail(call, i, d)}
        passed = [e for i, e in enumerate(entries) if i not in failing]
        results: list[dict[str, Any]] = []
        if passed:
            # The signature covers the body: the emulator does not check it, AWS would.
            status, _, upstream_body = self._proxy.forward(
                "POST", "/", headers, json.dumps({**request, "Records": passed}).encode()
            )
            if status != 200:
                return status, upstream_body
            results = json.loads(upstream_body)["Records"]
        merged, upstream = [], iter(results)
        for index in range(len(entries)):
            if index in failing:
                with self._lock:
                    self.failed_entries.append(data[index])
                merged.append(
                    {
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": "Rate exceeded for shard (injected)",
                    }
                )
            else:
                merged.append(next(upstream))
        answer = {"FailedRecordCount": len(failing), "Records": merged}
        return 200, json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(ProxyHandler):
            def do_POST(self) -> None:
                body = self.request_body()
                headers = dict(self.headers.items())
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith(".PutRecords"):
                    status, payload = proxy._put_records(headers, body)
                    content_type = "application/x-amz-json-1.1"
                else:
                    status, upstream_headers, payload = proxy._proxy.forward(
                        "POST", self.path, headers, body
                    )
                    content_type = dict(upstream_headers).get(
                        "Content-Type", "application/x-amz-json-1.1"
                    )
                self.answer(status, {"Content-Type": content_type}, payload)

        return Handler
