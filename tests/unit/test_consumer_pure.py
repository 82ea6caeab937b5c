"""Pure parts of the consumer: flush policy, archive objects, item shapes, settings, KCL
properties, result merging, the retry policy, the KPL aggregation used by the producer."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import struct
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aws_kinesis_agg.deaggregator import deaggregate_records
from botocore.exceptions import ClientError

from clickstream.kernel.events import ClickEvent, DeadLetterReason, EventType, InvalidEvent
from clickstream.kernel.retry import Backoff, GaveUp, call_with_retries, is_transient
from clickstream.stores import alerts as alerts_store
from clickstream.stores.alerts import Alert, Rule, ShardProgress
from clickstream.stores.archive_layout import lines_of
from clickstream.stores.page_stats import PageMinuteState, page_from_item, page_item
from clickstream.stores.positions import Position
from clickstream.stores.sessions import (
    SessionState,
    ShardPosition,
    readable_session,
    session_from_item,
    session_item,
)
from clickstream.stores.sketch import (
    DistinctCounter,
    hash64,
    place_of,
    recent_from_bytes,
    recent_to_bytes,
    touches_from_bytes,
)
from consumer import properties
from consumer.core.batch import DeadLetter, archive_objects, verdict_objects
from consumer.core.pending import Cadences, CommitWindow, DirtyStates
from consumer.core.positioned import PositionedEvent
from consumer.metrics import Metrics
from consumer.settings import ConsumerSettings, unknown_settings
from insights import progress, query
from producer.batching import OutgoingRecord
from producer.kpl import aggregate_by_partition_key
from producer.settings import ProducerSettings

AT = datetime(2026, 11, 23, 9, 59, 30, tzinfo=UTC)


def click(n: int, at: datetime = AT) -> ClickEvent:
    return ClickEvent(
        event_id=f"e-{n}", type=EventType.CLICK, session_id="s1", page="/", timestamp=at
    )


class TestCadences:
    def test_nothing_received_is_never_due(self) -> None:
        assert not Cadences().commit_due(CommitWindow(), now=1e9)

    def test_a_commit_is_due_on_records_bytes_or_age(self) -> None:
        cadences = Cadences(
            live_seconds=1.0, item_seconds=1.0, commit_seconds=1.0, max_records=3, max_bytes=1000
        )
        window = CommitWindow()
        window.received(Position(1), Position(1), records=1, size=10, now=100.0)
        assert not cadences.commit_due(window, now=100.5)
        assert cadences.commit_due(window, now=101.0)  # age
        window.received(Position(2), Position(2), records=1, size=995, now=100.1)
        assert cadences.commit_due(window, now=100.2)  # bytes
        small = CommitWindow()
        for n in range(3):
            small.received(Position(n), Position(n), records=1, size=1, now=100.0)
        assert cadences.commit_due(small, now=100.0)  # records

    def test_cadences_out_of_order_are_refused(self) -> None:
        with pytest.raises(ValueError, match="live_seconds <= item_seconds"):
            Cadences(live_seconds=10, item_seconds=5)

    def test_dirty_states_come_due_oldest_first_and_keep_their_first_change(self) -> None:
        # GIVEN states changed at 100 (a), 101 (b) and a changed again at 102
        dirty: DirtyStates[str, int] = DirtyStates()
        dirty.mark("a", 1, now=100.0, from_position=Position(1))
        dirty.mark("b", 2, now=101.0, from_position=Position(5))
        dirty.mark("a", 3, now=102.0, from_position=Position(9))
        # THEN at 102.5 with a 2-second cadence only a is due, with its newest state, and the
        # oldest unwritten change is a's first
        assert dirty.due(102.5, wait=2.0) == [("a", 3)]
        assert dirty.oldest_position() == Position(1)
        # WHEN a is written THEN b is the oldest
        dirty.written(["a"])
        assert dirty.oldest_position() == Position(5)
        assert dirty.due(102.5, wait=2.0) == []


class TestArchiveObjects:
    def test_events_split_by_event_hour_named_by_shard_and_first_position(self) -> None:
        events = [
            PositionedEvent(Position(7), click(1, AT), b'{"a":1}'),
            PositionedEvent(Position(8, 2), click(2, AT + timedelta(minutes=1)), b'{"b":\n2}'),
            PositionedEvent(Position(9), click(3, AT), b'{"c":3}'),
        ]
        objects = archive_objects("shardId-1", events, [])
        assert [o.key for o in objects] == [
            "raw/year=2026/month=11/day=23/hour=09/shardId-1-7-0.jsonl.gz",
            "raw/year=2026/month=11/day=23/hour=10/shardId-1-8-2.jsonl.gz",
        ]
        assert gzip.decompress(objects[0].body) == b'{"a":1}\n{"c":3}\n'
        assert gzip.decompress(objects[1].body) == b'{"b":2}\n'  # made one line

    def test_the_same_flush_gives_the_same_bytes_at_any_time_and_in_any_order(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a flush of events and dead letters, archived once now
        events = [PositionedEvent(Position(n), click(n), b"{}") for n in (1, 2, 3)]
        letters = [
            DeadLetter(Position(n), "k", AT, b"\xff", InvalidEvent(DeadLetterReason.NOT_UTF8, "x"))
            for n in (4, 5)
        ]
        first = archive_objects("s", events, letters)
        # WHEN the replay archives it an hour later (gzip would stamp the time), its records
        # handed over in another order
        later = time.time() + 3600
        monkeypatch.setattr(time, "time", lambda: later)
        again = archive_objects("s", events[::-1], letters[::-1])
        # THEN the objects are the same, byte for byte
        assert again == first

    def test_dead_letters_keep_reason_field_and_the_data(self) -> None:
        letter = DeadLetter(
            Position(3),
            "pk",
            AT,
            b"\xff\xfe",
            InvalidEvent(DeadLetterReason.NOT_UTF8, "invalid UTF-8 at byte 0"),
        )
        (only,) = archive_objects("shardId-9", [], [letter])
        assert only.key == "dead-letter/year=2026/month=11/day=23/hour=09/shardId-9-3-0.jsonl.gz"
        line = json.loads(gzip.decompress(only.body))
        assert line["reason"] == "not_utf8"
        assert line["data_base64"] == "//4="
        assert line["sequence_number"] == "3"


class TestItems:
    def test_a_session_item_round_trips(self) -> None:
        state = SessionState(
            "s1",
            written_by=ShardPosition("shardId-1", Position(10**30, 4)),
            events=3,
            page_views=1,
            clicks=2,
            first_seen=AT,
            first_event_id="e-1",
            entry_page="/",
            last_seen=AT + timedelta(seconds=5),
            last_event_id="e-3",
            exit_page="/cart",
            pages=DistinctCounter.of([hash64("/"), hash64("/cart")]),
            first_touches={(29_400_000, hash64("/")): place_of(hash64("shardId-1/1"))},
            recent_ids={hash64("e-1"): 7, hash64("e-3"): 9},
            previous_at=AT + timedelta(seconds=5),
            gap_count=2,
            gap_mean=2.5000000000000004,
            gap_m2=0.1 + 0.2,
            bot_score=0.25,
            bot_alerted=True,
            landing_at=AT,
            landing_event_id="e-1",
            acquisition=("(direct)", "(none)", None, None, None, None, "Direct"),
        )
        item = session_item(state, expires_at=123)
        assert item["duration_seconds"] == 5
        assert item["distinct_pages"] == 2
        assert session_from_item(item) == state

    def test_a_sessions_acquisition_country_device_and_bounce_round_trip(self) -> None:
        acquisition = ("google", "cpc", "winter", None, None, None, "Paid Search")
        landed = SessionState(
            "s2",
            written_by=ShardPosition("shardId-1", Position(12)),
            events=1,
            page_views=1,
            first_seen=AT,
            first_event_id="e-1",
            last_seen=AT,
            last_event_id="e-1",
            previous_at=AT,
            user_agent=(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
            ),
            landing_at=AT,
            landing_event_id="e-1",
            acquisition=acquisition,
            country="JP",
        )
        item = session_item(landed, expires_at=1)
        # (the landing's time and id are left out when it is the first event)
        assert "landing_at" not in item
        assert (item["source"], item["campaign"], item["country"]) == ("google", "winter", "JP")
        # (what follows from other attributes is left out, and said again to readers)
        assert not {"channel", "utm_term", "device_type", "bounced", "bot_alerted"} & set(item)
        shown = readable_session(item)
        assert (shown["channel"], shown["device_type"], shown["browser"]) == (
            "Paid Search",
            "mobile",
            "Mobile Safari",
        )
        assert (shown["bounced"], shown["is_bot"]) == (True, False)
        assert session_from_item(item) == landed
        # AND a direct visit stores no source at all, and reads as direct
        direct = replace(
            landed, acquisition=("(direct)", "(none)", None, None, None, None, "Direct")
        )
        item = session_item(direct, expires_at=1)
        assert "source" not in item
        assert session_from_item(item) == direct
        assert readable_session(item)["channel"] == "Direct"
        # AND a landing that is not the first event (a scroll before it) is stored
        landed.first_seen, landed.first_event_id = AT - timedelta(seconds=1), "e-0"
        item = session_item(landed, expires_at=1)
        assert item["landing_event_id"] == "e-1"
        assert session_from_item(item) == landed

    def test_bookkeeping_written_in_the_first_format_reads_as_the_same_places(self) -> None:
        # GIVEN an item of a worker before places were cut to 32 bits (16- and 20-byte records)
        where = hash64("shardId-1/1")
        old_recent = struct.pack(">QQ", hash64("e-1"), where)
        old_touches = struct.pack(">IQQ", 29_400_000, hash64("/"), where)
        # WHEN it is read THEN each place is the one the processor computes today
        assert recent_from_bytes(old_recent) == {hash64("e-1"): place_of(where)}
        assert touches_from_bytes(old_touches) == {(29_400_000, hash64("/")): place_of(where)}
        assert recent_from_bytes(recent_to_bytes({1: 2})) == {1: 2}

    def test_a_page_item_round_trips_and_carries_its_index_key(self) -> None:
        state = PageMinuteState("/p", "2026-11-23T09:59", "shardId-1", Position(5), 2, 3, 1)
        item = page_item(state, expires_at=1, updated_at=AT)
        assert item["bucket_shard"] == item["window_shard"] == "2026-11-23T09:59#shardId-1"
        assert page_from_item(item) == state

    def test_an_alert_item_round_trips_and_is_keyed_by_rule_window_and_subject(self) -> None:
        alert = Alert(
            Rule.PAGE_SPIKE,
            "/pricing",
            "2026-11-23T09:59",
            observed=300,
            baseline=50.5,
            threshold=4.0,
            details={"z": 35.2, "history_minutes": 30},
        )
        item = alerts_store.alert_item(alert, raised_by="w-1", raised_at=AT, expires_at=9)
        assert (item["rule"], item["window_subject"]) == ("page_spike", "2026-11-23T09:59#/pricing")
        assert item["expires_at"] == 9
        assert alerts_store.alert_from_item(item) == alert

    def test_a_progress_report_moves_the_watermark_forward_only(self) -> None:
        report = ShardProgress("shardId-1", AT, caught_up=True)
        update = alerts_store.progress_update(report, updated_at=AT, expires_at=9)
        assert update["Key"] == {"rule": alerts_store.PROGRESS_RULE, "window_subject": "shardId-1"}
        assert "watermark <= :watermark" in update["ConditionExpression"]
        quiet = alerts_store.progress_update(
            ShardProgress("shardId-1", None, caught_up=True), updated_at=AT, expires_at=9
        )
        assert "ConditionExpression" not in quiet
        assert "watermark" not in quiet["UpdateExpression"]

    def test_a_progress_report_keeps_when_its_shard_became_caught_up(self) -> None:
        since = AT - timedelta(seconds=12)
        report = ShardProgress("shardId-1", AT, caught_up=True, caught_up_since=since)
        values = alerts_store.progress_update(report, updated_at=AT, expires_at=9)[
            "ExpressionAttributeValues"
        ]
        stored = {
            "window_subject": "shardId-1",
            "watermark": values[":watermark"],
            "caught_up": values[":caught_up"],
            "caught_up_since": values[":caught_up_since"],
        }
        assert alerts_store.progress_from_item(stored) == report
        working = alerts_store.progress_update(
            ShardProgress("shardId-1", AT, caught_up=False), updated_at=AT, expires_at=9
        )["ExpressionAttributeValues"]
        assert working[":caught_up_since"] == ""
        assert (
            alerts_store.progress_from_item({**stored, "caught_up_since": ""}).caught_up_since
            is None
        )

    def test_an_item_without_a_position_is_never_written(self) -> None:
        with pytest.raises(ValueError, match="no position"):
            page_item(PageMinuteState("/", "m", "s"), expires_at=1, updated_at=AT)


class TestSettings:
    def test_a_mistyped_variable_is_named_with_a_suggestion(self) -> None:
        problems = unknown_settings(
            {"CLICKSTREAM_COMMIT_SECOND": "2", "CLICKSTREAM_STREAM_NAME": "x", "HOME": "/"},
            [ConsumerSettings, ProducerSettings],
        )
        assert problems == [
            "unknown setting CLICKSTREAM_COMMIT_SECOND (did you mean CLICKSTREAM_COMMIT_SECONDS?)"
        ]

    def test_known_variables_and_aliases_pass(self) -> None:
        environ = {"CLICKSTREAM_KINESIS_ENDPOINT": "x", "CLICKSTREAM_MAX_ATTEMPTS": "3"}
        assert unknown_settings(environ, [ConsumerSettings, ProducerSettings]) == []


def settings(**values: Any) -> ConsumerSettings:
    base = {
        "stream_name": "events",
        "sessions_table": "s",
        "page_stats_table": "p",
        "archive_bucket": "b",
        "worker_id": "w-1",
        "kinesis_endpoint": None,
        "dynamodb_endpoint": None,
    }
    return ConsumerSettings(**{**base, **values})


class TestProperties:
    def test_rendered_from_settings_with_the_application_named_after_the_stream(self) -> None:
        rendered = properties.render(settings(region="eu-west-1"), Path("/opt/run"))
        assert rendered["applicationName"] == "events-consumer"
        assert rendered["streamName"] == "events"
        assert rendered["regionName"] == "eu-west-1"
        assert rendered["retrievalMode"] == "POLLING"
        assert rendered["callProcessRecordsEvenForEmptyRecordList"] == "true"
        assert rendered["executableName"] == "/opt/run"
        assert "kinesisEndpoint" not in rendered  # unset: AWS's own endpoint
        # KCL 3.1.3's graceful handoff can leave a lease stuck (docs/kcl.md): off unless asked
        assert rendered["isGracefulLeaseHandoffEnabled"] == "false"
        handoff = properties.render(settings(graceful_handoff=True), Path("/opt/run"))
        assert handoff["isGracefulLeaseHandoffEnabled"] == "true"

    def test_lease_balancing_knobs_are_kcls_defaults_unless_set(self) -> None:
        # GIVEN no balancing settings, THEN none is rendered (KCL's own defaults apply)
        unset = properties.render(settings(), Path("/opt/run"))
        knobs = (
            "disableWorkerMetrics",
            "reBalanceThresholdPercentage",
            "varianceBalancingFrequency",
        )
        assert not set(knobs) & set(unset)
        # GIVEN each set, THEN each is rendered as KCL reads it
        tuned = properties.render(
            settings(
                disable_worker_metrics=True,
                rebalance_threshold_percent=30,
                variance_balancing_frequency=15,
            ),
            Path("/opt/run"),
        )
        assert [tuned[knob] for knob in knobs] == ["true", "30", "15"]

    def test_local_runs_balance_leases_by_throughput_and_seldom(self) -> None:
        # Workers sharing a host all read the host's CPU: its noise moved leases every few
        # seconds, so a shard could change hands faster than its commit window (docs/kcl.md).
        local = settings(
            **{
                name.removeprefix("CLICKSTREAM_").lower(): value
                for name, value in properties.LOCAL_TIMINGS.items()
            }
        )
        assert local.disable_worker_metrics is True
        assert local.variance_balancing_frequency is not None
        assert local.lease_assignment_interval_ms is not None
        rebalance_every_ms = local.variance_balancing_frequency * local.lease_assignment_interval_ms
        assert rebalance_every_ms >= 2 * local.commit_seconds * 1000

    def test_text_is_java_properties(self) -> None:
        text = properties.to_text({"a": "x", "b": "C:\\path"})
        assert text.splitlines()[1:] == ["a = x", "b = C:\\\\path"]


class TestQueryMerging:
    def test_pages_are_summed_over_shards_and_sorted_by_views(self) -> None:
        rows = query.merge_pages(
            [
                {"page": "/a", "window": "m1", "views": 2, "clicks": 1, "sessions": 1},
                {"page": "/a", "window": "m1", "views": 3, "clicks": 0, "sessions": 2},
                {"page": "/b", "window": "m2", "views": 9, "clicks": 0, "sessions": 1},
            ]
        )
        assert [(r.page, r.views, r.sessions, r.minutes) for r in rows] == [
            ("/b", 9, 1, 1),
            ("/a", 5, 3, 1),
        ]

    def test_caught_up_needs_every_shard_at_its_last_sequence(self) -> None:
        last = {"s0": "100", "s1": "200"}
        assert not progress.caught_up({"s0": "100", "s1": "150"}, last)
        assert not progress.caught_up({"s0": "100", "s1": "TRIM_HORIZON"}, last)
        assert progress.caught_up({"s0": "100", "s1": "200"}, last)
        assert progress.caught_up({"s0": "SHARD_END", "s1": "201"}, last)


def client_error(code: str, status: int = 400) -> ClientError:
    answer = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(cast(Any, answer), "Op")


class _Log:
    def __init__(self) -> None:
        self.warnings: list[dict[str, Any]] = []

    def warning(self, event: str, **values: Any) -> None:
        self.warnings.append({"event": event, **values})


class TestRetries:
    def test_throttles_and_5xx_are_retried_then_succeed_with_backoff_logged(self) -> None:
        failures = [client_error("ThrottlingException"), client_error("Boom", 503)]
        slept: list[float] = []
        log = _Log()

        def operation() -> str:
            if failures:
                raise failures.pop(0)
            return "done"

        result = call_with_retries(
            operation,
            what="op",
            backoff=Backoff(),
            log=log,
            sleep=slept.append,
            rng=random.Random(1),
        )
        assert result == "done"
        assert len(slept) == 2
        assert [w["error"] for w in log.warnings] == ["ThrottlingException", "Boom"]

    def test_an_error_retrying_cannot_fix_gives_up_at_once(self) -> None:
        def operation() -> None:
            raise client_error("AccessDenied", 403)

        with pytest.raises(GaveUp) as gave_up:
            call_with_retries(
                operation, what="op", backoff=Backoff(), log=_Log(), sleep=lambda _: None
            )
        assert gave_up.value.attempts == 1

    def test_the_deadline_ends_the_retries(self) -> None:
        now = [0.0]

        def sleep(seconds: float) -> None:
            now[0] += seconds

        def operation() -> None:
            raise client_error("SlowDown", 503)

        backoff = Backoff(base_seconds=1, cap_seconds=4, deadline_seconds=30)
        with pytest.raises(GaveUp):
            call_with_retries(
                operation, what="op", backoff=backoff, log=_Log(), sleep=sleep, clock=lambda: now[0]
            )
        assert now[0] <= 30

    def test_transient_classification(self) -> None:
        assert is_transient(client_error("ProvisionedThroughputExceededException"))
        assert not is_transient(client_error("ConditionalCheckFailedException"))
        assert not is_transient(ValueError("bug"))


class TestKplAggregation:
    def test_each_aggregate_holds_one_partition_key_in_order_and_loses_nothing(self) -> None:
        records = [
            OutgoingRecord(f"{key}-{n}".encode(), key) for n in range(120) for key in ("a", "b")
        ]
        aggregated = list(aggregate_by_partition_key(records, max_user_records=50))
        assert sum(r.user_records for r in aggregated) == 240
        assert len(aggregated) == 6
        for record in aggregated:
            kinesis_record = {
                "kinesis": {
                    "partitionKey": record.partition_key,
                    "data": base64.b64encode(record.data).decode(),
                    "sequenceNumber": "1",
                    "kinesisSchemaVersion": "1.0",
                    "approximateArrivalTimestamp": 0,
                }
            }
            users = deaggregate_records([kinesis_record])
            keys = {u["kinesis"]["partitionKey"] for u in users}
            assert keys == {record.partition_key}


class TestMetrics:
    def test_a_document_is_embedded_metric_format_on_the_given_stream(self) -> None:
        buffer = io.StringIO()
        moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        metrics = Metrics("Clickstream", stream=buffer, dimensions={"Stream": "s"})
        metrics.emit(
            {"DeadLetters": (3, "Count"), "FlushLatency": (12.5, "Milliseconds")},
            dimensions={"Reason": "not_json"},
            at=moment,
        )
        (line,) = buffer.getvalue().splitlines()
        document = json.loads(line)
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "Clickstream"
        assert directive["Dimensions"] == [["Stream", "Reason"]]
        assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
            "DeadLetters": "Count",
            "FlushLatency": "Milliseconds",
        }
        assert document["_aws"]["Timestamp"] == int(moment.timestamp() * 1000)
        assert (document["Stream"], document["Reason"]) == ("s", "not_json")
        assert (document["DeadLetters"], document["FlushLatency"]) == (3, 12.5)


def test_a_session_read_for_people_leaves_out_the_binary_bookkeeping() -> None:
    item = {"session_id": "s", "events": 3, "pages": b"\x01", "first_touches": b"\x02"}
    shown = readable_session(item)
    assert not {"pages", "first_touches"} & set(shown)
    assert (shown["session_id"], shown["events"], shown["clicks"]) == ("s", 3, 0)


def test_binary_attributes_read_back_as_bytes() -> None:
    from clickstream.kernel.dynamo import from_dynamo

    assert from_dynamo({"pages": {"B": b"\x01\x02"}, "n": {"N": "3"}}) == {
        "pages": b"\x01\x02",
        "n": 3,
    }


class _Record:
    """A record as amazon_kclpy hands it to the processor (the fields decoding reads)."""

    def __init__(self, sequence: int, data: bytes, key: str) -> None:
        self.sequence_number = str(sequence)
        self.sub_sequence_number = 0
        self.data = base64.b64encode(data).decode()
        self.timestamp_millis = int(AT.timestamp() * 1000)
        self.partition_key = key


def test_an_event_the_collector_refused_is_a_dead_letter_with_the_collectors_reason() -> None:
    from clickstream.kernel.events import refusal_record
    from consumer.core.receive import decode_delivery

    # GIVEN a delivery of a valid event, an event the collector refused for its size, and a
    # record that only pretends to be a refusal (an unknown reason)
    valid = click(1)
    refused = refusal_record(DeadLetterReason.TOO_LARGE, "40 kB", b'{"x": 1}', AT)
    pretending = b'{"clickstream_refused": {"reason": "because"}, "excerpt": ""}'
    records = [
        _Record(1, valid.model_dump_json().encode(), valid.session_id),
        _Record(2, refused, "refused-1"),
        _Record(3, pretending, "refused-2"),
    ]
    # WHEN it is decoded
    decoded = decode_delivery(records, "shardId-000000000000", lambda: AT)
    # THEN the event is an event, the refusal a dead letter with the collector's reason, and
    # the pretender a dead letter with the contract's own reason
    assert [e.event.event_id for e in decoded.events] == [valid.event_id]
    reasons = [letter.error.reason for letter in decoded.letters]
    assert reasons == [DeadLetterReason.TOO_LARGE, DeadLetterReason.MISSING_FIELD]
    assert "refused by the collector" in decoded.letters[0].error.detail


class TestVerdictObjects:
    """The bot rule's verdicts, one object per judged session (`verdict_objects`)."""

    def judged(self, session: str, score: float) -> Alert:
        return Alert(Rule.BOT_SESSION, session, "2026-11-20T09:59", score, None, 0.5)

    def test_each_judged_session_is_filed_under_its_start_hour_by_a_hash_of_its_id(self) -> None:
        page_spike = Alert(Rule.PAGE_SPIKE, "https://a.example/", "2026-11-20T09:59", 90, 20, 4)
        objects = verdict_objects([self.judged("s-1", 0.75), page_spike])
        assert [o.key for o in objects] == [
            "verdicts/bot_session/year=2026/month=11/day=20/hour=09/"
            f"{hashlib.sha256(b's-1').hexdigest()[:32]}.jsonl.gz"
        ]
        (line,) = lines_of(objects[0].body)
        assert json.loads(line) == {
            "session_id": "s-1",
            "started_minute": "2026-11-20T09:59",
            "score": 0.75,
            "signals": "",
        }

    def test_a_replay_judging_the_session_again_rewrites_the_same_key(self) -> None:
        first = verdict_objects([self.judged("s-1", 0.75)])
        again = verdict_objects([self.judged("s-1", 1.0)])
        assert [o.key for o in first] == [o.key for o in again]

    def test_an_id_no_key_could_hold_escaped_still_makes_a_short_key(self) -> None:
        session = "\u00e9/" * 128  # 256 characters, 384 bytes of UTF-8
        (verdict,) = verdict_objects([self.judged(session, 1.0)])
        assert len(verdict.key.encode()) < 120
        assert json.loads(lines_of(verdict.body)[0])["session_id"] == session
