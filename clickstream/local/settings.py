"""Settings of the local stack (`CLICKSTREAM_LOCAL_*` environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickstream.kernel.paths import DEFAULT_TEMPLATE, TOOLS_DIR

LOOPBACK = "127.0.0.1"


class LocalStackSettings(BaseSettings):
    """Ports, names and paths of the local stack. Every field is `CLICKSTREAM_LOCAL_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_LOCAL_", extra="forbid")

    state_dir: Path = Field(
        default=Path(".clickstream/local"),
        description="Where pids, logs and the stack's outputs are kept while it runs.",
    )
    moto_port: int = Field(default=4566, ge=1, le=65535, description="moto's server.")
    kinesis_port: int = Field(default=4568, ge=1, le=65535, description="kinesis-mock, HTTP.")
    kinesis_tls_port: int = Field(
        default=4567, ge=1, le=65535, description="kinesis-mock, HTTPS (it always opens one)."
    )
    stack_name: str = Field(default="clickstream", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,40}$")
    shard_count: int = Field(default=4, ge=1, le=50)
    region: str = "us-east-1"
    account_id: str = Field(default="123456789012", pattern=r"^\d{12}$")
    template: Path = DEFAULT_TEMPLATE
    kinesis_mock_dir: Path = Field(
        default=TOOLS_DIR / "emulator" / "node_modules" / "kinesis-local",
        description="The installed npm package kinesis-local (scripts/bootstrap.sh puts it here).",
    )
    startup_timeout_seconds: float = Field(default=60.0, gt=0)
    collector_port: int = Field(
        default=8080, ge=1, le=65535, description="The collector, with `local up --collector`."
    )
    dashboard_port: int = Field(
        default=8050, ge=1, le=65535, description="The dashboard `clickstream demo` leaves."
    )
    write_key: str = Field(
        default="local-write-key",
        min_length=8,
        description="The local collector's write key (a local stack has no secrets).",
    )

    @property
    def moto_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.moto_port}"

    @property
    def kinesis_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.kinesis_port}"
