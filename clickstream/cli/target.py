"""Which stack a command reads: one settings model for the stack's outputs, and the clients
to reach it, handed to the commands (nothing written to this process's environment).

A deployed stack is named by its outputs as `CLICKSTREAM_*` settings (the README's deploy
section sets them from the stack's outputs) and reached through boto3's own chain of
credentials, region and endpoints. Without them, the running local stack's state file gives
the outputs, the emulators' endpoints and their dummy credentials. Imported when a command
runs (`clickstream --help` stays quick).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickstream.kernel import aws
from clickstream.kernel.errors import ConfigurationError
from clickstream.local import state as local_state
from clickstream.local.settings import LocalStackSettings
from clickstream.local.state import LocalStackState

if TYPE_CHECKING:
    from insights.sql import ArchiveLocation

OUTPUT_SETTINGS = {
    "stream_name": ("CLICKSTREAM_STREAM_NAME", "StreamName"),
    "sessions_table": ("CLICKSTREAM_SESSIONS_TABLE", "SessionsTableName"),
    "page_stats_table": ("CLICKSTREAM_PAGE_STATS_TABLE", "PageStatsTableName"),
    "alerts_table": ("CLICKSTREAM_ALERTS_TABLE", "AlertsTableName"),
    "archive_bucket": ("CLICKSTREAM_ARCHIVE_BUCKET", "ArchiveBucketName"),
    "suppression_table": ("CLICKSTREAM_SUPPRESSION_TABLE", "SuppressionTableName"),
}
"""Each output's setting and the stack output it is set from."""


class StackOutputs(BaseSettings):
    """The stack's outputs a command reads, from `CLICKSTREAM_*` settings."""

    model_config = SettingsConfigDict(env_prefix="CLICKSTREAM_", extra="ignore")

    stream_name: str | None = Field(default=None, description="The stack's StreamName.")
    sessions_table: str | None = Field(default=None, description="SessionsTableName.")
    page_stats_table: str | None = Field(default=None, description="PageStatsTableName.")
    alerts_table: str | None = Field(default=None, description="AlertsTableName.")
    archive_bucket: str | None = Field(default=None, description="ArchiveBucketName.")
    suppression_table: str | None = Field(default=None, description="SuppressionTableName.")
    application_name: str | None = Field(
        default=None, description="The workers' KCL application (`<stream>-consumer` unset)."
    )

    @classmethod
    def of_local_stack(cls, state: LocalStackState) -> StackOutputs:
        """A local stack's outputs, whatever this process's settings say."""
        named: dict[str, Any] = {f: state.outputs[o] for f, (_, o) in OUTPUT_SETTINGS.items()}
        return cls.model_construct(**named, application_name=None)


@dataclass(frozen=True)
class StackTarget:
    """A stack's outputs and how to reach it: `local` is the running local stack, or None for
    a deployed one (boto3's chain)."""

    outputs: StackOutputs
    local: LocalStackState | None = None
    region: str | None = None
    """A deployed stack's region when a setting names it (else boto3's)."""

    def require(self, *fields: str) -> None:
        """A `ConfigurationError` naming the settings to set when any of `fields` is unset."""
        missing = [OUTPUT_SETTINGS[f][0] for f in fields if not getattr(self.outputs, f)]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} not set (the stack's outputs)")

    def client(self, service: str, *, region: str | None = None, **options: Any) -> Any:
        """A boto3 client of `service` for this stack (`region` for a deployed one, else its
        own or boto3's)."""
        if self.local is None:
            return aws.client(service, region=region or self.region, **options)
        endpoint = self.local.kinesis_endpoint if service == "kinesis" else self.local.moto_endpoint
        return aws.local_client(service, endpoint, self.local.region, **options)

    @property
    def lease_table(self) -> str:
        """KCL's lease table: the workers' application name."""
        self.require("stream_name")
        return self.outputs.application_name or f"{self.outputs.stream_name}-consumer"

    def archive_location(self) -> ArchiveLocation:
        """Where the archive is and the credentials DuckDB reads it with."""
        # Lazy for start-up time: `insights.sql` loads DuckDB, which `produce` never needs.
        from insights.sql import ArchiveLocation

        self.require("archive_bucket")
        bucket = str(self.outputs.archive_bucket)
        if self.local is not None:
            return ArchiveLocation(
                bucket=bucket,
                region=self.local.region,
                access_key_id=aws.LOCAL_CREDENTIALS["aws_access_key_id"],
                secret_access_key=aws.LOCAL_CREDENTIALS["aws_secret_access_key"],
                endpoint_url=self.local.moto_endpoint,
            )
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError("no AWS credentials found for the archive's bucket")
        frozen = credentials.get_frozen_credentials()
        if not frozen.access_key or not frozen.secret_key:
            raise ConfigurationError("the AWS credentials found have no key")
        return ArchiveLocation(
            bucket=bucket,
            region=session.region_name or "us-east-1",
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL"),
        )


def local_target(state: LocalStackState) -> StackTarget:
    return StackTarget(StackOutputs.of_local_stack(state), state)


def stack_target(named_by: str, what: str) -> StackTarget:
    """The stack whose `named_by` output is set as a `CLICKSTREAM_*` setting, else the
    running local stack; a `ConfigurationError` saying what to set when there is neither
    (`what`: what the command reads, for the message)."""
    outputs = StackOutputs()
    if getattr(outputs, named_by):
        return StackTarget(outputs)
    settings = LocalStackSettings()
    if local_state.load_state(settings) is None:
        setting, output = OUTPUT_SETTINGS[named_by]
        raise ConfigurationError(
            f"no {what} to read: set {setting} (the stack's {output} output) "
            "and the others the command needs, or start the local stack"
        )
    return local_target(local_state.running_state(settings))
