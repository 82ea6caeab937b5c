"""The enrichment columns on the read side: `events` with every event's device, browser, bot
flag and its session's acquisition, and `sessions`, one row per session (docs/enrichment.md).

What each column holds is `clickstream.kernel.enrichment.columns` (one pure, versioned
function per kind); this module hands it to DuckDB as two functions of the connection
(`register`): `enrich_agent(user_agent)` and `enrich_landing(page, referrer, campaign)`,
each a struct of its columns. They are vectorised (DuckDB passes 2,048 values at a time as
Arrow arrays) and remember what they computed, so Python runs once per distinct user agent
and landing, and only when a query reads the columns: a DuckDB function called one row at
a time cost 200 µs a row. A session's acquisition is its landing's, the first page view by
time then event id; every event of the session carries it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Final

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType

from clickstream.kernel.enrichment.acquisition import DIRECT, NONE
from clickstream.kernel.enrichment.channels import Channel
from clickstream.kernel.enrichment.columns import (
    ACQUISITION_COLUMNS,
    AGENT_COLUMNS,
    ENGAGED_SECONDS,
    LANDING_COLUMNS,
    LANDING_PREFIX,
    agent_row,
    landing_row,
)

STORED_COLUMNS: Final = AGENT_COLUMNS + LANDING_COLUMNS
"""What compaction writes into each Parquet row beside the raw columns."""

EVENT_TIME: Final = (
    "CASE WHEN regexp_full_match(timestamp, '[0-9]{1,16}') "
    "THEN make_timestamp(CAST(timestamp AS BIGINT) * 1000) "
    "ELSE timezone('UTC', try_cast(timestamp AS TIMESTAMPTZ)) END"
)
"""An event's time in UTC (TIMESTAMP) from its `timestamp` as it came: ISO 8601 with any
offset, or epoch milliseconds, both of which the contract accepts."""

CAMPAIGN_TEXT: Final = "CAST(json_extract(properties, '$.campaign') AS VARCHAR)"
"""Segment's campaign kept in a page view's properties (`collector.segment`), as text."""

_ARROW_TYPES: Final = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_()}
_CACHED: Final = 65_536


@functools.cache
def _struct(columns: tuple[tuple[str, str], ...]) -> tuple[Any, pa.DataType]:
    duckdb_type = duckdb.struct_type({name: kind for name, kind in columns})
    arrow_type = pa.struct([(name, _ARROW_TYPES[kind]) for name, kind in columns])
    return duckdb_type, arrow_type


@functools.lru_cache(maxsize=_CACHED)
def _landing(page: str | None, referrer: str | None, campaign: str | None) -> tuple[Any, ...]:
    """`landing_row` of a page view, its campaign as the properties' JSON text holds it."""
    try:
        given = json.loads(campaign) if campaign else None
    except ValueError:
        given = None
    return landing_row(page, referrer, given if isinstance(given, dict) else None)


def _rows(
    columns: tuple[tuple[str, str], ...],
    row_of: Callable[..., tuple[Any, ...]],
    arrays: tuple[pa.Array, ...],
) -> pa.Array:
    names = [name for name, _ in columns]
    values = zip(*(array.to_pylist() for array in arrays), strict=True)
    rows = [dict(zip(names, row_of(*value), strict=True)) for value in values]
    return pa.array(rows, type=_struct(columns)[1])


def _agents(user_agents: pa.Array) -> pa.Array:
    return _rows(AGENT_COLUMNS, agent_row, (user_agents,))


def _landings(pages: pa.Array, referrers: pa.Array, campaigns: pa.Array) -> pa.Array:
    return _rows(ACQUISITION_COLUMNS, _landing, (pages, referrers, campaigns))


def register(connection: duckdb.DuckDBPyConnection) -> None:
    """`enrich_agent` and `enrich_landing` on this connection."""
    for name, function, parameters, columns in (
        ("enrich_agent", _agents, 1, AGENT_COLUMNS),
        ("enrich_landing", _landings, 3, ACQUISITION_COLUMNS),
    ):
        connection.create_function(
            name,
            function,
            ["VARCHAR"] * parameters,
            _struct(columns)[0],
            type=PythonUDFType.ARROW,
            null_handling=FunctionNullHandling.SPECIAL,
            side_effects=False,
        )


def enriched_select(relation: str) -> str:
    """`relation`'s rows (raw columns and partitions) with the stored columns computed
    (`register` on the connection first): the agent's for every event, the landing's for
    page views (NULL for the others)."""
    agents = ", ".join(f"agent.{name} AS {name}" for name, _ in AGENT_COLUMNS)
    landings = ", ".join(
        f"landing.{name} AS {LANDING_PREFIX}{name}" for name, _ in ACQUISITION_COLUMNS
    )
    return (
        f"SELECT * EXCLUDE (agent, landing), {agents}, {landings} FROM ("  # noqa: S608
        "SELECT *, enrich_agent(user_agent) AS agent, "
        "CASE WHEN type = 'page_view' THEN "
        f"enrich_landing(page, referrer, {CAMPAIGN_TEXT}) END AS landing "
        f"FROM ({relation}))"
    )


def _acquisition(name: str) -> str:
    """A session's acquisition column: its landing's; a session without a page view (a
    custom event alone) is direct."""
    landing = f"min_by({LANDING_PREFIX}{name}, {FIRST}) FILTER (WHERE type = 'page_view')"
    if name == "source":
        return f"coalesce({landing}, '{DIRECT}') AS {name}"
    if name == "medium":
        return f"coalesce({landing}, '{NONE}') AS {name}"
    if name == "channel":
        return f"coalesce({landing}, '{Channel.DIRECT}') AS {name}"
    return f"{landing} AS {name}"


FIRST: Final = "ROW(event_time, event_id)"
"""The order of a session's events: time, then event id."""

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


def sessions_select(events: str) -> str:
    """`sessions`: one row per session of `events` (a table or view with the raw columns,
    `event_time` and the stored enrichment columns: DuckDB's `events_stored`, Athena's lake
    table `events`). One definition for both engines: only functions and forms DuckDB and
    Trino share (`min_by` over a row, `date_diff`, aggregate `FILTER`, `nullif`), so the
    Athena view in the template is this text (`clickstream.tools.athena_views`).

    `bounced`: one page view or none, no click and no custom event, and under
    `ENGAGED_SECONDS` from first to last event (GA4's engaged session, inverted). `is_bot`:
    an event's agent is a bot's, or the workers' bot rule judged the session (`judged`)."""
    views = "count(*) FILTER (WHERE type = 'page_view')"
    duration = "CAST(date_diff('millisecond', min(event_time), max(event_time)) AS DOUBLE) / 1000"
    columns = [
        "session_id",
        f"lower(nullif(regexp_extract(min_by(page, {FIRST}), '^https?://([^/:?#]+)', 1), '')) "
        "AS site",
        f"min_by(anonymous_id, {FIRST}) FILTER (WHERE anonymous_id IS NOT NULL) AS anonymous_id",
        f"max_by(user_id, {FIRST}) FILTER (WHERE user_id IS NOT NULL) AS user_id",
        "min(event_time) AS started_at",
        "max(event_time) AS ended_at",
        f"{duration} AS duration_s",
        f"{views} AS page_views",
        "count(*) AS events",
        f"min_by(page, {FIRST}) FILTER (WHERE type = 'page_view') AS entry_page",
        f"max_by(page, {FIRST}) FILTER (WHERE type = 'page_view') AS exit_page",
        f"({views} <= 1 AND count(*) FILTER (WHERE type IN ('click', 'custom')) = 0 "
        f"AND {duration} < {ENGAGED_SECONDS}) AS bounced",
        *(_acquisition(name) for name, _ in ACQUISITION_COLUMNS),
        f"min_by(device_type, {FIRST}) AS device_type",
        f"min_by(browser, {FIRST}) AS browser",
        f"min_by(os, {FIRST}) AS os",
        f"min_by(country, {FIRST}) FILTER (WHERE country IS NOT NULL) AS country",
        f"(bool_or(coalesce(is_bot, false)) OR {judged('session_id')}) AS is_bot",
    ]
    return f"SELECT {', '.join(columns)} FROM {events} GROUP BY session_id"  # noqa: S608


VERDICTS: Final = "bot_verdicts"
"""The sessions the workers' bot rule judged (`clickstream.stores.archive_layout`'s
`verdicts/`): DuckDB's view of the objects and Athena's Glue table of the same name."""
VERDICT_COLUMNS: Final = (
    ("session_id", "VARCHAR"),
    ("started_minute", "VARCHAR"),
    ("score", "DOUBLE"),
    ("signals", "VARCHAR"),
)


def judged(session_id: str) -> str:
    """Whether the bot rule judged the session `session_id` names (a column expression)."""
    return f"{session_id} IN (SELECT session_id FROM {VERDICTS})"  # noqa: S608


def events_select(enriched_events: str, raw_names: str, partition_names: str) -> str:
    """`events`: every event with its own columns, its agent's, and its session's
    acquisition (from `sessions`); `is_bot` also when the bot rule judged its session."""
    agents = ", ".join(
        f"(coalesce(e.is_bot, false) OR {judged('e.session_id')}) AS is_bot"
        if name == "is_bot"
        else f"e.{name}"
        for name, _ in AGENT_COLUMNS
    )
    acquisition = ", ".join(f"s.{name}" for name, _ in ACQUISITION_COLUMNS)
    raw = ", ".join(f"e.{name.strip()}" for name in raw_names.split(","))
    partitions = ", ".join(f"e.{name.strip()}" for name in partition_names.split(","))
    return (
        f"SELECT {raw}, e.event_time, {agents}, {acquisition}, {partitions} "  # noqa: S608
        f"FROM ({enriched_events}) e LEFT JOIN sessions s USING (session_id)"
    )


UNKNOWN: Final = "(none)"
"""How a breakdown names a NULL value (an unknown country)."""


def breakdown(connection: duckdb.DuckDBPyConnection, view: str, column: str) -> dict[str, int]:
    """Rows of `view` (`sessions` or `events`) per value of one of its columns, a NULL as
    `UNKNOWN` and a flag as `true`/`false`. `view` and `column` are our own names."""
    found = connection.execute(
        f"SELECT CAST({column} AS VARCHAR), count(*) FROM {view} GROUP BY 1"  # noqa: S608
    ).fetchall()
    return {UNKNOWN if value is None else str(value): int(count) for value, count in found}
