"""`clickstream forget`'s edges: the archive bucket's edits and the run through every store
(what is removed, in which order, and why: `insights.forget`)."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from clickstream.kernel.aws import object_or_none
from clickstream.kernel.logging import get_logger
from clickstream.stores import archive_layout as layout
from clickstream.stores.alerts import AlertsTable
from clickstream.stores.sessions import SessionsTable
from clickstream.stores.suppression import (
    KINDS,
    SALT_KEY,
    SuppressionTable,
    entry_items,
    id_hash,
    read_salt,
)
from insights import archive_views, sql
from insights.archive import listed_keys, object_lines
from insights.compaction import Compactor
from insights.forget import (
    MAX_ID_ROUNDS,
    RECEIPT_PREFIX,
    ForgetError,
    Found,
    Person,
    Receipt,
    carries_any,
    hashed,
    now_text,
    settle_left,
)
from insights.lake_store import LakeStore
from insights.sessions_sql import is_alias, previous_id
from insights.sql import open_duckdb, quote, run_once

log = get_logger(component="forget")


PREVIOUS_ID: Final = (
    f"CASE WHEN type = 'custom' AND {is_alias('properties')} THEN {previous_id('properties')} END"
)
"""An event's `alias` previous id (the person map's link, `insights.sessions_sql`): the
person's too, whichever of their sessions sent it."""


@dataclass
class Run:
    """One run of `forget`: its receipt, whether it only says what it would do, and where
    the receipt is kept."""

    receipt: Receipt
    dry_run: bool
    bucket: BucketEdits

    def save(self) -> None:
        if not self.dry_run:
            self.bucket.save(self.receipt)


class BucketEdits:
    """The archive bucket: objects read, rewritten, deleted (every version), the salt and
    the receipts."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def keys(self, prefix: str) -> list[str]:
        return listed_keys(self.s3, self.bucket, prefix)

    def existing_salt(self) -> str | None:
        return read_salt(self.s3, self.bucket)

    def salt(self) -> str:
        """This deployment's salt for the receipts' and the suppression list's hashes, made
        on first use."""
        found = self.existing_salt()
        if found is not None:
            return found
        made = secrets.token_hex(16)
        with contextlib.suppress(ClientError):  # another run made it first: read theirs
            self.s3.put_object(
                Bucket=self.bucket, Key=SALT_KEY, Body=made.encode(), IfNoneMatch="*"
            )
        found = self.existing_salt()
        if found is None:
            raise ForgetError(f"s3://{self.bucket}/{SALT_KEY} was written but cannot be read")
        return found

    def replace(self, key: str, body: bytes | None) -> None:
        """Write `body` under `key` (None: delete it), then delete the key's older versions
        when the bucket keeps versions: no byte of what was there stays."""
        if body is None:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        else:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        versioning = self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if versioning not in {"Enabled", "Suspended"}:
            return
        answer = self.s3.list_object_versions(Bucket=self.bucket, Prefix=key)
        old = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]
            if v["Key"] == key and not (body is not None and v.get("IsLatest"))
        ]
        if old:
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": old, "Quiet": True})

    def receipt(self, request: str) -> Receipt | None:
        body = object_or_none(self.s3, self.bucket, f"{RECEIPT_PREFIX}/{request}.json")
        return None if body is None else Receipt.from_dict(json.loads(body["Body"].read()))

    def save(self, receipt: Receipt) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=f"{RECEIPT_PREFIX}/{receipt.request}.json",
            Body=json.dumps(receipt.as_dict(), indent=1).encode(),
            ContentType="application/json",
        )


class Forgetter:
    """Runs an erasure: the stores are the edges, the decisions the functions above."""

    def __init__(
        self,
        s3: Any,
        dynamodb: Any,
        archive: Any,
        *,
        sessions_table: str,
        alerts_table: str,
        lake_settings: Any,
        suppression: SuppressionTable | None = None,
        settle_seconds: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._s3 = s3
        self._dynamodb = dynamodb
        self._archive = archive
        self._bucket = BucketEdits(s3, archive.bucket)
        self._sessions = SessionsTable(dynamodb, sessions_table)
        self._alerts = AlertsTable(dynamodb, alerts_table)
        self._lake_settings = lake_settings
        self._suppression = suppression
        self._settle_seconds = settle_seconds
        self._sleep = sleep
        self._stored: Any = None
        self._stored_since: datetime | None = None

    # -- finding -----------------------------------------------------------------------

    def _query(self, query: str, since: datetime | None) -> list[tuple[Any, ...]]:
        """`query` over `stored`: every row any store holds, not the readers' fold. The raw
        archive and every published generation's Parquet both, so that a run killed after
        it cleaned one of them still finds the person in the other and finishes. One
        reading of the bucket (of the hours from `since`'s, when given: nothing before is
        listed) serves every query until the stores change (`_changed`)."""
        if self._stored is not None and self._stored_since != since:
            self._changed()
        if self._stored is None:
            self._stored, self._stored_since = self._open_stored(since), since
        _, rows = sql.run(self._stored, query)
        return rows

    def _changed(self) -> None:
        """The stores were written (or may have been, by others while we waited): the next
        query reads the bucket again."""
        if self._stored is not None:
            self._stored.close()
        self._stored = None

    def _open_stored(self, since: datetime | None) -> Any:
        connection = archive_views.connect(self._archive, self._s3, since=since, enrich=False)
        _, files = sql.run(connection, "SELECT key FROM events_sources WHERE kind = 'parquet'")
        stored = "SELECT * FROM raw_events"
        if files:
            listed = ", ".join(sql.quote(f"s3://{self._archive.bucket}/{f}") for (f,) in files)
            stored += (
                " UNION ALL BY NAME SELECT * EXCLUDE (raw_object) FROM "  # noqa: S608
                f"read_parquet([{listed}], hive_partitioning = true, hive_types = "
                f"{sql.HIVE_TYPES})"
            )
        connection.execute(f"CREATE VIEW stored AS {stored}")
        return connection

    def find_sessions(self, person: Person, since: datetime | None) -> Found:
        """Every session in which one of the person's ids appears, in the raw archive or the
        lake (`events`), from `since`'s hour when given; and every id of theirs those
        sessions show (the anonymous id a user had before logging in, the id an `alias`
        call named as the person's previous one, and so on: the person map's links,
        `insights.sessions_sql.identities_select`), followed until nothing new turns up."""
        users, anonymous = set(person.user_ids), set(person.anonymous_ids)
        sessions = set(person.session_ids)
        for _ in range(MAX_ID_ROUNDS):
            conditions = [
                f"{column} IN ({', '.join(quote(value) for value in sorted(values))})"
                for column, values in (
                    ("user_id", users),
                    ("anonymous_id", anonymous),
                    ("session_id", sessions),
                    (PREVIOUS_ID, users | anonymous),
                )
                if values
            ]
            # Quoted literals only.
            query = (
                f"SELECT DISTINCT session_id, user_id, anonymous_id, {PREVIOUS_ID} "  # noqa: S608
                "FROM events WHERE (" + " OR ".join(conditions) + ")" + _since(since)
            )
            rows = self._query(query, since)
            found = {str(row[0]) for row in rows}
            more_users = {str(row[1]) for row in rows if row[1]}
            more_users |= {str(row[3]) for row in rows if row[3]}
            more_anonymous = {str(row[2]) for row in rows if row[2]}
            more_anonymous |= {str(row[3]) for row in rows if row[3]}
            if found <= sessions and more_users <= users and more_anonymous <= anonymous:
                break
            sessions |= found
            users |= more_users
            anonymous |= more_anonymous
        return Found(frozenset(users), frozenset(anonymous), frozenset(sessions))

    def hours_of(self, sessions: set[str], since: datetime | None) -> list[datetime]:
        if not sessions:
            return []
        listed = ", ".join(quote(session) for session in sorted(sessions))
        rows = self._query(
            "SELECT DISTINCT year, month, day, hour FROM stored "  # noqa: S608
            f"WHERE session_id IN ({listed}){_since(since)}",
            since,
        )
        return sorted(datetime(y, m, d, h, tzinfo=UTC) for y, m, d, h in rows)

    # -- the run ---------------------------------------------------------------------------

    def run(self, person: Person, since: datetime | None, *, dry_run: bool) -> Receipt:
        salt = self._bucket.salt()
        request = person.request(salt)
        receipt = self._bucket.receipt(request) or Receipt(request, now_text())
        receipt.runs += 1
        receipt.status = "running"
        receipt.finished_at = None

        run = Run(receipt, dry_run, self._bucket)
        found = self.find_sessions(person, since)
        if self._suppression is not None:
            self._suppress(found, salt, run)
            wait = settle_left(receipt.suppressed_at or now_text(), self._settle_seconds, _now())
            if wait and not dry_run:
                # Every process reads the list again, every worker writes what it held.
                log.info("waiting for the suppression list to reach every process", seconds=wait)
                self._sleep(wait)
                self._changed()
                found = self.find_sessions(person, since)
                self._suppress(found, salt, run)
        sessions, identifiers = set(found.session_ids), found.identifiers()
        hours = self.hours_of(sessions, since)
        receipt.sessions = sorted({*receipt.sessions, *(hashed(salt, s) for s in sessions)})
        run.save()
        frozen = frozenset(sessions)
        # The raw archive last: until it is clean, a run killed on the way finds the person
        # there again and finishes the other stores.
        self._items(sessions, salt, run)
        needles = [value.encode() for value in {*person.identifiers(), *identifiers}]
        self._dead_letters(needles, run)
        self._lake(hours, frozen, run)
        self._raw(hours, frozen, run)
        self._changed()
        if not dry_run:
            left = self.hours_of(sessions, since)
            if left:
                raise ForgetError(
                    f"the person's events are still read in {len(left)} hours (a compaction "
                    "ran beside this one?): run forget again to finish"
                )
            receipt.status = "done"
            receipt.finished_at = now_text()
            run.save()
        else:
            receipt.status = "dry run"
        self._changed()
        return receipt

    def _suppress(
        self,
        found: Found,
        salt: str,
        run: Run,
    ) -> None:
        """Every id of theirs on the suppression list (put again on a rerun: harmless)."""
        assert self._suppression is not None
        items = entry_items(
            salt, found.by_kind(), run.receipt.request, _now(), self._suppression.days
        )
        run.receipt.suppressed = sorted({*run.receipt.suppressed, *(i["id_hash"] for i in items)})
        if run.dry_run:
            return
        self._suppression.put(items)
        if run.receipt.suppressed_at is None:
            run.receipt.suppressed_at = _now().isoformat()
        run.save()

    def lift(self, person: Person) -> tuple[str, int]:
        """Take the person off the suppression list: the entries their forget request put
        and those of the ids named. (request, entries deleted)."""
        if self._suppression is None:
            raise ForgetError("no suppression table: set CLICKSTREAM_SUPPRESSION_TABLE")
        salt = self._bucket.existing_salt()
        if salt is None:
            return "", 0
        request = person.request(salt)
        named = {
            id_hash(salt, kind, value)
            for kind, values in zip(
                KINDS, (person.user_ids, person.anonymous_ids, person.session_ids), strict=True
            )
            for value in values
        }
        lifted = self._suppression.lift(request, named)
        receipt = self._bucket.receipt(request)
        if receipt is not None:
            receipt.lifted_at = now_text()
            self._bucket.save(receipt)
        return request, lifted

    def _raw(
        self,
        hours: list[datetime],
        sessions: frozenset[str],
        run: Run,
    ) -> None:

        def theirs(line: bytes) -> bool:
            return json.loads(line).get("session_id") in sessions

        for hour in hours:
            for key in self._bucket.keys(layout.raw_prefix(hour)):
                self._rewrite(key, theirs, run.receipt.raw_objects, run)

    def _rewrite(
        self,
        key: str,
        theirs: Callable[[bytes], bool],
        found: dict[str, int],
        run: Run,
    ) -> None:
        """One gzip JSON-lines object without the person's lines (deleted when none is left),
        what it held recorded in `found` first."""
        lines = object_lines(self._s3, self._bucket.bucket, key)
        kept = [line for line in lines if not theirs(line)]
        if len(kept) == len(lines):
            return
        run.receipt.found(found, key, len(lines) - len(kept))
        if not run.dry_run:
            self._bucket.replace(key, layout.gzip_lines(kept) if kept else None)
            run.save()

    def _lake(
        self,
        hours: list[datetime],
        sessions: frozenset[str],
        run: Run,
    ) -> None:
        store = LakeStore(self._s3, self._bucket.bucket)
        listed = ", ".join(quote(session) for session in sorted(sessions))
        for hour in hours:
            published, _ = store.manifest(hour)
            if published is None:
                continue
            files = ", ".join(quote(f"s3://{store.bucket}/{f.key}") for f in published.files)
            rows = run_once(
                open_duckdb(self._archive),
                f"SELECT count(*) FROM read_parquet([{files}]) "  # noqa: S608
                f"WHERE session_id IN ({listed})",
            )
            found = int(rows[0][0]) if rows else 0
            if not found:
                continue
            run.receipt.found(run.receipt.lake_hours, f"{hour:%Y-%m-%dT%H}", found)
            if run.dry_run:
                continue
            result = Compactor(self._s3, self._archive, self._lake_settings).compact(
                hour, excluding_sessions=sessions
            )
            if result.outcome != "compacted":
                raise ForgetError(
                    f"hour {hour:%Y-%m-%dT%H} could not be rewritten ({result.outcome}): "
                    "run forget again"
                )
            # The replaced generation holds the person: it goes now, not after the grace.
            current, _ = store.manifest(hour)
            named = set(current.stored_keys) if current else set()
            for key in [key for key in published.stored_keys if key not in named]:
                self._bucket.replace(key, None)  # every version of it
            run.save()

    def _dead_letters(self, needles: list[bytes], run: Run) -> None:

        def theirs(line: bytes) -> bool:
            data = base64.b64decode(json.loads(line).get("data_base64", ""))
            return carries_any(line, needles) or carries_any(data, needles)

        for key in self._bucket.keys(f"{layout.DEAD_LETTER_PREFIX}/"):
            self._rewrite(key, theirs, run.receipt.dead_letter_objects, run)

    def _items(
        self,
        sessions: set[str],
        salt: str,
        run: Run,
    ) -> None:
        for session in sorted(sessions):
            # A dry run only looks; a run deletes, learning from the answer whether it held.
            held = self._sessions.holds(session) if run.dry_run else self._sessions.delete(session)
            if held and hashed(salt, session) not in run.receipt.session_items:
                run.receipt.session_items.append(hashed(salt, session))
        if not sessions:
            return
        for item in self._alerts.naming(sessions):
            name = hashed(salt, f"{item['rule']}/{item['window_subject']}")
            if name not in run.receipt.alerts:
                run.receipt.alerts.append(name)
            if not run.dry_run:
                self._alerts.delete(str(item["rule"]), str(item["window_subject"]))
        self._verdicts(sessions, salt, run)
        if not run.dry_run:
            run.save()

    def _verdicts(self, sessions: set[str], salt: str, run: Run) -> None:
        """The bot rule's verdicts on the sessions: named by a hash of the session id under
        the hour the session started, which a run need not know, so the prefix is listed
        (one object per judged session: few)."""
        named = {layout.verdict_name(session): session for session in sessions}
        for key in LakeStore(self._s3, self._bucket.bucket).verdict_keys():
            session = named.get(key.rsplit("/", 1)[-1])
            if session is None:
                continue
            if hashed(salt, session) not in run.receipt.bot_verdicts:
                run.receipt.bot_verdicts.append(hashed(salt, session))
            if not run.dry_run:
                self._bucket.replace(key, None)


def _now() -> datetime:
    return datetime.now(UTC)


def _since(since: datetime | None) -> str:
    if since is None:
        return ""
    return (
        " AND make_timestamp(year, month, day, hour, 0, 0) >= "
        f"make_timestamp({since.year}, {since.month}, {since.day}, {since.hour}, 0, 0)"
    )
