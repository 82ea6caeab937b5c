"""The dashboard's settings: `CLICKSTREAM_DASHBOARD_*` (what it reads comes from the stack's
outputs, as for `clickstream query`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickstream.kernel.memory import memory_limit_bytes

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_DASHBOARD_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        description="Address to listen on; anything but loopback requires a token.",
    )
    port: int = Field(default=8050, ge=1, le=65535)
    token: SecretStr | None = Field(
        default=None,
        description="Required of every request when set (`?token=` once, then a cookie); "
        "generated when the host is not loopback and none is given.",
    )
    refresh_seconds: float = Field(
        default=5.0, ge=1, description="How often the page asks for new figures."
    )
    stale_after_seconds: float = Field(
        default=30.0,
        ge=5,
        description="The page calls its figures stale when they are this old (or when no "
        "answer came for three refresh intervals).",
    )
    window_minutes: int = Field(
        default=60, ge=5, le=24 * 60, description="The chart's span, and the alerts'."
    )
    active_minutes: int = Field(
        default=30, ge=1, description="A session is active when its last event is this recent."
    )
    recent_minutes: int = Field(default=5, ge=1, description="Top pages' 'now' column.")
    heatmap_refresh_seconds: float = Field(
        default=60.0,
        ge=5,
        description="How long a heatmap and the rage-click count are reused: both read the "
        "window's archive objects again through DuckDB.",
    )

    report_days_kept: int = Field(
        default=30,
        ge=0,
        le=366,
        description="The site owner's view keeps a reading of this many days and as many "
        "before open (its longest standard range, compared), so that such a view answers at "
        "once. It costs memory: about 1 GB for a month of a million events a day (1.8 "
        "million visits, 7.6 million visit-page rows; docs/reports.md). 0: every report "
        "opens its own reading.",
    )
    report_refresh_seconds: float = Field(
        default=120.0,
        ge=10,
        description="How often the kept reading is opened again when nobody asks (a report "
        "asks for a new one once it is 30 s old).",
    )

    site_time_zone: str = Field(
        default="UTC",
        validation_alias="CLICKSTREAM_SITE_TIME_ZONE",
        description="The site's zone: the site owner's view counts days in it unless its "
        "address says `tz=` (`clickstream report --tz` defaults to it too).",
    )

    @field_validator("site_time_zone")
    @classmethod
    def _a_zone(cls, zone: str) -> str:
        from insights.report import zone_of

        zone_of(zone)  # an unknown zone stops the dashboard at start, saying which
        return zone

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("a dashboard token needs 16 characters or more")
        return token


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LakeSettings(BaseSettings):
    """`clickstream compact`'s settings: `CLICKSTREAM_LAKE_*` (docs/lake.md)."""

    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_LAKE_", extra="ignore")

    settle_minutes: float = Field(
        default=15.0,
        ge=0,
        description="An hour is closed this long after its end: the workers' commit window "
        "(60 s) and the page watch's lateness (60 s) with room for a worker restarting.",
    )
    grace_minutes: float = Field(
        default=60.0,
        ge=1,
        description="Files no manifest names are deleted once this old (a replaced "
        "generation: queries that began before keep reading it); a compaction of an hour "
        "taking over half of it does not publish.",
    )
    memory_limit: str | None = Field(
        default=None,
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|KiB|MiB|GiB)$",
        description="DuckDB's memory limit: the sort spills to temp_directory beyond it. "
        "Default: half the container's memory limit (the machine's without one).",
    )
    threads: int = Field(default=1, ge=1, le=64, description="DuckDB's threads.")
    temp_directory: Path | None = Field(
        default=None, description="Where the sort spills (the system's temp directory)."
    )
    max_file_megabytes: int = Field(
        default=512,
        ge=1,
        description="An hour's Parquet is one file unless larger than this, then several.",
    )
    row_group_rows: int = Field(default=122_880, ge=2_048, description="Rows per row group.")
    compression: Literal["zstd", "snappy", "gzip"] = "zstd"

    def resolved_memory_limit(self) -> str:
        """The limit given, else half of what this process may use (at least 256 MB): the
        rest is Python's, the S3 client's and DuckDB's own (~200 MB measured)."""
        if self.memory_limit:
            return self.memory_limit
        return f"{max(256, memory_limit_bytes() // 2 // (1024 * 1024))}MiB"
