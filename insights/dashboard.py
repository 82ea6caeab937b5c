"""What the dashboard shows, assembled from the readers and kept for a refresh interval.

One `Dashboard` serves every open page: a snapshot is computed at most once per refresh
interval whatever the number of viewers, and heatmaps (DuckDB over the archive) once per
heatmap interval per page. The slow readings kept longer than a snapshot (shard lag, the
rage-click count) are read again on their own, in the background, so a snapshot never waits
for them after the first. A source that fails does not blank the others: its error is part
of the snapshot, and the page shows it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from clickstream.kernel.errors import ClickstreamError
from clickstream.kernel.events import minute_key
from clickstream.kernel.logging import get_logger
from clickstream.kernel.pagekey import page_key
from clickstream.stores.alerts import AlertsTable, Rule
from insights import flows, goals, live, query, report
from insights import heatmap as maps
from insights.goals_store import GoalsFile
from insights.live_sources import ArchiveTail, PageMinutes, shard_lags
from insights.readings import Readings
from insights.settings import DashboardSettings

log = get_logger(component="dashboard")

READING_SECONDS: Final = 30.0
"""How old a reading of the archive may grow before a report asks for a new one
(`insights.readings`)."""
REPORTS_KEPT: Final = 64
"""Recent report answers kept (per distinct request) for the refresh interval."""
LAG_REFRESH_SECONDS = 15.0
"""How often shard lag is read: each reading is a GetRecords per shard, which shares the
shard's five reads a second with the workers."""

READ_ERRORS = (BotoCoreError, ClientError, ClickstreamError, OSError)
"""What a read may fail with and the dashboard survives: shown on the page, tried again."""
READ_FAILED: Final = "the reading failed; the dashboard's log says why"
INTERNAL_ERROR: Final = "internal error; the dashboard's log says why"
"""What the page shows of a failure: fixed words. The why names endpoints, SQL, buckets and
(in AWS) accounts and roles, so it goes to the log only."""


def describe(exc: BaseException) -> str:
    """An error as the log keeps it: its first line, or its type when it has no message."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _answer_key(kind: str, params: dict[str, list[str]]) -> tuple[Any, ...]:
    """What a kept answer is kept by: its kind and its parameters, in any order."""
    return (kind, *sorted((name, tuple(values)) for name, values in params.items()))


def _in_daemon_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, daemon=True).start()


class Refreshed:
    """A slow reading, kept, and read again in the background once it is `every` seconds old.

    Only the first `get` waits for the read (and raises what the read raises: nothing is kept
    yet, so the next `get` reads again). After that, `get` answers at once with the last value
    read while at most one new read is under way: a reading that takes longer than a snapshot
    (shard lag: a GetRecords per shard; rage clicks: DuckDB over the window's archive) makes
    its own figures older, never the others. A background read that fails keeps the last
    value, and `get` gives its error with it until a read succeeds.

    Calls to `get` are not concurrent (the dashboard computes one snapshot at a time); the
    background read may run alongside them.
    """

    def __init__(
        self,
        name: str,
        read: Callable[[], dict[str, Any]],
        every: float,
        monotonic: Callable[[], float] = time.monotonic,
        start: Callable[[Callable[[], None]], None] = _in_daemon_thread,
    ) -> None:
        self.name = name
        self._read = read
        self._every = every
        self._monotonic = monotonic
        self._start = start
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._read_at = 0.0
        self._reading = False
        self._failure: str | None = None

    def get(self) -> tuple[dict[str, Any], str | None]:
        """The last value read, and the error of the last read if it failed."""
        with self._lock:
            value, failure = self._value, self._failure
            due = (
                value is not None
                and not self._reading
                and self._monotonic() - self._read_at >= self._every
            )
            self._reading = self._reading or due
        if value is None:
            value = self._read()
            with self._lock:
                self._value, self._read_at = value, self._monotonic()
            return value, None
        if due:
            self._start(self._read_again)
        return value, failure

    def _read_again(self) -> None:
        value: dict[str, Any] | None = None
        failure: str | None = None
        try:
            value = self._read()
        except READ_ERRORS as exc:
            failure = READ_FAILED
            log.warning("dashboard read failed", source=self.name, error=describe(exc))
        except Exception:  # a bug: logged whole, shown, and tried again
            failure = INTERNAL_ERROR
            log.exception("dashboard read failed", source=self.name)
        with self._lock:
            if value is not None:
                self._value = value
            self._failure = failure
            self._read_at = self._monotonic()  # a failed read is tried again an interval later
            self._reading = False


@dataclass(frozen=True)
class Sources:
    """Where the figures come from: the stack's outputs and clients for them."""

    stream_name: str
    page_stats_table: str
    alerts_table: str | None
    lease_table: str
    archive_bucket: str
    dynamodb: Any
    kinesis: Any
    s3: Any
    duckdb: Callable[[datetime], Any]
    """Opens a DuckDB connection with the archive's views of the hours from a moment on
    (`insights.archive_views.connect`'s `since`): a reading lists the window's objects only."""
    reports: Callable[[datetime], Any] | None = None
    """The same with the enriched views and the session parts (`insights.report`)."""


class Dashboard:
    def __init__(
        self,
        sources: Sources,
        settings: DashboardSettings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sources = sources
        self._settings = settings
        self._clock = clock
        self._window = timedelta(minutes=settings.window_minutes)
        self._archive = ArchiveTail(sources.s3, sources.archive_bucket)
        self._pages = PageMinutes(
            sources.dynamodb,
            sources.page_stats_table,
            fresh_for=timedelta(seconds=settings.refresh_seconds),
        )
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_at = 0.0
        self._computing = False
        self._sql_lock = threading.Lock()
        self._heatmap_lock = threading.Lock()
        self._heatmaps: dict[
            tuple[str, str | None], tuple[float, dict[str, Any] | Exception, bytes]
        ] = {}
        self._reports: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._reports_lock = threading.Lock()
        self._goals: tuple[float, list[goals.Goal]] | None = None
        self._goals_lock = threading.Lock()
        self._readings = Readings(
            self._open_reading,
            clock,
            kept_days=settings.report_days_kept,
            fresh_seconds=READING_SECONDS,
            refresh_seconds=settings.report_refresh_seconds,
        )
        self._lags = Refreshed("shards", self._shards, LAG_REFRESH_SECONDS)
        self._rages = Refreshed("rage clicks", self._rage_clicks, settings.heatmap_refresh_seconds)

    # -- the live snapshot ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The latest figures, at once. When they are a refresh interval old, new ones are
        computed in the background, one computation at a time: a slow source makes the
        figures older (the page says so), never the page wait. Only the first call waits."""
        with self._lock:
            if self._snapshot is None:
                self._snapshot = self._compute()
                self._snapshot_at = time.monotonic()
            elif (
                not self._computing
                and time.monotonic() - self._snapshot_at >= self._settings.refresh_seconds
            ):
                self._computing = True
                threading.Thread(target=self._compute_in_background, daemon=True).start()
            return {**self._snapshot, "served_at": self._clock().isoformat()}

    def _compute_in_background(self) -> None:
        try:
            figures = self._compute()
            with self._lock:
                self._snapshot = figures
                self._snapshot_at = time.monotonic()
        except Exception:  # a bug, not a source failing (those are in the figures)
            log.exception("dashboard snapshot failed")
            with self._lock:
                self._snapshot_at = time.monotonic()  # tried again an interval later
        finally:
            self._computing = False

    def _compute(self) -> dict[str, Any]:
        now = self._clock()
        errors: list[dict[str, str]] = []
        figures: dict[str, Any] = {
            "as_of": now.isoformat(),
            "window_minutes": self._settings.window_minutes,
            "active_minutes": self._settings.active_minutes,
            "recent_minutes": self._settings.recent_minutes,
            "refresh_seconds": self._settings.refresh_seconds,
            "heatmap_refresh_seconds": self._settings.heatmap_refresh_seconds,
            "stale_after_seconds": self._settings.stale_after_seconds,
        }
        timings: dict[str, float] = {}
        minutes = live.window_minutes(now, self._settings.window_minutes)
        parts: dict[str, Callable[[], dict[str, Any]]] = {
            "archive": lambda: self._archive_figures(now, minutes),
            "page stats": lambda: self._page_figures(now, minutes),
            "alerts": lambda: self._alerts(minutes[0]),
            "shards": lambda: self._kept(self._lags, errors),
            "rage clicks": lambda: self._kept(self._rages, errors),
        }

        def timed(name: str) -> dict[str, Any]:
            started = time.monotonic()
            try:
                return self._part(name, errors, parts[name])
            finally:
                timings[name] = round(time.monotonic() - started, 3)

        # The sources are independent: read at once, a snapshot takes the slowest one's time
        # (the kept readings' only when they are read the first time).
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            for found in pool.map(timed, list(parts)):
                figures |= found
        figures["errors"] = sorted(errors, key=lambda error: error["source"])
        figures["seconds_to_read"] = timings
        log.info("dashboard snapshot", seconds=timings, errors=len(errors))
        return figures

    def _part(
        self, name: str, errors: list[dict[str, str]], read: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        try:
            return read()
        except READ_ERRORS as exc:
            log.warning("dashboard read failed", source=name, error=describe(exc))
            # The page says which source failed in fixed words; the why (endpoints, SQL,
            # account names) is in the log.
            errors.append({"source": name, "error": READ_FAILED})
            return {}

    def _archive_figures(self, now: datetime, minutes: list[str]) -> dict[str, Any]:
        self._archive.refresh(now, self._window)
        tallies = self._archive.raw_tallies()
        per_minute = live.events_per_minute(tallies, minutes)
        since_active = now - timedelta(minutes=self._settings.active_minutes)
        return {
            "events_per_minute": per_minute,
            "events_in_window": sum(row["total"] for row in per_minute),
            "active_sessions": live.active_sessions(tallies, since_active),
            "dead_letters": dict(self._archive.dead_letters(now - self._window).most_common()),
        }

    def _page_figures(self, now: datetime, minutes: list[str]) -> dict[str, Any]:
        self._pages.refresh(now, minutes)
        recent_from = minute_key(now - timedelta(minutes=self._settings.recent_minutes - 1))
        items = self._pages.items()
        # A rollup lists a shard's busiest pages of a minute: where one lists only some (a
        # crawler's minute), the leading pages' counts left out come from their page-minute
        # items. Twice the rows shown are completed, so that the ranking is theirs too.
        candidates = [row.page for row in query.merge_pages(items)[: 2 * live.TOP_PAGES]]
        rows = live.top_pages(items + self._pages.hidden_rows(candidates), recent_from=recent_from)
        return {"top_pages": [row.as_dict() for row in rows]}

    def _alerts(self, first_minute: str) -> dict[str, Any]:
        if not self._sources.alerts_table:
            return {"alerts": []}
        found = AlertsTable(self._sources.dynamodb, self._sources.alerts_table).alerts(
            since=first_minute,
            rules=[rule.value for rule in Rule],
        )
        keep = ("rule", "window", "subject", "observed", "baseline", "threshold", "raised_at")
        return {
            "alerts": [
                {key: item.get(key) for key in keep}
                for item in reversed(found)  # newest first
            ]
        }

    @staticmethod
    def _kept(reading: Refreshed, errors: list[dict[str, str]]) -> dict[str, Any]:
        value, failure = reading.get()
        if failure is not None:
            errors.append({"source": reading.name, "error": failure})
        return value

    def _shards(self) -> dict[str, Any]:
        read_at = self._clock()
        lags = shard_lags(
            self._sources.kinesis,
            self._sources.dynamodb,
            self._sources.stream_name,
            self._sources.lease_table,
        )
        return {"shards": [lag.as_dict() for lag in lags], "shards_read_at": read_at.isoformat()}

    # -- archive SQL: rage clicks and heatmaps ----------------------------------------------

    def _rage_clicks(self) -> dict[str, Any]:
        now = self._clock()
        # A new connection each reading: its views list the window's objects when made (a
        # window with none yet gives an empty view); a reading happens once a minute.
        since = now - self._window
        with self._sql_lock, contextlib.closing(self._sources.duckdb(since)) as connection:
            candidates = maps.rage_candidates(connection, since)
        found = maps.rage_clicks(candidates)
        by_page = Counter(rage.page for rage in found)
        figures = {
            "count": len(found),
            "by_page": dict(by_page.most_common()),
            "read_at": now.isoformat(),
        }
        return {"rage_clicks": figures}

    def heatmap(self, page: str, width: str | None) -> tuple[dict[str, Any], bytes]:
        """A page's heatmap over the window: its bins and rage clicks, and the PNG of the
        width class asked for (default: the one with the most clicks). One is drawn at a
        time; what it gave, figures or a failure, is kept for the heatmap interval, so many
        viewers polling a page cost one reading an interval."""
        key = (page_key(page), width)
        with self._heatmap_lock:
            kept = self._heatmaps.get(key)
            if kept and time.monotonic() - kept[0] < self._settings.heatmap_refresh_seconds:
                if isinstance(kept[1], BaseException):
                    raise kept[1]
                return kept[1], kept[2]
            try:
                figures, png = self._draw_heatmap(key[0], width)
            except READ_ERRORS as exc:
                self._keep_heatmap(key, exc, b"")
                raise
            self._keep_heatmap(key, figures, png)
            return figures, png

    def _keep_heatmap(
        self, key: tuple[str, str | None], figures: dict[str, Any] | Exception, png: bytes
    ) -> None:
        if len(self._heatmaps) > 64:  # a page chooser is not a cache of every page
            self._heatmaps.clear()
        self._heatmaps[key] = (time.monotonic(), figures, png)

    def _draw_heatmap(self, page: str, width: str | None) -> tuple[dict[str, Any], bytes]:
        since = self._clock() - self._window
        with self._sql_lock, contextlib.closing(self._sources.duckdb(since)) as connection:
            clicks = maps.clicks_of_page(connection, page, since)
        found = maps.bins(clicks)
        chosen = width or maps.busiest_class(found)
        png = b""
        if chosen is not None and found.get(chosen):
            png = maps.render_png(found[chosen], title=f"{page} ({chosen})")
        figures = {
            "page": page,
            "since": since.isoformat(),
            "clicks": len(clicks),
            "clicks_off_canvas": maps.off_canvas(clicks),
            "width_class": chosen,
            "clicks_per_width_class": {name: sum(c.values()) for name, c in sorted(found.items())},
            "rage_clicks": [rage.as_dict() for rage in maps.rage_clicks(clicks)],
        }
        return figures, png

    # -- the site owner's report -----------------------------------------------------------

    def report(self, params: dict[str, list[str]]) -> dict[str, Any]:
        """The report a request asks for (`insights.report.query_of`; its errors raised as
        they are, for the caller to answer 400). The same request within the refresh
        interval is answered from the last result: every viewer of a view asks every few
        seconds, and a report reads the range's parts."""
        key = _answer_key("report", params)
        kept = self._kept_answer(key, self._settings.refresh_seconds)
        if kept is not None:
            return kept
        query, compare, panels = report.query_of(self._in_site_zone(params), self._clock())
        since = report.reading_start(query, compare=compare).replace(
            minute=0, second=0, microsecond=0
        )
        # The live view (a range of an hour or less) reads the archive as it is now; longer
        # ranges are answered from a reading kept open (`insights.readings`).
        live = query.range.end - query.range.start <= timedelta(hours=1)
        wanted = (params.get("goals") or [""])[0].lower() in report.TRUE_WORDS
        saved = self._saved_goals() if wanted else []
        with self._readings.reading(since, live=live) as reading:
            found = report.report_of(reading.connection, query, compare=compare, breakdowns=panels)
            # The goals over the same visits (`insights.goals`), after the report: it leaves
            # the `visits` view on the range before when comparing.
            reached = goals.goals_of(reading.connection, query, saved) if saved else []
        answer = {
            **found.as_dict(query),
            "as_of": reading.opened_at.isoformat(),
            "renewing": self._readings.renewing(reading),
        }
        if wanted:
            answer["goals"] = [figures.as_dict() for figures in reached]
        self._keep_answer(key, answer)
        return answer

    def _in_site_zone(self, params: dict[str, list[str]]) -> dict[str, list[str]]:
        """A request's parameters, its days the site's zone's unless it names one."""
        return params if "tz" in params else {**params, "tz": [self._settings.site_time_zone]}

    def _kept_answer(self, key: tuple[Any, ...], seconds: float) -> dict[str, Any] | None:
        with self._reports_lock:
            kept = self._reports.get(key)
            if kept is not None and time.monotonic() - kept[0] < seconds:
                return dict(kept[1])
        return None

    def _keep_answer(self, key: tuple[Any, ...], answer: dict[str, Any]) -> None:
        with self._reports_lock:
            if len(self._reports) >= REPORTS_KEPT:
                self._reports.pop(next(iter(self._reports)))
            self._reports[key] = (time.monotonic(), answer)

    def flow(self, kind: str, params: dict[str, list[str]]) -> dict[str, Any]:
        """A funnel, paths or retention (`insights.flows`; its errors raised as they are,
        for the caller to answer 400), on the kept reading when it holds the range, as a
        report is; the answer kept for the kept reading's refresh interval (a live range's
        for the page's)."""
        key = _answer_key(kind, params)
        asked = flows.asked_of(kind, self._in_site_zone(params), self._clock())
        kept = self._kept_answer(
            key,
            self._settings.refresh_seconds
            if asked.live
            else max(self._settings.refresh_seconds, self._settings.report_refresh_seconds),
        )
        if kept is not None:
            return kept
        since = asked.since.replace(minute=0, second=0, microsecond=0)
        with self._readings.reading(since, live=asked.live) as reading:
            found = asked.answer(reading.connection)
        answer = {**found, "as_of": reading.opened_at.isoformat()}
        self._keep_answer(key, answer)
        return answer

    def _saved_goals(self) -> list[goals.Goal]:
        """The goals saved in the bucket (`insights.goals_store`), read again at most every
        `READING_SECONDS`."""
        now = time.monotonic()
        with self._goals_lock:
            if self._goals is None or now - self._goals[0] >= READING_SECONDS:
                self._goals = (
                    now,
                    GoalsFile(self._sources.s3, self._sources.archive_bucket).goals(),
                )
            return list(self._goals[1])

    def _open_reading(self, since: datetime) -> Any:
        """A connection with the report views of the hours from `since` on, its sessions
        merged and its pages kept (`report.prepare_pages`)."""
        if self._sources.reports is None:
            raise ClickstreamError("no archive to report from")
        connection = self._sources.reports(since)
        try:
            report.prepare(connection, people=True)
            report.prepare_pages(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def open_reading_ahead(self) -> Any:
        """The kept reading opened now, before any report asks (what `keep_readings` does
        in the background): its connection."""
        return self._readings.open_kept().connection

    def keep_readings(self) -> None:
        """Keep the site owner's view's reading open from now on (`insights.readings`)."""
        if self._sources.reports is not None:
            self._readings.keep()

    def close(self) -> None:
        self._readings.stop()
