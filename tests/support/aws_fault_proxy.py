"""A loopback HTTP proxy in front of moto that fails a chosen share of DynamoDB and S3 calls.

Each request is forwarded to moto, or answered with a fault instead, as AWS would: DynamoDB
gets a 400 `ThrottlingException` or a 500 `InternalServerError`, S3 a 503 `SlowDown` or a
500 `InternalError`. The share of failed calls is `base_rate`, raised to `burst_rate` for
`burst_seconds` out of every `period_seconds`. A faulted call never reaches moto, so a
retry is the only way its effect can happen.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_proxy import LoopbackProxy, ProxyFixture, ProxyHandler

_DYNAMODB_FAULTS = [
    (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate of requests exceeds"),
    (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
]
_S3_FAULTS = [(503, "SlowDown", "Please reduce your request rate."), (500, "InternalError", "")]


class AwsFaultProxy(ProxyFixture):
    def __init__(
        self,
        upstream: str,
        *,
        base_rate: float,
        burst_rate: float = 0.0,
        burst_seconds: float = 0.0,
        period_seconds: float = 10.0,
        seed: int = 1,
    ) -> None:
        self.base_rate = base_rate
        self.burst_rate = burst_rate
        self.burst_seconds = burst_seconds
        self.period_seconds = period_seconds
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.forwarded: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self._proxy = LoopbackProxy(upstream, self._handler())

    def _fault_now(self) -> bool:
        phase = (time.monotonic() - self._started) % self.period_seconds
        rate = self.burst_rate if phase < self.burst_seconds else self.base_rate
        with self._lock:
            return self._rng.random() < rate

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(ProxyHandler):
            def _handle(self) -> None:
                body = self.request_body()
                target = self.headers.get("X-Amz-Target", "")
                service = "dynamodb" if target.startswith("DynamoDB_") else "s3"
                operation = target.split(".")[-1] if target else f"{self.command} object"
                if proxy._fault_now():
                    with proxy._lock:
                        proxy.faulted[f"{service}:{operation}"] += 1
                    if service == "dynamodb":
                        status, kind, message = proxy._rng.choice(_DYNAMODB_FAULTS)
                        payload = json.dumps({"__type": kind, "message": message}).encode()
                        self.answer(status, {"Content-Type": "application/x-amz-json-1.0"}, payload)
                    else:
                        status, code, message = proxy._rng.choice(_S3_FAULTS)
                        xml = (
                            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                            f"<Message>{message}</Message></Error>"
                        )
                        self.answer(status, {"Content-Type": "application/xml"}, xml.encode())
                    return
                with proxy._lock:
                    proxy.forwarded[f"{service}:{operation}"] += 1
                self.relay(proxy._proxy, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
