"""`clickstream deadletters list|replay`: dead letters by reason, and back into the stream."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clickstream.cli.common import (
    JsonFlag,
    one_line_errors,
    out,
    print_json,
    progress_bar,
    since_time,
)

if TYPE_CHECKING:
    from insights.dead_letters import DeadLetterStore, StoredDeadLetter

app = typer.Typer(help="Dead letters: list them by reason, replay them once fixed.")

Since = Annotated[str, typer.Option(help="Arrived since: 90m, 24h, 7d or ISO 8601.")]
Reason = Annotated[
    list[str] | None, typer.Option(help="Only this reason (repeatable), e.g. missing_field.")
]


def _read(since: str, reasons: list[str] | None) -> tuple[DeadLetterStore, list[StoredDeadLetter]]:
    from clickstream.cli.sql import archive_location
    from insights import lake
    from insights.dead_letters import DeadLetterStore
    from insights.lake_store import s3_client

    location = archive_location()
    store = DeadLetterStore(s3_client(location), location.bucket)
    now = datetime.now(UTC)
    letters = store.letters(lake.hours_between(since_time(since, now), now))
    if reasons:
        letters = [letter for letter in letters if letter.reason in set(reasons)]
    return store, letters


@app.command("list")
@one_line_errors
def list_dead_letters(
    reason: Reason = None, since: Since = "24h", as_json: JsonFlag = False
) -> None:
    """Dead letters by reason, most first: how many, how many were replayed, when they
    arrived, and a few samples (field, detail, the record's first characters)."""
    from insights.dead_letters import summarise

    store, letters = _read(since, reason)
    summaries = summarise(letters, store.replayed())
    if as_json:
        print_json({"since": since, "reasons": [s.as_dict() for s in summaries]})
        return
    table = Table(title=f"dead letters since {since}: {len(letters):,}")
    for column in ("reason", "count", "replayed", "first arrival", "last arrival"):
        table.add_column(column, justify="right" if column in {"count", "replayed"} else "left")
    for summary in summaries:
        table.add_row(
            summary.reason,
            f"{summary.count:,}",
            f"{summary.replayed:,}",
            summary.first_arrival,
            summary.last_arrival,
        )
    out.print(table)
    for summary in summaries:
        for sample in summary.samples:
            out.print(
                f"{summary.reason} ({sample['field'] or '-'}): {sample['detail']}\n"
                f"  {sample['data']}",
                highlight=False,
                markup=False,
            )


@app.command("replay")
@one_line_errors
def replay(
    reason: Reason = None,
    since: Since = "24h",
    rename: Annotated[
        list[str] | None,
        typer.Option(help="Rename a top-level field before replaying: OLD=NEW (repeatable)."),
    ] = None,
    stream: Annotated[
        str | None, typer.Option(help="Stream to put into (default: the settings' or local).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be replayed; put nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Put dead letters back into the stream: each record's original bytes (an event the
    collector refused: the event it kept), through --rename when given, checked against the
    contract as the workers will check it now, keyed by its session. Those that still break
    it are left, with why. Each replayed one is marked once its batch is in the stream: a
    second replay skips it, and the workers count a replayed event once whatever happens."""
    from clickstream.cli.produce import stream_target
    from insights.dead_letters import decide, parse_renames
    from producer.batching import OutgoingRecord, batches
    from producer.sender import PutRecordsSender
    from producer.settings import ProducerSettings

    renames = parse_renames(rename or [])
    store, letters = _read(since, reason)
    now = datetime.now(UTC)
    replayed = store.replayed()
    decisions = [decide(letter, renames, replayed, now) for letter in letters]
    outcomes = Counter(decision.outcome for decision in decisions)
    chosen = [d for d in decisions if d.outcome == "replay"]
    put = 0
    if chosen and not dry_run:
        target = stream_target(stream)
        stream_name = str(target.outputs.stream_name)
        client = target.client("kinesis", max_attempts=1)
        sender = PutRecordsSender(client, stream_name, max_attempts=ProducerSettings().max_attempts)
        run = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        records = [OutgoingRecord(d.data or b"", d.partition_key or "") for d in chosen]
        with progress_bar("replaying", quiet=as_json) as progress:
            task = progress.add_task("", total=len(records))
            for part, batch in enumerate(batches(records)):
                sender.send(batch)
                identities = [d.letter.identity for d in chosen[put : put + len(batch)]]
                store.mark(run, part, identities, renames)
                put += len(batch)
                progress.advance(task, len(batch))
    left = [
        {"record": d.letter.identity, "reason": d.letter.reason, "outcome": d.outcome, "why": d.why}
        for d in decisions
        if d.outcome in {"still invalid", "not replayable"}
    ]
    figures = {
        "dead_letters": len(letters),
        "replayed": put,
        "would_replay": len(chosen) if dry_run else 0,
        "already_replayed": outcomes["already replayed"],
        "still_invalid": outcomes["still invalid"],
        "not_replayable": outcomes["not replayable"],
        "renames": renames,
        "dry_run": dry_run,
        "left": left[:100],
    }
    if as_json:
        print_json(figures)
        return
    verb = "would replay" if dry_run else "replayed"
    out.print(
        f"{len(letters):,} dead letters: {verb} {len(chosen) if dry_run else put:,}, "
        f"already replayed {outcomes['already replayed']:,}, still invalid "
        f"{outcomes['still invalid']:,}, not replayable {outcomes['not replayable']:,}",
        highlight=False,
    )
    for row in left[:20]:
        out.print(f"  {row['record']} ({row['reason']}): {row['outcome']}: {row['why']}",
                  highlight=False, markup=False)  # fmt: skip
