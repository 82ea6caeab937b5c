"""A loopback HTTP proxy in front of kinesis-mock that fails chosen PutRecords entries.

For a PutRecords call it forwards only the entries it lets through, then answers with the
emulator's results for those and a ProvisionedThroughputExceededException for the others,
exactly as Kinesis reports a partial failure. Every call's entries are recorded, so a test
can see what a client sent again.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from clickstream.local.settings import LOOPBACK

FailurePolicy = Callable[[int, int, bytes], bool]
"""(call number, entry index, entry data) -> whether to fail that entry."""


class KinesisFaultProxy:
    def __init__(self, upstream: str, should_fail: FailurePolicy) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname or LOOPBACK, target.port or 80)
        self._should_fail = should_fail
        self.put_records_calls: list[list[bytes]] = []
        self.failed_entries: list[bytes] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> KinesisFaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _put_records(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
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
            status, _, upstream_body = self._forward(
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

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                target = self.headers.get("X-Amz-Target", "")
                if target.endswith(".PutRecords"):
                    status, payload = proxy._put_records(headers, body)
                    content_type = "application/x-amz-json-1.1"
                else:
                    status, upstream_headers, payload = proxy._forward(
                        "POST", self.path, headers, body
                    )
                    content_type = dict(upstream_headers).get(
                        "Content-Type", "application/x-amz-json-1.1"
                    )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
