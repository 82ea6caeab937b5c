"""`clickstream consume`: settings that take effect, refusals at start, signals, exit codes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from clickstream.local.stack import LocalStackState
from consumer import properties
from consumer.kcl_runtime import classpath
from consumer.settings import ConsumerSettings
from tests.support.stack import free_port

DAEMON_CONFIGURATION = "software.amazon.kinesis.multilang.config.MultiLangDaemonConfiguration"


def consume(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clickstream.cli", "consume", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def worker_env(state: LocalStackState, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    return {**env, **state.environment(), **extra}


def test_every_rendered_key_is_a_property_the_installed_kcl_sets() -> None:
    """KCL ignores unknown keys silently: each key must match a setter of its config class."""
    javap = shutil.which("javap")
    assert javap, "javap (JDK) is needed to read the KCL configuration class"
    listing = subprocess.run(
        [javap, "-cp", classpath(), DAEMON_CONFIGURATION],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    setters = {
        line.split("void set", 1)[1].split("(", 1)[0]
        for line in listing.splitlines()
        if " void set" in line
    }
    every_knob = ConsumerSettings(
        stream_name="s",
        sessions_table="t",
        page_stats_table="p",
        archive_bucket="b",
        region="us-east-1",
        kinesis_endpoint="http://127.0.0.1:1",
        dynamodb_endpoint="http://127.0.0.1:2",
        lease_assignment_interval_ms=2000,
        worker_metrics_reporter_freq_ms=2000,
        disable_worker_metrics=True,
        rebalance_threshold_percent=30,
        variance_balancing_frequency=15,
    )
    rendered = properties.render(every_knob, Path("/bin/true"))
    bean_keys = set(rendered) - properties.SPECIAL_KEYS
    assert len(bean_keys) >= 21
    unknown = {key for key in bean_keys if key[0].upper() + key[1:] not in setters}
    assert not unknown, f"KCL would silently ignore: {sorted(unknown)}"


def test_a_mistyped_setting_is_refused_before_anything_starts(local_stack: LocalStackState) -> None:
    env = worker_env(local_stack, CLICKSTREAM_COMMIT_SECOND="5")

    result = consume(env)

    assert result.returncode == 1
    assert "unknown setting CLICKSTREAM_COMMIT_SECOND" in result.stderr
    assert "did you mean CLICKSTREAM_COMMIT_SECONDS" in result.stderr
    assert "starting KCL" not in result.stderr


def test_a_daemon_that_cannot_reach_dynamodb_fails_the_worker(local_stack: LocalStackState) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = worker_env(
        local_stack,
        CLICKSTREAM_DYNAMODB_ENDPOINT=closed,
        CLICKSTREAM_STARTUP_CHECK_SECONDS="20",
    )

    result = consume(env)

    assert result.returncode != 0
    assert "cannot reach DynamoDB" in result.stderr


def fake_java(tmp_path: Path, body: str) -> Path:
    """A stand-in for `java` (a Python script) to observe what `consume` does to its child."""
    script = tmp_path / "java"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def test_a_daemon_that_exits_on_its_own_even_with_status_0_is_a_failure(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    java = fake_java(tmp_path, "import sys\nsys.exit(0)\n")
    env = worker_env(local_stack, CLICKSTREAM_JAVA=str(java))

    result = consume(env)

    assert result.returncode == 1
    assert "exited on its own" in result.stderr


def test_sigterm_reaches_the_java_process_and_a_clean_stop_exits_0(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    marker = tmp_path / "got-sigterm"
    started = tmp_path / "started"
    java = fake_java(
        tmp_path,
        f"""
        import os, signal, sys, time
        def stop(signum, frame):
            open({str(marker)!r}, "w").write(str(os.getpgrp() == os.getpid()))
            sys.exit(143)
        signal.signal(signal.SIGTERM, stop)
        open({str(started)!r}, "w").close()
        time.sleep(60)
        sys.exit(7)
        """,
    )
    env = worker_env(local_stack, CLICKSTREAM_JAVA=str(java), CLICKSTREAM_LOG_LEVEL="INFO")
    worker = subprocess.Popen(
        [sys.executable, "-m", "clickstream.cli", "consume"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:  # the fake daemon is up
        time.sleep(0.1)

    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 0, stderr
    # the daemon got SIGTERM, in a process group of its own (a Ctrl-C does not reach it)
    assert marker.read_text() == "True"
    assert "stopping: SIGTERM to the KCL daemon" in stderr


def test_the_health_file_is_fresh_while_the_daemon_runs_and_stale_after(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    # GIVEN a stand-in daemon that creates its lease table (as KCL does) and keeps running
    application = f"health-{uuid.uuid4().hex[:8]}"
    started = tmp_path / "started"
    java = fake_java(
        tmp_path,
        f"""
        import os, signal, sys, time
        import boto3
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        boto3.client("dynamodb").create_table(
            TableName=os.environ["CLICKSTREAM_APPLICATION_NAME"],
            AttributeDefinitions=[{{"AttributeName": "leaseKey", "AttributeType": "S"}}],
            KeySchema=[{{"AttributeName": "leaseKey", "KeyType": "HASH"}}],
            BillingMode="PAY_PER_REQUEST",
        )
        open({str(started)!r}, "w").close()
        time.sleep(120)
        """,
    )
    health_file = tmp_path / "health"
    env = worker_env(
        local_stack,
        CLICKSTREAM_JAVA=str(java),
        CLICKSTREAM_APPLICATION_NAME=application,
        CLICKSTREAM_HEALTH_FILE=str(health_file),
    )

    def health(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "health", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # WHEN no worker has run yet, THEN the check fails and says why
    missing = health()
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    worker = subprocess.Popen(
        [sys.executable, "-m", "clickstream.cli", "consume"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not health_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        # WHEN the worker runs its daemon, THEN the check passes
        running = health()
        assert running.returncode == 0, running.stderr + (
            worker.stderr.read() if worker.poll() and worker.stderr else ""
        )
        assert "healthy" in running.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    # WHEN the worker is gone, THEN the file goes stale and the check fails
    time.sleep(2.5)
    stale = health("--max-age", "2")
    assert stale.returncode == 1
    assert "last touched" in stale.stderr


def test_a_jars_directory_without_the_daemon_is_a_one_line_error(
    local_stack: LocalStackState, tmp_path: Path
) -> None:
    (tmp_path / "jars").mkdir()
    env = worker_env(local_stack, CLICKSTREAM_KCL_JARS_DIR=str(tmp_path / "jars"))

    result = consume(env)

    assert result.returncode == 1
    assert f"jars are not in {tmp_path / 'jars'}" in result.stderr
    assert "Traceback" not in result.stderr
