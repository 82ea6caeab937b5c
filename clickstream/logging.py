"""structlog set-up: JSON lines on stderr, never stdout.

stdout is the KCL MultiLangDaemon's protocol channel in the record processor and the
data channel of `--json` and `--dry-run` in the CLI, so no log line may ever go there.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(level: str = "INFO") -> None:
    """Route structlog (and stdlib logging, e.g. botocore) to stderr as JSON lines."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=max(numeric_level, logging.WARNING), force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial_values: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to the given context (shard id, worker id, ...)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**initial_values)
    return logger
