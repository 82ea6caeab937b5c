"""Consumer settings: one model, `CLICKSTREAM_*` environment variables, parsed once at start.

The same model configures both processes of a worker: `clickstream consume` renders the KCL
properties from it, and every record processor the daemon starts reads it again from the
environment it inherits. Names are the same locally and on ECS.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from clickstream.kernel.errors import ConfigurationError
from clickstream.stores.suppression import SuppressionSettings
from consumer.core.anomaly import BotRules, PageRules
from consumer.core.pending import Cadences
from consumer.kcl_runtime import KCL_JARS_DIR

ENV_PREFIX = "CLICKSTREAM_"
RENAMED = {
    "CLICKSTREAM_FLUSH_MAX_AGE_SECONDS": (
        "CLICKSTREAM_LIVE_FLUSH_SECONDS, CLICKSTREAM_ITEM_FLUSH_SECONDS and "
        "CLICKSTREAM_COMMIT_SECONDS"
    ),
    "CLICKSTREAM_FLUSH_MAX_RECORDS": "CLICKSTREAM_COMMIT_MAX_RECORDS",
    "CLICKSTREAM_FLUSH_MAX_BYTES": "CLICKSTREAM_COMMIT_MAX_BYTES",
}
"""Settings replaced when each output got its own cadence (issue 15)."""


class ConsumerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    # Where to read and write.
    stream_name: str = Field(description="Kinesis stream to consume.")
    sessions_table: str = Field(description="DynamoDB table of per-session state.")
    page_stats_table: str = Field(description="DynamoDB table of per-page-minute counters.")
    alerts_table: str | None = Field(default=None, description="DynamoDB table of alerts.")
    archive_bucket: str = Field(description="S3 bucket of the raw archive and dead letters.")
    region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLICKSTREAM_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region.",
    )
    kinesis_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLICKSTREAM_KINESIS_ENDPOINT", "AWS_ENDPOINT_URL_KINESIS"),
        description="Kinesis endpoint override (the local emulator); AWS's when unset.",
    )
    dynamodb_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "CLICKSTREAM_DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"
        ),
        description="DynamoDB endpoint override for KCL's lease tables; AWS's when unset.",
    )

    # KCL: identity, position, retrieval, leases, shutdown, metrics.
    application_name: str | None = Field(
        default=None,
        description="KCL application (its lease table's name); `<stream>-consumer` when unset.",
    )
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Unique per worker process; KCL's lease owner name.",
    )
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    retrieval_mode: Literal["POLLING", "FANOUT"] = "POLLING"
    max_records: int = Field(default=10_000, ge=1, le=10_000)
    idle_time_between_reads_ms: int = Field(default=1_000, ge=1)
    failover_time_ms: int = Field(default=10_000, ge=1_000)
    shard_sync_interval_ms: int = Field(default=60_000, ge=1_000)
    lease_assignment_interval_ms: int | None = Field(default=None, ge=1_000)
    worker_metrics_reporter_freq_ms: int | None = Field(default=None, ge=1_000)
    disable_worker_metrics: bool | None = Field(
        default=None,
        description=(
            "Balance leases by their throughput only, not the workers' CPU (KCL's default "
            "when unset: CPU). `consume --local` sets it: workers sharing one host all read "
            "the host's CPU, whose noise moves leases back and forth (docs/kcl.md)."
        ),
    )
    rebalance_threshold_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description=(
            "How far (percent of the fleet's average) a worker's load must stray before KCL "
            "moves a lease; KCL's default (10) when unset."
        ),
    )
    variance_balancing_frequency: int | None = Field(
        default=None,
        ge=1,
        description=(
            "KCL rebalances leases on every Nth lease assignment run (every "
            "`lease_assignment_interval_ms`); KCL's default (3) when unset. Unassigned and "
            "expired leases are assigned on every run regardless."
        ),
    )
    parent_shard_poll_interval_ms: int = Field(default=10_000, ge=100)
    shutdown_grace_ms: int = Field(
        default=20_000, ge=1_000, description="How long shards get to flush on SIGTERM."
    )
    graceful_handoff: bool = Field(
        default=False,
        description=(
            "KCL 3's graceful lease handoff on rebalancing. Off: KCL 3.1.3 (the jars served "
            "here) can leave a lease stuck with its old checkpoint owner for good when the "
            "handoff reaches a shard consumer still starting (docs/kcl.md); a rebalance is "
            "then a lease move, replayed from the checkpoint, exact by the items' positions."
        ),
    )
    metrics_level: Literal["NONE", "SUMMARY", "DETAILED"] = "SUMMARY"
    startup_check_seconds: float = Field(
        default=180.0,
        ge=5.0,
        description="How long KCL gets to create its lease table before start counts as failed.",
    )
    java: str = Field(default="java", description="The Java 17+ executable running KCL.")
    kcl_jars_dir: Path = Field(
        default=KCL_JARS_DIR,
        description="The MultiLangDaemon's jars (bootstrap's .tools/kcl/jars; the image's own).",
    )
    health_file: Path | None = Field(
        default=None,
        description="Touched every few seconds while the KCL daemon runs (`clickstream health`).",
    )

    # The record processor's cadences (consumer.core.pending; docs/design.md "Cadences"):
    # each output waits as long as its readers can bear, since every write is billed.
    live_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "A changed page counter is in its minute's live rollup within this (the "
            "dashboard's top pages)."
        ),
    )
    item_flush_seconds: float = Field(
        default=50.0,
        gt=0,
        description=(
            "A changed session or page-minute item is written within this (`query`, the "
            "page-traffic rule)."
        ),
    )
    commit_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Records are archived (one object per hour partition) and checkpointed within "
            "this; a restart replays at most about this much."
        ),
    )
    commit_max_records: int = Field(default=100_000, ge=1, description="... or this many.")
    commit_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="... or this many bytes of records."
    )
    retention_days: float = Field(default=30.0, gt=0, description="TTL of every item written.")
    retry_deadline_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a flush retries AWS errors before the worker stops on purpose.",
    )
    write_threads: int = Field(default=16, ge=1, le=128)
    max_cached_sessions: int = Field(default=50_000, ge=100)
    max_cached_page_minutes: int = Field(default=50_000, ge=100)
    page_key_query_params: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        description=(
            "Query parameters a page key keeps (comma-separated, e.g. `q,category`); every "
            "other parameter, and the fragment, is dropped from page keys."
        ),
    )
    log_level: str = "INFO"
    metrics_namespace: str = Field(
        default="Clickstream", description="CloudWatch namespace of the workers' EMF metrics."
    )

    # Anomaly rules (consumer.core.anomaly): bot-like sessions, page traffic spikes and drops.
    bot_min_events: int = Field(default=20, ge=2, description="Shortest session judged.")
    bot_max_events_per_second: float = Field(default=1.0, gt=0)
    bot_min_gap_variation: float = Field(default=0.2, ge=0)
    bot_max_pages_per_minute: int = Field(default=15, ge=1)
    bot_clicks_without_views: int = Field(default=20, ge=1)
    bot_alert_score: float = Field(default=0.5, gt=0, le=1)
    page_alpha: float = Field(default=0.3, gt=0, le=1)
    page_history_minutes: int = Field(default=30, ge=2, le=240)
    page_warmup_minutes: int = Field(default=5, ge=1)
    page_z_threshold: float = Field(default=4.5, gt=0)
    page_min_volume: int = Field(default=20, ge=1)
    page_lateness_seconds: float = Field(default=60.0, ge=0)
    page_settle_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a shard must be caught up before the page rule stops waiting "
        "for its newest minute (a producer running late may still send to it).",
    )
    page_watch_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker looks for page-minutes to judge."
    )

    @field_validator("page_key_query_params", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _cadences_in_order(self) -> ConsumerSettings:
        if not self.live_flush_seconds <= self.item_flush_seconds <= self.commit_seconds:
            raise ValueError(
                "CLICKSTREAM_LIVE_FLUSH_SECONDS <= CLICKSTREAM_ITEM_FLUSH_SECONDS <= "
                "CLICKSTREAM_COMMIT_SECONDS must hold (a commit writes every changed state)"
            )
        return self

    def cadences(self) -> Cadences:
        return Cadences(
            live_seconds=self.live_flush_seconds,
            item_seconds=self.item_flush_seconds,
            commit_seconds=self.commit_seconds,
            max_records=self.commit_max_records,
            max_bytes=self.commit_max_bytes,
        )

    @model_validator(mode="after")
    def _default_application_name(self) -> ConsumerSettings:
        if self.application_name is None:
            self.application_name = f"{self.stream_name}-consumer"
        return self

    @property
    def kcl_application(self) -> str:
        return self.application_name or f"{self.stream_name}-consumer"

    def bot_rules(self) -> BotRules:
        return BotRules(
            min_events=self.bot_min_events,
            max_events_per_second=self.bot_max_events_per_second,
            min_gap_variation=self.bot_min_gap_variation,
            max_pages_per_minute=self.bot_max_pages_per_minute,
            clicks_without_views=self.bot_clicks_without_views,
            alert_score=self.bot_alert_score,
        )

    def page_rules(self) -> PageRules:
        return PageRules(
            alpha=self.page_alpha,
            history_minutes=self.page_history_minutes,
            warmup_minutes=self.page_warmup_minutes,
            z_threshold=self.page_z_threshold,
            min_volume=self.page_min_volume,
            lateness=timedelta(seconds=self.page_lateness_seconds),
            settle=timedelta(seconds=self.page_settle_seconds),
        )


def unknown_settings(
    environ: Mapping[str, str], known_models: Iterable[type[BaseSettings]]
) -> list[str]:
    """`CLICKSTREAM_*` variables no settings model reads: typos, one line each with a hint.

    pydantic-settings ignores unknown variables, and KCL ignores unknown keys, so a typo would
    otherwise leave a default silently in force.
    """
    known: set[str] = set()
    for model in known_models:
        prefix = str(model.model_config.get("env_prefix", "")).upper()
        for name, info in model.model_fields.items():
            known.add(f"{prefix}{name}".upper())
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                known.update(str(choice).upper() for choice in alias.choices)
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if upper in RENAMED:
            problems.append(f"{variable} is gone: see {RENAMED[upper]}")
        elif upper.startswith(ENV_PREFIX) and upper not in known:
            hint = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
            problems.append(
                f"unknown setting {variable}" + (f" (did you mean {hint[0]}?)" if hint else "")
            )
    return problems


def load_settings(
    other_models: Iterable[type[BaseSettings]] = (), *, refuse_unknown: bool = True
) -> ConsumerSettings:
    """Parse the settings from the environment, refusing unknown `CLICKSTREAM_*` variables.

    `other_models` are the settings of the project's other commands that share the prefix
    (the producer's, the local stack's): the command line passes them, so a shell prepared
    for every command is not refused, while the worker itself knows none of them.
    `refuse_unknown=False` is for the record processors the daemon starts: the `consume`
    that started the daemon has checked the environment they inherit.
    """
    if refuse_unknown:
        problems = unknown_settings(
            os.environ, [ConsumerSettings, SuppressionSettings, *other_models]
        )
        if problems:
            raise ConfigurationError("; ".join(problems))
    return ConsumerSettings()
