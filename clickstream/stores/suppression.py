"""The suppression list: the ids of people erased with `clickstream forget`, whose events
arriving afterwards (a tab still open, a retried beacon, a replay of the stream) the
collector and the workers drop and count instead of storing.

The list is a DynamoDB table of salted hashes (`id_hash`: HMAC-SHA256 of the id's kind and
value under this deployment's salt), never the ids in clear; the salt lives apart from it,
in the archive bucket (`forget-receipts/_salt`), so a copy of the table alone cannot confirm
a guessed id. Each process holds the whole list in memory and reads it again every
`refresh_seconds`: a lookup is a hash per id, no call, and none at all while the list is
empty (most deployments, most of the time).

Pure: `Suppression` (the list as a value), `entry_items`; the edges are `SuppressionList`
(reads) and `SuppressionTable` (`forget`'s writes).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickstream.kernel.aws import object_or_none
from clickstream.kernel.dynamo import scan_table, to_dynamo
from clickstream.kernel.errors import ConfigurationError
from clickstream.kernel.logging import get_logger

SALT_KEY: Final = "forget-receipts/_salt"
"""Where the deployment's salt lives in the archive bucket (made by the first `forget`)."""
KINDS: Final = ("user_id", "anonymous_id", "session_id")

log = get_logger(component="suppression")


class SuppressionSettings(BaseSettings):
    """`CLICKSTREAM_SUPPRESSION_*`: read by the collector, the workers and `forget`."""

    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_SUPPRESSION_", extra="ignore")

    table: str | None = Field(
        default=None, description="The suppression table (the stack's SuppressionTableName)."
    )
    bucket: str | None = Field(
        default=None,
        description="The bucket holding the salt (the archive bucket; the workers and "
        "`forget` default to theirs).",
    )
    refresh_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often each process reads the list again."
    )
    days: int = Field(
        default=400,
        ge=0,
        description="How long an entry lasts (TTL); 0 keeps it until `forget --lift`.",
    )
    settle_seconds: float | None = Field(
        default=None,
        ge=0,
        description="How long `forget` waits after suppressing, before it erases: every "
        "process has read the list and every worker has written what it held "
        "(default: refresh_seconds + 60 s of the workers' commit window + 30 s).",
    )

    def resolved_settle_seconds(self) -> float:
        if self.settle_seconds is not None:
            return self.settle_seconds
        return self.refresh_seconds + 60.0 + 30.0


def id_hash(salt: str, kind: str, value: str) -> str:
    return hmac.new(salt.encode(), f"{kind}\n{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Suppression:
    """The list as it was read: the salt and the hashes of every suppressed id."""

    salt: str = ""
    hashes: frozenset[str] = frozenset()
    _keyed: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, salt: str, hashes: Iterable[str]) -> Suppression:
        listed = frozenset(hashes)
        keyed = hmac.new(salt.encode(), digestmod=hashlib.sha256) if listed else None
        return cls(salt, listed, keyed)

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def _hash(self, kind: str, value: str) -> str:
        # A copy of the keyed state: the key's padding is hashed once per list, not per id.
        keyed = self._keyed.copy()
        keyed.update(f"{kind}\n{value}".encode())
        return str(keyed.hexdigest())

    def holds(self, user_id: str | None, anonymous_id: str | None, session_id: str | None) -> bool:
        """Whether any of an event's ids is suppressed."""
        if not self.hashes:
            return False
        return any(
            value and self._hash(kind, value) in self.hashes
            for kind, value in zip(KINDS, (user_id, anonymous_id, session_id), strict=True)
        )


def entry_items(
    salt: str,
    ids: Mapping[str, Iterable[str]],
    request: str,
    now: datetime,
    days: int,
) -> list[dict[str, Any]]:
    """The table's items for `ids` (kind -> values), as plain values: hashed, named by the
    forget request that put them (so `--lift` can take a request's entries back), with their
    TTL."""
    items = []
    for kind, values in ids.items():
        for value in sorted(set(values)):
            item: dict[str, Any] = {
                "id_hash": id_hash(salt, kind, value),
                "kind": kind,
                "request": request,
                "added_at": now.isoformat(timespec="seconds"),
            }
            if days:
                item["expires_at"] = int((now + timedelta(days=days)).timestamp())
            items.append(item)
    return items


def live_hashes(items: Iterable[Mapping[str, Any]], now: datetime) -> set[str]:
    """The hashes of the entries not yet expired (DynamoDB deletes expired items within
    days, not at once: an expired one still read is not suppressed)."""
    cutoff = now.timestamp()
    return {
        str(item["id_hash"])
        for item in items
        if "expires_at" not in item or float(item["expires_at"]) > cutoff
    }


def read_salt(s3: Any, bucket: str) -> str | None:
    """The deployment's salt, None before the first `forget` made one."""
    answer = object_or_none(s3, bucket, SALT_KEY)
    return None if answer is None else str(answer["Body"].read().decode())


class SuppressionError(RuntimeError):
    """The suppression list cannot be read (at start: the process does not start without
    it, since it would store the events of people erased)."""


class SuppressionList:
    """The edge: reads the table (and the salt, once there are entries), and keeps the list
    it read for `refresh_seconds`. A failed refresh keeps the last list and says so."""

    def __init__(
        self,
        dynamodb: Any,
        s3: Any,
        *,
        table: str,
        bucket: str,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dynamodb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._salt: str | None = None
        self._current: Suppression | None = None
        self._read_at = float("-inf")

    def load(self) -> Suppression:
        """Read the list now; errors raise (`SuppressionError`)."""
        try:
            hashes = live_hashes(scan_table(self._dynamodb, self._table), self._wall_clock())
            if hashes and self._salt is None:
                self._salt = read_salt(self._s3, self._bucket)
                if self._salt is None:
                    raise SuppressionError(
                        f"the suppression table has entries but s3://{self._bucket}/{SALT_KEY} "
                        "is missing: they cannot be matched"
                    )
        except (ClientError, BotoCoreError) as exc:
            raise SuppressionError(f"the suppression list cannot be read: {exc}") from exc
        self._current = Suppression.of(self._salt or "", hashes)
        self._read_at = self._clock()
        return self._current

    def current(self) -> Suppression:
        """The list, read again when `refresh_seconds` old."""
        if self._current is None:
            return self.load()
        if self._clock() - self._read_at >= self.refresh_seconds:
            try:
                return self.load()
            except SuppressionError as exc:
                # Retried on the next call; the list read last still applies.
                self._read_at = self._clock()
                log.warning("suppression list not refreshed", error=str(exc)[:500])
        return self._current


def open_list(
    make_client: Callable[[str], Any], *, default_bucket: str | None = None
) -> SuppressionList | None:
    """The list `CLICKSTREAM_SUPPRESSION_*` names, None when no table is set (a stack
    without one); `make_client` gives the DynamoDB and S3 clients, `default_bucket` the salt's
    bucket when the settings name none (the workers' archive bucket)."""
    listed = SuppressionSettings()
    if not listed.table:
        return None
    bucket = listed.bucket or default_bucket
    if not bucket:
        raise ConfigurationError(
            "CLICKSTREAM_SUPPRESSION_TABLE is set without CLICKSTREAM_SUPPRESSION_BUCKET "
            "(the archive bucket, which holds the ids' salt)"
        )
    return SuppressionList(
        make_client("dynamodb"),
        make_client("s3"),
        table=listed.table,
        bucket=bucket,
        refresh_seconds=listed.refresh_seconds,
    )


class SuppressionTable:
    """Writes of the suppression table, as `forget` makes them: entries put, and taken back
    by `--lift` (the collector and the workers read it through `SuppressionList`)."""

    def __init__(self, dynamodb: Any, table: str, days: int) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.days = days

    def put(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            self.dynamodb.put_item(TableName=self.table, Item=to_dynamo(item))

    def lift(self, request: str, hashes: set[str]) -> int:
        """Delete the entries a request put, and those of `hashes`: how many there were."""
        listed = {
            str(item["id_hash"])
            for item in scan_table(self.dynamodb, self.table)
            if item.get("request") == request or item["id_hash"] in hashes
        }
        for value in sorted(listed):
            self.dynamodb.delete_item(TableName=self.table, Key={"id_hash": {"S": value}})
        return len(listed)
