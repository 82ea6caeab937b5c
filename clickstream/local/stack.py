"""`clickstream local up|down|status|env`: the whole local stack's life cycle.

up: start moto's server (DynamoDB, S3, CloudFormation, ...) and kinesis-mock (Kinesis, which
KCL reaches over HTTP/2 cleartext, which moto cannot serve) on loopback; deploy the
template through moto's CloudFormation; create the stream in kinesis-mock with the stack's
name and shard count; apply what the emulator skipped of the template; save the state.
Anything that fails on the way stops what was started: no orphan process.
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from clickstream.kernel import aws
from clickstream.kernel.errors import LocalStackError
from clickstream.kernel.logging import get_logger
from clickstream.local import emulator_gaps, processes
from clickstream.local.settings import LOOPBACK, LocalStackSettings
from clickstream.local.state import (
    DASHBOARD,
    EmulatorState,
    LocalStackState,
    load_state,
    running_state,
    state_path,
)
from clickstream.local.template import (
    StackContext,
    lint_errors,
    load_template,
)

# The state's model and readers live in clickstream.local.state, which a query can import
# without the emulator machinery; they stay importable from here.
__all__ = [
    "DASHBOARD",
    "HEALTH_PATHS",
    "REQUIRED_OUTPUTS",
    "EmulatorState",
    "LocalStackState",
    "down",
    "load_state",
    "running_state",
    "start_dashboard",
    "state_path",
    "status",
    "up",
]

log = get_logger(component="local-stack")

T = TypeVar("T")

HEALTH_PATHS = {"collector": "/ready", DASHBOARD: "/health"}
"""Our own HTTP processes beside the emulators, and the path that says each is up."""
REQUIRED_OUTPUTS = (
    "StreamName",
    "ShardCount",
    "SessionsTableName",
    "PageStatsTableName",
    "AlertsTableName",
    "ArchiveBucketName",
)
_FAILED_SUFFIXES = ("FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS")
_POLL_SECONDS = 0.2


def _wait_until(probe: Callable[[], T], what: str, timeout: float, alive: Callable[[], None]) -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        alive()
        try:
            return probe()
        except (BotoCoreError, ClientError, OSError) as exc:
            last_error = exc
        time.sleep(0.2)
    raise LocalStackError(f"{what} did not answer within {timeout:.0f}s: {last_error}")


def _require_free_ports(settings: LocalStackSettings, *, collector: bool) -> None:
    port_settings = {
        settings.moto_port: "CLICKSTREAM_LOCAL_MOTO_PORT",
        settings.kinesis_port: "CLICKSTREAM_LOCAL_KINESIS_PORT",
        settings.kinesis_tls_port: "CLICKSTREAM_LOCAL_KINESIS_TLS_PORT",
    }
    if len(port_settings) < 3 or (collector and settings.collector_port in port_settings):
        raise LocalStackError("the local stack's ports must differ")
    if collector:
        port_settings[settings.collector_port] = "CLICKSTREAM_LOCAL_COLLECTOR_PORT"
    for port, setting in port_settings.items():
        processes.require_free_port(port, setting)


@contextmanager
def _stopped_on_failure(started: list[EmulatorState]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for emulator in reversed(started):
            processes.stop(emulator.pid, emulator.marker)
        raise


def up(settings: LocalStackSettings, *, collector: bool = False) -> LocalStackState:
    existing = load_state(settings)
    if existing is not None:
        alive = [e for e in existing.emulators if processes.is_running(e.pid, e.marker)]
        if alive:
            pids = ", ".join(f"{e.name} pid {e.pid}" for e in alive)
            raise LocalStackError(
                f"the local stack is already running ({pids}); `clickstream local down` stops it"
            )
        state_path(settings).unlink()  # left by a stack that died: nothing to keep

    # The stack exists to run the KCL workers against it; say so now, not at the first worker.
    processes.require_command("java", "to run the KCL workers against the stack (Java 17+)")
    specs = [processes.kinesis_mock_spec(settings), processes.moto_spec(settings)]
    _require_free_ports(settings, collector=collector)
    template = load_template(settings.template)
    problems = lint_errors(settings.template, settings.region)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise LocalStackError(f"{settings.template} fails cfn-lint: {problems[0]}{more}")

    log_dir = settings.state_dir / "logs"
    started: list[EmulatorState] = []
    with _stopped_on_failure(started):
        popen = {}
        for spec in specs:
            proc = processes.start(spec, log_dir)
            popen[spec.name] = proc
            endpoint = settings.moto_endpoint if spec.name == "moto" else settings.kinesis_endpoint
            started.append(
                EmulatorState(
                    name=spec.name,
                    pid=proc.pid,
                    marker=spec.marker,
                    endpoint=endpoint,
                    log=str(log_dir / f"{spec.name}.log"),
                )
            )

        def all_alive() -> None:
            for emulator in started:
                code = popen[emulator.name].poll()
                if code is not None:
                    tail = processes.log_tail(Path(emulator.log))
                    raise LocalStackError(
                        f"{emulator.name} exited with code {code} at start: {tail}"
                    )

        kinesis_client = aws.local_client("kinesis", settings.kinesis_endpoint, settings.region)
        cfn = aws.local_client("cloudformation", settings.moto_endpoint, settings.region)
        timeout = settings.startup_timeout_seconds
        _wait_until(cfn.list_stacks, "moto's server", timeout, all_alive)
        _wait_until(kinesis_client.list_streams, "kinesis-mock", timeout, all_alive)

        outputs, context = _deploy(cfn, settings)
        stream_name = outputs["StreamName"]
        _create_stream(kinesis_client, stream_name, int(outputs["ShardCount"]), timeout)
        applied = emulator_gaps.apply_skipped_properties(
            template, context, settings, kinesis_client
        )
        applied += emulator_gaps.create_skipped_resources(template, context, settings)

        state = LocalStackState(
            started_at=datetime.now(UTC),
            region=settings.region,
            account_id=settings.account_id,
            stack_name=settings.stack_name,
            emulators=started,
            outputs=outputs,
            applied_locally=applied,
        )
        if collector:
            # First in the list, so `down` stops it (and it drains) before the emulators; in
            # `started` too, so a failure from here on stops it.
            front_door = _start_collector(settings, state.environment(), log_dir)
            started.insert(0, front_door)
            state.emulators.insert(0, front_door)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        state_path(settings).write_text(state.model_dump_json(indent=2))
    log.info("local_stack_up", stack=settings.stack_name, applied_locally=applied)
    return state


def _start_collector(
    settings: LocalStackSettings, environment: dict[str, str], log_dir: Path
) -> EmulatorState:
    spec = processes.collector_spec(settings, environment)
    proc = processes.start(spec, log_dir)
    collector = EmulatorState(
        name="collector",
        pid=proc.pid,
        marker=spec.marker,
        endpoint=f"http://{LOOPBACK}:{settings.collector_port}",
        log=str(log_dir / "collector.log"),
    )

    def alive() -> None:
        if proc.poll() is not None:
            tail = processes.log_tail(Path(collector.log))
            raise LocalStackError(f"the collector exited with code {proc.returncode}: {tail}")

    _wait_until(
        lambda: _answers_ok(collector.endpoint + HEALTH_PATHS["collector"]),
        "the collector",
        settings.startup_timeout_seconds,
        alive,
    )
    return collector


def _answers_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
        if response.status != 200:
            raise OSError(f"{url} answered {response.status}")


def start_dashboard(settings: LocalStackSettings) -> EmulatorState:
    """`clickstream dashboard` beside the running stack (the demo's last step), listed with
    the emulators so that `local down` stops it; the one already running, if any."""
    state = running_state(settings)
    for emulator in state.emulators:
        if emulator.name == DASHBOARD and processes.is_running(emulator.pid, emulator.marker):
            return emulator
    processes.require_free_port(settings.dashboard_port, "CLICKSTREAM_LOCAL_DASHBOARD_PORT")
    log_dir = settings.state_dir / "logs"
    spec = processes.dashboard_spec(settings, state.environment())
    proc = processes.start(spec, log_dir)
    dashboard = EmulatorState(
        name=DASHBOARD,
        pid=proc.pid,
        marker=spec.marker,
        endpoint=f"http://{LOOPBACK}:{settings.dashboard_port}",
        log=str(log_dir / f"{DASHBOARD}.log"),
    )

    def alive() -> None:
        if proc.poll() is not None:
            tail = processes.log_tail(Path(dashboard.log))
            raise LocalStackError(f"the dashboard exited with code {proc.returncode}: {tail}")

    try:
        _wait_until(
            lambda: _answers_ok(dashboard.endpoint + HEALTH_PATHS[DASHBOARD]),
            "the dashboard",
            settings.startup_timeout_seconds,
            alive,
        )
    except BaseException:
        processes.stop(dashboard.pid, dashboard.marker)
        raise
    state.emulators = [dashboard, *(e for e in state.emulators if e.name != DASHBOARD)]
    state_path(settings).write_text(state.model_dump_json(indent=2))
    return dashboard


def _deploy(cfn: Any, settings: LocalStackSettings) -> tuple[dict[str, str], StackContext]:
    """Create the stack through CloudFormation and return its outputs."""
    body = settings.template.read_text(encoding="utf-8")
    try:
        cfn.create_stack(
            StackName=settings.stack_name,
            TemplateBody=body,
            Parameters=[
                {"ParameterKey": "ShardCount", "ParameterValue": str(settings.shard_count)}
            ],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
    except ClientError as exc:
        raise LocalStackError(
            f"the emulator rejected {settings.template}: {exc.response['Error'].get('Message')}"
        ) from None
    except BotoCoreError as exc:  # moto answers some templates it cannot handle with a 500
        summary = str(exc).splitlines()[0]
        raise LocalStackError(f"the emulator failed on {settings.template}: {summary}") from None
    # boto3's waiter polls DescribeStacks until CREATE_COMPLETE, and fails at once on a
    # failed or rolled-back create; moto creates within a second, so it polls every 0.2 s.
    try:
        cfn.get_waiter("stack_create_complete").wait(
            StackName=settings.stack_name, WaiterConfig=_waiting(settings.startup_timeout_seconds)
        )
    except WaiterError as exc:
        last: Any = exc.last_response
        status = str((last.get("Stacks") or [{}])[0].get("StackStatus", "unknown"))
        if not status.endswith(_FAILED_SUFFIXES) and "Max attempts exceeded" in str(exc):
            raise LocalStackError(
                f"stack {settings.stack_name} still {status} at the deadline"
            ) from None
        raise LocalStackError(
            f"stack {settings.stack_name} failed ({status}): {_failure_reason(cfn, settings)}"
        ) from None
    stack = cfn.describe_stacks(StackName=settings.stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise LocalStackError(
            f"stack {settings.stack_name} lacks the outputs {', '.join(missing)} "
            f"that the local stack and the workers need"
        )
    resources = cfn.list_stack_resources(StackName=settings.stack_name)["StackResourceSummaries"]
    context = StackContext(
        stack_name=settings.stack_name,
        region=settings.region,
        account_id=settings.account_id,
        parameters={p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])},
        physical_ids={r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources},
        resource_types={r["LogicalResourceId"]: r["ResourceType"] for r in resources},
    )
    return outputs, context


def _failure_reason(cfn: Any, settings: LocalStackSettings) -> str:
    events = cfn.describe_stack_events(StackName=settings.stack_name)["StackEvents"]
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(reasons) or "no reason given"


def _create_stream(kinesis: Any, name: str, shard_count: int, timeout: float) -> None:
    """moto's CloudFormation made the stream in moto; the workers read kinesis-mock."""
    kinesis.create_stream(StreamName=name, ShardCount=shard_count)
    try:
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig=_waiting(timeout))
    except WaiterError:
        raise LocalStackError(f"stream {name} did not become ACTIVE in kinesis-mock") from None


def _waiting(timeout: float) -> dict[str, float]:
    """A boto3 waiter's config polling every `_POLL_SECONDS` until `timeout`."""
    return {"Delay": _POLL_SECONDS, "MaxAttempts": max(1, math.ceil(timeout / _POLL_SECONDS))}


def down(settings: LocalStackSettings) -> list[str]:
    """Stop every emulator the state names; returns the names of those that were running."""
    state = load_state(settings)
    if state is None:
        return []
    stopped = [e.name for e in state.emulators if processes.stop(e.pid, e.marker)]
    state_path(settings).unlink(missing_ok=True)
    log.info("local_stack_down", stopped=stopped)
    return stopped


def status(settings: LocalStackSettings) -> dict[str, Any]:
    """Whether each emulator runs and answers, and the stack's status and outputs."""
    state = load_state(settings)
    if state is None:
        return {"running": False, "state_dir": str(settings.state_dir)}
    emulators = []
    for emulator in state.emulators:
        alive = processes.is_running(emulator.pid, emulator.marker)
        emulators.append(
            {
                "name": emulator.name,
                "pid": emulator.pid,
                "endpoint": emulator.endpoint,
                "process": "running" if alive else "gone",
                "answers": alive and _answers(emulator, state.region),
            }
        )
    stack_status = "unknown"
    if any(e["name"] == "moto" and e["answers"] for e in emulators):
        cfn = aws.client(
            "cloudformation", endpoint_url=state.moto_endpoint, region=state.region, local=True
        )
        stack_status = cfn.describe_stacks(StackName=state.stack_name)["Stacks"][0]["StackStatus"]
    return {
        "running": all(e["answers"] for e in emulators),
        "state_dir": str(settings.state_dir),
        "started_at": state.started_at.isoformat(),
        "stack_name": state.stack_name,
        "stack_status": stack_status,
        "emulators": emulators,
        "outputs": state.outputs,
        "applied_locally": state.applied_locally,
    }


def _answers(emulator: EmulatorState, region: str) -> bool:
    if emulator.name in HEALTH_PATHS:
        try:
            _answers_ok(emulator.endpoint + HEALTH_PATHS[emulator.name])
        except OSError:
            return False
        return True
    service = "kinesis" if emulator.name == "kinesis-mock" else "cloudformation"
    probe = aws.client(
        service,
        endpoint_url=emulator.endpoint,
        region=region,
        local=True,
        max_attempts=1,
        timeout_seconds=3,
    )
    try:
        if service == "kinesis":
            probe.list_streams()
        else:
            probe.list_stacks()
    except (BotoCoreError, ClientError):
        return False
    return True
