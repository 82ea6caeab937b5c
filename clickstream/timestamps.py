"""Reading a time, in one place: ISO 8601 text or epoch milliseconds, a time without an
offset being UTC (the convention of server logs). Pure.

The event contract (`clickstream.events`), Segment's clock correction (`collector.segment`),
the command line's `--since` and `--hour`, and the readers of what the workers wrote all read
times through these, so "naive means UTC" and "epoch means milliseconds" hold everywhere.
The consumer's fast decoder (`clickstream.fast_decode`) calls `datetime.fromisoformat` itself
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
