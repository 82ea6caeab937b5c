"""Click heatmaps and rage clicks from the archive. Pure except `page_rows` and
`clicks_of_page`, which read.

Clicks are binned on a 16-pixel grid of document coordinates (what the tracker and the
contract record: `x`, `y` from the page's top left), kept apart by viewport-width class, so
a responsive layout's three layouts are three maps, not one smear. Rage clicks follow
PostHog's definition: three or more clicks of one session within one second, within 30 px
of each other.
"""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from clickstream.kernel.enrichment.useragent import agent_of
from clickstream.kernel.pagekey import page_key
from clickstream.kernel.timestamps import from_iso
from insights import sql

GRID: Final = 16
CANVAS_WIDTH_PX: Final = 4096
CANVAS_HEIGHT_PX: Final = 32768
"""A map covers document coordinates below these (wider than a 4K screen, longer than any page
people scroll). The contract allows coordinates up to 1,000,000: a canvas sized from the
largest click would let one visitor's click at (30000, 30000) take gigabytes to draw. A
click beyond is counted (`clicks_off_canvas`) but not drawn."""
MAX_IMAGE_PIXELS: Final = 8_000_000
"""The PNG's largest size: a longer map is drawn scaled down to it (32 MB while drawn)."""
WIDTH_CLASSES: Final = (("small", 640), ("medium", 1024), ("large", None))
"""Viewport widths up to 640 px (phones), up to 1,024 (tablets, small windows), wider."""
UNKNOWN_WIDTH: Final = "unknown"
RAGE_MIN_CLICKS: Final = 3
RAGE_WINDOW: Final = timedelta(seconds=1)
RAGE_RADIUS_PX: Final = 30


@dataclass(frozen=True, slots=True)
class Click:
    session_id: str
    at: datetime
    x: int
    y: int
    viewport_width: int | None
    page: str


@dataclass(frozen=True, slots=True)
class RageClick:
    session_id: str
    page: str
    started_at: datetime
    clicks: int
    x: int
    y: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "page": self.page,
            "started_at": self.started_at.isoformat(),
            "clicks": self.clicks,
            "x": self.x,
            "y": self.y,
        }


def width_class(viewport_width: int | None) -> str:
    if viewport_width is None:
        return UNKNOWN_WIDTH
    for name, widest in WIDTH_CLASSES:
        if widest is None or viewport_width <= widest:
            return name
    return UNKNOWN_WIDTH  # unreachable: the last class has no bound


def on_canvas(click: Click) -> bool:
    return 0 <= click.x < CANVAS_WIDTH_PX and 0 <= click.y < CANVAS_HEIGHT_PX


def off_canvas(clicks: Iterable[Click]) -> int:
    """How many clicks lie beyond the canvas, counted but never drawn."""
    return sum(1 for click in clicks if not on_canvas(click))


def bins(clicks: Iterable[Click], grid: int = GRID) -> dict[str, Counter[tuple[int, int]]]:
    """Per width class, clicks per grid cell, keyed by the cell's top-left corner in pixels;
    clicks beyond the canvas are left out."""
    found: dict[str, Counter[tuple[int, int]]] = {}
    for click in clicks:
        if not on_canvas(click):
            continue
        cell = (click.x // grid * grid, click.y // grid * grid)
        found.setdefault(width_class(click.viewport_width), Counter())[cell] += 1
    return found


def busiest_class(found: dict[str, Counter[tuple[int, int]]]) -> str | None:
    """The width class with the most clicks (None without clicks): the map to show first."""
    return max(found, key=lambda name: sum(found[name].values()), default=None)


def rage_clicks(
    clicks: Iterable[Click],
    *,
    min_clicks: int = RAGE_MIN_CLICKS,
    window: timedelta = RAGE_WINDOW,
    radius: float = RAGE_RADIUS_PX,
) -> list[RageClick]:
    """Bursts of `min_clicks` or more clicks of one session on one page within `window`, each
    within `radius` of the burst's first click; a burst is reported once, with its size."""
    by_session: dict[tuple[str, str], list[Click]] = {}
    for click in clicks:
        by_session.setdefault((click.session_id, page_key(click.page)), []).append(click)
    found: list[RageClick] = []
    for (session, page), mine in by_session.items():
        mine.sort(key=lambda c: c.at)
        start = 0
        while start < len(mine):
            first = mine[start]
            burst = [first]
            for later in mine[start + 1 :]:
                if later.at - first.at > window:
                    break
                if math.dist((later.x, later.y), (first.x, first.y)) <= radius:
                    burst.append(later)
            if len(burst) >= min_clicks:
                found.append(
                    RageClick(
                        session,
                        page,
                        first.at,
                        len(burst),
                        round(sum(c.x for c in burst) / len(burst)),
                        round(sum(c.y for c in burst) / len(burst)),
                    )
                )
                start = mine.index(burst[-1]) + 1
            else:
                start += 1
    return sorted(found, key=lambda r: (r.started_at, r.session_id))


def page_rows(
    connection: Any, key: str, since: datetime, kind: str, columns: str = "", where: str = ""
) -> list[tuple[Any, ...]]:
    """People's events of type `kind` in the archive whose page key is `key`, since `since`:
    (session_id, timestamp, page, user_agent, viewport_width, then `columns`), `where` an
    extra condition. Partitions before that hour are pruned, SQL keeps the pages whose text
    holds the key's path (a cheap superset), and the key itself is checked here, as the
    consumer computes it; a bot's events (by its user agent,
    `clickstream.kernel.enrichment`) are no one's."""
    path = key if key.startswith("/") else "/" + key.partition("/")[2]
    prefix = path.partition("?")[0].partition("…~")[0][:64] or "/"
    hour = since.replace(minute=0, second=0, microsecond=0)
    query = (
        # Our own column names, numbers and quoted literals only.
        f"SELECT session_id, timestamp, page, user_agent, viewport_width{columns} "  # noqa: S608
        f"FROM events WHERE type = {sql.quote(kind)}{where} "
        "AND make_timestamp(year, month, day, hour, 0, 0) >= "
        f"make_timestamp({hour.year}, {hour.month}, {hour.day}, {hour.hour}, 0, 0) "
        f"AND strpos(page, {sql.quote(prefix)}) > 0"
    )
    _, rows = sql.run(connection, query)
    return [
        row
        for row in rows
        if not (row[3] and agent_of(row[3]).is_bot)
        and page_key(row[2]) == key
        and from_iso(row[1]) >= since
    ]


def clicks_of_page(connection: Any, key: str, since: datetime) -> list[Click]:
    """People's clicks with coordinates on the page `key` since `since` (`page_rows`)."""
    found = page_rows(
        connection, key, since, "click", ", x, y", " AND x IS NOT NULL AND y IS NOT NULL"
    )
    return [
        Click(session, from_iso(at), x, y, width, page)
        for session, at, page, _, width, x, y in found
    ]


def rage_candidates(connection: Any, since: datetime) -> list[Click]:
    """Every click since `since` that could belong to a rage burst, on any page: SQL keeps
    the clicks with two more of their session within a second either side (a superset of
    every burst's members), so `rage_clicks` judges a few clicks, not the whole archive."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    after = since.strftime("%Y-%m-%dT%H:%M:%S")
    query = (
        # Numbers and one quoted literal only. The archive writes UTC times ending in Z.
        "SELECT session_id, timestamp, x, y, viewport_width, page FROM ("  # noqa: S608
        " SELECT *, count(*) OVER (PARTITION BY session_id ORDER BY click_at RANGE BETWEEN"
        " INTERVAL 1 SECOND PRECEDING AND INTERVAL 1 SECOND FOLLOWING) AS near FROM ("
        "  SELECT *, try_cast(timestamp AS TIMESTAMP) AS click_at FROM events"
        "  WHERE type = 'click' AND x IS NOT NULL AND y IS NOT NULL"
        "  AND make_timestamp(year, month, day, hour, 0, 0) >= "
        f"make_timestamp({hour.year}, {hour.month}, {hour.day}, {hour.hour}, 0, 0))"
        f" WHERE click_at >= {sql.quote(after)}::TIMESTAMP)"
        f" WHERE near >= {RAGE_MIN_CLICKS}"
    )
    _, rows = sql.run(connection, query)
    return [
        Click(session, from_iso(at), x, y, width, page) for session, at, x, y, width, page in rows
    ]


def _ramp(value: float) -> tuple[int, int, int, int]:
    """Transparent blue through green and yellow to red, as heat."""
    stops = (
        (0.0, (0, 0, 255, 0)),
        (0.25, (0, 0, 255, 140)),
        (0.5, (0, 220, 0, 180)),
        (0.75, (255, 230, 0, 210)),
        (1.0, (255, 0, 0, 235)),
    )
    for (low, a), (high, b) in itertools.pairwise(stops):
        if value <= high:
            t = (value - low) / (high - low)
            return tuple(round(a[i] + (b[i] - a[i]) * t) for i in range(4))  # type: ignore[return-value]
    return stops[-1][1]


def render_png(
    cells: Counter[tuple[int, int]], *, title: str, grid: int = GRID, width: int | None = None
) -> bytes:
    """A density map: each cell's clicks spread by a Gaussian kernel, coloured by a ramp,
    with a legend naming the click count. `width`: the page width to draw (default: the
    rightmost click). Never larger than the canvas; drawn scaled down past MAX_IMAGE_PIXELS."""
    # Lazy for start-up time: Pillow is loaded only when a map is drawn.
    from PIL import Image, ImageDraw, ImageFont

    drawn = Counter(
        {(x, y): n for (x, y), n in cells.items() if x < CANVAS_WIDTH_PX and y < CANVAS_HEIGHT_PX}
    )
    right = max((x for x, _ in drawn), default=0) + grid * 4
    bottom = max((y for _, y in drawn), default=0) + grid * 4
    page_width = min(max(width or right, 320), CANVAS_WIDTH_PX)
    page_height = min(max(bottom, 240), CANVAS_HEIGHT_PX)
    scale = min(1.0, math.sqrt(MAX_IMAGE_PIXELS / (page_width * page_height)))
    image_width = max(320, round(page_width * scale))
    image_height = max(240, round(page_height * scale))
    # Counts on a grid of cells, spread by a Gaussian kernel, coloured, then scaled up.
    columns, rows = page_width // grid + 1, page_height // grid + 1
    values = gaussian_density(drawn, columns, rows, grid)
    peak = max(values, default=0.0) or 1.0
    palette = [_ramp(level / 255) for level in range(256)]
    heat = Image.new("RGBA", (columns, rows))
    heat.putdata([palette[min(255, int(255 * value / peak))] for value in values])
    heat = heat.resize((image_width, image_height), Image.Resampling.BILINEAR)
    legend_height = 36
    canvas = Image.new("RGBA", (image_width, image_height + legend_height), (250, 250, 250, 255))
    canvas.alpha_composite(heat, (0, legend_height))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    total = sum(drawn.values())
    draw.text((8, 10), f"{title}: {total} clicks", fill=(20, 20, 20, 255), font=font)
    busiest = max(drawn.values(), default=0)
    draw.text(
        (image_width - 300, 10),
        f"density, max {busiest}/cell",
        fill=(20, 20, 20, 255),
        font=font,
    )
    for step in range(100):  # the ramp, low to high
        draw.line(
            [(image_width - 110 + step, 12), (image_width - 110 + step, 24)],
            fill=(*_ramp(step / 99)[:3], 255),
        )
    buffer = io.BytesIO()
    canvas.convert("RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def gaussian_density(
    cells: Counter[tuple[int, int]], columns: int, rows: int, grid: int, sigma: float = 1.2
) -> list[float]:
    """Row-major density of `columns` x `rows` cells: each cell's clicks spread by a
    Gaussian of `sigma` cells (separable: across, then down)."""
    reach = max(1, math.ceil(3 * sigma))
    kernel = [math.exp(-(d * d) / (2 * sigma * sigma)) for d in range(-reach, reach + 1)]
    across = [0.0] * (columns * rows)
    for (x, y), count in cells.items():
        column, row = x // grid, y // grid
        if not (0 <= column < columns and 0 <= row < rows):
            continue
        for offset, weight in enumerate(kernel, start=-reach):
            if 0 <= column + offset < columns:
                across[row * columns + column + offset] += count * weight
    down = [0.0] * (columns * rows)
    for row in range(rows):
        for column in range(columns):
            value = across[row * columns + column]
            if not value:
                continue
            for offset, weight in enumerate(kernel, start=-reach):
                if 0 <= row + offset < rows:
                    down[(row + offset) * columns + column] += value * weight
    return down


def bins_as_json(found: dict[str, Counter[tuple[int, int]]], grid: int = GRID) -> dict[str, Any]:
    return {
        "grid_px": grid,
        "width_classes": {
            name: sorted(
                ({"x": x, "y": y, "clicks": n} for (x, y), n in cells.items()),
                key=lambda cell: (cell["y"], cell["x"]),
            )
            for name, cells in sorted(found.items())
        },
    }


def sources_read(connection: Any) -> dict[str, int]:
    """How many Parquet files and raw objects the `events` view reads (`events_sources`)."""
    _, rows = sql.run(connection, "SELECT kind, count(*) FROM events_sources GROUP BY kind")
    return {"parquet": 0, "raw": 0} | {str(kind): int(count) for kind, count in rows}
