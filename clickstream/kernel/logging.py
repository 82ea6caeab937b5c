"""structlog set-up: JSON lines on stderr, never stdout.

stdout is the KCL MultiLangDaemon's protocol channel in the record processor and the
data channel of `--json` and `--dry-run` in the CLI, so no log line may ever go there:
not even one logged before `configure_logging` ran (structlog's own default prints to
stdout), which is why importing this module already points structlog at stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def _configure_structlog(numeric_level: int) -> None:
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


def configure_logging(level: str = "INFO") -> None:
    """Route structlog (and stdlib logging, e.g. botocore) to stderr as JSON lines."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=max(numeric_level, logging.WARNING), force=True)
    _configure_structlog(numeric_level)


def _stderr_by_default() -> None:
    """Whatever logs before `configure_logging` (library use, the bench, tests) writes JSON
    to stderr too. Runs when this module is imported, and again in every `get_logger`."""
    if not structlog.is_configured():
        _configure_structlog(logging.INFO)


_stderr_by_default()


def get_logger(**initial_values: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to the given context (shard id, worker id, ...)."""
    _stderr_by_default()
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**initial_values)
    return logger
