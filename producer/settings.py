"""Producer settings (`CLICKSTREAM_*` environment variables), parsed once at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProducerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_", extra="ignore")

    stream_name: str | None = Field(
        default=None, description="Kinesis stream to write to; the local stack's when unset."
    )
    region: str | None = Field(default=None, description="AWS region; boto3's default if unset.")
    max_attempts: int = Field(default=8, ge=1, le=50, description="PutRecords tries per batch.")
    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How long a PutRecords call may take. A call that times out is sent again and, if "
            "Kinesis had taken it, its records are in the stream twice: keep this generous."
        ),
    )
    write_key: str | None = Field(
        default=None,
        description="The collector's write key for `produce --collector` (the local one if unset).",
    )
    log_level: str = "WARNING"
