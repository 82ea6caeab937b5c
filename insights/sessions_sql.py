"""Sessions in SQL, one definition for DuckDB and Athena: the `sessions` view over events,
and the same sessions put together from per-hour **session parts** (what compaction stores
beside each hour's Parquet, and what reports read instead of every event).

Only forms DuckDB and Trino share: `min_by`/`max_by` over a `ROW`, `date_diff`, aggregate
`FILTER`, `nullif`, `regexp_extract`. Both engines' `min_by` differ on a NULL value (DuckDB
skips the row, Trino returns it), so a value that may be NULL is taken as `coalesce(x, '')`
and given back with `nullif`: the first row's value, NULL or not, in both.

A session part is one session's events within one hour: its counts, its first and last
event, its first and last page view and that landing's acquisition, its first agent and
country. Hours do not overlap, so a session's first page view is its earliest part's with a
page view, its first country its earliest part's with one, and so on: the parts of a session
merge into exactly the row `sessions_select` gives over its events (`sessions_from_parts`; a
functional test holds the two equal).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from clickstream.kernel.enrichment.acquisition import DIRECT, NONE
from clickstream.kernel.enrichment.channels import Channel
from clickstream.kernel.enrichment.columns import (
    ACQUISITION_COLUMNS,
    ENGAGED_SECONDS,
    LANDING_PREFIX,
)

SESSION_REACH: Final = timedelta(days=1)
"""How long before a reading's first hour a session that reaches into it is looked for:
its start (a report reads its hours from this before the range) and its bot verdict (filed
under the hour it started). A session longer than this is taken as starting within it."""

FIRST: Final = "ROW(event_time, event_id)"
"""The order of a session's events: time, then event id."""
PART_ORDER: Final = "ROW(first_at, first_event_id)"
"""The order of a session's parts: their first events' (parts are disjoint hours)."""
HOST: Final = "'^https?://([^/:?#]+)'"
"""A page URL's host (a page sent as a path has none)."""

VERDICTS: Final = "bot_verdicts"
"""The sessions the workers' bot rule judged (`clickstream.stores.archive_layout`'s
`verdicts/`): DuckDB's view of the objects and Athena's Glue table of the same name."""
VERDICT_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("started_minute", "VARCHAR"),
    ("score", "DOUBLE"),
    ("signals", "VARCHAR"),
)

PAGE_VIEWS: Final = "page_views"
"""The page views part's relation (`PAGE_VIEW_COLUMNS`): what funnels and paths read with
`custom_events`, rather than the events. DuckDB's view of the parts and Athena's Glue table
have this name."""
CUSTOM_EVENTS: Final = "custom_events"

IDENTITIES: Final = "identities"
"""The person map: `id` (an anonymous id, or an id a person was aliased from) -> `person`
(a user id). What reports count people by (docs/reports.md, People across devices)."""


def is_alias(properties: str) -> str:
    """Whether a custom event's `properties` are an `alias` call's (as the collector keeps the
    SDKs' call); the substring first, so a month's custom events are not all parsed."""
    return f"{properties} LIKE '%alias%' AND json_extract_scalar({properties}, '$.call') = 'alias'"


def previous_id(properties: str) -> str:
    """An `alias` call's previous id: the id the person was known by before."""
    return f"json_extract_scalar({properties}, '$.previousId')"


def identities_select(parts: str = "session_parts", events: str = "custom_events") -> str:
    """The person map from the session parts and the custom events: an anonymous id belongs
    to the user id it was first seen with in one session's hour (an `identify`, a login:
    the part knows both), and an `alias` call's previous id to the user id of its session;
    an id seen with several user ids belongs to the first. One statement, DuckDB's and
    Athena's (`min_by` is both's)."""
    return (
        "SELECT id, min_by(person, seen) AS person FROM ("  # noqa: S608
        f"SELECT anonymous_id AS id, user_id AS person, first_at AS seen FROM {parts} "
        "WHERE anonymous_id IS NOT NULL AND user_id IS NOT NULL "
        f"UNION ALL SELECT {previous_id('c.properties')} AS id, "
        f"p.user_id AS person, c.event_time AS seen FROM {events} c "
        f"JOIN {parts} p ON p.session_id = c.session_id "
        f"WHERE {is_alias('c.properties')} AND p.user_id IS NOT NULL "
        f"AND {previous_id('c.properties')} IS NOT NULL"
        ") AS linked WHERE id <> person GROUP BY id"
    )


def person_of(session: str = "s", identities: tuple[str, str] = ("u", "a")) -> str:
    """A session's person: its user id's (mapped, when it was aliased), else its anonymous
    id's person, else the anonymous id, else the session itself."""
    by_user, by_anonymous = identities
    return (
        f"coalesce({by_user}.person, {session}.user_id, {by_anonymous}.person, "
        f"{session}.anonymous_id, {session}.session_id)"
    )


def with_people(sessions: str, identities: str = IDENTITIES) -> str:
    """`sessions` (any relation with `user_id`, `anonymous_id`, `session_id`) joined to the
    person map: `s`, `u` (by user id) and `a` (by anonymous id)."""
    return (
        f"{sessions} s LEFT JOIN {identities} u ON u.id = s.user_id "
        f"LEFT JOIN {identities} a ON a.id = s.anonymous_id"
    )


IDENTITY_COLUMNS: Final = (("id", "VARCHAR"), ("person", "VARCHAR"))
PERSON_COLUMNS: Final = (
    ("person_id", "VARCHAR"),
    ("ids", "VARCHAR[]"),
    ("first_seen", "TIMESTAMP"),
    ("last_seen", "TIMESTAMP"),
)


def persons_select(sessions: str = "sessions", identities: str = IDENTITIES) -> str:
    """`persons`: each person known by a user id, the ids it joins (its devices' anonymous
    ids, and the user ids an `alias` call named as its previous ones), when first and last
    seen."""
    mine = (
        f"SELECT {person_of()} AS person_id, s.anonymous_id, s.user_id, s.started_at, "  # noqa: S608
        f"s.ended_at FROM {with_people(sessions, identities)} "
        "WHERE s.user_id IS NOT NULL OR a.person IS NOT NULL"
    )
    return (
        "SELECT person_id, array_agg(DISTINCT id) FILTER (WHERE id IS NOT NULL "  # noqa: S608
        "AND id <> person_id) AS ids, min(started_at) AS first_seen, "
        "max(ended_at) AS last_seen FROM ("
        f"SELECT person_id, anonymous_id AS id, started_at, ended_at FROM ({mine}) AS m "
        f"UNION ALL SELECT person_id, user_id, started_at, ended_at FROM ({mine}) AS m"
        ") AS joined GROUP BY person_id"
    )


SESSION_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("site", "VARCHAR"),
    ("anonymous_id", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("started_at", "TIMESTAMP"),
    ("ended_at", "TIMESTAMP"),
    ("duration_s", "DOUBLE"),
    ("page_views", "BIGINT"),
    ("events", "BIGINT"),
    ("entry_page", "VARCHAR"),
    ("exit_page", "VARCHAR"),
    ("bounced", "BOOLEAN"),
    *ACQUISITION_COLUMNS,
    ("device_type", "VARCHAR"),
    ("browser", "VARCHAR"),
    ("os", "VARCHAR"),
    ("country", "VARCHAR"),
    ("is_bot", "BOOLEAN"),
)
"""The `sessions` view's columns, in order (DuckDB's and Athena's alike)."""

AGENT_NAMES: Final = ("device_type", "browser", "os")
SESSION_PART_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("first_at", "TIMESTAMP"),
    ("first_event_id", "VARCHAR"),
    ("last_at", "TIMESTAMP"),
    ("first_page", "VARCHAR"),
    ("events", "BIGINT"),
    ("page_views", "BIGINT"),
    ("engaged", "BIGINT"),
    ("anonymous_id", "VARCHAR"),
    ("user_id", "VARCHAR"),
    ("entry_page", "VARCHAR"),
    ("exit_page", "VARCHAR"),
    *ACQUISITION_COLUMNS,
    ("device_type", "VARCHAR"),
    ("browser", "VARCHAR"),
    ("os", "VARCHAR"),
    ("country", "VARCHAR"),
    ("is_bot", "BOOLEAN"),
)
"""A session part's columns: `engaged` counts clicks and custom events (the bounce's test),
`first_page` is the first event's page (the session's site), `is_bot` the agents'."""

PAGE_VIEWED: Final = "type = 'page_view'"
ENGAGING: Final = "type IN ('click', 'custom')"


def _first(value: str, order: str, where: str | None = None, *, pick: str = "min_by") -> str:
    """The value of the first row by `order` (among those `where` holds), NULL or not; of
    the last with `pick="max_by"`."""
    condition = f" FILTER (WHERE {where})" if where else ""
    return f"nullif({pick}(coalesce({value}, ''), {order}){condition}, '')"


def _last(value: str, order: str, where: str | None = None) -> str:
    return _first(value, order, where, pick="max_by")


def _known(value: str, order: str, *, last: bool = False) -> str:
    """The first (or last) known value by `order`: rows without one are skipped."""
    pick = "max_by" if last else "min_by"
    return f"{pick}({value}, {order}) FILTER (WHERE {value} IS NOT NULL)"


def _landing(name: str, value: str) -> str:
    """A session's acquisition column from its landing's `value`; no landing: direct."""
    default = {"source": DIRECT, "medium": NONE, "channel": str(Channel.DIRECT)}.get(name)
    return f"coalesce({value}, '{default}') AS {name}" if default else f"{value} AS {name}"


def _bounced(views: str, engaged: str, duration: str) -> str:
    """GA4's engaged session, inverted: one page view or none, no click or custom event,
    under `ENGAGED_SECONDS` from the first event to the last."""
    return f"({views} <= 1 AND {engaged} = 0 AND {duration} < {ENGAGED_SECONDS}) AS bounced"


def judged(session_id: str) -> str:
    """Whether the bot rule judged the session `session_id` names (a column expression)."""
    return f"{session_id} IN (SELECT session_id FROM {VERDICTS})"  # noqa: S608


def _duration(first: str, last: str) -> str:
    return f"CAST(date_diff('millisecond', {first}, {last}) AS DOUBLE) / 1000"


def sessions_select(events: str) -> str:
    """`sessions`: one row per session of `events` (a table or view with the raw columns,
    `event_time` and the stored enrichment columns: DuckDB's `events_stored`, Athena's lake
    table `events`); Athena's view in the template is this text
    (`clickstream.tools.athena_views`). `is_bot`: an event's agent is a bot's, or the
    workers' bot rule judged the session (`judged`)."""
    views = f"count(*) FILTER (WHERE {PAGE_VIEWED})"
    engaged = f"count(*) FILTER (WHERE {ENGAGING})"
    duration = _duration("min(event_time)", "max(event_time)")
    columns = [
        "session_id",
        f"lower(nullif(regexp_extract(min_by(page, {FIRST}), {HOST}, 1), '')) AS site",
        f"{_known('anonymous_id', FIRST)} AS anonymous_id",
        f"{_known('user_id', FIRST, last=True)} AS user_id",
        "min(event_time) AS started_at",
        "max(event_time) AS ended_at",
        f"{duration} AS duration_s",
        f"{views} AS page_views",
        "count(*) AS events",
        f"{_first('page', FIRST, PAGE_VIEWED)} AS entry_page",
        f"{_last('page', FIRST, PAGE_VIEWED)} AS exit_page",
        _bounced(views, engaged, duration),
        *(
            _landing(name, _first(f"{LANDING_PREFIX}{name}", FIRST, PAGE_VIEWED))
            for name, _ in ACQUISITION_COLUMNS
        ),
        *(f"{_first(name, FIRST)} AS {name}" for name in AGENT_NAMES),
        f"{_known('country', FIRST)} AS country",
        f"(bool_or(coalesce(is_bot, false)) OR {judged('session_id')}) AS is_bot",
    ]
    return f"SELECT {', '.join(columns)} FROM {events} GROUP BY session_id"  # noqa: S608


def session_parts_select(events: str, hour_columns: str = "") -> str:
    """The session parts of `events` (as `sessions_select` takes them): one row per session,
    or per session and hour with `hour_columns` (the partition columns, for rows of many
    hours)."""
    grouped = f"session_id, {hour_columns}" if hour_columns else "session_id"
    columns = [
        "session_id",
        "min(event_time) AS first_at",
        f"min_by(event_id, {FIRST}) AS first_event_id",
        "max(event_time) AS last_at",
        f"min_by(page, {FIRST}) AS first_page",
        "count(*) AS events",
        f"count(*) FILTER (WHERE {PAGE_VIEWED}) AS page_views",
        f"count(*) FILTER (WHERE {ENGAGING}) AS engaged",
        f"{_known('anonymous_id', FIRST)} AS anonymous_id",
        f"{_known('user_id', FIRST, last=True)} AS user_id",
        f"{_first('page', FIRST, PAGE_VIEWED)} AS entry_page",
        f"{_last('page', FIRST, PAGE_VIEWED)} AS exit_page",
        *(
            f"{_first(f'{LANDING_PREFIX}{name}', FIRST, PAGE_VIEWED)} AS {name}"
            for name, _ in ACQUISITION_COLUMNS
        ),
        *(f"{_first(name, FIRST)} AS {name}" for name in AGENT_NAMES),
        f"{_known('country', FIRST)} AS country",
        "bool_or(coalesce(is_bot, false)) AS is_bot",
        *([hour_columns] if hour_columns else []),
    ]
    return f"SELECT {', '.join(columns)} FROM {events} GROUP BY {grouped}"  # noqa: S608


def _merged_columns(*, single: bool) -> list[str]:
    """`sessions_from_parts`' columns: aggregates over a session's parts, or (`single`) the
    same values of a session with one part, read off its row (no aggregation)."""

    def first(value: str, where: str | None = None, pick: str = "min_by") -> str:
        if not single:
            return _first(value, PART_ORDER, where, pick=pick)
        picked = f"coalesce({value}, '')"
        return (
            f"nullif(CASE WHEN {where} THEN {picked} END, '')" if where else f"nullif({picked}, '')"
        )

    def one(aggregate: str, value: str) -> str:
        return value if single else f"{aggregate}({value})"

    def known(value: str, *, last: bool = False) -> str:
        return value if single else _known(value, PART_ORDER, last=last)

    viewed = "page_views > 0"
    views = one("sum", "page_views")
    started, ended = one("min", "first_at"), one("max", "last_at")
    duration = _duration(started, ended)
    landing_page = "first_page" if single else f"min_by(first_page, {PART_ORDER})"
    return [
        "session_id",
        f"lower(nullif(regexp_extract({landing_page}, {HOST}, 1), '')) AS site",
        f"{known('anonymous_id')} AS anonymous_id",
        f"{known('user_id', last=True)} AS user_id",
        f"{started} AS started_at",
        f"{ended} AS ended_at",
        f"{duration} AS duration_s",
        f"{views} AS page_views",
        f"{one('sum', 'events')} AS events",
        f"{first('entry_page', viewed)} AS entry_page",
        f"{first('exit_page', viewed, 'max_by')} AS exit_page",
        _bounced(views, one("sum", "engaged"), duration),
        *(_landing(name, first(name, viewed)) for name, _ in ACQUISITION_COLUMNS),
        *(f"{first(name)} AS {name}" for name in AGENT_NAMES),
        f"{known('country')} AS country",
        f"({one('bool_or', 'is_bot')} OR {judged('session_id')}) AS is_bot",
    ]


def sessions_from_parts(parts: str) -> str:
    """`sessions` (`SESSION_COLUMNS`) from the session parts in `parts`: each value from the
    part that holds it (the earliest with a page view for the landing, ...). Most sessions
    have one part (98 % of a month's: one hour holds them): their rows are read off that
    part, and only sessions of several parts are aggregated (the aggregation of 1.9 million
    rows took 3.6 s, these two 0.6 s: docs/reports.md)."""
    several = f"SELECT session_id FROM {parts} GROUP BY session_id HAVING count(*) > 1"  # noqa: S608
    return (
        f"SELECT {', '.join(_merged_columns(single=True))} FROM {parts} "  # noqa: S608
        f"WHERE session_id NOT IN ({several}) "
        f"UNION ALL SELECT {', '.join(_merged_columns(single=False))} FROM {parts} "
        f"WHERE session_id IN ({several}) GROUP BY session_id"
    )


PAGE_PART_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("page", "VARCHAR"),
    ("views", "BIGINT"),
)
"""One session's page views of one page (its path: `PATH`) within one hour."""


def path_of(page: str) -> str:
    """The path of the page in column `page`, whatever its site: a URL's path (`/` for
    none), a path's without its query and fragment. What reports and goals name a page by
    (the site is a dimension of its own)."""
    return (
        f"CASE WHEN {page} LIKE '/%' THEN regexp_extract({page}, '^([^?#]*)', 1) "
        f"ELSE coalesce(nullif(regexp_extract({page}, "
        "'^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), ''), '/') END"
    )


PATH: Final = path_of("page")


def page_parts_select(events: str, hour_columns: str = "") -> str:
    """Each session's page views per page path (and hour, with `hour_columns`)."""
    extra = f", {hour_columns}" if hour_columns else ""
    return (
        f"SELECT session_id, {PATH} AS page, count(*) AS views{extra} "  # noqa: S608
        f"FROM {events} WHERE {PAGE_VIEWED} GROUP BY session_id, 2{extra}"
    )


PAGE_VIEW_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("event_time", "TIMESTAMP"),
    ("event_id", "VARCHAR"),
    ("page", "VARCHAR"),
)
"""Each page view of an hour: its session, time, id (the order of two views at the same
instant) and page path (`PATH`). A fifth of an hour's Parquet: what step order needs."""


def page_views_select(events: str, hour_columns: str = "") -> str:
    extra = f", {hour_columns}" if hour_columns else ""
    return (
        f"SELECT session_id, event_time, event_id, {PATH} AS page{extra} "  # noqa: S608
        f"FROM {events} WHERE {PAGE_VIEWED}"
    )


CUSTOM_EVENT_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("event_time", "TIMESTAMP"),
    ("name", "VARCHAR"),
    ("properties", "VARCHAR"),
)
"""The custom events, each with its name (its properties' `name`) and properties (JSON)."""

EVENT_NAME: Final = "coalesce(json_extract_scalar(properties, '$.name'), 'unnamed')"
"""A custom event's name. `json_extract_scalar` is Trino's; DuckDB gets it as a macro
(`insights.sql.open_duckdb`)."""


def custom_events_select(events: str, hour_columns: str = "") -> str:
    extra = f", {hour_columns}" if hour_columns else ""
    return (
        f"SELECT session_id, event_time, {EVENT_NAME} AS name, properties{extra} "  # noqa: S608
        f"FROM {events} WHERE type = 'custom'"
    )


PART_SELECTS: Final = {
    "sessions": session_parts_select,
    "pages": page_parts_select,
    "custom_events": custom_events_select,
    "views": page_views_select,
}
"""Each kind of an hour's parts (`insights.lake.PART_KINDS`), from the hour's events."""
PART_COLUMNS: Final = {
    "sessions": SESSION_PART_COLUMNS,
    "pages": PAGE_PART_COLUMNS,
    "custom_events": CUSTOM_EVENT_COLUMNS,
    "views": PAGE_VIEW_COLUMNS,
}


def no_parts(kind: str) -> str:
    """No row of `kind`'s parts, with their columns."""
    columns = ", ".join(f"CAST(NULL AS {type_}) AS {name}" for name, type_ in PART_COLUMNS[kind])
    return f"SELECT {columns} WHERE false"
