"""The raw archive's lines that a strict JSON reader refuses.

Before the strict rule (`clickstream.kernel.strict_json`), the collector wrote `1e400` back as
`Infinity` and the workers archived it, and the workers took `NaN` and `Infinity` from any
producer: such lines are in archives written then, and Athena's JSON SerDe (and DuckDB, and
any strict reader) fails on the object that holds one. This finds them, object by object,
with each refused line's number, reason and ids, so that an operator can erase them
(`clickstream forget --session-id`) or rewrite the object. Reads only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from clickstream.kernel import strict_json
from clickstream.kernel.events import DeadLetterReason, not_strict_json
from insights.archive import object_lines

SAMPLES_PER_OBJECT: Final = 5


@dataclass(frozen=True, slots=True)
class RefusedLine:
    line: int
    """Its number in the object's decompressed text, from 1."""
    reason: str
    detail: str
    event_id: str | None
    session_id: str | None
    """Read with Python's lenient parser, where it can: what `forget` takes."""


@dataclass(slots=True)
class RefusingObject:
    key: str
    lines: int = 0
    refused: int = 0
    samples: list[RefusedLine] = field(default_factory=list)
    """The first `SAMPLES_PER_OBJECT` refused lines."""
    session_ids: set[str] = field(default_factory=set)
    """Every refused line's session, where it could be read."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "lines": self.lines,
            "refused": self.refused,
            "session_ids": sorted(self.session_ids),
            "samples": [asdict(sample) for sample in self.samples],
        }


@dataclass(slots=True)
class StrictnessReport:
    objects_read: int = 0
    lines_read: int = 0
    refusing: list[RefusingObject] = field(default_factory=list)

    @property
    def lines_refused(self) -> int:
        return sum(found.refused for found in self.refusing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects_read": self.objects_read,
            "lines_read": self.lines_read,
            "lines_refused": self.lines_refused,
            "objects": [found.as_dict() for found in self.refusing],
        }


def refused_line(number: int, line: bytes) -> RefusedLine | None:
    """Why a strict reader refuses this archived line, or None when it reads it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        reason, detail = DeadLetterReason.NOT_UTF8, f"invalid UTF-8 at byte {error.start}"
        text = line.decode("utf-8", errors="replace")
    else:
        try:
            strict_json.check(text)
            return None
        except strict_json.NotStrictJson as error:
            refusal = not_strict_json(error)
            reason, detail = refusal.reason, refusal.detail
    event_id, session_id = _lenient_ids(text)
    return RefusedLine(number, reason.value, detail, event_id, session_id)


def _lenient_ids(text: str) -> tuple[str | None, str | None]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(value, dict):
        return None, None
    return _shown(value.get("event_id")), _shown(value.get("session_id"))


def _shown(identifier: Any) -> str | None:
    # An unpaired surrogate (what may have put the line here) as the escape it came as.
    if not isinstance(identifier, str):
        return None
    return identifier.encode("utf-8", "backslashreplace").decode()


def check_lines(key: str, lines: Iterable[bytes]) -> RefusingObject:
    found = RefusingObject(key)
    for number, line in enumerate(lines, start=1):
        found.lines += 1
        refused = refused_line(number, line)
        if refused is None:
            continue
        found.refused += 1
        if refused.session_id is not None:
            found.session_ids.add(refused.session_id)
        if len(found.samples) < SAMPLES_PER_OBJECT:
            found.samples.append(refused)
    return found


def check_archive(
    s3: Any, bucket: str, keys: Iterable[str], read: Callable[[str], None] = lambda key: None
) -> StrictnessReport:
    """Every line of each object checked; `read` is told each key once it is read."""
    report = StrictnessReport()
    for key in keys:
        found = check_lines(key, object_lines(s3, bucket, key))
        report.objects_read += 1
        report.lines_read += found.lines
        if found.refused:
            report.refusing.append(found)
        read(key)
    return report
