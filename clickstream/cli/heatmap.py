"""`clickstream heatmap PAGE`: a page's clicks from the archive, as a PNG density map or bins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

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
    as_json: JsonFlag = False,
) -> None:
    """The page's clicks from the archive on a 16-pixel grid of document coordinates, one map
    per viewport-width class, drawn as a density map (PNG), and its rage clicks (three or more
    clicks of a session within a second and 30 px)."""
    from insights import archive_views
    from insights import heatmap as maps

    key = page_key(page)
    start = since_time(since, datetime.now(UTC))
    connection = archive_views.connect(archive_location(), since=start, enrich=False)
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
