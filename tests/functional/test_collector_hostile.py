"""The collector against hostile clients, on loopback: a real server process, raw sockets
where a client would misbehave below HTTP, records read back from kinesis-mock.

Each test is one finding of a hostile-client review: what it did before, in its docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickstream.kernel.events import carried_refusal
from clickstream.local.stack import LocalStackState
from tests.support.collector import (
    WRITE_KEYS,
    CollectorProcess,
    basic,
    new_stream,
    own_event,
    running_collector,
    stream_contents,
)
from tests.support.json_ish import event_texts, strictly_read
from tests.support.kinesis_fault_proxy import KinesisFaultProxy

KEY = WRITE_KEYS[0]
HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def stream(local_stack: LocalStackState) -> str:
    return new_stream(local_stack)


@pytest.fixture(scope="module")
def collector(
    local_stack: LocalStackState, stream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorProcess]:
    with running_collector(
        local_stack,
        stream,
        tmp_path_factory.mktemp("hostile"),
        head_timeout_seconds=HEAD_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
        max_head_bytes=16 * 1024,
        trusted_proxies="127.0.0.1",
    ) as running:
        yield running


def post(collector: CollectorProcess, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{collector.url}/v1/events",
        content=body,
        headers={"Content-Type": "application/json", **basic(KEY), **headers},
        timeout=10,
    )


def address(collector: CollectorProcess) -> tuple[str, int]:
    host, port = collector.url.removeprefix("http://").split(":")
    return host, int(port)


def closed_within(connection: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection within `seconds`, and what it sent first."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


def stream_ids(state: LocalStackState, stream: str) -> tuple[set[str], list[str]]:
    """The event ids in the stream, and the reasons of the refusals passed on."""
    events, refusals = stream_contents(state, stream)
    reasons = [carried_refusal(r.data) for r in refusals]
    return (
        {json.loads(r.data)["event_id"] for r in events},
        [reason.reason.value for reason in reasons if reason is not None],
    )


# Finding 2: a tiny request forced a huge answer (one `rejected` entry per element).


def test_many_invalid_elements_get_a_bounded_answer_and_too_many_get_a_400(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    """Before: a 619-byte gzip body of one event and ~250,000 invalid elements got a 200 of
    23.4 MB, and each element went to the stream as a refusal."""
    # GIVEN one valid event and 2,000 invalid elements (under the count limit)
    body = json.dumps([own_event("bounded-1", "s-bounded"), *([1] * 2000)]).encode()
    # WHEN it is sent gzipped
    answer = post(collector, gzip.compress(body), **{"Content-Encoding": "gzip"})
    # THEN the event is taken, the first 100 rejections are named, all are counted
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert len(content["rejected"]) == 100
    assert content["rejected_count"] == 2000
    assert content["rejected_by_reason"] == {"not_object": 2000}
    assert len(answer.content) < 20_000
    ids, refusals = stream_ids(local_stack, stream)
    assert "bounded-1" in ids
    assert refusals.count("not_object") == 100
    # WHEN a body of 250,000 tiny elements comes (619 bytes of gzip)
    elements = [own_event("bounded-2"), *([1] * 250_000)]
    huge = gzip.compress(json.dumps(elements, separators=(",", ":")).encode())
    answer = post(collector, huge, **{"Content-Encoding": "gzip"})
    # THEN it is refused whole, in a few bytes
    assert answer.status_code == 400
    assert answer.json()["code"] == "too_many_events"
    assert len(answer.content) < 500


# Finding 4: no read deadline, no header or connection limits.


def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(
    collector: CollectorProcess,
) -> None:
    """Before: it stayed open past 15 s."""
    with socket.create_connection(address(collector)) as idle:
        closed, _ = closed_within(idle, HEAD_TIMEOUT + 3)
    assert closed


def test_headers_trickled_a_byte_at_a_time_are_cut_at_the_head_deadline(
    collector: CollectorProcess,
) -> None:
    head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    started = time.monotonic()
    with socket.create_connection(address(collector)) as slow:
        try:
            for byte in head:
                slow.send(bytes([byte]))
                time.sleep(0.02)
                assert time.monotonic() - started < HEAD_TIMEOUT + 3, "still open"
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, _ = closed_within(slow, 3)
    assert closed


def test_a_body_trickled_slower_than_its_deadline_gets_408(collector: CollectorProcess) -> None:
    """Before: a body at 1 byte/s was held as long as it kept coming."""
    body = json.dumps([own_event("trickled")]).encode()
    auth = basic(KEY)["Authorization"]
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(address(collector)) as slow:
        slow.sendall(head)
        slow.settimeout(0.2)
        answer = b""
        for byte in body:
            try:
                slow.send(bytes([byte]))
                answer += slow.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer:
                break
        _, rest = closed_within(slow, 3)
    assert (answer + rest).startswith(b"HTTP/1.1 408"), answer + rest
    assert b'"code":"request_timeout"' in answer + rest


@pytest.mark.parametrize("terminated", [True, False], ids=["8 MB header", "unterminated"])
def test_a_header_past_the_head_limit_gets_431_and_is_not_kept(
    collector: CollectorProcess, terminated: bool
) -> None:
    """Before: an 8 MB header got a 200; an unterminated 100 MiB one added 100 MiB."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024)
    if terminated:
        head += b"\r\n\r\n"
    with socket.create_connection(address(collector)) as big:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            big.sendall(head)  # the server may close before it is all sent
        closed, answer = closed_within(big, 5)
    assert closed
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_past_the_connection_limit_a_request_gets_503(
    local_stack: LocalStackState, stream: str, tmp_path: Path
) -> None:
    """Before: no limit (uvicorn's `limit_concurrency` unset)."""
    with running_collector(local_stack, stream, tmp_path, max_connections=3) as running:
        held = [socket.create_connection(address(running)) for _ in range(3)]
        try:
            answer = httpx.get(f"{running.url}/health", timeout=5)
        finally:
            for connection in held:
                connection.close()
        assert answer.status_code == 503
        # AND once they are gone, requests are served again
        assert httpx.get(f"{running.url}/health", timeout=5).status_code == 200


# Finding 5: X-Forwarded-For believed as the client wrote it.


def test_the_client_address_is_the_rightmost_one_no_trusted_proxy_wrote(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    # GIVEN a client that writes its own X-Forwarded-For entry before the proxy's
    # (a United States address written by the client, a British one seen by the proxy)
    body = json.dumps([own_event("forwarded", "s-forwarded")]).encode()
    answer = post(collector, body, **{"X-Forwarded-For": "8.8.8.8, 81.2.69.142"})
    assert answer.status_code == 200
    # THEN the visitor's country is the address the proxy (loopback here) saw, and no
    # address is stored
    events, _ = stream_contents(local_stack, stream)
    stored = [json.loads(r.data) for r in events if b'"forwarded"' in r.data]
    assert [e["country"] for e in stored] == ["GB"]
    assert not any(b"81.2.69" in r.data or b"8.8.8.8" in r.data for r in events)


def test_a_collector_told_to_trust_any_proxy_refuses_to_start(
    local_stack: LocalStackState, stream: str, tmp_path: Path
) -> None:
    """Before: the template set `*`, so the leftmost entry (the client's) was the address."""
    with (
        pytest.raises(AssertionError, match="collector exited"),
        running_collector(local_stack, stream, tmp_path, trusted_proxies="*"),
    ):
        pass
    log = next(tmp_path.glob("collector-*.log")).read_text()
    assert "list the load balancer's subnets" in log


# Finding 7: a 500 and a traceback per request.


@pytest.mark.parametrize(
    "body",
    [
        b'[{"event_id":"long-number","x":' + b"9" * 5000 + b"}]",
        b'[{"event_id":"deep","properties":' + b'{"a":' * 960 + b"1" + b"}" * 960 + b"}]",
    ],
    ids=["5,000-digit integer", "nested 960 deep"],
)
def test_numbers_too_long_and_nesting_too_deep_get_a_4xx_never_a_500(
    collector: CollectorProcess, body: bytes
) -> None:
    answer = post(collector, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["code"] in {"invalid_request", "invalid_events"}


# Finding 8: a 200, then a dead letter.


def test_an_event_near_the_old_edge_is_judged_as_the_workers_will(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    """Before: 30 days minus 2 s old was taken at receipt, then dead-lettered at arrival."""
    old = (datetime.now(UTC) - timedelta(days=30) + timedelta(seconds=20)).isoformat()
    answer = post(collector, json.dumps([own_event("near-edge", timestamp=old)]).encode())
    assert answer.status_code == 400
    assert answer.json()["rejected"][0]["reason"] == "timestamp_out_of_range"
    # AND a day younger is taken as before
    younger = (datetime.now(UTC) - timedelta(days=29)).isoformat()
    taken = post(collector, json.dumps([own_event("day-younger", timestamp=younger)]).encode())
    assert taken.status_code == 200, taken.text


# Finding 9: errors leaked internals.


def test_readiness_says_a_word_not_the_error(
    local_stack: LocalStackState, stream: str, tmp_path: Path
) -> None:
    """Before: `/ready` returned the raw exception, endpoint URL included."""
    with running_collector(
        local_stack, stream, tmp_path, kinesis_endpoint="http://127.0.0.1:9"
    ) as unreachable:
        answer = httpx.get(f"{unreachable.url}/ready", timeout=30)
    assert answer.status_code == 503
    assert answer.json() == {"ready": False, "stream": "UNREACHABLE"}
    assert "127.0.0.1:9" in unreachable.log.read_text()  # the why is in the log


# Finding 10: non-standard JSON constants, data after the gzip stream.


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_json_are_refused(
    collector: CollectorProcess, constant: str
) -> None:
    """Before: taken and archived as `NaN`, which Athena's JSON reader refuses."""
    body = json.dumps([own_event("constant", properties={"v": 0})]).replace("0}", f"{constant}}}")
    answer = post(collector, body.encode())
    assert answer.status_code == 400
    assert constant.lstrip("-") in answer.json()["message"]


def test_data_after_the_gzip_stream_is_refused(collector: CollectorProcess) -> None:
    """Before: a second gzip member was silently ignored, its events lost."""
    first = gzip.compress(json.dumps([own_event("member-1")]).encode())
    second = gzip.compress(json.dumps([own_event("member-2")]).encode())
    answer = post(collector, first + second, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert "after its gzip stream" in answer.json()["message"]


# Finding 3 and the load: memory within the budget, `/ready` answering.


def test_a_hostile_load_on_a_slow_stream_stays_within_the_budget_and_ready_answers(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    """Before: the budget counted events (20,000); 150 waiting requests of 15 events of 31 KB
    took the collector from 79 to 487 MiB (the parsed bodies kept while waiting)."""
    budget = 32 * 1024 * 1024
    stream = new_stream(local_stack)
    with (
        KinesisFaultProxy(local_stack.kinesis_endpoint, lambda *_: False) as proxy,
        running_collector(
            local_stack,
            stream,
            tmp_path,
            kinesis_endpoint=proxy.endpoint,
            in_flight_bytes=budget,
            delivery_timeout_seconds=10,
        ) as collector,
    ):
        proxy.delay_seconds = 0.5  # a slow stream: requests wait for their events
        process = psutil.Process(collector.process.pid)
        baseline = process.memory_info().rss
        big = "x" * 30_000

        def body(n: int) -> bytes:
            return json.dumps(
                [own_event(f"load-{n}-{i}", f"s-{n}", properties={"b": big}) for i in range(15)]
            ).encode()

        ready_seconds: list[float] = []
        peak = baseline
        loading = threading.Event()

        def watch() -> None:
            # Its own thread and client: the load's event loop does not delay the probe.
            nonlocal peak
            with httpx.Client(timeout=30) as probe:
                while loading.is_set():
                    started = time.monotonic()
                    answer = probe.get(f"{collector.url}/ready")
                    ready_seconds.append(time.monotonic() - started)
                    assert answer.status_code == 200
                    peak = max(peak, process.memory_info().rss)
                    time.sleep(0.1)

        async def load() -> tuple[list[int], list[str]]:
            statuses: list[int] = []
            why: list[str] = []
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as c:

                async def hostile(n: int) -> None:
                    answer = await c.post(
                        f"{collector.url}/v1/events",
                        content=body(n),
                        headers={"Content-Type": "application/json", **basic(KEY)},
                    )
                    statuses.append(answer.status_code)
                    if answer.status_code == 503:
                        why.append(answer.json()["message"])

                await asyncio.gather(*(hostile(n) for n in range(150)))
            return statuses, why

        assert httpx.get(f"{collector.url}/ready", timeout=30).status_code == 200
        loading.set()
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            statuses, why = asyncio.run(load())
        finally:
            loading.clear()
            watcher.join()
    assert any("too much in flight" in message for message in why), sorted(set(why))
    # THEN the budget refused what it could not hold (503), took the rest, and the memory
    # held for requests stayed near the budget; `/ready` answered within a second throughout
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) > 0, "the budget never refused anything"
    assert statuses.count(200) > 0, sorted(set(why))
    grown = (peak - baseline) / 2**20
    # Figures for the record (shown with -s): what the budget refused, memory, /ready.
    print(
        f"hostile load: {statuses.count(200)} taken, {statuses.count(503)} refused (503); "
        f"rss {baseline / 2**20:.0f} -> {peak / 2**20:.0f} MiB (budget {budget / 2**20:.0f} "
        f"MiB); /ready slowest {max(ready_seconds) * 1000:.0f} ms of {len(ready_seconds)}"
    )
    assert grown < 2 * budget / 2**20 + 32, f"{grown:.0f} MiB over the baseline"
    assert max(ready_seconds) < 1.0, max(ready_seconds)


# Finding 11 (issue 44): a lone surrogate got a 500, and 1e400 reached the stream as Infinity.


def test_a_lone_surrogate_gets_its_event_refused_alone_never_a_500(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    """Before: `500 Internal Server Error` (UnicodeEncodeError), the batch lost and retried."""
    good = json.dumps(own_event("surrogate-neighbour", "s-surrogate"))
    bad = json.dumps(own_event("surrogate-extra", "s-surrogate"))[:-1] + ',"extra":"\\ud800"}'
    answer = post(collector, f"[{good},{bad}]".encode())
    assert answer.status_code == 200, answer.text
    assert [(r["index"], r["reason"]) for r in answer.json()["rejected"]] == [(1, "not_json")]
    alone = json.dumps(own_event("surrogate-name", properties={"k": 1})).replace('"k"', '"\\udc00"')
    answer = post(collector, f"[{alone}]".encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_events"
    ids, refusals = stream_ids(local_stack, stream)
    assert "surrogate-neighbour" in ids
    assert not {"surrogate-extra", "surrogate-name"} & ids
    assert refusals.count("not_json") >= 2


def test_a_number_past_a_doubles_range_is_refused_never_written_as_infinity(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    """Before: `200`, and the stream's record read `"properties":{"n":Infinity}`."""
    good = json.dumps(own_event("huge-neighbour", "s-huge"))
    huge = json.dumps(own_event("huge-number", "s-huge", properties={"n": 0})).replace(
        '"n": 0', '"n": 1e400'
    )
    answer = post(collector, f"[{good},{huge}]".encode())
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"][0]["reason"] == "not_json"
    assert "beyond a double's range" in answer.json()["rejected"][0]["message"]
    events, refusals = stream_contents(local_stack, stream)
    assert "huge-neighbour" in {json.loads(r.data)["event_id"] for r in events}
    for record in events + refusals:
        strictly_read(record.data)  # every record the collector wrote
    assert not [record for record in events if b"Infinity" in record.data]


def test_any_json_ish_body_gets_a_2xx_or_4xx_and_the_stream_only_strict_json(
    local_stack: LocalStackState, stream: str, collector: CollectorProcess
) -> None:
    """Arbitrary bodies over HTTP (surrogates, huge and tiny numbers, NaN, deep nesting,
    repeated and unicode names, BOMs, control characters): never a 5xx, and whatever the
    collector wrote into the stream a strict reader reads."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=st.lists(event_texts(timestamp=now), min_size=1, max_size=4))
    def answered_below_500(events: list[bytes]) -> None:
        answer = post(collector, b"[" + b",".join(events) + b"]")
        assert 200 <= answer.status_code < 500, answer.text
        assert answer.json()["success"] is (answer.status_code == 200)

    answered_below_500()
    events, refusals = stream_contents(local_stack, stream)
    assert events
    assert refusals
    for record in events + refusals:
        strictly_read(record.data)
