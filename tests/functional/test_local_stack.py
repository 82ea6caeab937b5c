"""The local stack as a user meets it: what `up` builds, and its one-line errors."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from clickstream.kernel import aws
from clickstream.kernel.errors import LocalStackError
from clickstream.local import stack
from clickstream.local.processes import require_free_port
from clickstream.local.settings import LOOPBACK, LocalStackSettings
from clickstream.local.stack import LocalStackState
from tests.support.stack import isolated_settings


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_up_deploys_the_template_and_serves_it_on_loopback_only(
    local_stack: LocalStackState, stack_settings: LocalStackSettings
) -> None:
    # Every emulator port listens on 127.0.0.1 (0100007F) and nowhere else.
    for port in (
        stack_settings.moto_port,
        stack_settings.kinesis_port,
        stack_settings.kinesis_tls_port,
    ):
        assert listening_addresses(port) == {"0100007F"}, port

    region = local_stack.region
    cfn = aws.local_client("cloudformation", local_stack.moto_endpoint, region)
    assert cfn.describe_stacks(StackName="cstest")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    # The stream exists where Kinesis is served, with the stack's name and shard count.
    kinesis = aws.local_client("kinesis", local_stack.kinesis_endpoint, region)
    summary = kinesis.describe_stream_summary(StreamName=local_stack.outputs["StreamName"])
    assert (
        summary["StreamDescriptionSummary"]["OpenShardCount"]
        == int(local_stack.outputs["ShardCount"])
        == stack_settings.shard_count
    )
    assert summary["StreamDescriptionSummary"]["EncryptionType"] == "KMS"

    # TTL is on for every table although moto ignored it in the template, and it says so.
    dynamodb = aws.local_client("dynamodb", local_stack.moto_endpoint, region)
    for output in ("SessionsTableName", "PageStatsTableName", "AlertsTableName"):
        table = local_stack.outputs[output]
        ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        assert f"{table}: TTL on expires_at" in local_stack.applied_locally

    s3 = aws.local_client("s3", local_stack.moto_endpoint, region)
    bucket = local_stack.outputs["ArchiveBucketName"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    # moto enforces bucket policies over its plain-HTTP endpoint, so the template's TLS-only
    # statement is left out locally, and said so; writes over loopback HTTP work.
    assert (
        f"{bucket}: TLS-only policy statement left out (emulator is plain HTTP)"
        in local_stack.applied_locally
    )
    s3.put_object(Bucket=bucket, Key="probe/local-stack-test", Body=b"ok")
    s3.delete_object(Bucket=bucket, Key="probe/local-stack-test")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_id = {r["ID"]: r for r in rules}
    assert by_id["raw-archive-expires"]["Expiration"] == {"Days": 35}
    assert by_id["raw-archive-expires"]["Filter"] == {"Prefix": "raw/"}
    assert by_id["lake-to-colder-storage"]["Filter"] == {"Prefix": "events/"}
    assert "Expiration" not in by_id["lake-to-colder-storage"]


def test_env_points_clients_at_the_stack(local_stack: LocalStackState) -> None:
    environment = local_stack.environment()
    assert environment["AWS_ENDPOINT_URL"] == local_stack.moto_endpoint
    assert environment["AWS_ENDPOINT_URL_KINESIS"] == local_stack.kinesis_endpoint
    assert environment["CLICKSTREAM_STREAM_NAME"] == "cstest-events"
    assert all(
        value.startswith(("http://127.0.0.1:", "cstest", "test", "us-east-1"))
        for value in environment.values()
    )


def test_status_reports_both_emulators_answering(
    local_stack: LocalStackState, stack_settings: LocalStackSettings
) -> None:
    report = stack.status(stack_settings)
    assert report["running"] is True
    assert report["stack_status"] == "CREATE_COMPLETE"
    assert {e["name"] for e in report["emulators"] if e["answers"]} == {"moto", "kinesis-mock"}


def test_second_up_says_already_running(
    local_stack: LocalStackState, stack_settings: LocalStackSettings
) -> None:
    with pytest.raises(LocalStackError, match="already running"):
        stack.up(stack_settings)


def test_a_taken_port_is_a_one_line_error_naming_the_setting(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, settings.moto_port))
        squatter.listen()
        with pytest.raises(
            LocalStackError, match=r"in use; free it or set CLICKSTREAM_LOCAL_MOTO_PORT"
        ):
            stack.up(settings)
    assert stack.load_state(settings) is None


@pytest.mark.parametrize("missing", ["node", "java"])
def test_missing_node_or_java_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    # GIVEN a PATH holding every tool the stack needs but one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in {"node", "java"} - {missing}:
        found = shutil.which(tool)
        assert found, f"{tool} must be installed for this test"
        (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    # THEN up refuses with one line naming it, and starts nothing
    settings = isolated_settings(tmp_path / "state")
    with pytest.raises(LocalStackError, match=rf"^`{missing}` is not on PATH; it is needed"):
        stack.up(settings)
    assert not (tmp_path / "state" / "logs").exists()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Resources:\n  T:\n    Type: AWS::Nope::Thing\n", "fails cfn-lint: E3006"),
        ("Resources: {}\nOutputs:\n  X:\n    Value: '1'\n", "lacks the outputs StreamName"),
    ],
)
def test_a_template_the_stack_cannot_use_stops_everything_it_started(
    tmp_path: Path, template: str, message: str
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(template)
    settings = isolated_settings(tmp_path / "state", template=path)
    with pytest.raises(LocalStackError, match=message):
        stack.up(settings)
    # No orphan: every port is free again and no state claims a running stack.
    for port in (settings.moto_port, settings.kinesis_port, settings.kinesis_tls_port):
        require_free_port(port, "-")
    assert stack.load_state(settings) is None


def test_the_dashboard_runs_beside_the_stack_and_a_taken_port_only_warns(
    local_stack: LocalStackState, stack_settings: LocalStackSettings
) -> None:
    import json
    import urllib.request

    from clickstream.cli.demo_run import _start_dashboard
    from clickstream.local import processes
    from tests.support.stack import free_port

    saved = stack.state_path(stack_settings).read_text()
    settings = stack_settings.model_copy(update={"dashboard_port": free_port()})
    board = None
    try:
        # GIVEN the running stack WHEN the demo starts its dashboard
        url = _start_dashboard(settings)
        # THEN it answers on loopback with figures, listed first among the stack's processes
        assert url == f"http://{LOOPBACK}:{settings.dashboard_port}/"
        with urllib.request.urlopen(url + "api/snapshot", timeout=60) as answer:
            figures = json.load(answer)
        assert figures["errors"] == []
        assert len(figures["shards"]) == int(local_stack.outputs["ShardCount"])
        assert listening_addresses(settings.dashboard_port) == {"0100007F"}  # 127.0.0.1 only
        state = stack.running_state(settings)
        board = state.emulators[0]
        assert board.name == "dashboard"
        # AND asked again, the same process answers
        assert stack.start_dashboard(settings).pid == board.pid
        assert any(
            e["name"] == "dashboard" and e["answers"] for e in stack.status(settings)["emulators"]
        )
        # AND with its port taken, the demo goes on without one (a warning, not an error)
        with socket.socket() as taken:
            taken.bind((LOOPBACK, 0))
            taken.listen()
            busy = settings.model_copy(update={"dashboard_port": taken.getsockname()[1]})
            stack.state_path(settings).write_text(saved)  # as if none were running
            assert _start_dashboard(busy) is None
    finally:
        if board is not None:
            processes.stop(board.pid, board.marker)
        stack.state_path(stack_settings).write_text(saved)
