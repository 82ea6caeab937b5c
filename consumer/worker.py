"""The record processor's process: `python -m consumer.worker`, started by the KCL daemon.

stdin/stdout carry the MultiLangDaemon protocol (JSON lines); logs go to stderr.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from amazon_kclpy import kcl

from clickstream.kernel import aws
from clickstream.kernel.errors import ClickstreamError
from clickstream.kernel.logging import configure_logging, get_logger
from clickstream.kernel.retry import Backoff
from clickstream.stores.alerts import AlertsTable
from clickstream.stores.suppression import open_list
from consumer.gc_policy import tune_for_processing
from consumer.metrics import Metrics
from consumer.processor import ClickstreamProcessor
from consumer.settings import ConsumerSettings, load_settings
from consumer.sinks import DynamoStateStore, KclLeaseTable, S3Archive, Tables

EXIT_BAD_SETTINGS = 2


def build_processor(settings: ConsumerSettings) -> ClickstreamProcessor:
    log = get_logger(component="sinks")
    backoff = Backoff(deadline_seconds=settings.retry_deadline_seconds)
    pool = ThreadPoolExecutor(max_workers=settings.write_threads, thread_name_prefix="sink")
    # boto3's own retries stay short; clickstream.kernel.retry does the long, logged backoff.
    connections = settings.write_threads
    # DynamoDB validates every request itself, and the sinks dead-letter what it refuses:
    # botocore's own check of each call against the model is CPU spent twice.
    dynamodb = aws.client(
        "dynamodb",
        region=settings.region,
        max_attempts=2,
        max_connections=connections,
        parameter_validation=False,
    )
    s3 = aws.client("s3", region=settings.region, max_attempts=2, max_connections=connections)
    store = DynamoStateStore(
        dynamodb,
        Tables(sessions=settings.sessions_table, page_stats=settings.page_stats_table),
        retention=timedelta(days=settings.retention_days),
        backoff=backoff,
        log=log,
        pool=pool,
    )
    archive = S3Archive(s3, settings.archive_bucket, backoff=backoff, log=log, pool=pool)
    lease = KclLeaseTable(
        aws.client("dynamodb", region=settings.region, endpoint_url=settings.dynamodb_endpoint),
        settings.kcl_application,
        settings.worker_id,
        backoff=backoff,
        log=log,
    )
    alerts = (
        AlertsTable(
            dynamodb,
            settings.alerts_table,
            raised_by=settings.worker_id,
            retention=timedelta(days=settings.retention_days),
            backoff=backoff,
            log=log,
        )
        if settings.alerts_table
        else None
    )
    clients = {"dynamodb": dynamodb, "s3": s3}
    suppression = open_list(clients.__getitem__, default_bucket=settings.archive_bucket)
    return ClickstreamProcessor(
        store,
        archive,
        lease=lease,
        alerts=alerts,
        bot_rules=settings.bot_rules(),
        metrics=Metrics(settings.metrics_namespace, dimensions={"Stream": settings.stream_name}),
        cadences=settings.cadences(),
        checkpoint_backoff=backoff,
        max_cached_sessions=settings.max_cached_sessions,
        max_cached_page_minutes=settings.max_cached_page_minutes,
        keep_query_params=settings.page_key_query_params,
        suppression=suppression.current if suppression else None,
    )


def main() -> int:
    configure_logging("INFO")
    try:
        # `clickstream consume` checked this environment for unknown variables already.
        settings = load_settings(refuse_unknown=False)
    except (ClickstreamError, ValueError) as error:
        get_logger(component="worker").error("bad settings", error=str(error))
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_level)
    processor = build_processor(settings)
    tune_for_processing()
    kcl.KCLProcess(processor).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
