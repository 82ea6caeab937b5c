"""The lake: closed hours of the raw archive as Parquet, and what a reader reads. Pure: no I/O.

The raw archive (`raw/…/*.jsonl.gz`, one object per shard, hour and commit window) stays the
source of truth while it is kept. Compacting an hour writes its events as Parquet files of a
new *generation* under `events/year=/month=/day=/hour=/<generation>/`, then publishes the
hour's manifest (`lake/manifests/…/hour=HH/manifest.json`), written last and conditionally.
The manifest names the generation's files and every raw object it holds, with the ETag the
object had when it was read; each Parquet row keeps its raw object's key (`raw_object`).

A reader folds the two: the Parquet rows of the published generations, except those of raw
objects that changed since (a replay rewrote the key: its ETag differs), plus the raw objects
no manifest holds as they are now (late objects, rewritten ones, hours not compacted yet).
Every event is then read once whichever step a compaction died at: files of a generation
that was never published are read by nobody, and a raw object that expired after its hour was
compacted is still read from the Parquet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from clickstream.kernel.enrichment.columns import ENRICHMENT_VERSION
from clickstream.stores.archive_layout import (
    CLOCK_SKEW,
    LATE_AFTER,
    hour_of,
    start_of_day,
    start_of_hour,
)

PARTS_VERSION: Final = 2
"""The version of the session parts compaction writes beside an hour's Parquet
(`insights.sessions_sql`): an hour with parts of another version (or none) is compacted
again, and read as raw meanwhile. Bump it with any change to what the parts hold."""
PART_KINDS: Final = ("sessions", "pages", "custom_events", "views")
"""The hour's parts, one file each: session parts, page parts, custom events and page views
(version 2: what funnels and paths read)."""

SOURCE_COLUMN: Final = "raw_object"
"""The raw object a Parquet row came from: what lets a reader and the next compaction
replace exactly the rows of a rewritten object and keep those of an expired one."""


def generation_name(now: datetime, token: str) -> str:
    """A generation's name: its start time first, so names sort by age, then a random token
    so two compactions started in the same second never share files."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{token}"


def is_closed(hour: datetime, now: datetime, settle: timedelta) -> bool:
    """An hour is closed once its end is `settle` behind: the workers' commit window (the
    archive's flush cadence) and the page watch's lateness have passed, so its objects are
    written. Objects that still come later (a worker down for longer, a replay, an event
    days late) are folded in by the next compaction; readers see them from the raw archive
    until then."""
    return hour + timedelta(hours=1) + settle <= now


@dataclass(frozen=True, slots=True)
class RawObject:
    key: str
    etag: str
    size: int


class LakeFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    rows: int
    bytes: int


class Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    etag: str
    rows: int


class HourManifest(BaseModel):
    """What a published generation holds: written last, it is the hour's commit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = 1
    hour: datetime
    generation: str
    published_at: datetime
    listed_at: datetime | None = None
    """When the compaction listed the hour's raw objects (its clock): every object written
    later is one the workers wrote late and marked (`clickstream.stores.archive_layout`'s
    late marks). None: compacted before it was recorded."""
    files: list[LakeFile]
    sources: list[Source]
    enrichment_version: int = 0
    """The enrichment columns' version its files hold (`clickstream.kernel.enrichment.columns`);
    0: compacted before they were written."""
    parts: dict[str, LakeFile] = Field(default_factory=dict)
    """The hour's parts (`PART_KINDS`) by kind: what reports read rather than its events."""
    parts_version: int = 0
    """`PARTS_VERSION` of `parts`; 0: none."""

    @property
    def enriched(self) -> bool:
        """Whether its files' enrichment columns are this version's."""
        return self.enrichment_version == ENRICHMENT_VERSION

    @property
    def current(self) -> bool:
        """Whether its enrichment columns and its parts are this version's."""
        return self.enriched and self.parts_version == PARTS_VERSION

    @property
    def stored_keys(self) -> list[str]:
        """Every object the generation wrote: its event files and its parts."""
        return [file.key for file in self.files] + [file.key for file in self.parts.values()]

    @property
    def rows(self) -> int:
        return sum(file.rows for file in self.files)

    def etags(self) -> dict[str, str]:
        return {source.key: source.etag for source in self.sources}


class DayManifest(BaseModel):
    """A day rollup: the parts of a UTC day's hours in one file per kind (with their hour
    columns), and the event files of those hours, as the hours' manifests named them when it
    was built. Compaction deletes it before it publishes any of the day's hours again (and
    builds it anew once the day is settled), so a reader that finds it may take it for the
    day's 24 manifests: a month is 30 manifests and 90 files, not 720 and 2,160."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = 1
    day: datetime
    generation: str
    built_at: datetime
    hours: dict[str, str | None]
    """Each hour of the day (ISO) and the generation its parts came from (None: no event)."""
    files: list[str]
    """The hours' event files (what `events` reads of the day)."""
    parts: dict[str, LakeFile]
    parts_version: int
    enrichment_version: int

    @property
    def current(self) -> bool:
        return self.parts_version == PARTS_VERSION and self.enrichment_version == ENRICHMENT_VERSION

    @property
    def day_hours(self) -> list[datetime]:
        return hours_of_day(self.day)


def hours_of_day(day: datetime) -> list[datetime]:
    """The 24 hours of a UTC day."""
    return hours_between(day, day + timedelta(hours=23))


def day_settled(day: datetime, now: datetime) -> bool:
    """Whether a day's hours can no more be written but late (marked): its end is
    `LATE_AFTER` plus `CLOCK_SKEW` behind."""
    return day + timedelta(days=1) + LATE_AFTER + CLOCK_SKEW <= now


def rollup_sources(
    day: datetime,
    manifests: dict[datetime, HourManifest],
    unlisted_empty: Iterable[datetime],
    marks: Iterable[tuple[str, str]],
) -> dict[datetime, HourManifest | None] | str:
    """What a rollup of `day` is built from, each hour's manifest (None: an hour with no
    raw object, `unlisted_empty`), or why it cannot be built now: an hour not compacted, or
    compacted with other versions, or not to be trusted alone (a late mark, listed early)."""
    empty = set(unlisted_empty)
    for key, _ in marks:
        marked = hour_of(key)
        if marked is not None and start_of_day(marked) == day:
            return "late objects to fold in first"
    found: dict[datetime, HourManifest | None] = {}
    for hour in hours_of_day(day):
        manifest = manifests.get(hour)
        if manifest is None:
            if hour not in empty:
                return f"hour {hour:%Y-%m-%dT%H} not compacted"
            found[hour] = None
        elif not manifest.current or not trusted_alone(manifest, []):
            return f"hour {hour:%Y-%m-%dT%H} to be compacted again"
        else:
            found[hour] = manifest
    return found


@dataclass(frozen=True, slots=True)
class HourPlan:
    """What compacting one hour reads: every raw object there is now, and the rows of the
    published generation whose raw objects are gone (expired), which only it still holds."""

    hour: datetime
    up_to_date: bool
    raw: tuple[RawObject, ...]
    carried_files: tuple[str, ...] = ()
    carried_except: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.raw and not self.carried_files


def plan_hour(hour: datetime, raw: Sequence[RawObject], published: HourManifest | None) -> HourPlan:
    """Up to date when the published generation holds every raw object of the hour as it is
    now and its enrichment columns and parts are this version's; otherwise a new generation
    of all of them, plus what only the old one holds."""
    raw = tuple(sorted(raw, key=lambda obj: obj.key))
    if published is None:
        return HourPlan(hour, up_to_date=not raw, raw=raw)
    held = published.etags()
    if published.current and all(held.get(obj.key) == obj.etag for obj in raw):
        return HourPlan(hour, up_to_date=True, raw=raw)
    present = {obj.key for obj in raw}
    expired = [key for key in held if key not in present]
    if not expired:
        return HourPlan(hour, up_to_date=False, raw=raw)
    return HourPlan(
        hour,
        up_to_date=False,
        raw=raw,
        carried_files=tuple(file.key for file in published.files),
        carried_except=frozenset(present),
    )


@dataclass(frozen=True, slots=True)
class LakeReading:
    """What a reader of `events` reads: Parquet files minus the rows of raw objects that
    changed since their hour was compacted, plus the raw objects no manifest holds as they
    are."""

    parquet_files: tuple[str, ...] = ()
    """Files whose enrichment columns are this version's: read as they are."""
    stale_parquet_files: tuple[str, ...] = ()
    """Files compacted with another enrichment version: their columns are computed again."""
    changed_sources: frozenset[str] = frozenset()
    raw_keys: tuple[str, ...] = ()
    compacted_hours: int = 0
    raw_only_hours: int = 0
    part_files: tuple[tuple[str, str], ...] = ()
    """(kind, key) of the parts of the hours whose published parts hold every event read of
    them (`parted_hours`)."""
    parted_hours: frozenset[datetime] = frozenset()
    """Hours compacted with this version's parts and no raw object new or changed since."""
    day_part_files: tuple[tuple[str, str], ...] = ()
    """(kind, key) of the day rollups read instead of their hours' parts (the hours in
    `parted_hours` too); their files hold the hour columns."""

    @property
    def all_parquet_files(self) -> tuple[str, ...]:
        return self.parquet_files + self.stale_parquet_files

    def parts_of(self, kind: str) -> list[str]:
        return [key for part, key in self.part_files if part == kind]

    def without_parts(self) -> LakeReading:
        """What is read of the hours without stored parts: their parts are computed from it."""

        def unparted(keys: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(key for key in keys if hour_of(key) not in self.parted_hours)

        return LakeReading(
            parquet_files=unparted(self.parquet_files),
            stale_parquet_files=unparted(self.stale_parquet_files),
            changed_sources=self.changed_sources,
            raw_keys=unparted(self.raw_keys),
        )


def reading(
    raw: Iterable[RawObject],
    manifests: Iterable[HourManifest],
    days: Iterable[DayManifest] = (),
) -> LakeReading:
    """What a reader reads of the hours of `manifests` and `raw`, and of the days `days` roll
    up (their hours' manifests and raw objects are the rollup's: a caller uses a rollup only
    for a day without late marks)."""
    days = [day for day in days if day.current]
    rolled = {hour for day in days for hour in day.day_hours}
    raw = [obj for obj in raw if hour_of(obj.key) not in rolled]
    manifests = [m for m in manifests if start_of_hour(m.hour) not in rolled]
    by_hour: dict[datetime, HourManifest] = {}
    for manifest in manifests:
        by_hour[start_of_hour(manifest.hour)] = manifest
    held: dict[str, str] = {}
    for manifest in by_hour.values():
        held |= manifest.etags()
    raw_keys: list[str] = []
    changed: set[str] = set()
    raw_hours: set[datetime] = set()
    for obj in raw:
        etag = held.get(obj.key)
        if etag == obj.etag:
            continue
        raw_keys.append(obj.key)
        if etag is not None:
            changed.add(obj.key)
        hour = hour_of(obj.key)
        if hour is not None and hour not in by_hour:
            raw_hours.add(hour)
    files = [
        file.key
        for hour in sorted(by_hour)
        if by_hour[hour].enriched
        for file in by_hour[hour].files
    ]
    stale = [
        file.key
        for hour in sorted(by_hour)
        if not by_hour[hour].enriched
        for file in by_hour[hour].files
    ]
    touched = {hour_of(key) for key in raw_keys}
    parted = {hour for hour, manifest in by_hour.items() if manifest.current} - touched
    return LakeReading(
        parquet_files=tuple([key for day in days for key in day.files] + files),
        stale_parquet_files=tuple(stale),
        changed_sources=frozenset(changed),
        raw_keys=tuple(sorted(raw_keys)),
        compacted_hours=len(by_hour) + len(rolled),
        raw_only_hours=len(raw_hours),
        part_files=tuple(
            (kind, by_hour[hour].parts[kind].key) for hour in sorted(parted) for kind in PART_KINDS
        ),
        parted_hours=frozenset(parted | rolled),
        day_part_files=tuple((kind, day.parts[kind].key) for day in days for kind in PART_KINDS),
    )


def trusted_alone(manifest: HourManifest, marks: Iterable[tuple[str, str]]) -> bool:
    """Whether a reader may take the hour's manifest without listing its raw objects: its
    compaction listed them late enough that every object written after was marked late
    (`archive_layout.LATE_AFTER`, `CLOCK_SKEW`), and it holds every marked object as marked
    (`marks`: the hour's (key, ETag)). A manifest without `listed_at` (compacted before it was
    recorded) is not."""
    if manifest.listed_at is None:
        return False
    end = start_of_hour(manifest.hour) + timedelta(hours=1)
    if manifest.listed_at < end + LATE_AFTER + CLOCK_SKEW:
        return False
    held = manifest.etags()
    return all(held.get(key) == etag for key, etag in marks)


def hours_to_list(
    hours: Iterable[datetime],
    manifests: Iterable[HourManifest],
    marks: Iterable[tuple[str, str]],
) -> list[datetime]:
    """Of `hours`, those whose raw objects a reader must list: without a manifest, or with
    one it cannot trust alone (`trusted_alone`)."""
    by_hour = {start_of_hour(manifest.hour): manifest for manifest in manifests}
    marks_by_hour: dict[datetime, list[tuple[str, str]]] = {}
    for key, etag in marks:
        hour = hour_of(key)
        if hour is not None:
            marks_by_hour.setdefault(hour, []).append((key, etag))
    return [
        hour
        for hour in hours
        if (manifest := by_hour.get(start_of_hour(hour))) is None
        or not trusted_alone(manifest, marks_by_hour.get(start_of_hour(hour), []))
    ]


def cleared_marks(
    manifest: HourManifest, marks: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The hour's marks its published manifest holds as marked: compaction deletes them."""
    held = manifest.etags()
    return [(key, etag) for key, etag in marks if held.get(key) == etag]


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    last_modified: datetime


def sweepable(
    stored: Iterable[StoredFile],
    published: HourManifest | None,
    now: datetime,
    grace: timedelta,
) -> list[str]:
    """Files of an hour no published generation names, older than `grace`: a replaced
    generation (kept that long for queries that started before it was replaced) or one
    whose compaction died before publishing. Younger ones may be a running compaction's."""
    named = set(published.stored_keys) if published else set()
    return sorted(
        file.key for file in stored if file.key not in named and now - file.last_modified >= grace
    )


def symlink_text(bucket: str, manifest: HourManifest) -> str:
    """The Athena symlink of an hour: one `s3://` path per line."""
    return "".join(f"s3://{bucket}/{file.key}\n" for file in manifest.files)


@dataclass(slots=True)
class HourResult:
    """What happened to one hour, for the CLI's table and `--json`."""

    hour: datetime
    outcome: str
    events: int = 0
    raw_objects: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    swept: int = 0
    generation: str | None = None
    notes: list[str] = field(default_factory=list)
    parts_bytes: int = 0
    """The bytes of the hour's parts (`PART_KINDS`), beside its events' `bytes`."""
    parts_seconds: float = 0.0
    """The share of `seconds` spent writing the parts."""
    marks_cleared: int = 0
    """Late marks of objects the published manifest holds, deleted."""

    def as_dict(self) -> dict[str, object]:
        return {
            "hour": self.hour.strftime("%Y-%m-%dT%H"),
            "outcome": self.outcome,
            "events": self.events,
            "raw_objects": self.raw_objects,
            "files": self.files,
            "bytes": self.bytes,
            "parts_bytes": self.parts_bytes,
            "seconds": round(self.seconds, 3),
            "parts_seconds": round(self.parts_seconds, 3),
            "swept": self.swept,
            "marks_cleared": self.marks_cleared,
            "generation": self.generation,
            "notes": self.notes,
        }


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """Every hour from `first`'s to `last`'s, both included."""
    hour, end = start_of_hour(first), start_of_hour(last)
    hours = []
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours
