"""Anomaly rules: bot-like sessions and page traffic spikes and drops. Pure: no I/O, no clock.

Every rule is explainable: an `Alert` names the rule, the subject (a session or a page), the
window, the value observed and the baseline or threshold it was compared with.

Bot-like sessions are judged where a session lives: on its shard, from the session's own
state (a session's events all go to one shard), so the record processor raises them.

Page traffic is judged on the whole stream's count of a page in a minute, never on one
shard's share: each shard sees a random part of every page's traffic (the partition key is
the session), and a per-shard rule would multiply false alerts by the shard count while
seeing only 1/N of the volume. The per-shard counters are already summed by readers, so the
page rule reads the summed minute once the whole stream has moved past it (`stream_watermark`)
and compares it with an exponentially weighted baseline of the minutes before it. The
baseline is recomputed from those minutes' totals, not carried as state, so every worker that
evaluates a minute gets the same answer and the alert's conditional put keeps one of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

from clickstream.kernel.events import minute_key
from clickstream.stores.alerts import Alert, Rule, ShardProgress
from clickstream.stores.sessions import SessionState

MINUTE_FORMAT: Final = "%Y-%m-%dT%H:%M"
"""The format of `clickstream.kernel.events.minute_key`, the minute buckets counters use."""


def parse_minute(minute: str) -> datetime:
    return datetime.strptime(minute, MINUTE_FORMAT).replace(tzinfo=UTC)


# -- bot-like sessions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotRules:
    """Thresholds of the four bot signals; a session is bot-like when enough of them fire."""

    min_events: int = 20
    """Below this a session is too short to judge (no signal fires)."""
    max_events_per_second: float = 1.0
    """Sustained rate over the session: people read between clicks."""
    min_gap_variation: float = 0.2
    """Coefficient of variation of the gaps between events; scripts tick like clocks."""
    max_pages_per_minute: int = 15
    """Distinct pages in the session's busiest minute."""
    clicks_without_views: int = 20
    """Clicks in a session that never loaded a page."""
    alert_score: float = 0.5
    """Share of signals that must fire for an alert (0.5: two of four)."""


@dataclass(frozen=True, slots=True)
class BotSignal:
    name: str
    observed: float
    threshold: float
    fired: bool


@dataclass(frozen=True, slots=True)
class BotAssessment:
    score: float
    signals: tuple[BotSignal, ...]

    @property
    def fired(self) -> list[str]:
        return [signal.name for signal in self.signals if signal.fired]


def busiest_minute_pages(state: SessionState) -> int:
    """Distinct pages in the session's busiest minute, from its first touches
    ((minute, page) keys; counted per minute as they are added)."""
    return max(state.touches_per_minute.values(), default=0)


class _Observed(NamedTuple):
    """What the bot rules see of a session, and which signals fire (a tuple: the rules run
    for every session a delivery changes, and most need no explanation)."""

    rate: float
    variation: float
    pages: int
    fired: tuple[bool, bool, bool, bool]


def _observe(state: SessionState, rules: BotRules) -> _Observed:
    enough = state.events >= rules.min_events
    rate = state.events / max(state.duration_seconds, 1.0)
    variation = state.gap_variation
    pages = busiest_minute_pages(state)
    fired = (
        enough and rate > rules.max_events_per_second,
        enough and state.gap_count >= rules.min_events - 1 and variation < rules.min_gap_variation,
        pages > rules.max_pages_per_minute,
        state.page_views == 0 and state.clicks >= rules.clicks_without_views,
    )
    return _Observed(rate, variation, pages, fired)


def _score(observed: _Observed) -> float:
    """The share of signals that fire."""
    return round(sum(observed.fired) / len(observed.fired), 2)


def assess_session(state: SessionState, rules: BotRules) -> BotAssessment:
    """The bot score of a session: the share of signals that fire, each explained."""
    observed = _observe(state, rules)
    rate_fired, variation_fired, pages_fired, clicks_fired = observed.fired
    signals = (
        BotSignal("events_per_second", observed.rate, rules.max_events_per_second, rate_fired),
        BotSignal("gap_variation", observed.variation, rules.min_gap_variation, variation_fired),
        BotSignal("pages_per_minute", observed.pages, rules.max_pages_per_minute, pages_fired),
        BotSignal("clicks_without_views", state.clicks, rules.clicks_without_views, clicks_fired),
    )
    return BotAssessment(_score(observed), signals)


def bot_alert(state: SessionState, assessment: BotAssessment, rules: BotRules) -> Alert | None:
    """The alert a session's assessment calls for, or None."""
    if assessment.score < rules.alert_score or state.first_seen is None:
        return None
    details: dict[str, float | int | str] = {"signals": ",".join(assessment.fired)}
    for signal in assessment.signals:
        details[signal.name] = round(signal.observed, 3)
        details[f"{signal.name}_threshold"] = signal.threshold
    return Alert(
        rule=Rule.BOT_SESSION,
        subject=state.session_id,
        window=minute_key(state.first_seen),
        observed=assessment.score,
        baseline=None,
        threshold=rules.alert_score,
        details=details,
    )


def score_sessions(sessions: Iterable[SessionState], rules: BotRules) -> list[Alert]:
    """Score the sessions a delivery changed (kept in each state); the alerts of those
    crossing the line for the first time (marked raised in the state)."""
    alerts = []
    # Below this many events no signal can fire (each needs at least as many): score 0
    # without assessing, which most sessions of a delivery are.
    quiet = min(rules.min_events, rules.max_pages_per_minute + 1, rules.clicks_without_views)
    for session in sessions:
        if session.events < quiet:
            session.bot_score = 0.0
            continue
        # The score alone for most; the explained assessment only for an alert to raise.
        session.bot_score = _score(_observe(session, rules))
        if session.bot_alerted or session.bot_score < rules.alert_score:
            continue
        alert = bot_alert(session, assess_session(session, rules), rules)
        if alert is not None:
            session.bot_alerted = True
            alerts.append(alert)
    return alerts


# -- page traffic -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageRules:
    alpha: float = 0.3
    """Weight of the newest minute in the exponentially weighted mean and variance."""
    history_minutes: int = 30
    """Minutes before the evaluated one that make its baseline."""
    warmup_minutes: int = 5
    """Minutes of stream history needed before a page can alert at all."""
    z_threshold: float = 4.5
    """How many standard deviations from the baseline make a spike or a drop. 4.5 since bots
    are counted apart (issue 40): people's smaller counts on quiet pages wobble past 4.0
    more often (docs/anomalies.md); the smallest injected spike measured is at 5.0."""
    min_volume: int = 20
    """A spike needs at least this many views in the minute; a drop needs a baseline of at
    least this many: a page going from 2 to 6 views pages nobody."""
    lateness: timedelta = timedelta(seconds=60)
    """How far behind the stream's newest events a minute must be before it is judged."""
    settle: timedelta = timedelta(seconds=30)
    """How long a shard must have been caught up before it stops holding the stream's
    watermark at its own newest event: a producer running late may still send it events of
    its last minute (`stream_watermark`)."""


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: float
    variance: float
    minutes: int

    @property
    def deviation(self) -> float:
        # Views are counts: never trust a spread below Poisson noise (variance = mean), or a
        # page with a perfectly flat history would alert on its first extra view.
        return math.sqrt(max(self.variance, self.mean, 1.0))


def baseline(history: Sequence[int], alpha: float) -> Baseline:
    """Exponentially weighted mean and variance of a page's views, oldest minute first."""
    if not history:
        return Baseline(0.0, 0.0, 0)
    mean, variance = float(history[0]), 0.0
    for value in history[1:]:
        difference = value - mean
        increment = alpha * difference
        mean += increment
        variance = (1 - alpha) * (variance + difference * increment)
    return Baseline(mean, variance, len(history))


def evaluate_minute(
    minute: str,
    views: Mapping[str, int],
    history: Sequence[Mapping[str, int]],
    rules: PageRules,
) -> list[Alert]:
    """Spikes and drops of one minute's page views against the minutes before it.

    `history` holds the totals of the minutes right before `minute`, oldest first, from the
    first minute the stream had any traffic (at most `rules.history_minutes`); a page absent
    from a minute had no views in it.
    """
    if len(history) < rules.warmup_minutes:
        return []
    alerts: list[Alert] = []
    pages = set(views).union(*history)
    for page in sorted(pages):
        observed = views.get(page, 0)
        usual = baseline([minute_totals.get(page, 0) for minute_totals in history], rules.alpha)
        z = (observed - usual.mean) / usual.deviation
        details: dict[str, float | int | str] = {
            "z": round(z, 2),
            "deviation": round(usual.deviation, 2),
            "history_minutes": usual.minutes,
        }
        if z >= rules.z_threshold and observed >= rules.min_volume:
            rule = Rule.PAGE_SPIKE
        elif z <= -rules.z_threshold and usual.mean >= rules.min_volume:
            rule = Rule.PAGE_DROP
        else:
            continue
        alerts.append(
            Alert(
                rule=rule,
                subject=page,
                window=minute,
                observed=observed,
                baseline=round(usual.mean, 2),
                threshold=rules.z_threshold,
                details=details,
            )
        )
    return alerts


def stream_watermark(
    progress: Iterable[ShardProgress],
    open_shards: Iterable[str],
    lateness: timedelta,
    *,
    now: datetime | None = None,
    settle: timedelta = timedelta(0),
) -> datetime | None:
    """Event time up to which every shard's counts are complete (None: not known yet).

    A shard still working holds the watermark back at its own. So does a shard caught up, or
    last sent a record, less than `settle` ago (at `now`; `caught_up_since`): "caught up"
    means everything that had arrived was flushed, and a producer running late (a pause
    between its batches, a slow producer trickling records, a retry after a 503) may still
    send it events of its newest minute; judging the minute then would see a false drop.
    Shards quiet for longer do not hold it (they have nothing more to add), so when all are,
    the newest event time seen anywhere counts. An open shard that has reported nothing yet
    (its processor is starting) holds everything back. `lateness` allows for events that
    arrive out of order.
    """
    reported = {entry.shard_id: entry for entry in progress}
    if any(shard not in reported for shard in open_shards):
        return None
    live = [entry for entry in reported.values() if not entry.ended]
    if not live:
        return None
    working = [entry for entry in live if not entry.caught_up]
    if any(entry.event_watermark is None for entry in working):
        return None

    def settling(entry: ShardProgress) -> bool:
        since = entry.caught_up_since
        return now is not None and since is not None and now - since < settle

    holding = working + [entry for entry in live if entry.caught_up and settling(entry)]
    marks = [entry.event_watermark for entry in holding if entry.event_watermark is not None]
    if marks:
        return min(marks) - lateness
    newest = [entry.event_watermark for entry in live if entry.event_watermark is not None]
    return max(newest) - lateness if newest else None


class PageTrafficDetector:
    """Judges each minute once it is complete, in order. State: the totals of recent minutes.

    The edge feeds it the stream watermark and the summed views of the minutes it asks for;
    it never reads anything itself.
    """

    def __init__(self, rules: PageRules, *, next_minute: str | None = None) -> None:
        self.rules = rules
        self.next_minute = next_minute
        self._history: dict[str, dict[str, int]] = {}
        self._unknown: set[str] = set()
        """Minutes whose totals could not be read: left out of every baseline."""

    def due(self, watermark: datetime | None, *, first_minute: str | None = None) -> list[str]:
        """The minutes that are complete and not judged yet, oldest first."""
        if watermark is None:
            return []
        if self.next_minute is None:
            if first_minute is None:
                return []
            self.next_minute = first_minute
        due: list[str] = []
        moment = parse_minute(self.next_minute)
        while moment + timedelta(minutes=1) <= watermark:
            due.append(minute_key(moment))
            moment += timedelta(minutes=1)
        return due

    def history_needed(self, minute: str) -> list[str]:
        """Earlier minutes whose totals `judge` needs and does not hold."""
        start = parse_minute(minute)
        wanted = [
            minute_key(start - timedelta(minutes=back))
            for back in range(self.rules.history_minutes, 0, -1)
        ]
        return [
            earlier
            for earlier in wanted
            if earlier not in self._history and earlier not in self._unknown
        ]

    def remember(self, minute: str, views: Mapping[str, int]) -> None:
        self._history[minute] = dict(views)
        for stale in sorted(self._history)[: -self.rules.history_minutes - 1]:
            del self._history[stale]
        horizon = minute_key(parse_minute(minute) - timedelta(minutes=self.rules.history_minutes))
        self._unknown = {unknown for unknown in self._unknown if unknown >= horizon}

    def unknown(self, minute: str) -> None:
        """The totals of `minute` cannot be read: it is not judged (if it is the next one,
        it counts as passed) and no baseline includes it."""
        self._unknown.add(minute)
        if minute == self.next_minute:
            self.next_minute = minute_key(parse_minute(minute) + timedelta(minutes=1))

    def judge(self, minute: str, views: Mapping[str, int]) -> list[Alert]:
        """Alerts of `minute`; then it counts as judged and joins the history."""
        start = parse_minute(minute)
        horizon = minute_key(start - timedelta(minutes=self.rules.history_minutes))
        known_minutes = [known for known in sorted(self._history) if horizon <= known < minute]
        # The stream's history starts at its first minute with traffic: leading empty
        # minutes are no evidence of a quiet page, just of no data yet.
        while known_minutes and not self._history[known_minutes[0]]:
            known_minutes.pop(0)
        # And that first minute is partial (the stream began inside it): unless the minute
        # before it had traffic too, it would drag the baseline down and its variance up.
        if known_minutes:
            before = minute_key(parse_minute(known_minutes[0]) - timedelta(minutes=1))
            if not self._history.get(before):
                known_minutes.pop(0)
        window = [self._history[known] for known in known_minutes]
        alerts = evaluate_minute(minute, views, window, self.rules)
        self.remember(minute, views)
        self.next_minute = minute_key(start + timedelta(minutes=1))
        return alerts


def judge_complete_minutes(
    detector: PageTrafficDetector,
    watermark: datetime | None,
    views_of: Callable[[str], Mapping[str, int]],
    raise_alerts: Callable[[str, list[Alert]], None],
) -> None:
    """Judge every minute complete under `watermark`, reading totals with `views_of` and
    handing each minute and its alerts to `raise_alerts` before the next minute.

    If raising fails the minute is not counted as judged, so the next call judges it again.
    A detector that has judged nothing starts `history_minutes` before the watermark.
    """
    if watermark is None:
        return
    first = minute_key(watermark - timedelta(minutes=detector.rules.history_minutes))
    for minute in detector.due(watermark, first_minute=first):
        for earlier in detector.history_needed(minute):
            detector.remember(earlier, views_of(earlier))
        alerts = detector.judge(minute, views_of(minute))
        try:
            raise_alerts(minute, alerts)
        except BaseException:
            detector.next_minute = minute
            raise
