"""CloudWatch metrics in the embedded metric format (EMF), written to stderr.

aws-embedded-metrics builds and serialises the documents; its own sinks write to stdout or to
a CloudWatch agent, and stdout is the KCL protocol channel in a record processor (and the
data channel of the CLI), so the documents go to stderr instead, one JSON line each. On ECS
the awslogs driver ships stderr to CloudWatch Logs, which extracts the metrics from any line
that carries the `_aws` envelope. The workers and the collector both write through this.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, TextIO

from aws_embedded_metrics.logger.metrics_context import MetricsContext
from aws_embedded_metrics.serializers.log_serializer import LogSerializer

DEFAULT_NAMESPACE: Final = "Clickstream"


class EmfWriter:
    """Emits one EMF document per call; thread-safe."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        stream: TextIO | None = None,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self._stream = stream
        self._dimensions = dict(dimensions or {})
        self._lock = threading.Lock()

    def emit(
        self,
        values: Mapping[str, tuple[float | Sequence[float], str]],
        *,
        dimensions: Mapping[str, str] | None = None,
        properties: Mapping[str, object] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Write `values` (name -> (value or values, unit)) under this namespace and these
        dimensions. Several values of one metric (say, each call's latency) share a document,
        and CloudWatch computes percentiles over them."""
        context = MetricsContext.empty()
        context.namespace = self.namespace
        context.set_dimensions([{**self._dimensions, **(dimensions or {})}])
        for name, (value, unit) in values.items():
            for one in value if isinstance(value, Sequence) else (value,):
                context.put_metric(name, one, unit)
        for key, extra in (properties or {}).items():
            context.set_property(key, extra)
        context.set_timestamp(at or datetime.now(UTC))
        stream = self._stream or sys.stderr
        with self._lock:
            for document in LogSerializer.serialize(context):
                stream.write(document + "\n")
            stream.flush()
