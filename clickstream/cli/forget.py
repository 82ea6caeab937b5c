"""`clickstream forget`: erase one person from every store (docs/guarantees.md, "Erasure")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, err, one_line_errors, out, print_json, since_time
from clickstream.kernel.errors import ConfigurationError

Ids = Annotated[list[str] | None, typer.Option(help="Repeatable.")]


@one_line_errors
def forget(
    user_id: Ids = None,
    anonymous_id: Ids = None,
    session_id: Ids = None,
    since: Annotated[
        str | None,
        typer.Option(help="Look only from then: 90m, 30d or ISO 8601 (default: everything)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; change nothing.")
    ] = False,
    lift: Annotated[
        bool,
        typer.Option(
            "--lift",
            help="Take the ids off the suppression list (with every id their forget found); "
            "erase nothing.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove a person's events and items from every store that holds them: every session in
    which one of the ids appears, from the raw archive and the lake (objects rewritten, old
    versions deleted), the dead letters whose bytes carry an id, the session items, the
    alerts and the bot verdicts naming those sessions. Page counters are aggregates and
    stay. First every id goes on the suppression list, so that the collector and the workers
    drop the person's later events. Idempotent: run it again after a failure and it
    finishes the job; the receipt (in the bucket, ids hashed) says what was removed."""
    from clickstream.cli.target import stack_target
    from clickstream.stores.suppression import SuppressionSettings, SuppressionTable
    from insights.erasure import Forgetter
    from insights.forget import Person
    from insights.lake_store import s3_client
    from insights.settings import LakeSettings

    person = Person(tuple(user_id or ()), tuple(anonymous_id or ()), tuple(session_id or ()))
    target = stack_target("archive_bucket", "archive")
    location = target.archive_location()
    target.require("sessions_table", "alerts_table")
    dynamodb = target.client("dynamodb", region=location.region)
    listed = SuppressionSettings()
    if target.local is not None:  # the local stack's list, whatever this shell says
        listed = listed.model_copy(
            update={"table": target.outputs.suppression_table, "bucket": location.bucket}
        )
    if listed.table and listed.bucket and listed.bucket != location.bucket:
        raise ConfigurationError(
            f"CLICKSTREAM_SUPPRESSION_BUCKET ({listed.bucket}) is not the archive bucket "
            f"({location.bucket}), whose salt forget hashes the ids with"
        )
    if not listed.table:
        err.print(
            "[yellow]no suppression table (CLICKSTREAM_SUPPRESSION_TABLE): the person's later "
            "events will not be dropped[/yellow]"
        )
    forgetter = Forgetter(
        s3_client(location),
        dynamodb,
        location,
        sessions_table=str(target.outputs.sessions_table),
        alerts_table=str(target.outputs.alerts_table),
        lake_settings=LakeSettings(),
        suppression=SuppressionTable(dynamodb, listed.table, listed.days) if listed.table else None,
        settle_seconds=listed.resolved_settle_seconds(),
    )
    if lift:
        request, lifted = forgetter.lift(person)
        if as_json:
            print_json({"request": request or None, "lifted": lifted})
        else:
            out.print(f"lifted {lifted} suppression entries" + (f" ({request})" if request else ""))
        return
    start = since_time(since, datetime.now(UTC)) if since else None
    with err.status("finding the person's sessions and removing them"):
        receipt = forgetter.run(person, start, dry_run=dry_run)
    if as_json:
        print_json(receipt.as_dict())
        return
    table = Table(title=f"forget {receipt.request}: {receipt.status} (run {receipt.runs})")
    table.add_column("store")
    table.add_column("removed", justify="right")
    for name, count in receipt.totals().items():
        table.add_row(name.replace("_", " "), f"{count:,}")
    out.print(table)
