"""The lake's pure decisions: when an hour is closed, what compacting it reads, what a reader
reads, what may be swept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from clickstream.kernel.enrichment.columns import ENRICHMENT_VERSION
from clickstream.stores import archive_layout as layout
from insights import lake
from insights.lake_reader import parquet_select
from insights.sql import RAW_EVENT_COLUMNS

HOUR = datetime(2026, 11, 20, 9, tzinfo=UTC)


def raw(name: str, etag: str = "e1") -> lake.RawObject:
    return lake.RawObject(f"raw/{layout.hour_partition(HOUR)}/{name}.jsonl.gz", etag, 100)


def manifest(
    *sources: lake.RawObject,
    files: tuple[str, ...] = ("f1",),
    enrichment_version: int = ENRICHMENT_VERSION,
    parts_version: int = lake.PARTS_VERSION,
) -> lake.HourManifest:
    return lake.HourManifest(
        hour=HOUR,
        generation="g",
        published_at=HOUR,
        files=[lake.LakeFile(key=key, rows=1, bytes=1) for key in files],
        sources=[lake.Source(key=s.key, etag=s.etag, rows=1) for s in sources],
        enrichment_version=enrichment_version,
        parts={
            kind: lake.LakeFile(key=f"{kind}-part", rows=1, bytes=1) for kind in lake.PART_KINDS
        },
        parts_version=parts_version,
    )


def test_an_hour_compacted_without_this_versions_parts_is_compacted_again() -> None:
    # GIVEN an hour compacted before its parts were written (or with another version's)
    old = manifest(raw("a"), parts_version=0)
    # THEN compaction writes it again, and a reader computes its parts meanwhile
    assert not lake.plan_hour(HOUR, [raw("a")], old).up_to_date
    found = lake.reading([raw("a")], [old])
    assert found.parquet_files == ("f1",)  # its enrichment columns are current
    assert (found.part_files, found.parted_hours) == ((), frozenset())
    assert found.without_parts().parquet_files == ("f1",)
    # AND with them, a reader reads its parts, and none of its events for them
    lake_file = f"{layout.lake_prefix(HOUR)}g/part-0.parquet"
    current = lake.reading([raw("a")], [manifest(raw("a"), files=(lake_file,))])
    assert current.parts_of("sessions") == ["sessions-part"]
    assert current.parted_hours == {HOUR}
    assert current.without_parts() == lake.LakeReading()
    # AND a raw object new or changed since makes the hour's parts computed again
    for late in ([raw("a"), raw("b")], [raw("a", "e2")]):
        found = lake.reading(late, [manifest(raw("a"))])
        assert found.part_files == ()
        assert found.without_parts().parquet_files == ("f1",)
        assert found.without_parts().raw_keys == found.raw_keys
    # AND the parts are the generation's: never swept while it is published
    assert (
        lake.sweepable(
            [lake.StoredFile("sessions-part", HOUR)],
            manifest(raw("a")),
            HOUR + timedelta(days=1),
            timedelta(hours=1),
        )
        == []
    )


def test_an_hour_compacted_with_another_enrichment_version_is_compacted_again() -> None:
    # GIVEN an hour whose manifest holds every object as it is, written before enrichment
    old = manifest(raw("a"), enrichment_version=0)
    # THEN compaction writes it again, and a reader computes its columns meanwhile
    assert not lake.plan_hour(HOUR, [raw("a")], old).up_to_date
    assert lake.plan_hour(HOUR, [raw("a")], manifest(raw("a"))).up_to_date
    found = lake.reading([raw("a")], [old])
    assert (found.parquet_files, found.stale_parquet_files) == ((), ("f1",))
    assert found.raw_keys == ()
    # AND a manifest written before the field existed reads as version 0
    text = old.model_dump_json(exclude={"enrichment_version"})
    assert lake.HourManifest.model_validate_json(text).enrichment_version == 0


def test_an_hour_is_closed_once_its_end_is_the_settle_time_behind() -> None:
    settle = timedelta(minutes=15)
    assert not lake.is_closed(HOUR, HOUR + timedelta(minutes=74), settle)
    assert lake.is_closed(HOUR, HOUR + timedelta(minutes=75), settle)


def test_keys_name_their_hour() -> None:
    assert layout.hour_of(raw("a").key) == HOUR
    assert layout.hour_of(layout.manifest_key(HOUR)) == HOUR
    assert layout.hour_of("raw/other") is None
    assert lake.hours_between(HOUR + timedelta(minutes=59), HOUR + timedelta(hours=2)) == [
        HOUR,
        HOUR + timedelta(hours=1),
        HOUR + timedelta(hours=2),
    ]


def test_an_hour_never_compacted_is_compacted_from_every_raw_object() -> None:
    plan = lake.plan_hour(HOUR, [raw("b"), raw("a")], None)
    assert not plan.up_to_date
    assert [o.key for o in plan.raw] == [raw("a").key, raw("b").key]
    assert plan.carried_files == ()
    assert lake.plan_hour(HOUR, [], None).up_to_date


def test_an_hour_whose_manifest_holds_every_object_as_it_is_is_up_to_date() -> None:
    assert lake.plan_hour(HOUR, [raw("a"), raw("b")], manifest(raw("a"), raw("b"))).up_to_date
    # an object expired since: still up to date, its rows are in the Parquet
    assert lake.plan_hour(HOUR, [raw("a")], manifest(raw("a"), raw("b"))).up_to_date


def test_a_late_or_rewritten_object_makes_the_hour_compact_again_from_raw() -> None:
    late = lake.plan_hour(HOUR, [raw("a"), raw("c")], manifest(raw("a")))
    rewritten = lake.plan_hour(HOUR, [raw("a", "e2")], manifest(raw("a")))
    for plan in (late, rewritten):
        assert not plan.up_to_date
        assert plan.carried_files == ()


def test_rows_of_expired_objects_are_carried_from_the_published_generation() -> None:
    plan = lake.plan_hour(HOUR, [raw("a"), raw("c")], manifest(raw("a"), raw("b"), files=("f1",)))
    assert not plan.up_to_date
    assert plan.carried_files == ("f1",)
    assert plan.carried_except == {raw("a").key, raw("c").key}


def test_a_reader_reads_the_parquet_less_changed_objects_plus_every_object_not_held() -> None:
    found = lake.reading(
        [raw("a"), raw("b", "e2"), raw("c")],
        [manifest(raw("a"), raw("b"), raw("gone"), files=("f1", "f2"))],
    )
    assert found.parquet_files == ("f1", "f2")
    assert found.changed_sources == {raw("b").key}
    assert found.raw_keys == (raw("b").key, raw("c").key)
    assert found.compacted_hours == 1
    assert found.raw_only_hours == 0
    never = lake.reading([raw("a")], [])
    assert never.raw_keys == (raw("a").key,)
    assert never.raw_only_hours == 1


def test_only_files_no_manifest_names_and_older_than_the_grace_are_swept() -> None:
    now = HOUR + timedelta(hours=5)
    grace = timedelta(hours=1)
    stored = [
        lake.StoredFile("f1", now - timedelta(hours=3)),  # published
        lake.StoredFile("old", now - timedelta(hours=2)),  # replaced
        lake.StoredFile("running", now - timedelta(minutes=5)),  # another compaction's
    ]
    assert lake.sweepable(stored, manifest(raw("a")), now, grace) == ["old"]
    assert lake.sweepable(stored, None, now, grace) == ["f1", "old"]


def test_athenas_symlink_names_each_published_file() -> None:
    text = lake.symlink_text("bucket", manifest(raw("a"), files=("events/x/1", "events/x/2")))
    assert text == "s3://bucket/events/x/1\ns3://bucket/events/x/2\n"


def test_duckdb_gets_half_of_the_containers_memory_unless_told() -> None:
    from clickstream.kernel.memory import memory_limit_bytes
    from insights.settings import LakeSettings

    half = memory_limit_bytes() // 2 // (1024 * 1024)
    assert LakeSettings().resolved_memory_limit() == f"{max(256, half)}MiB"
    assert LakeSettings(memory_limit="512MB").resolved_memory_limit() == "512MB"


def test_a_lake_file_written_before_a_column_was_added_reads_it_as_null(tmp_path: Path) -> None:
    # GIVEN an hour's Parquet written before `country` existed, and one written after
    hour = tmp_path / "year=2026" / "month=12" / "day=7" / "hour=9"
    hour.mkdir(parents=True)
    now = [name for name, _ in RAW_EVENT_COLUMNS]
    before = [name for name in now if name != "country"]

    def written(name: str, columns: list[str], event_id: str) -> str:
        values = ", ".join(
            "'GB' AS country"
            if column == "country"
            else f"'{event_id}' AS \"{column}\""
            if column == "event_id"
            else f'NULL AS "{column}"'
            for column in columns
        )
        path = hour / name
        duckdb.connect().execute(
            f"COPY (SELECT {values}, 'raw/k-{event_id}' AS raw_object) TO '{path}' (FORMAT parquet)"
        )
        return str(path)

    old = written("old.parquet", before, "e-old")
    new = written("new.parquet", now, "e-new")
    # WHEN the lake's reader reads both, and the old one alone
    connection = duckdb.connect()
    both = connection.execute(
        f"SELECT event_id, country, hour FROM ({parquet_select([old, new], frozenset())}) "
        "ORDER BY event_id"
    ).fetchall()
    alone = connection.execute(
        f"SELECT event_id, country FROM ({parquet_select([old], frozenset())})"
    ).fetchall()
    # THEN every column is there: the old file's country is NULL, the new one's kept
    assert both == [("e-new", "GB", 9), ("e-old", None, 9)]
    assert alone == [("e-old", None)]


def test_a_manifest_is_trusted_alone_only_when_every_later_object_was_marked() -> None:
    end = HOUR + timedelta(hours=1)
    settled = end + layout.LATE_AFTER + layout.CLOCK_SKEW
    a = raw("a")
    # GIVEN a manifest whose compaction listed the hour once every later object was marked
    trusted = manifest(a).model_copy(update={"listed_at": settled})
    assert lake.trusted_alone(trusted, [])
    assert lake.hours_to_list([HOUR], [trusted], []) == []
    # THEN a mark of the object it holds as marked (a replay's same bytes) keeps it trusted,
    # a mark of another object or another version does not: the hour is listed
    assert lake.trusted_alone(trusted, [(a.key, a.etag)])
    for mark in [(raw("b").key, "e1"), (a.key, "e2")]:
        assert not lake.trusted_alone(trusted, [mark])
        assert lake.hours_to_list([HOUR], [trusted], [mark]) == [HOUR]
    # AND a compaction that listed earlier (or did not record when) is never trusted alone,
    # nor is an hour without a manifest
    early = manifest(a).model_copy(update={"listed_at": settled - timedelta(seconds=1)})
    assert not lake.trusted_alone(early, [])
    assert not lake.trusted_alone(manifest(a), [])
    assert lake.hours_to_list([HOUR, end], [trusted], []) == [end]
    # AND compaction clears exactly the marks its manifest holds
    marks = [(a.key, "e1"), (a.key, "e2"), (raw("b").key, "e1")]
    assert lake.cleared_marks(trusted, marks) == [(a.key, "e1")]


def test_late_marks_name_the_object_and_its_version() -> None:
    key = raw("shardId-000000000001-42-0").key
    # an object put while its hour is recent is not late; LATE_AFTER after its end it is
    end = HOUR + timedelta(hours=1)
    assert not layout.is_late(key, end + layout.LATE_AFTER - timedelta(seconds=1))
    assert layout.is_late(key, end + layout.LATE_AFTER)
    # dead letters and verdicts are not the lake's: never late
    assert not layout.is_late(key.replace("raw/", "dead-letter/"), end + timedelta(days=1))
    mark = layout.late_mark_key(key, '"0123abcd-2"')
    assert mark.startswith(f"lake/late/{layout.hour_partition(HOUR)}/")
    assert layout.marked_object(mark) == (key, "0123abcd-2")
    assert layout.marked_object(f"lake/late/{layout.hour_partition(HOUR)}/x") is None
    assert layout.marked_object("lake/late/elsewhere.jsonl.gz.e1") is None


def day_manifest(day: datetime, **changes: object) -> lake.DayManifest:
    rollup = lake.DayManifest(
        day=day,
        generation="d",
        built_at=day + timedelta(days=1, hours=1),
        hours={(day + timedelta(hours=h)).isoformat(): "g" for h in range(24)},
        files=["events/day-file"],
        parts={kind: lake.LakeFile(key=f"{kind}-day", rows=1, bytes=1) for kind in lake.PART_KINDS},
        parts_version=lake.PARTS_VERSION,
        enrichment_version=ENRICHMENT_VERSION,
    )
    return rollup.model_copy(update=changes)


def test_a_day_rolls_up_once_settled_compacted_and_unmarked() -> None:
    day = HOUR.replace(hour=0)
    hours = [day + timedelta(hours=h) for h in range(24)]
    late_enough = day + timedelta(days=1) + layout.LATE_AFTER + layout.CLOCK_SKEW
    trusted = {
        hour: manifest(raw("a")).model_copy(update={"hour": hour, "listed_at": late_enough})
        for hour in hours[:20]
    }
    # GIVEN 20 hours compacted and trusted, and 4 without events
    found = lake.rollup_sources(day, trusted, hours[20:], [])
    assert isinstance(found, dict)
    assert [found[hour] is None for hour in hours] == [False] * 20 + [True] * 4
    # THEN an hour with events but no manifest, one compacted early, or a late mark in the
    # day keeps it from rolling up
    assert (
        lake.rollup_sources(day, trusted, hours[21:], [])
        == f"hour {hours[20]:%Y-%m-%dT%H} not compacted"
    )
    early = {**trusted, hours[3]: trusted[hours[3]].model_copy(update={"listed_at": None})}
    assert "compacted again" in str(lake.rollup_sources(day, early, hours[20:], []))
    assert "late objects" in str(
        lake.rollup_sources(day, trusted, hours[20:], [(raw("a").key, "e9")])
    )
    # AND a day settles only once every object written into it later would be marked
    assert not lake.day_settled(day, late_enough - timedelta(seconds=1))
    assert lake.day_settled(day, late_enough)


def test_a_reading_takes_a_rollup_for_its_hours() -> None:
    day = HOUR.replace(hour=0)
    rollup = day_manifest(day)
    next_hour = day + timedelta(days=1)
    later = manifest(files=("events/next",)).model_copy(update={"hour": next_hour})
    # GIVEN a day rolled up and an hour of the next day compacted
    found = lake.reading([], [later], [rollup])
    # THEN the day's event files and rollup parts are read, and the next hour's own
    assert found.parquet_files == ("events/day-file", "events/next")
    assert found.day_part_files == tuple((kind, f"{kind}-day") for kind in lake.PART_KINDS)
    assert found.parts_of("sessions") == ["sessions-part"]
    assert found.parted_hours == frozenset(rollup.day_hours) | {next_hour}
    # AND the rolled hours' own manifests and raw objects, if given, are the rollup's
    assert lake.reading([raw("a")], [manifest(raw("a"))], [rollup]).parquet_files == (
        "events/day-file",
    )
    # AND a rollup of other versions is not read
    stale = day_manifest(day, parts_version=lake.PARTS_VERSION - 1)
    assert lake.reading([], [], [stale]).day_part_files == ()
