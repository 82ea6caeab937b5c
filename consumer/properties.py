"""KCL MultiLangDaemon properties rendered from the settings model. Pure.

KCL silently ignores keys it does not know (and mis-cased ones), so every key rendered here
is one of `MultiLangDaemonConfiguration`'s bean properties; a functional test checks this
list against the setters of the class in the installed jar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from consumer.settings import ConsumerSettings

EXECUTABLE_KEY: Final = "executableName"
CREDENTIALS_KEY: Final = "AWSCredentialsProvider"
SPECIAL_KEYS: Final = frozenset({EXECUTABLE_KEY, CREDENTIALS_KEY})
"""Keys KCL's configurator handles by name rather than as bean properties."""

LOCAL_TIMINGS: Final = {
    "CLICKSTREAM_IDLE_TIME_BETWEEN_READS_MS": "1000",
    "CLICKSTREAM_FAILOVER_TIME_MS": "5000",
    "CLICKSTREAM_SHARD_SYNC_INTERVAL_MS": "5000",
    "CLICKSTREAM_LEASE_ASSIGNMENT_INTERVAL_MS": "2000",
    "CLICKSTREAM_WORKER_METRICS_REPORTER_FREQ_MS": "2000",
    "CLICKSTREAM_PARENT_SHARD_POLL_INTERVAL_MS": "1000",
    "CLICKSTREAM_DISABLE_WORKER_METRICS": "true",
    "CLICKSTREAM_VARIANCE_BALANCING_FREQUENCY": "15",
    "CLICKSTREAM_METRICS_LEVEL": "NONE",
    "CLICKSTREAM_ITEM_FLUSH_SECONDS": "5",
    "CLICKSTREAM_COMMIT_SECONDS": "10",
}
"""What `consume --local` sets unless the environment already does: the emulators have no
CloudWatch, KCL's production lease timings leave a fresh local run idle for minutes, and
on one machine nothing is billed per write, so items and commits come sooner than AWS's
defaults (50 s, 60 s): the demo and the tests see their results within seconds, and the
tests cross more commit windows. Workers on one host share its CPU, so they balance leases
by throughput, every 30 s rather than every 6 s (docs/kcl.md). `clickstream bench freshness`
puts the defaults back."""


def render(settings: ConsumerSettings, executable: Path) -> dict[str, str]:
    """The properties file's keys and values, in a stable order."""
    properties: dict[str, str | int | bool | None] = {
        EXECUTABLE_KEY: str(executable),
        # The AWS SDK's default chain: environment, ECS task role, instance profile.
        CREDENTIALS_KEY: "DefaultCredentialsProvider",
        "streamName": settings.stream_name,
        "applicationName": settings.kcl_application,
        "workerId": settings.worker_id,
        "regionName": settings.region,
        "kinesisEndpoint": settings.kinesis_endpoint,
        "dynamoDBEndpoint": settings.dynamodb_endpoint,
        "initialPositionInStream": settings.initial_position,
        "retrievalMode": settings.retrieval_mode,
        "maxRecords": settings.max_records,
        "idleTimeBetweenReadsInMillis": settings.idle_time_between_reads_ms,
        # Age-based flushes need a call while the shard is quiet.
        "callProcessRecordsEvenForEmptyRecordList": "true",
        "failoverTimeMillis": settings.failover_time_ms,
        "shardSyncIntervalMillis": settings.shard_sync_interval_ms,
        "leaseAssignmentIntervalMillis": settings.lease_assignment_interval_ms,
        "workerMetricsReporterFreqInMillis": settings.worker_metrics_reporter_freq_ms,
        "disableWorkerMetrics": settings.disable_worker_metrics,
        "reBalanceThresholdPercentage": settings.rebalance_threshold_percent,
        "varianceBalancingFrequency": settings.variance_balancing_frequency,
        "parentShardPollIntervalMillis": settings.parent_shard_poll_interval_ms,
        "shutdownGraceMillis": settings.shutdown_grace_ms,
        "isGracefulLeaseHandoffEnabled": settings.graceful_handoff,
        "metricsLevel": settings.metrics_level,
    }
    return {key: _java_value(value) for key, value in properties.items() if value is not None}


def _java_value(value: str | int | bool) -> str:
    """As Java reads it: booleans lower-case (`str(True)` is "True")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_text(properties: dict[str, str]) -> str:
    """Java properties text; values are escaped the way java.util.Properties reads them."""
    lines = ["# Rendered by `clickstream consume` from CLICKSTREAM_* settings; do not edit."]
    for key, value in properties.items():
        escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"{key} = {escaped}")
    return "\n".join(lines) + "\n"


LOGBACK_XML: Final = """<configuration>
  <!-- KCL's own log: to stderr (stdout stays free), INFO, the AWS SDK and netty quieter. -->
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%d{ISO8601} %-5level [%thread] %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="software.amazon.awssdk" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <!-- Per-message protocol chatter; lifecycle lines (start, shutdown) stay at INFO. -->
  <logger name="software.amazon.kinesis.multilang.MessageWriter" level="WARN"/>
  <logger name="software.amazon.kinesis.multilang.LineReaderTask" level="WARN"/>
  <logger name="software.amazon.kinesis.multilang.MultiLangProtocol" level="WARN"/>
  <logger name="software.amazon.kinesis.coordinator.assignment" level="WARN"/>
  <logger name="software.amazon.kinesis.leases.DynamoDBLockBasedLeaderDecider" level="WARN"/>
  <logger name="software.amazon.kinesis.leases.dynamodb.DynamoDBLeaseDiscoverer" level="WARN"/>
  <!-- The processors' JSON log lines reach stderr as they are; this logger would repeat
       each one at ERROR level. -->
  <logger name="software.amazon.kinesis.multilang.DrainChildSTDERRTask" level="OFF"/>
  <root level="INFO"><appender-ref ref="STDERR"/></root>
</configuration>
"""
