"""Starting and stopping the emulator processes, and the state file that names them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clickstream.kernel.errors import LocalStackError
from clickstream.local.settings import LOOPBACK, LocalStackSettings

_LOOPBACK_PRELOAD = Path(__file__).with_name("loopback.cjs")


@dataclass(frozen=True)
class EmulatorSpec:
    """How to start one emulator, and a word of its command line to recognise it by later."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: tuple[int, ...]
    marker: str


def require_command(command: str, why: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise LocalStackError(f"`{command}` is not on PATH; it is needed {why}")
    return found


def require_free_port(port: int, setting: str) -> None:
    """Fail with the setting to change when something already listens on loopback:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise LocalStackError(
                f"port {port} on {LOOPBACK} is already in use; free it or set {setting}"
            ) from None


def moto_spec(settings: LocalStackSettings) -> EmulatorSpec:
    return EmulatorSpec(
        name="moto",
        # moto's own server, its DynamoDB Query narrowed to the items it can match.
        argv=[
            sys.executable,
            "-m",
            "clickstream.local.moto_server",
            "-H",
            LOOPBACK,
            "-p",
            str(settings.moto_port),
        ],
        env={"MOTO_ACCOUNT_ID": settings.account_id},
        ports=(settings.moto_port,),
        marker="clickstream.local.moto_server",
    )


def kinesis_mock_spec(settings: LocalStackSettings) -> EmulatorSpec:
    node = require_command("node", "to run kinesis-mock (install Node.js 18 or later)")
    package = settings.kinesis_mock_dir
    main = package / "main.js"
    if not main.is_file():
        raise LocalStackError(
            f"kinesis-mock is not installed at {package}; run scripts/bootstrap.sh"
        )
    return EmulatorSpec(
        name="kinesis-mock",
        argv=[node, "--require", str(_LOOPBACK_PRELOAD), str(main)],
        env={
            # It dies at start without its certificate, even when only HTTP is used.
            "KINESIS_MOCK_CERT_PATH": str(package / "server.json"),
            "KINESIS_MOCK_PLAIN_PORT": str(settings.kinesis_port),
            "KINESIS_MOCK_TLS_PORT": str(settings.kinesis_tls_port),
            # Same account as moto, so that stream ARNs agree between the two emulators.
            "AWS_ACCOUNT_ID": settings.account_id,
            "AWS_REGION": settings.region,
            "LOG_LEVEL": "WARN",
            "SHOULD_PERSIST_DATA": "false",
        },
        ports=(settings.kinesis_port, settings.kinesis_tls_port),
        marker=str(main),
    )


def collector_spec(settings: LocalStackSettings, environment: dict[str, str]) -> EmulatorSpec:
    """The collector beside the emulators: `python -m collector`, on loopback, sending to the
    stack's stream with the local write key, from any origin (pages on other local ports).
    It trusts loopback as its proxy, as a deployed one trusts its load balancer: the
    producer says each generated visitor's address in X-Forwarded-For, and the collector
    resolves its country (on one machine every client is loopback and has none)."""
    return EmulatorSpec(
        name="collector",
        argv=[sys.executable, "-m", "collector"],
        env={
            **environment,
            "CLICKSTREAM_COLLECTOR_HOST": LOOPBACK,
            "CLICKSTREAM_COLLECTOR_PORT": str(settings.collector_port),
            "CLICKSTREAM_COLLECTOR_WRITE_KEYS": settings.write_key,
            "CLICKSTREAM_COLLECTOR_ALLOWED_ORIGINS": "*",
            "CLICKSTREAM_COLLECTOR_LOG_LEVEL": "INFO",
            "CLICKSTREAM_COLLECTOR_TRUSTED_PROXIES": LOOPBACK,
        },
        ports=(settings.collector_port,),
        marker="collector",
    )


def dashboard_spec(settings: LocalStackSettings, environment: dict[str, str]) -> EmulatorSpec:
    """`clickstream dashboard` on loopback, reading the stack's tables and bucket."""
    return EmulatorSpec(
        name="dashboard",
        # INFO: each snapshot's time per source goes to the log, for a dashboard that lags.
        argv=[sys.executable, "-m", "clickstream.cli", "--log-level", "INFO", "dashboard"],
        env={
            **environment,
            "CLICKSTREAM_DASHBOARD_HOST": LOOPBACK,
            "CLICKSTREAM_DASHBOARD_PORT": str(settings.dashboard_port),
        },
        ports=(settings.dashboard_port,),
        marker="dashboard",
    )


def start(spec: EmulatorSpec, log_dir: Path) -> subprocess.Popen[bytes]:
    """Start an emulator in its own session, so it outlives the CLI and stops as a group."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    with log_path.open("wb") as log:
        return subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env},
            start_new_session=True,
        )


def is_running(pid: int, marker: str) -> bool:
    """True when `pid` is alive and still the process we started (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) has exited; only its parent has not reaped it yet.
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return marker.encode() in cmdline


def stop(pid: int, marker: str, grace_seconds: float = 10.0) -> bool:
    """Stop the process group led by `pid`: SIGTERM, then SIGKILL after the grace period.

    Returns whether there was anything to stop.
    """
    if not is_running(pid, marker):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not is_running(pid, marker):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return True


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
