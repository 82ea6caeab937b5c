"""Collector settings (`CLICKSTREAM_COLLECTOR_*` environment variables), parsed once at start."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from clickstream.kernel.memory import memory_limit_bytes

KIB = 1024
MIB = 1024 * KIB


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class CollectorSettings(BaseSettings):
    """Every field is `CLICKSTREAM_COLLECTOR_<NAME>`; the stream name may also come from
    `CLICKSTREAM_STREAM_NAME`, which the workers and the local stack's environment use."""

    model_config = SettingsConfigDict(
        env_prefix="CLICKSTREAM_COLLECTOR_", extra="ignore", populate_by_name=True
    )

    stream_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "CLICKSTREAM_COLLECTOR_STREAM_NAME", "CLICKSTREAM_STREAM_NAME"
        ),
        description="The Kinesis stream events go to.",
    )
    region: str | None = Field(default=None, description="AWS region; boto3's default if unset.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=1, le=65535)
    write_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description=(
            "Accepted write keys, comma-separated (several at once for rotation). In AWS the "
            "task definition injects this variable from Secrets Manager or SSM."
        ),
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        description=(
            "Origins whose pages may send (CORS), comma-separated; unset or empty: any origin "
            "(a write key in a page is public, so CORS protects no data; listing the site's "
            "origins keeps other sites' pages from sending with it)."
        ),
    )
    client_ip: str = Field(
        default="drop",
        description=(
            "Only `drop`: the client's address is written nowhere; its country is "
            "(docs/enrichment.md). `truncate` (a /24 or /48 kept as `client_ip`) was removed."
        ),
    )
    trusted_proxies: str | None = Field(
        default=None,
        description=(
            "Addresses and networks (CIDR) of the proxies whose X-Forwarded-For is believed, "
            "comma-separated: behind an ALB, its subnets. The client is the rightmost address "
            "not among them. Unset: the connection's address is the client's. `*` is refused: "
            "it believes the leftmost entry, which the client writes."
        ),
    )
    linger_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="How long a PutRecords batch waits for more requests' events.",
    )
    max_batch_records: int = Field(default=500, ge=1, le=500)
    max_batch_bytes: int = Field(default=5 * MIB, ge=64 * KIB, le=5 * MIB)
    max_concurrent_puts: int = Field(default=8, ge=1, le=64)
    in_flight_events: int = Field(
        default=20_000,
        ge=1,
        description=(
            "Events accepted but not yet in the stream, across requests; past it new requests "
            "get 503 with Retry-After instead of waiting."
        ),
    )
    in_flight_bytes: int | None = Field(
        default=None,
        ge=1 * MIB,
        description=(
            "Bytes held for requests across the server: bodies being read and parsed, and "
            "events accepted but not yet in the stream; past it new requests get 503 with "
            "Retry-After. Unset: a quarter of the memory limit (the container's cgroup limit, "
            "else the machine's memory), at most 1 GiB."
        ),
    )
    max_connections: int = Field(
        default=1_000,
        ge=1,
        description="Open connections and requests at once; past it a request gets 503.",
    )
    head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How long a connection may take to send a request's line and headers (from its "
            "opening, or from the previous answer plus the keep-alive time) before it is closed."
        ),
    )
    body_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="How long a request may take to send its body before a 408.",
    )
    max_head_bytes: int = Field(
        default=64 * KIB,
        ge=4 * KIB,
        le=1 * MIB,
        description=(
            "Request line and headers together (an ALB's own limit); past it a 431 and the "
            "connection closed."
        ),
    )
    delivery_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a request waits for its events to reach the stream before 503.",
    )
    retry_after_seconds: int = Field(default=2, ge=1, le=600)
    max_event_bytes: int = Field(default=32 * KIB, ge=1 * KIB, le=1 * MIB)
    max_request_bytes: int = Field(default=500 * KIB, ge=1 * KIB, le=5 * MIB)
    shutdown_grace_seconds: float = Field(
        default=30.0, gt=0, description="On SIGTERM, how long requests in flight may finish."
    )
    metrics_namespace: str = "Clickstream"
    metrics_interval_seconds: float = Field(default=10.0, gt=0)
    log_level: str = "WARNING"

    @field_validator("write_keys", "allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("allowed_origins")
    @classmethod
    def _any_when_empty(cls, origins: list[str]) -> list[str]:
        return origins or ["*"]

    @field_validator("client_ip")
    @classmethod
    def _address_never_kept(cls, value: str) -> str:
        if value != "drop":
            raise ValueError(
                "CLIENT_IP=truncate was removed: the collector keeps the visitor's country "
                "and no address, not even a network (docs/enrichment.md); unset it"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _no_wildcard(cls, proxies: str | None) -> str | None:
        if proxies is not None and "*" in proxies:
            raise ValueError(
                "`*` trusts the leftmost X-Forwarded-For entry, which any client writes: list "
                "the load balancer's subnets (CIDR) instead"
            )
        return proxies or None

    def resolved_in_flight_bytes(self) -> int:
        """`in_flight_bytes`, or a quarter of the memory this process may use (1 GiB at most)."""
        if self.in_flight_bytes is not None:
            return self.in_flight_bytes
        return max(16 * MIB, min(1024 * MIB, memory_limit_bytes() // 4))

    @field_validator("write_keys")
    @classmethod
    def _keys_not_trivial(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            if len(key.get_secret_value()) < 8:
                raise ValueError("a write key must have at least 8 characters")
        return keys
