"""The enrichment columns on the read side: `events` with every event's device, browser, bot
flag and its session's acquisition (docs/enrichment.md; `sessions` is
`insights.sessions_sql`'s).

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

from clickstream.kernel.enrichment.columns import (
    ACQUISITION_COLUMNS,
    AGENT_COLUMNS,
    LANDING_COLUMNS,
    LANDING_PREFIX,
    agent_row,
    landing_row,
)
from insights.sessions_sql import judged

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
