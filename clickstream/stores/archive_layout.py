"""The S3 archive's layout, its one owner: what is kept under which key. Pure.

The workers write raw events and dead letters, compaction writes the lake, and every reader
(SQL, the dashboard, heatmaps, `forget`, `archive check`) lists them: each takes its
prefixes, partitions and keys from here, so the layout changes in one place.

- `raw/` the events as their producers sent them, `dead-letter/` the refused records with
  their reasons: one gzip JSON-lines object per (hour partition, shard, commit window),
  named `<shard>-<sequence>-<sub-sequence>.jsonl.gz` after its first record, so a replay
  rewrites the same key (DESIGN.md, "Archive keys");
- `events/` the lake's Parquet generations of closed hours, `lake/manifests/` the manifest
  that publishes an hour's generation, `lake/symlinks/` Athena's view of it;
- raw and dead-letter objects are gzip JSON lines, compressed deterministically
  (`gzip_lines`), so the same lines always make the same bytes and a replay's rewrite is a
  no-op;
- `verdicts/bot_session/` the sessions the workers' bot rule judged (the `sessions` and
  `events` views' `is_bot`, beside the agent's): one gzip JSON-lines object per session,
  named after a hash of its id under the hour it started, written before its alert, so a
  replay rewrites the same key (`verdict_key`);
- `lake/days/` day rollups: a UTC day's parts of its 24 hours in one file per kind, published
  by the day's manifest, which a reader of a month reads instead of 720 hours' (`day_key`);
- `lake/late/` the workers' late marks: an object archived into an hour once its end is
  `LATE_AFTER` behind gets a mark naming it and its ETag (`late_mark_key`), so a reader can
  trust a compacted hour's manifest without listing its raw objects, and compaction finds the
  hours to fold them into (docs/reports.md, "Reading a month");
- each under a Hive-style partition of its hour, `year=YYYY/month=MM/day=DD/hour=HH` (event
  time for `raw/` and the lake, arrival time for dead letters), which the Glue tables'
  partition projection reads, and which lists in time order (zero-padded).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from isal import igzip

RAW_PREFIX: Final = "raw"
DEAD_LETTER_PREFIX: Final = "dead-letter"
LAKE_PREFIX: Final = "events"
MANIFEST_PREFIX: Final = "lake/manifests"
VERDICT_PREFIX: Final = "verdicts/bot_session"
"""The bot rule's verdicts: one object per judged session (`verdict_key`)."""
SYMLINK_PREFIX: Final = "lake/symlinks"
"""Athena's view of the lake: per hour one `symlink.txt` naming the published generation's
files (the Glue table `events` reads them through Hive's SymlinkTextInputFormat), so a
query never sees a generation being written or one being replaced."""
GOALS_KEY: Final = "config/goals.json"
"""The site's goals (`insights.goals_store`): outside every prefix the lifecycle rules expire."""
LATE_PREFIX: Final = "lake/late"
LATE_AFTER: Final = timedelta(minutes=5)
"""An object archived into an hour this long after its end is marked late: the workers
archive an hour's last events at their commit a minute after it, so only a worker behind,
a replay or an event sent late writes there this late."""
CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far a worker's clock and a compaction's may disagree: a manifest is trusted alone
(its hour's raw objects not listed) when its compaction listed them `LATE_AFTER` plus this
after the hour's end, so every object written after that listing is marked."""
MANIFEST_NAME: Final = "manifest.json"
LINES_SUFFIX: Final = ".jsonl.gz"
"""The raw and dead-letter objects' suffix."""

_PARTITION: Final = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})(?:/|$)")


def hour_partition(hour: datetime) -> str:
    """`year=2026/month=11/day=20/hour=09`: the archive's Hive-style partition of an hour."""
    return f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"


def hour_of(key: str) -> datetime | None:
    """The hour an object key's partition names, or None for a key outside any partition."""
    found = _PARTITION.search(key)
    if found is None:
        return None
    year, month, day, hour = (int(part) for part in found.groups())
    return datetime(year, month, day, hour, tzinfo=UTC)


def start_of_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def partition_path(prefix: str, moment: datetime) -> str:
    """`prefix`'s partition of the hour `moment` falls in."""
    return partition_of_hour(prefix, int(moment.timestamp() // 3600))


@functools.lru_cache(maxsize=4096)
def partition_of_hour(prefix: str, hour: int) -> str:
    """`partition_path` of an hour given as hours since the epoch."""
    # Formatting a date per event was a good share of the processor's time; hours repeat.
    return f"{prefix}/{hour_partition(datetime.fromtimestamp(hour * 3600, tz=UTC))}"


def lines_key(partition: str, shard_id: str, sequence_number: str, sub_sequence: int) -> str:
    """A raw or dead-letter object's key: its partition, then its shard and first record."""
    return f"{partition}/{shard_id}-{sequence_number}-{sub_sequence}{LINES_SUFFIX}"


def hour_start_key(prefix: str, moment: datetime) -> str:
    """What ListObjectsV2's `StartAfter` takes to list `prefix`'s keys from `moment`'s hour
    partition on: S3 lists keys in byte order, which is time order here."""
    return f"{prefix}/{hour_partition(start_of_hour(moment))}"


def raw_prefix(hour: datetime) -> str:
    return f"{RAW_PREFIX}/{hour_partition(hour)}/"


def lake_prefix(hour: datetime) -> str:
    return f"{LAKE_PREFIX}/{hour_partition(hour)}/"


def manifest_key(hour: datetime) -> str:
    return f"{MANIFEST_PREFIX}/{hour_partition(hour)}/{MANIFEST_NAME}"


def symlink_key(hour: datetime) -> str:
    return f"{SYMLINK_PREFIX}/{hour_partition(hour)}/symlink.txt"


DAY_PREFIX: Final = "lake/days"
"""Day rollups: `lake/days/year=/month=/day=/manifest.json` and its generations' files."""
_DAY: Final = re.compile(r"year=(\d{4})/month=(\d{2})/day=(\d{2})(?:/|$)")


def day_partition(day: datetime) -> str:
    return f"year={day:%Y}/month={day:%m}/day={day:%d}"


def day_key(day: datetime, name: str) -> str:
    """A key of `day`'s rollup: its manifest (`MANIFEST_NAME`) or a generation's file."""
    return f"{DAY_PREFIX}/{day_partition(day)}/{name}"


def start_of_day(moment: datetime) -> datetime:
    return start_of_hour(moment).replace(hour=0)


def day_of(key: str) -> datetime | None:
    """The UTC day a key's day partition names, or None."""
    found = _DAY.search(key)
    if found is None:
        return None
    year, month, day = (int(part) for part in found.groups())
    return datetime(year, month, day, tzinfo=UTC)


def is_late(key: str, now: datetime) -> bool:
    """Whether an object archived under `key` now is late: a raw object's hour ended
    `LATE_AFTER` ago or more."""
    hour = hour_of(key) if key.startswith(f"{RAW_PREFIX}/") else None
    return hour is not None and hour + timedelta(hours=1) + LATE_AFTER <= now


def late_mark_key(key: str, etag: str) -> str:
    """The late mark of the raw object `key` as S3 stored it (its ETag): under its hour, named
    after it and the ETag, so a replay writing the same bytes writes the same mark, and
    compaction clears exactly the marks of what it folded in."""
    hour = hour_of(key)
    if hour is None or not key.startswith(f"{RAW_PREFIX}/"):
        raise ValueError(f"{key}: not a raw object")
    name, tag = key.rsplit("/", 1)[1], etag.strip('"')
    return f"{LATE_PREFIX}/{hour_partition(hour)}/{name}.{tag}"


def marked_object(mark_key: str) -> tuple[str, str] | None:
    """The raw object (key, ETag) a late mark names; None for a key that is not a mark."""
    hour = hour_of(mark_key)
    if hour is None or not mark_key.startswith(f"{LATE_PREFIX}/"):
        return None
    name, _, etag = mark_key.rsplit("/", 1)[1].rpartition(".")
    if not name.endswith(LINES_SUFFIX) or not etag:
        return None
    return f"{raw_prefix(hour)}{name}", etag


PARTS_SYMLINK_PREFIX: Final = "lake/parts"
"""Athena's view of an hour's parts (`insights.sessions_sql`): per kind and hour one
`symlink.txt` naming the published generation's file of that kind."""


def parts_symlink_key(kind: str, hour: datetime) -> str:
    return f"{PARTS_SYMLINK_PREFIX}/{kind}/{hour_partition(hour)}/symlink.txt"


def verdict_name(session_id: str) -> str:
    """A verdict object's name: a hash of the session id (an id is up to 256 characters of
    any script, more than a key can hold once escaped), which `forget` finds again."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32] + LINES_SUFFIX


def verdict_key(session_id: str, started: datetime) -> str:
    """The bot verdict of a session that started at `started`: under that hour's partition,
    so a reader of recent hours lists recent verdicts only."""
    return f"{partition_path(VERDICT_PREFIX, started)}/{verdict_name(session_id)}"


GZIP_LEVEL: Final = 2
"""ISA-L's level 2 (`isal.igzip`, standard gzip that any reader inflates): a quarter of
zlib's level-3 time on event lines for 7 % more bytes (0.155 of the raw size against
0.145). Compressing was the processor's largest single cost, and a few more stored and
scanned bytes cost far less than the CPU (docs/consumer.md, "Figures")."""


def gzip_lines(lines: Sequence[bytes]) -> bytes:
    # mtime=0: the same lines always compress to the same bytes, so replays are no-ops.
    body = b"\n".join(lines) + b"\n" if lines else b""
    return igzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def lines_of(body: bytes) -> list[bytes]:
    """A raw or dead-letter object's lines (its body as stored: gzip JSON lines)."""
    return [line for line in gzip.decompress(body).split(b"\n") if line]
