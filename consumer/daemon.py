"""`clickstream consume`: run the KCL MultiLangDaemon (Java) with our record processor.

The daemon is started in a session of its own, so a terminal's Ctrl-C or a process-group
signal reaches only this process; we forward SIGTERM to the Java pid alone. KCL then asks
every shard's processor to shut down (`shutdownRequested`), each flushes and checkpoints,
and the JVM exits. Sending the signal to the whole group instead would kill the Python
children before they flush (see docs/kcl.md).

KCL exits 0 even when it gave up initialising, so any exit we did not ask for is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from clickstream.kernel import aws
from clickstream.kernel.errors import ConfigurationError, ConsumerError
from clickstream.kernel.logging import get_logger
from consumer import kcl_runtime, properties
from consumer.page_watch import start_page_watch
from consumer.settings import ConsumerSettings

JAVA_SIGTERM_EXIT: Final = 128 + signal.SIGTERM
"""A JVM that ran its shutdown hooks after SIGTERM exits with 143."""


@dataclass(frozen=True)
class DaemonFiles:
    directory: Path
    properties_file: Path
    executable: Path
    logback: Path


def write_runtime_files(settings: ConsumerSettings, python: str = sys.executable) -> DaemonFiles:
    """The properties file, logback.xml and the record processor's launcher, in a fresh dir."""
    directory = Path(tempfile.mkdtemp(prefix="clickstream-kcl-"))
    executable = directory / "record-processor"
    # A launcher script, because KCL splits executableName on spaces.
    executable.write_text(f'#!/bin/sh\nexec "{python}" -m consumer.worker "$@"\n')
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP)
    properties_file = directory / "clickstream.properties"
    properties_file.write_text(properties.to_text(properties.render(settings, executable)))
    logback = directory / "logback.xml"
    logback.write_text(properties.LOGBACK_XML)
    return DaemonFiles(directory, properties_file, executable, logback)


HEALTH_TOUCH_SECONDS: Final = 10.0
"""How often a running worker touches its health file; `clickstream health` allows 6x that."""


class DaemonRunner:
    """Starts the daemon, forwards stop signals to it, and judges how it ended."""

    def __init__(self, settings: ConsumerSettings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        # The record processors read the same settings from the environment they inherit;
        # defaults computed here (worker id, application name) must reach them as they are.
        self.env["CLICKSTREAM_WORKER_ID"] = settings.worker_id
        self.env["CLICKSTREAM_APPLICATION_NAME"] = settings.kcl_application
        self.log = get_logger(component="consume", worker_id=settings.worker_id)
        self._stop_requested = threading.Event()
        self._companions_stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        process = self._process
        if process is None:
            return
        if self._stop_requested.is_set():
            self.log.warning("second stop signal: killing the daemon", signal=signum)
            process.kill()
            return
        self._stop_requested.set()
        self.log.info("stopping: SIGTERM to the KCL daemon", signal=signum, java_pid=process.pid)
        process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        java = shutil.which(self.settings.java)
        if java is None:
            raise ConfigurationError(
                f"`{self.settings.java}` was not found; KCL needs Java 17 or later "
                "(set CLICKSTREAM_JAVA)"
            )
        files = write_runtime_files(self.settings)
        command = kcl_runtime.daemon_command(
            java,
            files.properties_file,
            jars_dir=self.settings.kcl_jars_dir,
            log_configuration=files.logback,
        )
        self.log.info(
            "starting KCL MultiLangDaemon",
            stream=self.settings.stream_name,
            application=self.settings.kcl_application,
            properties=str(files.properties_file),
        )
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._process = subprocess.Popen(
                command, env=self.env, start_new_session=True, stdout=sys.stderr.fileno()
            )
            failure = self._watch_startup(self._process)
            if failure is not None:
                self._process.terminate()
                self._process.wait(timeout=60)
                raise ConsumerError(failure)
            start_page_watch(self.settings, self._companions_stop)
            code = self._wait_while_healthy(self._process)
        finally:
            self._companions_stop.set()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            shutil.rmtree(files.directory, ignore_errors=True)
        return self._judge(code)

    def _wait_while_healthy(self, process: subprocess.Popen[bytes]) -> int:
        """Wait for the daemon, touching the health file while it runs (if one is set)."""
        health = self.settings.health_file
        while True:
            if health is not None:
                with contextlib.suppress(OSError):
                    health.touch()
            try:
                return process.wait(timeout=HEALTH_TOUCH_SECONDS)
            except subprocess.TimeoutExpired:
                continue

    def _judge(self, code: int) -> int:
        if self._stop_requested.is_set():
            if code in (0, JAVA_SIGTERM_EXIT):
                self.log.info("KCL daemon stopped", exit_code=code)
                return 0
            self.log.error("KCL daemon failed while stopping", exit_code=code)
            return code if code > 0 else 1
        # Nobody asked it to stop: whatever the code, the worker is no longer working.
        self.log.error("KCL daemon exited on its own", exit_code=code)
        return code if code > 0 else 1

    def _watch_startup(self, process: subprocess.Popen[bytes]) -> str | None:
        """Wait until KCL's lease table exists: proof that the settings reached DynamoDB.

        Returns why start failed, or None once the table is there (or a stop was asked for).
        """
        deadline = time.monotonic() + self.settings.startup_check_seconds
        dynamodb = _dynamodb_client(self.settings)
        table = self.settings.kcl_application
        while time.monotonic() < deadline:
            if process.poll() is not None or self._stop_requested.is_set():
                return None  # judged by the exit code
            try:
                status = dynamodb.describe_table(TableName=table)["Table"]["TableStatus"]
                if status == "ACTIVE":
                    self.log.info("KCL lease table is active", table=table)
                    return None
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    return f"cannot check KCL's lease table {table}: {exc}"
            except BotoCoreError as exc:
                return f"cannot reach DynamoDB to check KCL's lease table {table}: {exc}"
            time.sleep(1.0)
        return (
            f"KCL did not create its lease table {table} within "
            f"{self.settings.startup_check_seconds:.0f} s; check the stream name, region, "
            "endpoints and credentials (CLICKSTREAM_* settings)"
        )


def _dynamodb_client(settings: ConsumerSettings) -> Any:
    return aws.client("dynamodb", region=settings.region, endpoint_url=settings.dynamodb_endpoint)
