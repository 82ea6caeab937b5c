"""The enrichment columns of an event, as the read side's views and the lake hold them: one
pure function per kind, and the version that names what they compute. Pure.

- **Agent columns**, per event, from its `user_agent` alone (`useragent.agent_of`).
- **Landing columns**, per page view, from its own page URL, referrer and (through
  Segment) the campaign its properties keep (`ClickEvent.campaign`): the acquisition that
  page view would give its session were it the landing (`acquisition.acquisition_of`). A
  session's acquisition is that of its first page view (by time, then event id), and every
  event of the session carries it: the `sessions` and `events` views take it so
  (`insights.enriched`), in DuckDB and in Athena.

`ENRICHMENT_VERSION` changes whenever what these functions give for some input changes (a
new rule, a new site list, a parser's data bumped): the lake's manifests record the version
each hour was compacted with, and an hour compacted with another version is read as if it
were raw, its columns computed again (`insights.lake`), so a re-run gives the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from clickstream.kernel.enrichment.acquisition import acquisition_of
from clickstream.kernel.enrichment.useragent import agent_of

ENRICHMENT_VERSION: Final = 1
"""What the columns below mean, as a number: bumped with any change to their values."""

AGENT_COLUMNS: Final = (
    ("browser", "VARCHAR"),
    ("browser_version", "VARCHAR"),
    ("os", "VARCHAR"),
    ("device_type", "VARCHAR"),
    ("is_bot", "BOOLEAN"),
)
"""Per event, from its user agent."""

ACQUISITION_COLUMNS: Final = (
    ("source", "VARCHAR"),
    ("medium", "VARCHAR"),
    ("campaign", "VARCHAR"),
    ("utm_term", "VARCHAR"),
    ("utm_content", "VARCHAR"),
    ("referrer_host", "VARCHAR"),
    ("channel", "VARCHAR"),
)
"""Per session, from its landing; stored per page view as `landing_<name>`."""

ENGAGED_SECONDS: Final = 10
"""A visit this long or longer, first to last event, is engaged: not a bounce (GA4's
default). A bounce: one page view or none, no click, no custom event, shorter than this."""

LANDING_PREFIX: Final = "landing_"
LANDING_COLUMNS: Final = tuple((LANDING_PREFIX + name, kind) for name, kind in ACQUISITION_COLUMNS)

AgentRow = tuple[str | None, str | None, str | None, str, bool]
AcquisitionRow = tuple[str, str, str | None, str | None, str | None, str | None, str]


def agent_row(user_agent: str | None) -> AgentRow:
    """`AGENT_COLUMNS` of one user agent (none: an empty one, `other` and no bot)."""
    agent = agent_of(user_agent or "")
    return (agent.browser, agent.browser_version, agent.os, str(agent.device_type), agent.is_bot)


def landing_row(
    page: str | None, referrer: str | None, campaign: Mapping[str, object] | None
) -> AcquisitionRow:
    """`ACQUISITION_COLUMNS` a page view gives its session when it is the landing; `campaign`
    is Segment's, as the page view's properties keep it (`ClickEvent.campaign`)."""
    found = acquisition_of(page, referrer, campaign)
    return (
        found.source,
        found.medium,
        found.campaign,
        found.term,
        found.content,
        found.referrer_host,
        str(found.channel),
    )
