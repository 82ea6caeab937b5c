"""`clickstream heatmap PAGE`: a page's clicks from the archive, as a PNG density map or bins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, err, one_line_errors, out, print_json, since_time
from clickstream.cli.sql import archive_location
from clickstream.kernel.errors import ConfigurationError
from clickstream.kernel.pagekey import page_key


@one_line_errors
def heatmap(
    page: Annotated[str, typer.Argument(help="The page: a path, a URL or its page key.")],
    since: Annotated[str, typer.Option(help="From when: 90m, 24h, 7d or ISO 8601.")] = "24h",
    width: Annotated[
        str | None,
        typer.Option(
            help="Viewport class: small (≤ 640 px), medium (≤ 1024), large; default "
            "the one with the most clicks."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--out", help="Where to write the PNG.")] = Path(
        "heatmap.png"
    ),
    elements: Annotated[
        bool,
        typer.Option(
            "--elements",
            help="The page's most clicked elements instead: clicks, visits, rage and dead clicks.",
        ),
    ] = False,
    scroll: Annotated[
        bool,
        typer.Option(
            "--scroll", help="How far the page's visits scrolled instead, per viewport class."
        ),
    ] = False,
    top: Annotated[int, typer.Option(min=1, max=1000, help="Elements shown.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The page's clicks from the archive on a 16-pixel grid of document coordinates, one map
    per viewport-width class, drawn as a density map (PNG), and its rage clicks (three or more
    clicks of a session within a second and 30 px). `--elements`: the elements clicked (the
    tracker's selectors), `--scroll`: the share of visits reaching each tenth of the page."""
    from insights import archive_views
    from insights import heatmap as maps

    key = page_key(page)
    start = since_time(since, datetime.now(UTC))
    connection = archive_views.connect(archive_location(), since=start, enrich=False)
    if elements or scroll:
        _elements_or_scroll(connection, key, start, top, scroll=scroll, as_json=as_json)
        return
    clicks = maps.clicks_of_page(connection, key, start)
    found = maps.bins(clicks)
    rages = maps.rage_clicks(clicks)
    if width is not None and width not in {name for name, _ in maps.WIDTH_CLASSES}:
        raise ConfigurationError(f"--width {width!r}: expected small, medium or large")
    chosen = width or maps.busiest_class(found)
    wrote = None
    if chosen is not None and found.get(chosen):
        output.write_bytes(maps.render_png(found[chosen], title=f"{key} ({chosen})"))
        wrote = str(output)
    if as_json:
        print_json(
            {
                "page": key,
                "since": start.isoformat(),
                "clicks": len(clicks),
                "clicks_off_canvas": maps.off_canvas(clicks),
                **maps.bins_as_json(found),
                "rage_clicks": [r.as_dict() for r in rages],
                "png": wrote,
                "read_from": maps.sources_read(connection),
            }
        )
        return
    table = Table(title=f"clicks on {key} since {start:%Y-%m-%d %H:%M} UTC")
    table.add_column("viewport class")
    table.add_column("clicks", justify="right")
    table.add_column("cells", justify="right")
    for name, cells in sorted(found.items()):
        table.add_row(name, str(sum(cells.values())), str(len(cells)))
    out.print(table)
    if beyond := maps.off_canvas(clicks):
        out.print(
            f"clicks beyond the canvas ({maps.CANVAS_WIDTH_PX} x {maps.CANVAS_HEIGHT_PX} px), "
            f"counted, not drawn: {beyond}"
        )
    out.print(f"rage clicks: {len(rages)}")
    for rage in rages:
        out.print(
            f"  {rage.started_at:%H:%M:%S} session {rage.session_id}: {rage.clicks} clicks "
            f"at ({rage.x}, {rage.y})"
        )
    if wrote:
        err.print(f"wrote {wrote} ({chosen} viewports)")
    else:
        err.print("no clicks to draw")


def _elements_or_scroll(
    connection: Any, key: str, start: datetime, top: int, *, scroll: bool, as_json: bool
) -> None:
    from insights import elements as found_elements

    visits, reports = found_elements.page_reads(connection, key, start)
    if scroll:
        classes = found_elements.scroll_rows(reports)
        if as_json:
            print_json({"page": key, "since": start.isoformat(), "visits": visits,
                        "width_classes": classes})  # fmt: skip
            return
        table = Table(title=f"how far visits scrolled {key} since {start:%Y-%m-%d %H:%M} UTC")
        table.add_column("viewport class")
        table.add_column("visits", justify="right")
        for tenth in found_elements.TENTHS:
            table.add_column(f"{tenth:.0%}", justify="right")
        for name, row in classes.items():
            shares = [f"{share:.0%}" for share in row["reached"].values()]
            table.add_row(name, f"{row['visits']:,}", *shares)
        out.print(table)
        return
    rows = found_elements.element_rows(
        found_elements.element_clicks(connection, key, start), visits, top
    )
    if as_json:
        print_json({"page": key, "since": start.isoformat(), "visits": visits, "elements": rows})
        return
    table = Table(title=f"elements clicked on {key} since {start:%Y-%m-%d %H:%M} UTC")
    for name in ("selector", "text", "clicks", "visits", "of visits", "rage", "dead"):
        table.add_column(name, justify="left" if name in {"selector", "text"} else "right")
    for row in rows:
        share = "-" if row["visit_share"] is None else f"{row['visit_share']:.0%}"
        table.add_row(row["selector"], row["text"], f"{row['clicks']:,}", f"{row['visits']:,}",
                      share, str(row["rage_clicks"]), str(row["dead_clicks"]))  # fmt: skip
    out.print(table)
