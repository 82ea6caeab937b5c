"""End to end, as a user runs it: `local up`, `produce`, read the stream back, `local down`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from clickstream.kernel import aws
from clickstream.local import processes
from clickstream.local.processes import require_free_port
from clickstream.tools.streamread import read_stream
from tests.support.stack import free_port

pytestmark = pytest.mark.e2e

EVENTS = 20_000
SHARDS = 4
START = "2026-11-23T10:00:00Z"


def clickstream(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "clickstream.cli", *args],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )


def test_stack_up_produce_read_back_exactly_and_down(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLICKSTREAM_LOCAL_STATE_DIR": str(tmp_path / "state"),
        "CLICKSTREAM_LOCAL_MOTO_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_KINESIS_TLS_PORT": str(free_port()),
        "CLICKSTREAM_LOCAL_STACK_NAME": "e2e",
    }
    for name in ("CLICKSTREAM_STREAM_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"):
        env.pop(name, None)

    # GIVEN the local stack, brought up from the template by the CLI
    up = clickstream("local", "up", "--json", "--shards", str(SHARDS), env=env)
    assert up.returncode == 0, up.stderr.decode()
    described = json.loads(up.stdout)
    pids = json.loads((tmp_path / "state" / "state.json").read_text())["emulators"]
    try:
        # WHEN 20,000 seeded events are produced into it (and the same run is dry-run)
        manifest_path = tmp_path / "manifest.json"
        common = [
            "produce",
            "--events",
            str(EVENTS),
            "--seed",
            "7",
            "--start",
            START,
            "--bots",
            "2",
            "--spike",
            "/pricing@2",
        ]
        sent = clickstream(
            *common,
            "--shards-hint",
            str(SHARDS),
            "--manifest",
            str(manifest_path),
            "--json",
            env=env,
        )
        assert sent.returncode == 0, sent.stderr.decode()
        expected = clickstream(*common, "--dry-run", env=env)
        assert expected.returncode == 0, expected.stderr.decode()

        # THEN plain GetRecords finds exactly the produced events: count, ids, keys, shards
        kinesis = aws.local_client("kinesis", described["endpoints"]["kinesis-mock"], "us-east-1")
        records = read_stream(kinesis, described["outputs"]["StreamName"])
        produced = [json.loads(line) for line in expected.stdout.splitlines()]
        assert len(records) == len(produced) == EVENTS
        # (the differences, not a diff of 20,000 lines: difflib takes longer than the timeout)
        in_stream, dry_run = Counter(r.data for r in records), Counter(expected.stdout.splitlines())
        assert not (in_stream - dry_run), list((in_stream - dry_run).items())[:3]
        assert not (dry_run - in_stream), list((dry_run - in_stream).items())[:3]
        stored = [json.loads(r.data) for r in records]
        assert len({e["event_id"] for e in stored}) == EVENTS
        assert all(r.partition_key == json.loads(r.data)["session_id"] for r in records)

        # AND the manifest agrees with what the stream holds
        manifest = json.loads(manifest_path.read_text())
        assert manifest["sent"] == manifest["events"] == EVENTS
        per_session = Counter(e["session_id"] for e in stored)
        assert {s: t["events"] for s, t in manifest["sessions"].items()} == dict(per_session)
        assert manifest["records_per_shard"] == dict(Counter(r.shard_id for r in records))
        assert {a["kind"] for a in manifest["anomalies"]} == {"bot_session", "traffic_spike"}
        assert json.loads(sent.stdout)["sent"] == EVENTS
    finally:
        # AND `local down` leaves no emulator process behind
        down = clickstream("local", "down", env=env)
    assert down.returncode == 0, down.stderr.decode()
    assert [e["name"] for e in pids if processes.is_running(e["pid"], e["marker"])] == []
    for variable in ("CLICKSTREAM_LOCAL_MOTO_PORT", "CLICKSTREAM_LOCAL_KINESIS_PORT"):
        require_free_port(int(env[variable]), variable)
