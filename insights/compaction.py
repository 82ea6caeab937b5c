"""`clickstream compact`: an hour of the raw archive into Parquet, exactly once.

One hour at a time (`insights.lake` decides, this edge does):
1. list the hour's raw objects and read its published manifest (with its ETag);
2. when the manifest holds every raw object as it is, nothing to write;
3. otherwise DuckDB streams every raw object of the hour (and the rows of the published
   generation whose raw objects expired) through a sort by session and time into
   Parquet files of a new generation (`COPY … TO … (FORMAT parquet)`: an external sort
   within `memory_limit`, spilling to `temp_directory`);
4. the files written are counted back per raw object, then the manifest is put only if the
   hour's manifest is still the one read in 1 (S3's conditional put): of two compactions of
   an hour, one publishes and the other deletes its files;
5. Athena's symlink follows the manifest; files no manifest names are deleted once older
   than the grace period (a replaced generation, or one whose compaction died).

A compaction killed anywhere leaves either the old manifest (its new files are named by
nothing, read by nobody, and swept later) or the new one: each event is in the lake once.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import structlog

from clickstream.kernel.enrichment.columns import ENRICHMENT_VERSION
from clickstream.stores import archive_layout as layout
from insights import enriched, lake, sessions_sql
from insights.lake_reader import (
    EVENT_NAMES,
    HOUR_COLUMNS,
    PARTITION_NAMES,
    STORED_NAMES,
    parquet_rows,
    raw_select,
)
from insights.lake_store import LakeError, LakeStore
from insights.settings import LakeSettings
from insights.sql import HIVE_TYPES, ArchiveLocation, open_duckdb, quote, run_once

log = structlog.get_logger("clickstream.compact")


class Compactor:
    def __init__(
        self,
        s3: Any,
        archive: ArchiveLocation,
        settings: LakeSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        token: Callable[[], str] = lambda: uuid.uuid4().hex[:8],
    ) -> None:
        self._store = LakeStore(s3, archive.bucket)
        self._archive = archive
        self._settings = settings
        self._clock = clock
        self._token = token

    @property
    def settle(self) -> timedelta:
        return timedelta(minutes=self._settings.settle_minutes)

    def closed(self, hour: datetime) -> bool:
        return lake.is_closed(hour, self._clock(), self.settle)

    def compact(
        self, hour: datetime, *, excluding_sessions: frozenset[str] = frozenset()
    ) -> lake.HourResult:
        """Compact one hour. `excluding_sessions` (an erasure, `clickstream forget`) writes a
        new generation without those sessions' rows even when the hour is up to date."""
        started = time.monotonic()
        hour = layout.start_of_hour(hour)
        listed_at = self._clock()
        raw = self._store.raw_objects(hour)
        published, published_etag = self._store.manifest(hour)
        plan = lake.plan_hour(hour, raw, published)
        if excluding_sessions and published is not None:
            # Every row is rewritten from what holds it now: raw objects, and the published
            # generation for objects that expired.
            plan = lake.HourPlan(
                hour,
                up_to_date=False,
                raw=plan.raw,
                carried_files=tuple(file.key for file in published.files),
                carried_except=frozenset(obj.key for obj in plan.raw),
            )
        result = lake.HourResult(hour, "up to date", raw_objects=len(raw))
        if plan.up_to_date:
            if published is not None:
                result.events, result.files = published.rows, len(published.files)
                result.generation = published.generation
                self._follow_symlink(published, result)
            else:
                result.outcome = "empty"
        else:
            self._write_generation(
                plan, published, published_etag, result, excluding_sessions, listed_at
            )
        result.swept = self._sweep(hour)
        self._clear_marks(hour, result)
        result.seconds = time.monotonic() - started
        log.info("hour compacted", **result.as_dict())
        return result

    def _write_generation(
        self,
        plan: lake.HourPlan,
        published: lake.HourManifest | None,
        published_etag: str | None,
        result: lake.HourResult,
        excluding_sessions: frozenset[str],
        listed_at: datetime,
    ) -> None:
        hour = plan.hour
        began = time.monotonic()
        generation = lake.generation_name(self._clock(), self._token())
        written = self._copy(plan, generation, excluding_sessions)
        files = self._store.generation_files(hour, generation)
        by_file, by_source = self._count_back([key for key, _ in files])
        if sum(by_source.values()) != written:
            self._store.delete([key for key, _ in files])
            raise LakeError(
                f"hour {hour:%Y-%m-%dT%H}: {written} rows written but "
                f"{sum(by_source.values())} read back; nothing published"
            )
        parts_began = time.monotonic()
        try:
            parts = self._write_parts(hour, generation, [key for key, _ in files])
        except LakeError:
            self._store.delete([key for key, _ in files])
            raise
        parts_written = time.monotonic()
        files_and_parts = [key for key, _ in files] + [part.key for part in parts.values()]
        if time.monotonic() - began > self._settings.grace_minutes * 60 / 2:
            # Its files could be swept by another run as orphans: do not publish them.
            self._store.delete(files_and_parts)
            result.outcome = "too slow"
            result.notes.append("took over half the grace period: not published, run again")
            return
        held = published.etags() if published else {}
        sources = [
            lake.Source(key=obj.key, etag=obj.etag, rows=by_source.get(obj.key, 0))
            for obj in plan.raw
        ]
        present = {obj.key for obj in plan.raw}
        sources += [
            lake.Source(key=key, etag=held[key], rows=rows)
            for key, rows in sorted(by_source.items())
            if key not in present and key in held
        ]
        manifest = lake.HourManifest(
            hour=hour,
            generation=generation,
            published_at=self._clock(),
            listed_at=listed_at,
            files=[
                lake.LakeFile(key=key, rows=by_file.get(key, 0), bytes=size) for key, size in files
            ],
            sources=sources,
            enrichment_version=ENRICHMENT_VERSION,
            parts=parts,
            parts_version=lake.PARTS_VERSION,
        )
        # A rollup of the day names the generation this one replaces: it goes first, so a
        # reader that finds it finds the hours it was built from (`roll_up` builds it anew).
        withdrawn = self._store.withdraw_day(layout.start_of_day(hour))
        if withdrawn is not None and excluding_sessions:
            # An erasure: the rollup's parts hold the person, they go now, not after the grace.
            self._store.delete([part.key for part in withdrawn.parts.values()])
        if not self._store.publish(manifest, published_etag):
            self._store.delete(files_and_parts)
            result.outcome = "lost race"
            result.notes.append("another compaction published this hour first")
            return
        self._store.put_symlink(manifest)
        result.outcome = "compacted"
        result.events, result.files = manifest.rows, len(manifest.files)
        result.bytes = sum(size for _, size in files)
        result.parts_bytes = sum(part.bytes for part in parts.values())
        result.parts_seconds = parts_written - parts_began
        result.generation = generation
        if plan.carried_files:
            result.notes.append("rows of expired raw objects kept from the last generation")

    def _connection(self) -> duckdb.DuckDBPyConnection:
        settings = self._settings
        connection = open_duckdb(
            self._archive,
            {
                "memory_limit": settings.resolved_memory_limit(),
                "threads": settings.threads,
                "temp_directory": str(settings.temp_directory or tempfile.gettempdir()),
                # Rows reach the sort in any order: DuckDB need not keep the files' order.
                "preserve_insertion_order": False,
            },
        )
        # A multipart upload's part is max_filesize / 10,000 and held in DuckDB's memory:
        # the default (800 GB) takes 80 MB parts from the sort's budget (an out-of-memory
        # error at 512 MB). Our files are at most max_file_megabytes: 5 MB parts are enough.
        largest = max(50, settings.max_file_megabytes * 2 // 1024)
        connection.execute(f"SET s3_uploader_max_filesize = '{largest}GB'")
        connection.execute("SET s3_uploader_thread_limit = 2")
        return connection

    def _copy(
        self, plan: lake.HourPlan, generation: str, excluding_sessions: frozenset[str]
    ) -> int:
        bucket = self._archive.bucket
        parts = []
        if plan.raw:
            paths = [f"s3://{bucket}/{obj.key}" for obj in plan.raw]
            parts.append(raw_select(paths, with_source=True))
        if plan.carried_files:
            carried = [f"s3://{bucket}/{key}" for key in plan.carried_files]
            kept = ", ".join(quote(key) for key in sorted(plan.carried_except)) or "''"
            parts.append(
                f"SELECT {EVENT_NAMES}, {PARTITION_NAMES}, {lake.SOURCE_COLUMN} "  # noqa: S608
                f"FROM {parquet_rows(carried)} "
                f"WHERE {lake.SOURCE_COLUMN} NOT IN ({kept})"
            )
        target = f"s3://{bucket}/{layout.lake_prefix(plan.hour)}{generation}"
        # Sorted by session, then time: a session's events sit in one or two row groups, and
        # each row group holds few sessions' user agents and ids, which compress well. The
        # bench measured it against page first (docs/lake.md): a session's events read 39x
        # fewer bytes than from raw (5x with page first), one page's clicks 15x (44x), the
        # top pages 59x (180x), and the files are a fifth smaller.
        settings = self._settings
        # The partitions are in the path; the files hold the columns and the raw object.
        excluded = ""
        if excluding_sessions:
            names = ", ".join(quote(session) for session in sorted(excluding_sessions))
            excluded = f" WHERE session_id NOT IN ({names})"
        statement = (
            # `event_time` too, for Athena: its `sessions` view orders a session's events by
            # it (`insights.sessions_sql.sessions_select`; DuckDB computes it from `timestamp`).
            f"COPY (SELECT {EVENT_NAMES}, {STORED_NAMES}, {enriched.EVENT_TIME} AS event_time, "  # noqa: S608
            f"{lake.SOURCE_COLUMN} FROM ("
            + enriched.enriched_select(" UNION ALL ".join(parts))
            + f"){excluded} ORDER BY session_id, timestamp, event_id) "
            f"TO {quote(target)} (FORMAT parquet, COMPRESSION {settings.compression}, "
            f"ROW_GROUP_SIZE {settings.row_group_rows}, "
            f"FILE_SIZE_BYTES '{settings.max_file_megabytes}MB', FILENAME_PATTERN 'part-{{i}}')"
        )
        connection = self._connection()
        enriched.register(connection)
        try:
            rows = run_once(connection, statement)
        except duckdb.Error as exc:
            raise LakeError(
                f"hour {plan.hour:%Y-%m-%dT%H}: {str(exc).strip().splitlines()[0]}"
            ) from None
        return int(rows[0][0]) if rows else 0

    def _write_parts(
        self, hour: datetime, generation: str, keys: list[str]
    ) -> dict[str, lake.LakeFile]:
        """The hour's parts (`insights.sessions_sql`), from the generation's files as
        written: one Parquet file each, beside the generation, named by its manifest."""
        bucket = self._archive.bucket
        listed = ", ".join(quote(f"s3://{bucket}/{key}") for key in keys)
        written = {}
        # One connection for the three (each opening loads httpfs and its secret).
        with contextlib.closing(self._connection()) as connection:
            for kind in lake.PART_KINDS:
                key = f"{layout.lake_prefix(hour)}{generation}.parts/{kind}.parquet"
                # An hour left with no event (a person erased) still gets its (empty) parts.
                source = (
                    sessions_sql.PART_SELECTS[kind](f"read_parquet([{listed}])")
                    if keys
                    else sessions_sql.no_parts(kind)
                )
                written[kind] = self._copy_to(
                    connection, source, key, f"hour {hour:%Y-%m-%dT%H} {kind} parts"
                )
        return written

    def _copy_to(
        self, connection: duckdb.DuckDBPyConnection, select: str, key: str, what: str
    ) -> lake.LakeFile:
        """`select`'s rows as one Parquet file of the lake under `key`, described."""
        bucket = self._archive.bucket
        try:
            rows = connection.execute(
                f"COPY ({select}) TO {quote(f's3://{bucket}/{key}')} "
                f"(FORMAT parquet, COMPRESSION {self._settings.compression})"
            ).fetchall()
        except duckdb.Error as exc:
            raise LakeError(f"{what}: {str(exc).strip().splitlines()[0]}") from None
        count = int(rows[0][0]) if rows else 0
        return lake.LakeFile(key=key, rows=count, bytes=self._store.size(key))

    def _count_back(self, keys: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        """Rows per file and per raw object, read back from what S3 holds."""
        if not keys:
            return {}, {}
        bucket = self._archive.bucket
        listed = ", ".join(quote(f"s3://{bucket}/{key}") for key in keys)
        rows = run_once(
            open_duckdb(self._archive),
            f"SELECT filename, {lake.SOURCE_COLUMN}, count(*) "  # noqa: S608
            f"FROM read_parquet([{listed}], filename = true) GROUP BY ALL",
        )
        by_file: dict[str, int] = {}
        by_source: dict[str, int] = {}
        for path, source, count in rows:
            key = str(path).removeprefix(f"s3://{bucket}/")
            by_file[key] = by_file.get(key, 0) + int(count)
            by_source[str(source)] = by_source.get(str(source), 0) + int(count)
        return by_file, by_source

    def _follow_symlink(self, published: lake.HourManifest, result: lake.HourResult) -> None:
        # A compaction that died between its manifest and the symlink left Athena the old one.
        if self._store.symlink(published.hour) != lake.symlink_text(self._store.bucket, published):
            self._store.put_symlink(published)
            result.notes.append("Athena's symlink brought up to the manifest")

    def roll_up(self, day: datetime) -> lake.HourResult:
        """The day's rollup (`lake.DayManifest`): its hours' parts in one file per kind, built
        once the day is settled and every hour with events is compacted with this version and
        trusted alone; again when one of its hours was published since (which withdrew it).
        The result's `hour` is the day's first."""
        started = time.monotonic()
        day = layout.start_of_day(day)
        result = lake.HourResult(day, "rolled up")
        if not lake.day_settled(day, self._clock()):
            result.outcome = "not settled"
            return result
        hours = lake.hours_of_day(day)
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = dict(
                zip(hours, pool.map(lambda h: self._store.manifest(h)[0], hours), strict=True)
            )
        manifests = {hour: manifest for hour, manifest in found.items() if manifest is not None}
        empty = [h for h in hours if h not in manifests and not self._store.raw_objects(h)]
        sources = lake.rollup_sources(day, manifests, empty, self._store.late_marks(day=day))
        if isinstance(sources, str):
            result.outcome = "waiting"
            result.notes.append(sources)
            return result
        generations = {
            hour.isoformat(): (manifest.generation if manifest else None)
            for hour, manifest in sources.items()
        }
        existing = self._store.day_manifest(day)
        if not manifests:
            result.outcome = "empty"
        elif existing is not None and existing.current and existing.hours == generations:
            result.outcome = "up to date"
        else:
            self._write_rollup(day, list(manifests.values()), generations, result)
        result.swept = self._sweep_day(day)
        result.seconds = time.monotonic() - started
        log.info("day rolled up", **result.as_dict())
        return result

    def _write_rollup(
        self,
        day: datetime,
        manifests: list[lake.HourManifest],
        generations: dict[str, str | None],
        result: lake.HourResult,
    ) -> None:
        bucket = self._archive.bucket
        generation = lake.generation_name(self._clock(), self._token())
        parts = {}
        with contextlib.closing(self._connection()) as connection:
            for kind in lake.PART_KINDS:
                listed = ", ".join(
                    quote(f"s3://{bucket}/{manifest.parts[kind].key}") for manifest in manifests
                )
                names = ", ".join(name for name, _ in sessions_sql.PART_COLUMNS[kind])
                # The hours' partition columns kept in the file: a day has no hour in its path.
                select = (
                    f"SELECT {names}, {HOUR_COLUMNS} FROM read_parquet([{listed}], "  # noqa: S608
                    f"hive_partitioning = true, hive_types = {HIVE_TYPES})"
                )
                key = layout.day_key(day, f"{generation}/{kind}.parquet")
                parts[kind] = self._copy_to(
                    connection, select, key, f"day {day:%Y-%m-%d} {kind} rollup"
                )
                if parts[kind].rows != sum(manifest.parts[kind].rows for manifest in manifests):
                    self._store.delete([part.key for part in parts.values()])
                    raise LakeError(f"day {day:%Y-%m-%d} {kind} rollup: rows do not add up")
        rollup = lake.DayManifest(
            day=day,
            generation=generation,
            built_at=self._clock(),
            hours=generations,
            files=[file.key for manifest in manifests for file in manifest.files],
            parts=parts,
            parts_version=lake.PARTS_VERSION,
            enrichment_version=ENRICHMENT_VERSION,
        )
        self._store.put_day_manifest(rollup)
        # An hour published meanwhile withdrew no rollup yet (this one was not there): if
        # one did change, this rollup is not the day's.
        for iso, expected in generations.items():
            current, _ = self._store.manifest(datetime.fromisoformat(iso))
            if (current.generation if current else None) != expected:
                self._store.withdraw_day(day)
                result.outcome = "lost race"
                result.notes.append(f"hour {iso} was published meanwhile: rolled up next time")
                return
        result.generation = generation
        result.parts_bytes = sum(part.bytes for part in parts.values())
        result.events = sum(manifest.rows for manifest in manifests)

    def _sweep_day(self, day: datetime) -> int:
        """The day's rollup files no rollup names, once older than the grace."""
        current = self._store.day_manifest(day)
        named = {part.key for part in current.parts.values()} if current else set()
        cutoff = self._clock() - timedelta(minutes=self._settings.grace_minutes)
        stale = [
            stored.key
            for stored in self._store.day_files(day)
            if stored.key not in named and stored.last_modified <= cutoff
        ]
        self._store.delete(stale)
        return len(stale)

    def marked_hours(self) -> list[datetime]:
        """The hours with late marks (`archive_layout.late_mark_key`): objects archived after
        their hour could have been compacted, whatever its age, to fold in."""
        return sorted({h for key, _ in self._store.late_marks() if (h := layout.hour_of(key))})

    def _clear_marks(self, hour: datetime, result: lake.HourResult) -> None:
        """The hour's late marks its published manifest now holds as marked go: readers trust
        the manifest alone again. A mark of an object it does not hold (written since) stays."""
        marks = self._store.late_marks(hour)
        if not marks:
            return
        published, _ = self._store.manifest(hour)
        cleared = lake.cleared_marks(published, marks) if published else []
        self._store.clear_marks(cleared)
        result.marks_cleared = len(cleared)

    def _sweep(self, hour: datetime) -> int:
        published, _ = self._store.manifest(hour)
        stale = lake.sweepable(
            self._store.lake_files(hour),
            published,
            self._clock(),
            timedelta(minutes=self._settings.grace_minutes),
        )
        self._store.delete(stale)
        return len(stale)
