"""The project's exception hierarchy: one base, one subclass per package or edge."""

from __future__ import annotations


class ClickstreamError(Exception):
    """Base of every error this project raises on purpose; the CLI prints it as one line."""


class ConfigurationError(ClickstreamError):
    """A setting is missing, mis-typed or inconsistent."""


class LocalStackError(ClickstreamError):
    """The local emulator stack could not be started, deployed, queried or stopped."""


class ProducerError(ClickstreamError):
    """Events could not be generated, read or delivered to the stream."""


class ConsumerError(ClickstreamError):
    """The consumer (the KCL daemon or a record processor) cannot go on."""


class CollectorError(ClickstreamError):
    """The collector cannot start or cannot reach its stream."""


class InsightsError(ClickstreamError):
    """The read side cannot answer: a bad query, an unreachable archive or table."""
