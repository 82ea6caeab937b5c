"""The local stack's state file: what `local up` left for `down`, `status`, `env` and every
command that reads the stack. Apart from the stack's life cycle (`clickstream.local.stack`),
so that a query finds the stack without importing the emulator machinery."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from clickstream.kernel import aws
from clickstream.kernel.errors import LocalStackError
from clickstream.local import processes
from clickstream.local.settings import LocalStackSettings

_STATE_FILE = "state.json"
DASHBOARD = "dashboard"
"""The emulator list's name for the dashboard: optional, so a stack without it still runs."""


class EmulatorState(BaseModel):
    name: str
    pid: int
    marker: str
    endpoint: str
    log: str


class LocalStackState(BaseModel):
    """What `local up` leaves in the state directory for `down`, `status`, `env` and tools."""

    started_at: datetime
    region: str
    account_id: str
    stack_name: str
    emulators: list[EmulatorState]
    outputs: dict[str, str]
    applied_locally: list[str]

    def endpoint(self, name: str) -> str:
        return next(e.endpoint for e in self.emulators if e.name == name)

    @property
    def moto_endpoint(self) -> str:
        return self.endpoint("moto")

    @property
    def kinesis_endpoint(self) -> str:
        return self.endpoint("kinesis-mock")

    def environment(self) -> dict[str, str]:
        """Variables that point boto3, the AWS CLI, the KCL and this project at the stack."""
        return {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ENDPOINT_URL_KINESIS": self.kinesis_endpoint,
            "AWS_ACCESS_KEY_ID": aws.LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": aws.LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "CLICKSTREAM_STREAM_NAME": self.outputs["StreamName"],
            "CLICKSTREAM_SESSIONS_TABLE": self.outputs["SessionsTableName"],
            "CLICKSTREAM_PAGE_STATS_TABLE": self.outputs["PageStatsTableName"],
            "CLICKSTREAM_ALERTS_TABLE": self.outputs["AlertsTableName"],
            "CLICKSTREAM_ARCHIVE_BUCKET": self.outputs["ArchiveBucketName"],
            "CLICKSTREAM_SUPPRESSION_TABLE": self.outputs["SuppressionTableName"],
            "CLICKSTREAM_SUPPRESSION_BUCKET": self.outputs["ArchiveBucketName"],
        }


def state_path(settings: LocalStackSettings) -> Path:
    return settings.state_dir / _STATE_FILE


def load_state(settings: LocalStackSettings) -> LocalStackState | None:
    path = state_path(settings)
    if not path.is_file():
        return None
    return LocalStackState.model_validate_json(path.read_text())


def running_state(settings: LocalStackSettings) -> LocalStackState:
    """The state of a running stack, or a clear error saying how to start one."""
    state = load_state(settings)
    needed = [e for e in (state.emulators if state else []) if e.name != DASHBOARD]
    if state is None or not all(processes.is_running(e.pid, e.marker) for e in needed):
        raise LocalStackError(
            f"no local stack is running (state dir {settings.state_dir}); "
            "start one with `clickstream local up`"
        )
    return state
