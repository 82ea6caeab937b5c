"""A loopback proxy in front of the emulator's S3 that holds each PUT of a lake manifest
until the test lets it through, or drops it: a compaction stopped exactly between writing
its Parquet files and publishing them."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

from tests.support.loopback_proxy import LoopbackProxy, ProxyFixture, ProxyHandler

MANIFESTS = "/lake/manifests/"


class ManifestGate(ProxyFixture):
    def __init__(self, upstream: str) -> None:
        self._lock = threading.Condition()
        self._waiting: list[threading.Event] = []
        self._drop = False
        self._answered: dict[int, threading.Event] = {}
        self._proxy = LoopbackProxy(upstream, self._handler())

    def wait_for_held(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` manifest PUTs are held here."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._waiting) >= count, timeout):
                raise AssertionError(f"{len(self._waiting)} manifest PUTs held, not {count}")

    def release_one(self) -> None:
        """Let the oldest held PUT through to S3, and wait until S3 has answered it: the
        emulator checks a put's condition and stores it in two steps, so two conditional
        puts let through at once could both pass (S3 itself decides them atomically)."""
        with self._lock:
            released = self._waiting.pop(0)
            answered = self._answered[id(released)] = threading.Event()
            released.set()
        if not answered.wait(timeout=60):
            raise AssertionError("the released manifest PUT got no answer from S3 in 60 s")

    def drop_all(self) -> None:
        """Answer every held PUT (and any later one) without passing it on."""
        with self._lock:
            self._drop = True
            for waiting in self._waiting:
                waiting.set()
            self._waiting.clear()

    def __exit__(self, *exc: object) -> None:
        self.drop_all()
        super().__exit__(*exc)

    def _hold(self) -> tuple[bool, threading.Event | None]:
        """Wait for the test: whether the request is to be passed on, and the event to set
        once S3 has answered it."""
        released = threading.Event()
        with self._lock:
            if self._drop:
                return False, None
            self._waiting.append(released)
            self._lock.notify_all()
        released.wait(timeout=300)
        with self._lock:
            return not self._drop, self._answered.get(id(released))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gate = self

        class Handler(ProxyHandler):
            def _pass(self) -> None:
                body = self.request_body()
                if self.command != "PUT" or MANIFESTS not in self.path:
                    self.relay(gate._proxy, body)
                    return
                passed, answered = gate._hold()
                if not passed:
                    self.answer(503, {}, b"")
                    return
                try:
                    self.relay(gate._proxy, body)
                finally:
                    if answered is not None:
                        answered.set()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _pass

        return Handler
