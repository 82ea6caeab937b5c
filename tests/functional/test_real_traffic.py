"""Real traffic through the processor (amazon_kclpy's protocol code, in-memory sinks).

What our generator never sends and the world does: re-sent events, long tracking URLs,
crawlers, records whose partition key is not their session, timestamps near the plausible
window's edge replayed days later, items DynamoDB refuses. And the metrics the workers emit,
read from the EMF documents themselves.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel.events import ClickEvent, DeadLetterReason, EventType
from clickstream.kernel.retry import Backoff, GaveUp
from clickstream.stores.limits import ItemLimits
from consumer.core.pending import Cadences
from consumer.failures import EXIT_FLUSH_FAILED
from consumer.metrics import METRIC_NAMES, Metrics
from consumer.processor import ClickstreamProcessor
from consumer.testing import (
    MemoryAlerts,
    MemoryArchive,
    MemoryStore,
    ProtocolRecord,
    ScriptedDaemon,
    protocol_records,
)
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest
from producer.run import outgoing

SHARD = "shardId-000000000000"
NOW = datetime.now(UTC).replace(microsecond=0)


def event(n: int, session: str = "s-1", page: str = "/", seconds: float = 0, **extra: Any) -> bytes:
    values = {
        "event_id": f"e-{n}",
        "type": "page_view",
        "session_id": session,
        "page": page,
        "timestamp": (NOW - timedelta(minutes=10) + timedelta(seconds=seconds)).isoformat(),
        **extra,
    }
    return json.dumps(values).encode()


def run(
    payloads: Sequence[tuple[bytes, str]],
    *,
    store: MemoryStore | None = None,
    archive: MemoryArchive | None = None,
    flush_every: int = 1000,
    checkpoint: str = "TRIM_HORIZON",
    first_sequence: int = 1,
    **options: Any,
) -> tuple[ScriptedDaemon, ClickstreamProcessor, MemoryStore, MemoryArchive]:
    store = store or MemoryStore()
    archive = archive or MemoryArchive()
    records = protocol_records(payloads, first_sequence)
    daemon = ScriptedDaemon().initialize(SHARD, checkpoint)
    for start in range(0, len(records), 50):
        daemon.process(records[start : start + 50])
    daemon.shutdown_requested()
    processor = ClickstreamProcessor(
        store,
        archive,
        cadences=Cadences(max_records=flush_every),
        checkpoint_backoff=Backoff(),
        **options,
    )
    daemon.run(processor)
    return daemon, processor, store, archive


def archived(archive: MemoryArchive, prefix: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for key, body in sorted(archive.objects.items())
        if key.startswith(prefix)
        for line in gzip.decompress(body).splitlines()
    ]


# -- 2. one event counted once, even when sent twice -----------------------------------------


def test_a_resent_event_is_counted_once_and_archived_once() -> None:
    # GIVEN a session whose second and third events are each sent twice (a beacon retry),
    # one re-send in the same batch, one in a later flush
    payloads = [
        (event(1, seconds=0), "s-1"),
        (event(2, seconds=5, type="click"), "s-1"),
        (event(2, seconds=5, type="click"), "s-1"),
        (event(3, seconds=9), "s-1"),
        (event(3, seconds=9), "s-1"),
        (event(1, session="s-2"), "s-2"),  # the same id in another session is another event
    ]
    # WHEN the processor flushes every two records
    daemon, processor, store, archive = run(payloads, flush_every=2)
    # THEN each event counts once, is archived once, and the duplicates are reported
    session = store.sessions["s-1"]
    assert (session["events"], session["page_views"], session["clicks"]) == (3, 2, 1)
    lines = archived(archive, "raw/")
    assert sorted((line["session_id"], line["event_id"]) for line in lines) == [
        ("s-1", "e-1"),
        ("s-1", "e-2"),
        ("s-1", "e-3"),
        ("s-2", "e-1"),
    ]
    assert processor.totals["duplicates"] == 2
    assert daemon.checkpoints[-1][0] == str(protocol_records(payloads)[-1].sequence_number)


def test_a_replay_after_a_crash_decides_every_duplicate_as_before() -> None:
    # GIVEN a first pass that flushed everything but whose checkpoint never happened
    payloads = [(event(n % 7, seconds=n), "s-1") for n in range(20)]
    store, first_archive = MemoryStore(), MemoryArchive()
    run(payloads, store=store, archive=first_archive, flush_every=6)
    # WHEN a new processor replays the whole shard against the stored state
    replay_archive = MemoryArchive()
    run(payloads, store=store, archive=replay_archive, flush_every=4)
    # THEN the session holds the 7 distinct events and the replay archives nothing new
    assert store.sessions["s-1"]["events"] == 7
    replayed = archived(replay_archive, "raw/")
    assert len({line["event_id"] for line in replayed}) == len(replayed)
    assert len(archived(first_archive, "raw/")) == 7


# -- 1. no valid event can stop a shard --------------------------------------------------------


def test_long_urls_and_a_crawler_are_counted_under_page_keys_within_dynamodb_limits() -> None:
    # GIVEN a 1,500-character tracking URL, a 2,000-character path, and a crawler session of
    # 2,500 page views over 2,500 distinct 120-character paths, then ordinary traffic
    tracking = "https://Shop.Example.com/pricing?" + "&".join(
        f"utm_{n}={'x' * 20}" for n in range(60)
    )
    tracking = tracking[:1500]
    long_path = "/" + "p" * 1999
    crawl = [
        (event(1000 + n, session="crawler", page=f"/c/{n:05d}/" + "x" * 112, seconds=n * 0.2),
         "crawler")
        for n in range(2500)
    ]  # fmt: skip
    payloads = [(event(1, page=tracking), "s-1"), (event(2, page=long_path), "s-1"), *crawl]
    payloads += [(event(n, session=f"o-{n % 5}", page="/home"), f"o-{n % 5}") for n in range(50)]
    # WHEN it is processed with DynamoDB's real limits enforced by the store
    alerts = MemoryAlerts()
    _, processor, store, _ = run(payloads, alerts=alerts, flush_every=500)
    # THEN nothing was dead-lettered, the long pages count under their page keys, the crawler
    # is stored (an estimate of its distinct pages) and flagged as a bot
    assert processor.totals["dead_letters"] == 0
    pages = {page for page, _ in store.pages}
    assert "shop.example.com/pricing" in pages
    long_keys = [page for page in pages if page.startswith("/ppp")]
    assert len(long_keys) == 1
    assert len(long_keys[0].encode()) <= 512
    crawler = store.sessions["crawler"]
    assert crawler["events"] == 2500
    assert crawler["distinct_pages_exact"] is False
    assert abs(crawler["distinct_pages"] - 2500) <= 250
    assert ("bot_session", next(iter(alerts.alerts))[1]) in alerts.alerts
    assert sum(item["views"] for (page, _), item in store.pages.items() if page == "/home") == 50


def test_a_record_whose_partition_key_is_not_its_session_is_a_typed_dead_letter() -> None:
    payloads = [(event(1), "s-1"), (event(2), "user-42")]
    _, _, store, archive = run(payloads)
    letters = archived(archive, "dead-letter/")
    assert [letter["reason"] for letter in letters] == ["partition_key_mismatch"]
    assert store.sessions["s-1"]["events"] == 1


def test_an_item_over_a_limit_dead_letters_its_events_and_the_rest_is_exact() -> None:
    # GIVEN limits so low that one page's key does not fit, in a session with other pages
    limits = ItemLimits(partition_key_bytes=40)
    long_page = "/" + "a" * 60
    payloads = [
        (event(1, page="/home", seconds=0), "s-1"),
        (event(2, page=long_page, seconds=1), "s-1"),
        (event(3, page="/home", seconds=2, type="click"), "s-1"),
        (event(4, session="s-2", page="/home"), "s-2"),
    ]
    # WHEN the processor checks its items against those limits before writing
    daemon, _, store, archive = run(payloads, item_limits=limits)
    # THEN the event of the long page is an `unstorable` dead letter naming the limit, and
    # every item counts exactly the others
    (letter,) = archived(archive, "dead-letter/")
    assert letter["reason"] == "unstorable"
    assert "key page" in letter["detail"]
    assert json.loads(base64.b64decode(letter["data_base64"]))["event_id"] == "e-2"
    session = store.sessions["s-1"]
    assert (session["events"], session["page_views"], session["clicks"]) == (2, 1, 1)
    assert session["exit_page"] == "/home"
    assert {page for page, _ in store.pages} == {"/home"}
    assert sorted(line["event_id"] for line in archived(archive, "raw/")) == ["e-1", "e-3", "e-4"]
    assert daemon.checkpoints[-1][0] == str(protocol_records(payloads)[-1].sequence_number)


def test_an_item_the_store_refuses_as_invalid_is_dead_lettered_and_the_shard_goes_on() -> None:
    # GIVEN a store stricter than the processor's own check: it refuses what passed
    store = MemoryStore(limits=ItemLimits(partition_key_bytes=40))
    payloads = [
        (event(1, page="/" + "b" * 60), "s-1"),
        (event(2, session="s-2", page="/ok"), "s-2"),
    ]
    # WHEN the processor writes the flush
    daemon, _, _, archive = run(payloads, store=store)
    # THEN the refused item's event is an `unstorable` dead letter, the other is counted,
    # and the checkpoint passes both
    (letter,) = archived(archive, "dead-letter/")
    assert letter["reason"] == "unstorable"
    assert store.sessions["s-2"]["events"] == 1
    assert [line["event_id"] for line in archived(archive, "raw/")] == ["e-2"]
    assert daemon.checkpoints[-1][0] == str(protocol_records(payloads)[-1].sequence_number)


# -- 5. replays are a pure function of the records ---------------------------------------------


def test_timestamps_are_judged_against_the_arrival_so_a_late_replay_decides_the_same() -> None:
    # GIVEN records that arrived 3 days ago, one event 29 days older than its arrival (in the
    # window) and one 31 days older (out of it)
    arrival = NOW - timedelta(days=3)
    old = arrival - timedelta(days=29)
    too_old = arrival - timedelta(days=31)
    payloads = [
        (json.dumps({"event_id": "a", "type": "click", "session_id": "s", "page": "/",
                     "timestamp": old.isoformat()}).encode(), "s"),
        (json.dumps({"event_id": "b", "type": "click", "session_id": "s", "page": "/",
                     "timestamp": too_old.isoformat()}).encode(), "s"),
    ]  # fmt: skip
    records = [
        ProtocolRecord(
            r.data, r.partition_key, r.sequence_number, 0, int(arrival.timestamp() * 1000)
        )
        for r in protocol_records(payloads)
    ]

    def decisions(wall_clock: datetime) -> list[str]:
        archive = MemoryArchive()
        daemon = ScriptedDaemon().initialize(SHARD).process(records).shutdown_requested()
        daemon.run(
            ClickstreamProcessor(
                MemoryStore(),
                archive,
                cadences=Cadences(),
                checkpoint_backoff=Backoff(),
                wall_clock=lambda: wall_clock,
            )
        )
        return sorted(
            [f"event {line['event_id']}" for line in archived(archive, "raw/")]
            + [f"dead letter {letter['reason']}" for letter in archived(archive, "dead-letter/")]
        )

    # WHEN the shard is read when they arrived, and replayed 3 days later (the first event is
    # then 32 days older than the processing clock)
    first, replay = decisions(arrival), decisions(NOW)
    # THEN both passes decide the same: one event, one dead letter
    assert first == replay == ["dead letter timestamp_out_of_range", "event a"]


# -- the metrics the workers emit, from the EMF documents ------------------------------------


def emitted_names(buffer: io.StringIO) -> set[str]:
    names: set[str] = set()
    for line in buffer.getvalue().splitlines():
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            names |= {metric["Name"] for metric in directive["Metrics"]}
    return names


class _FailingStore(MemoryStore):
    def save(self, *args: Any) -> Any:
        raise GaveUp("dynamodb:PutItem", 1, RuntimeError("ServiceUnavailable"))


def test_every_metric_the_workers_emit_is_one_the_template_charts() -> None:
    # GIVEN traffic with bots, malformed records and a re-sent event, and a processor whose
    # store fails for good
    start = NOW - timedelta(minutes=20)
    records, _ = generate(5, start, 2000, TrafficProfile(bot_sessions=2, malformed=5))
    payloads = [(out.data, out.partition_key) for out in map(outgoing, records)]
    payloads.append(payloads[0] if isinstance(records[0], ClickEvent) else payloads[1])
    buffer = io.StringIO()
    metrics = Metrics("Clickstream", stream=buffer, dimensions={"Stream": "s"})
    # WHEN both run
    run(payloads, alerts=MemoryAlerts(), metrics=metrics, flush_every=100)
    with pytest.raises(SystemExit) as stopped:
        run(payloads[:10], store=_FailingStore(), metrics=metrics)
    assert stopped.value.code == EXIT_FLUSH_FAILED
    # THEN the documents name exactly the metrics the template's dashboard and alarms use
    assert emitted_names(buffer) == set(METRIC_NAMES)


def test_the_manifest_counts_page_keys_and_resent_events_as_the_consumer_does() -> None:
    at = NOW - timedelta(minutes=5)
    view = ClickEvent(
        event_id="1", type=EventType.PAGE_VIEW, session_id="s", page="/a?x=1", timestamp=at
    )
    click = ClickEvent(
        event_id="2", type=EventType.CLICK, session_id="s", page="/a#top", timestamp=at
    )
    events = [view, view, click]
    manifest = build_manifest(events, [], seed=None, source="test")
    assert (manifest.events, manifest.duplicates) == (2, 1)
    assert list(manifest.pages) == ["/a"]
    assert manifest.sessions["s"].distinct_pages == 1
    assert DeadLetterReason.UNSTORABLE.value == "unstorable"


# -- smaller mends ----------------------------------------------------------------------------


class _Unprocessing:
    """A DynamoDB client whose BatchGetItem leaves every key unprocessed `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.times:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return {"Responses": {table: [] for table in RequestItems}, "UnprocessedKeys": {}}


class _Log:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def warning(self, event: str, **values: Any) -> None:
        if event == "retrying":
            self.waits.append(values["delay_s"])


def test_unprocessed_keys_are_asked_again_with_backoff_and_a_deadline() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from clickstream.stores.page_stats import PageMinuteKey
    from consumer.sinks import DynamoStateStore, Tables

    def store(client: Any, deadline: float) -> DynamoStateStore:
        return DynamoStateStore(
            client,
            Tables("sessions", "pages"),
            retention=timedelta(days=1),
            backoff=Backoff(base_seconds=0.001, cap_seconds=0.01, deadline_seconds=deadline),
            log=log,
            pool=ThreadPoolExecutor(1),
        )

    # GIVEN DynamoDB leaving every key unprocessed three times, then answering
    log, patient = _Log(), _Unprocessing(times=3)
    # WHEN the store reads a session and a page-minute
    sessions, pages = store(patient, deadline=5).load(
        SHARD, {"s-1"}, {PageMinuteKey("/", "2026-11-23T10:00")}
    )
    # THEN it asked again after a logged backoff each time, and found nothing stored
    assert patient.calls == 4
    assert len(log.waits) == 3
    assert sessions == {"s-1": None}
    assert list(pages.values()) == [None]
    # AND when DynamoDB never processes them, the deadline ends it with GaveUp
    with pytest.raises(GaveUp):
        store(_Unprocessing(times=10**9), deadline=0.05).load(SHARD, {"s-1"}, set())


def test_a_log_line_before_logging_is_configured_goes_to_stderr() -> None:
    import subprocess
    import sys

    program = (
        "import structlog\n"
        "from consumer import processor\n"  # what a record processor imports
        "structlog.get_logger().warning('early')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, timeout=60, check=True
    )
    assert done.stdout == b""
    assert b'"event": "early"' in done.stderr
