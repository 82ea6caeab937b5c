"""uvicorn's httptools protocol with the two limits it leaves out: a deadline and a size for
each request's head (request line and headers).

Without them a connection that sends nothing, or sends its headers a byte at a time, is held
for ever, and one unterminated header grows without bound in memory (httptools keeps the
partial value). The body has its own deadline in the app (`Collector.body`), and uvicorn's
`limit_concurrency` caps connections. Behind an ALB the balancer's own limits apply first
(64 KB of headers, its idle timeout); these are the server's own, for every other way in.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 23\r\nconnection: close\r\n"
    b"\r\nrequest head too large\n"
)


def guarded_protocol(*, head_timeout_seconds: float, max_head_bytes: int) -> type[Any]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _head_bytes = 0
        _reading_head = True

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head(head_timeout_seconds)

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._reading_head:
                self._head_bytes += len(data)
            super().data_received(data)
            # Checked after the parser took the data: a chunk that also holds the body (or a
            # pipelined request) does not count against the head once its headers ended.
            if self._reading_head and self._head_bytes > max_head_bytes:
                self._stop_deadline()
                if not self.transport.is_closing():
                    self.transport.write(TOO_LARGE)
                    self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_head = True

        def on_headers_complete(self) -> None:
            self._reading_head = False
            self._head_bytes = 0
            self._stop_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # its head is in: the next request is running
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                # The next request's head: uvicorn's keep-alive timer closes an idle
                # connection, but any byte cancels it; this one only the headers' end does.
                self._await_head(self.timeout_keep_alive + head_timeout_seconds)

        def _await_head(self, seconds: float) -> None:
            self._stop_deadline()
            self._reading_head = True
            self._head_bytes = 0
            self._head_deadline = self.loop.call_later(seconds, self._head_too_slow)

        def _stop_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if self._reading_head and not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol
