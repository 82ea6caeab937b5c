"""The site owner's report: visitors, visits, page views, bounce rate and visit duration over a
range, broken down by a dimension, filtered, compared with the range before (docs/reports.md).

**The definitions, once** (what every view of them counts):

- a **visit** is a session, and it belongs to the range its first event falls in, with all
  its events, those after the range's end too;
- **visitors**: distinct people among the visits: the user id where the session knows one,
  else its anonymous id, else the session itself;
- **page views**: the visits' page views; **views per visit** their mean;
- **bounce rate**: the share of visits that bounced (`insights.sessions_sql`: one page view or
  none, no click or custom event, under 10 s);
- **visit duration**: the mean time from a visit's first event to its last, in seconds;
- **custom events**: by name (their properties' `name`), and by any property's value;
- **people only**: sessions that are bots' (their agent, or the bot rule's verdict) are left
  out; `bots=True` reports them alone.

The SQL reads three relations a connection has (`insights.lake_reader`): `sessions`,
`page_parts` (each session's views per page path) and `custom_events`, all put together from
the hours' parts, so a report over a month reads the month's parts, not its events.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from clickstream.kernel.errors import InsightsError
from insights.sessions_sql import (
    SESSION_REACH,
    identities_select,
    path_of,
    person_of,
    sessions_from_parts,
    with_people,
)
from insights.sql import quote


class RequestError(InsightsError):
    """What a report was asked is wrong (a range, a zone, a dimension, a filter): said in
    words of the request alone, so the dashboard's API may answer it as it is."""


class Kind(StrEnum):
    SESSION = "session"
    """A column of the visit."""
    PAGE = "page"
    """The pages a visit viewed."""
    EVENT = "event"
    """The custom events a visit sent."""


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    kind: Kind
    expression: str
    """Its value: over `sessions` (a visit's), `page_parts` or `custom_events`."""


SESSION_DIMENSIONS: Final = {
    "entry_page": path_of("entry_page"),
    "exit_page": path_of("exit_page"),
    **{
        name: name
        for name in (
            "source",
            "medium",
            "campaign",
            "channel",
            "referrer_host",
            "device_type",
            "browser",
            "os",
            "country",
            "site",
        )
    },
}
DIMENSIONS: Final = {
    **{name: Dimension(name, Kind.SESSION, value) for name, value in SESSION_DIMENSIONS.items()},
    "page": Dimension("page", Kind.PAGE, "page"),
    "event": Dimension("event", Kind.EVENT, "name"),
}
"""What a report can be broken down and filtered by."""
PROPERTY_KEY: Final = re.compile(r"[A-Za-z0-9_.$-]{1,64}")
"""A custom event property's name, as reports and goals take it."""
PROPERTY: Final = re.compile(rf"property:({PROPERTY_KEY.pattern})")
"""`property:KEY`: custom events by the value of one of their properties."""


def dimension(name: str) -> Dimension:
    """A dimension by its name, or `property:KEY`."""
    found = DIMENSIONS.get(name)
    if found is not None:
        return found
    matched = PROPERTY.fullmatch(name)
    if matched is not None:
        key = matched.group(1)
        return Dimension(name, Kind.EVENT, f"json_extract_scalar(properties, '$.{key}')")
    known = ", ".join([*DIMENSIONS, "property:KEY"])
    raise RequestError(f"no dimension {name!r}: one of {known}")


@dataclass(frozen=True, slots=True)
class Range:
    """[start, end) in UTC, and the zone its days are counted in."""

    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def previous(self) -> Range:
        """The range of equal length just before."""
        return Range(self.start - (self.end - self.start), self.start, self.zone)

    def as_dict(self) -> dict[str, str]:
        return {
            "from": self.start.astimezone(self.zone).isoformat(),
            "to": self.end.astimezone(self.zone).isoformat(),
            "tz": str(self.zone.key),
        }

    def buckets(self) -> list[tuple[str, datetime, datetime]]:
        """The graph's buckets: minutes for up to an hour (the live view), ten minutes for
        up to six, hours for up to two days, else the zone's days."""
        length = self.end.astimezone(UTC) - self.start.astimezone(UTC)
        if length <= timedelta(days=2):
            # The zone's hours (some zones are half an hour off UTC), stepped in UTC so that
            # a day with a clock change has its 23 or 25 of them.
            minutes = (
                1 if length <= timedelta(hours=1) else 10 if length <= timedelta(hours=6) else 60
            )
            step = timedelta(minutes=minutes)
            local = self.start.astimezone(self.zone).replace(second=0, microsecond=0)
            local = local.replace(minute=local.minute - local.minute % minutes)
            found, at = [], local.astimezone(UTC)
            while at < self.end:
                found.append((at.astimezone(self.zone).isoformat(), at, at + step))
                at += step
            return found
        day = self.start.astimezone(self.zone).date()
        found = []
        while True:
            start = datetime.combine(day, time(), self.zone)
            if start >= self.end:
                return found
            end = datetime.combine(day + timedelta(days=1), time(), self.zone)
            found.append((day.isoformat(), start, end))
            day += timedelta(days=1)


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RequestError(f"--tz {name!r}: no such time zone (e.g. UTC, Europe/Berlin)") from None


def range_of(
    now: datetime,
    zone: ZoneInfo,
    *,
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Range:
    """`--since 7d` (the 7 times 24 hours before now; `today`: from the zone's midnight), or
    `--from`/`--to`: ISO dates or times, in the zone when they give no offset; a date `--to`
    includes its day."""
    if since is not None and (start or end):
        raise RequestError("give --since or --from/--to, not both")
    if since is not None:
        if since == "today":
            return Range(datetime.combine(now.astimezone(zone).date(), time(), zone), now, zone)
        matched = re.fullmatch(r"(\d{1,5})([mhdw])", since)
        if matched is None:
            raise RequestError(f"--since {since!r}: expected today, 30m, 24h, 7d or 8w")
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[matched.group(2)]
        return Range(now - timedelta(**{unit: int(matched.group(1))}), now, zone)
    if start is None:
        raise RequestError("give --since or --from")
    first = _moment(start, zone, end_of_day=False)
    last = now if end is None else _moment(end, zone, end_of_day=True)
    if last <= first:
        raise RequestError("--to must come after --from")
    return Range(first, last, zone)


def _moment(text: str, zone: ZoneInfo, *, end_of_day: bool) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text) + timedelta(days=1 if end_of_day else 0)
            return datetime.combine(day, time(), zone)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(f"{text!r}: expected an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@dataclass(frozen=True, slots=True)
class Query:
    """What to report: a range, a breakdown, filters (a dimension's values: any of them),
    people or bots, how many rows."""

    range: Range
    by: Dimension | None = None
    filters: tuple[tuple[Dimension, tuple[str, ...]], ...] = ()
    bots: bool = False
    top: int = 10


def filters_of(given: Sequence[str]) -> tuple[tuple[Dimension, tuple[str, ...]], ...]:
    """`DIM=VALUE` filters: one dimension given twice is either value."""
    values: dict[str, list[str]] = {}
    for text in given:
        name, equals, value = text.partition("=")
        if not equals or not value:
            raise RequestError(f"--filter {text!r}: expected DIM=VALUE")
        values.setdefault(dimension(name.strip()).name, []).append(value)
    return tuple((dimension(name), tuple(found)) for name, found in values.items())


def _utc(moment: datetime) -> str:
    """A TIMESTAMP literal of `moment` in UTC (the views' times are UTC, without zone)."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return f"TIMESTAMP {quote(text)}"


def visits_select(
    query: Query, span: Range, sessions: str = "sessions", pages: str | None = None
) -> str:
    """The visits of `span` the query counts: one row per session (of `sessions`), with
    `visitor`, its person (`sessions_sql.person_of`: stitched across devices by the person
    map, the reading's own over `SESSIONS_READ`). `pages`: a reading's prepared pages
    (`prepare_pages`), which a page filter reads instead of `page_parts`."""
    conditions = [
        f"started_at >= {_utc(span.start)}",
        f"started_at < {_utc(span.end)}",
        "is_bot" if query.bots else "NOT is_bot",
    ]
    for wanted, values in query.filters:
        listed = ", ".join(quote(value) for value in values)
        if wanted.kind is Kind.SESSION:
            conditions.append(f"{wanted.expression} IN ({listed})")
        elif wanted.kind is Kind.PAGE and pages is not None:
            conditions.append(f"visit IN (SELECT visit FROM {pages} WHERE page IN ({listed}))")  # noqa: S608
        elif wanted.kind is Kind.PAGE:
            conditions.append(
                f"session_id IN (SELECT session_id FROM page_parts WHERE page IN ({listed}))"  # noqa: S608
            )
        else:
            conditions.append(
                "session_id IN (SELECT session_id FROM custom_events "  # noqa: S608
                f"WHERE {wanted.expression} IN ({listed}))"
            )
    if sessions == SESSIONS_READ:  # its visitor is there, its person map joined once
        return f"SELECT * FROM {sessions} WHERE {' AND '.join(conditions)}"  # noqa: S608
    return (
        f"SELECT s.*, {person_of()} AS visitor "  # noqa: S608
        f"FROM {with_people(sessions)} WHERE {' AND '.join(conditions)}"
    )


PEOPLE: Final = "count(DISTINCT visitor)"
KEPT_PEOPLE: Final = (
    "count(*) FILTER (WHERE lone) + count(DISTINCT visitor) FILTER (WHERE NOT lone)"
)
"""The same over a kept reading (`prepare`'s `lone`): a person with one visit in the whole
reading has at most one row among any visits of it, so those rows are counted as they are
and only the others are told apart; exact, and the distinct count is over a fraction."""


def totals(people: str = PEOPLE) -> str:
    """The totals of a set of visits (`visits`), in `Figures`' order."""
    return (
        f"{people} AS visitors, count(*) AS visits, "
        "coalesce(sum(page_views), 0) AS page_views, "
        "avg(CASE WHEN bounced THEN 1.0 ELSE 0.0 END) AS bounce_rate, "
        "avg(duration_s) AS visit_duration_s"
    )


TOTALS: Final = totals()


@dataclass(frozen=True, slots=True)
class Figures:
    visitors: int
    visits: int
    page_views: int
    bounce_rate: float | None
    visit_duration_s: float | None

    @classmethod
    def of(cls, row: Sequence[Any]) -> Figures:
        visitors, visits, views, bounce, duration = row
        return cls(
            int(visitors or 0),
            int(visits or 0),
            int(views or 0),
            None if bounce is None else float(bounce),
            None if duration is None else float(duration),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "visitors": self.visitors,
            "visits": self.visits,
            "page_views": self.page_views,
            "views_per_visit": round(self.page_views / self.visits, 2) if self.visits else None,
            "bounce_rate": None if self.bounce_rate is None else round(self.bounce_rate, 4),
            "visit_duration_s": (
                None if self.visit_duration_s is None else round(self.visit_duration_s, 1)
            ),
        }


def rows_select(by: Dimension, top: int, *, kept: bool = False) -> str:
    """The breakdown's rows over `visits`: the visits' figures per value; per page, the
    visits and visitors that viewed it and its views; per custom event (or property), the
    visits and visitors that sent it and how many times. `kept`: over a kept reading
    (`prepare`), its people counted by `KEPT_PEOPLE` and its pages read from `PAGES_READ`
    (one row per visit and page: its rows are the page's visits)."""
    order = f"ORDER BY visitors DESC, value LIMIT {int(top)}"
    if by.kind is Kind.SESSION:
        return (
            f"SELECT {by.expression} AS value, {totals(KEPT_PEOPLE if kept else PEOPLE)} "  # noqa: S608
            f"FROM visits GROUP BY 1 {order}"
        )
    if by.kind is Kind.PAGE and kept:
        return (
            "SELECT p.page AS value, count(*) FILTER (WHERE v.lone) + "  # noqa: S608
            "count(DISTINCT v.visitor) FILTER (WHERE NOT v.lone) AS visitors, "
            "count(*) AS visits, sum(p.views) AS page_views "
            f"FROM {PAGES_READ} p JOIN visits v USING (visit) GROUP BY 1 {order}"
        )
    if by.kind is Kind.PAGE:
        return (
            "SELECT p.page AS value, count(DISTINCT v.visitor) AS visitors, "  # noqa: S608
            "count(DISTINCT v.session_id) AS visits, sum(p.views) AS page_views "
            f"FROM page_parts p JOIN visits v USING (session_id) GROUP BY 1 {order}"
        )
    return (
        f"SELECT {by.expression} AS value, count(DISTINCT v.visitor) AS visitors, "  # noqa: S608
        "count(DISTINCT v.session_id) AS visits, count(*) AS events "
        f"FROM custom_events c JOIN visits v USING (session_id) GROUP BY 1 {order}"
    )


@dataclass(slots=True)
class Report:
    range: Range
    totals: Figures
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    previous: Report | None = None
    breakdowns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """More breakdowns of the same visits, by dimension (the dashboard's panels)."""

    def as_dict(self, query: Query) -> dict[str, Any]:
        found: dict[str, Any] = {
            "range": {
                **self.range.as_dict(),
                "by": query.by.name if query.by else None,
                "filters": {wanted.name: list(values) for wanted, values in query.filters},
                "bots": query.bots,
            },
            "totals": self.totals.as_dict(),
            "rows": self.rows,
            "series": self.series,
        }
        if self.breakdowns:
            found["breakdowns"] = self.breakdowns
        if self.previous is not None:
            found["previous"] = {
                key: value
                for key, value in self.previous.as_dict(query).items()
                if key != "previous"
            }
        return found


def _rows(connection: duckdb.DuckDBPyConnection, by: Dimension, top: int) -> list[dict[str, Any]]:
    if by.kind is Kind.PAGE:
        prepare_pages(connection)
    cursor = connection.execute(rows_select(by, top, kept=True))
    names = [column[0] for column in cursor.description or []]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        if by.kind is Kind.SESSION:
            figures = Figures.of([row[name] for name in names[1:]])
            rows.append({"value": row["value"], **figures.as_dict()})
        else:
            rows.append({**row, "visitors": int(row["visitors"]), "visits": int(row["visits"])})
    return rows


def _series(connection: duckdb.DuckDBPyConnection, span: Range) -> list[dict[str, Any]]:
    buckets = span.buckets()
    values = ", ".join(
        f"({index}, {quote(label)}, {_utc(start)}, {_utc(end)})"
        for index, (label, start, end) in enumerate(buckets)
    )
    # Each visit to its bucket by an as-of join (the last bucket starting at or before it):
    # a range join of a month's visits to its buckets took most of the series' time.
    found = connection.execute(
        f"WITH b AS (SELECT * FROM (VALUES {values}) AS b(i, label, start, stop)), "  # noqa: S608
        "counted AS (SELECT b.i, count(*) FILTER (WHERE v.lone) + "
        "count(DISTINCT v.visitor) FILTER (WHERE NOT v.lone) AS visitors, "
        "count(*) AS visits, sum(v.page_views) AS views FROM visits v "
        "ASOF JOIN b ON v.started_at >= b.start WHERE v.started_at < b.stop GROUP BY b.i) "
        "SELECT b.label, coalesce(c.visitors, 0), coalesce(c.visits, 0), "
        "coalesce(c.views, 0) FROM b LEFT JOIN counted c ON c.i = b.i ORDER BY b.i"
    ).fetchall()
    return [
        {
            "bucket": label,
            "visitors": int(visitors),
            "visits": int(visits),
            "page_views": int(views),
        }
        for label, visitors, visits, views in found
    ]


SESSIONS_READ: Final = "sessions_read"
"""The reading's `sessions`, kept (a temporary table of its connection), each numbered
(`visit`) and with its person (`visitor`, by the reading's person map)."""
IDENTITIES_READ: Final = "identities_read"
"""The reading's person map (`sessions_sql.identities_select` over its parts), kept."""
PAGES_READ: Final = "pages_read"
"""The reading's page parts, kept: one row per visit (its number) and page, its views."""


def _exists(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = ?", [table]
    ).fetchone()
    return bool(found and found[0])


def prepare(connection: duckdb.DuckDBPyConnection, *, people: bool = False) -> None:
    """Put the reading's sessions together, once per reading (every session it holds,
    whatever the range: a visit's start is its merge's): every report on it after reads
    them, the range before, the dashboard's next request, the bench's warm run. With
    `people` (a reading kept for many reports), each is marked `lone` when its person has no
    other session in the reading (`KEPT_PEOPLE`); else none is (one report: the marking
    costs more than it saves)."""
    if _exists(connection, SESSIONS_READ):
        return
    # The parts read once (the merge reads them three times: `sessions_from_parts`).
    connection.execute("CREATE OR REPLACE TEMP TABLE session_parts_read AS FROM session_parts")
    merged = sessions_from_parts("session_parts_read")
    # Numbered: the pages kept name their visit by it (a join on a number, not a string).
    connection.execute(
        f"CREATE TEMP TABLE {IDENTITIES_READ} AS "
        f"{identities_select('session_parts_read', 'custom_events')}"
    )
    lone = f"count(*) OVER (PARTITION BY {person_of()}) = 1" if people else "false"
    connection.execute(
        f"CREATE TEMP TABLE {SESSIONS_READ} AS "  # noqa: S608
        f"SELECT s.*, CAST(row_number() OVER () AS INTEGER) AS visit, "
        f"{person_of()} AS visitor, {lone} AS lone "
        f"FROM {with_people(f'({merged})', IDENTITIES_READ)}"
    )
    connection.execute("DROP TABLE session_parts_read")


def use_visits(
    connection: duckdb.DuckDBPyConnection, query: Query, sessions: str | None = None
) -> None:
    """`visits`: the query's visits of its range, as a view of the reading's sessions (put
    together once: `prepare`), or of `sessions` when named (a test's own table)."""
    if sessions is None:
        prepare(connection)
    visits = visits_select(query, query.range, sessions or SESSIONS_READ)
    connection.execute(f"CREATE OR REPLACE TEMP VIEW visits AS {visits}")


def prepare_pages(connection: duckdb.DuckDBPyConnection) -> None:
    """Keep the reading's page parts, once per reading, when a report first needs them (a
    page breakdown or filter): a visit's views of a page in several hours put together, so
    that a page's visits are its rows, and named by the visit's number. A month's page
    parts are millions of rows: read from S3 and joined by string for every page panel,
    they were the larger part of the site owner's view's time."""
    prepare(connection)
    if _exists(connection, PAGES_READ):
        return
    connection.execute(
        f"CREATE TEMP TABLE {PAGES_READ} AS SELECT s.visit, p.page, "  # noqa: S608
        f"CAST(sum(p.views) AS BIGINT) AS views FROM page_parts p JOIN {SESSIONS_READ} s "
        "USING (session_id) GROUP BY s.visit, p.page"
    )


def report_of(
    connection: duckdb.DuckDBPyConnection,
    query: Query,
    *,
    compare: bool,
    breakdowns: Sequence[Dimension] = (),
) -> Report:
    """The report on a connection with `sessions`, `page_parts` and `custom_events`; with
    `breakdowns`, the range's visits by each of those dimensions too."""
    spans = [query.range, query.range.previous] if compare else [query.range]
    reports = []
    prepare(connection)
    for index, span in enumerate(spans):
        # A view: each figure filters the kept sessions again, cheaper than copying them.
        pages = None
        if any(wanted.kind is Kind.PAGE for wanted, _ in query.filters):
            prepare_pages(connection)
            pages = PAGES_READ
        visits = visits_select(query, span, SESSIONS_READ, pages)
        connection.execute(f"CREATE OR REPLACE TEMP VIEW visits AS {visits}")
        row = connection.execute(f"SELECT {totals(KEPT_PEOPLE)} FROM visits").fetchone()  # noqa: S608
        figures = Figures.of(row or (0, 0, 0, None, None))
        rows = _rows(connection, query.by, query.top) if query.by else []
        found = Report(span, figures, rows, _series(connection, span))
        if index == 0:
            found.breakdowns = {by.name: _rows(connection, by, query.top) for by in breakdowns}
        reports.append(found)
    if compare:
        reports[0].previous = reports[1]
    return reports[0]


def reading_start(query: Query, *, compare: bool) -> datetime:
    """The first hour a report reads: a visit is the range's it started in, and its start
    is its first part's, looked for `SESSION_REACH` before the range."""
    first = query.range.previous.start if compare else query.range.start
    return first - SESSION_REACH


def query_from(
    now: datetime,
    *,
    tz: str,
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
    by: str | None = None,
    filters: Sequence[str] = (),
    site: str | None = None,
    bots: bool = False,
    top: int = 10,
) -> Query:
    """A report's query from `report`'s options, as the CLI and the dashboard's API take
    them: no range at all is the last 7 days, and `site` is one more filter."""
    span = range_of(
        now, zone_of(tz), since=since or (None if start else "7d"), start=start, end=end
    )
    return Query(
        span,
        by=dimension(by) if by else None,
        filters=filters_of([*filters, *([f"site={site}"] if site else [])]),
        bots=bots,
        top=top,
    )


MAX_LISTED: Final = 16
"""At most this many filters or panels in one request (each one is a breakdown or a clause)."""
TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})


def one_value(params: dict[str, list[str]], name: str) -> str | None:
    """A query parameter given at most once (the API's): its value, None when absent."""
    values = params.get(name) or []
    if len(values) > 1:
        raise RequestError(f"{name}: given more than once")
    return values[0] if values else None


def whole_number(
    params: dict[str, list[str]], name: str, *, default: int, low: int, high: int
) -> int:
    """A query parameter that is a whole number from `low` to `high` (`default` absent)."""
    text = one_value(params, name) or str(default)
    if not text.isdigit() or not low <= int(text) <= high:
        raise RequestError(f"{name}: a whole number from {low} to {high}")
    return int(text)


def query_of(
    params: dict[str, list[str]], now: datetime
) -> tuple[Query, bool, tuple[Dimension, ...]]:
    """A report request as the dashboard's API takes it (`report`'s options as query
    parameters: `since`, `from`, `to`, `by`, `filter` and `panel` repeatable, `compare`,
    `site`, `top`, `tz`, `bots`): the query, whether to compare, the panels' dimensions.
    Anything wrong is a `RequestError` naming the parameter."""

    def one(name: str) -> str | None:
        return one_value(params, name)

    for name, values in params.items():
        if len(values) > MAX_LISTED:
            raise RequestError(f"{name}: at most {MAX_LISTED} values")
        if any(len(value) > 1024 or not value.isprintable() for value in values):
            raise RequestError(f"{name}: a value too long or not printable")
    top = whole_number(params, "top", default=10, low=1, high=1000)
    query = query_from(
        now,
        tz=one("tz") or "UTC",
        since=one("since"),
        start=one("from"),
        end=one("to"),
        by=one("by"),
        filters=params.get("filter", []),
        site=one("site"),
        bots=(one("bots") or "").lower() in TRUE_WORDS,
        top=top,
    )
    panels = tuple(dimension(name) for name in params.get("panel", []))
    return query, (one("compare") or "").lower() in TRUE_WORDS, panels


def portable_sql(query: Query) -> str:
    """The report as one statement DuckDB and Athena both run over `sessions`, `page_parts`
    and `custom_events` (Athena's tables and view of the parts, `infra/cloudformation.yaml`):
    the totals, or with `by` the breakdown's rows."""
    visits = visits_select(query, query.range)
    figures = rows_select(query.by, query.top) if query.by else f"SELECT {TOTALS} FROM visits"  # noqa: S608
    return f"WITH visits AS ({visits}) {figures}"
