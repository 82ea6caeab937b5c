"""Reading events to replay: JSON lines from a file or stdin."""

from __future__ import annotations

from collections.abc import Iterable

from clickstream.kernel.errors import ProducerError
from clickstream.kernel.events import InvalidEvent, decode_event
from producer.generator import Record
from producer.malformed import MalformedRecord


def read_json_lines(lines: Iterable[bytes], *, allow_invalid: bool = False) -> list[Record]:
    """Parse one event per non-blank line, with the contract's checks.

    An invalid line stops the replay with its line number, unless `allow_invalid`, when it
    is sent as it is (to exercise the consumer's dead letters) and counted as malformed.
    Timestamps are held only to the contract's absolute bounds: replaying old files is the
    point of a replay.
    """
    records: list[Record] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            records.append(decode_event(line, policy=None))
        except InvalidEvent as exc:
            if not allow_invalid:
                raise ProducerError(
                    f"line {number}: {exc} (use --allow-invalid to send such lines anyway)"
                ) from None
            records.append(MalformedRecord(line, f"line-{number}", exc.reason))
    return records
