"""Reading a time, in one place: ISO 8601 text or epoch milliseconds, a time without an
offset being UTC (the convention of server logs). Pure.

The event contract (`clickstream.kernel.events`), Segment's clock correction (`collector.segment`),
the command line's `--since` and `--hour`, and the readers of what the workers wrote all read
times through these, so "naive means UTC" and "epoch means milliseconds" hold everywhere.
The consumer's fast decoder (`clickstream.kernel.fast_decode`) calls `datetime.fromisoformat` itself
on the one form it takes, and hands every other form to the contract.
"""

from __future__ import annotations

from datetime import UTC, datetime


def from_iso(text: str) -> datetime:
    """ISO 8601 text as an aware time, its offset kept; none means UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def from_epoch_ms(value: int | float) -> datetime:
    """Epoch milliseconds as a UTC time. Raises ValueError when no date has them."""
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(f"epoch milliseconds {value} are out of range") from error


def to_iso_ms(moment: datetime) -> str:
    """A time as ISO 8601 text to the millisecond, its offset kept: how the stores write
    times (`updated_at`, a shard's watermark), which sort as text within one offset."""
    return moment.isoformat(timespec="milliseconds")


def from_iso_or_none(text: object) -> datetime | None:
    """A stored time read back (`from_iso`); None for an absent or empty attribute."""
    return from_iso(str(text)) if text else None
