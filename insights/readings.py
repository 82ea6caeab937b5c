"""The dashboard's readings of the archive for reports, kept open between requests.

Opening a reading (listing the range's objects, reading its manifests: `insights.lake_reader`;
then merging its session parts: `insights.report.prepare_pages`) is most of a cold report's time,
seconds for a month. So the dashboard keeps one wide reading open: its last `kept_days` days
and as many before (the view's longest standard range, compared), from a day earlier (a
visit's start is looked for `SESSION_REACH` before its range). A report whose range lies within
it is answered from it at once, as of its opening, which the answer says. It is opened again
in the background: every `refresh_seconds` whoever asks (a site owner's first look finds it
at most that old) and as soon as a report finds it `fresh_seconds` old (a viewer's figures
follow the stream that closely, a reading's opening later). A range reaching further back
opens a reading of its own, kept `fresh_seconds`; the live view (an hour or less) opens its
own each time, so it is at most the workers' commit interval behind.

A DuckDB connection serves one query at a time: a reading is used under its lock, and a
reading replaced is closed only once no report uses it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clickstream.kernel.logging import get_logger
from clickstream.stores.archive_layout import start_of_hour
from insights.sessions_sql import SESSION_REACH

log = get_logger(component="dashboard")


@dataclass(eq=False)
class Reading:
    start: datetime
    """The first hour it holds."""
    opened_at: datetime
    """When it was opened (the dashboard's clock): what its answers are as of."""
    opened: float
    """The same on the monotonic clock: its age."""
    connection: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def close(self) -> None:
        with self.lock:  # after the report using it, if one is
            self.closed = True
            self.connection.close()


class Readings:
    def __init__(
        self,
        open_reading: Callable[[datetime], Any],
        clock: Callable[[], datetime],
        *,
        kept_days: int,
        fresh_seconds: float,
        refresh_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        start: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """`open_reading(since)`: a connection with the report views of the hours from
        `since` on, prepared. `kept_days` 0 keeps no wide reading."""
        self._open_reading = open_reading
        self._clock = clock
        self._kept_span = 2 * timedelta(days=kept_days) + SESSION_REACH if kept_days else None
        self._fresh = fresh_seconds
        self._refresh = refresh_seconds
        self._monotonic = monotonic
        self._start = start or (lambda work: threading.Thread(target=work, daemon=True).start())
        self._lock = threading.Lock()
        """Guards the fields below (never held while a reading opens or serves)."""
        self._kept: Reading | None = None
        self._refreshing = False
        self._opening_kept = threading.Lock()
        """Held while the kept reading opens: requests that need it wait for one opening."""
        self._others: dict[datetime, Reading] = {}
        self._stop = threading.Event()

    # -- the kept reading ----------------------------------------------------------------

    def keep(self) -> None:
        """Open the kept reading now, and again every `refresh_seconds`, in the background
        (until `stop`)."""
        if self._kept_span is None:
            return

        def loop() -> None:
            while True:
                self._refresh_kept()
                if self._stop.wait(self._refresh):
                    return

        threading.Thread(target=loop, name="kept-reading", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            readings = [self._kept, *self._others.values()]
            self._kept, self._others = None, {}
        for reading in readings:
            if reading is not None:
                reading.close()

    def renewing(self, reading: Reading) -> bool:
        """Whether `reading` is the kept one and old enough that a newer one is being opened
        (a page shown it may ask again in a few seconds rather than at its next refresh)."""
        with self._lock:
            kept = self._kept
        return reading is kept and self._monotonic() - reading.opened >= self._fresh

    def open_kept(self) -> Reading:
        """The kept reading opened now (it replaces the one kept, which is closed once no
        report uses it)."""
        assert self._kept_span is not None
        with self._opening_kept:
            now = self._clock()
            start = start_of_hour(now - self._kept_span)
            began = self._monotonic()
            fresh = Reading(start, now, began, self._open_reading(start))
            with self._lock:
                replaced, self._kept = self._kept, fresh
            log.info("reading kept", since=start.isoformat(), seconds=self._monotonic() - began)
        if replaced is not None:
            replaced.close()
        return fresh

    def _refresh_kept(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        try:
            self.open_kept()
        except Exception as exc:  # the reading kept serves on; the next refresh tries again
            log.warning("keeping a reading failed", error=str(exc).splitlines()[0][:500])
        finally:
            with self._lock:
                self._refreshing = False

    def _kept_for(self, since: datetime) -> Reading | None:
        """The kept reading when it holds `since` and is young enough to answer, starting
        its refresh when it is `fresh_seconds` old; None when there is none to use."""
        with self._lock:
            kept = self._kept
        if kept is None or since < kept.start:
            return None
        age = self._monotonic() - kept.opened
        if age >= self._fresh:
            self._start(self._refresh_kept)
        # Older than two refreshes: the background refreshes are failing, and a report
        # waits for a reading of its own rather than be answered from an old one.
        return kept if age < max(2 * self._refresh, self._fresh) else None

    # -- the readings a report uses ------------------------------------------------------

    @contextmanager
    def reading(self, since: datetime, *, live: bool) -> Iterator[Reading]:
        """A reading of the hours from `since` on, held for one report."""
        while True:
            chosen, own = self._choose(since, live=live)
            with chosen.lock:
                if chosen.closed:  # replaced and closed between the choice and the lock
                    continue
                try:
                    yield chosen
                finally:
                    if own:
                        chosen.closed = True
                        chosen.connection.close()
                return

    def _choose(self, since: datetime, *, live: bool) -> tuple[Reading, bool]:
        """The reading to use and whether it is the report's own (closed after it)."""
        if live:  # the live view reads the archive as it is now
            return self._opened(since), True
        kept = self._kept_for(since)
        if kept is not None:
            return kept, False
        if self._kept_span is not None and since >= start_of_hour(self._clock() - self._kept_span):
            with self._lock:
                waited_for = self._kept
            # Another request may be opening it: wait for that opening.
            with self._opening_kept, self._lock:
                kept = self._kept
            if kept is not None and kept is not waited_for and since >= kept.start:
                return kept, False
            return self.open_kept(), False
        return self._other(since), False

    def _other(self, since: datetime) -> Reading:
        """A reading of a range beyond the kept one: kept `fresh_seconds` for the same
        range's next request (the page asks every few seconds)."""
        now = self._monotonic()
        with self._lock:
            expired = [
                start
                for start, reading in self._others.items()
                if now - reading.opened >= self._fresh
            ]
            closing = [self._others.pop(start) for start in expired]
            found = self._others.get(since)
        for reading in closing:
            reading.close()
        if found is not None:
            return found
        opened = self._opened(since)
        with self._lock:
            found = self._others.setdefault(since, opened)
        if found is not opened:  # another request opened it meanwhile: theirs is kept
            opened.close()
        return found

    def _opened(self, since: datetime) -> Reading:
        return Reading(since, self._clock(), self._monotonic(), self._open_reading(since))
