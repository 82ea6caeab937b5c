"""Heatmap bins, width classes, rage clicks and the PNG: pure."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta

from PIL import Image

from insights.heatmap import (
    CANVAS_HEIGHT_PX,
    CANVAS_WIDTH_PX,
    MAX_IMAGE_PIXELS,
    Click,
    bins,
    bins_as_json,
    off_canvas,
    rage_clicks,
    render_png,
    width_class,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def click(
    session: str, ms: int, x: int, y: int, width: int | None = 1280, page: str = "/p"
) -> Click:
    return Click(session, T0 + timedelta(milliseconds=ms), x, y, width, page)


def test_width_classes_keep_layouts_apart() -> None:
    assert [width_class(w) for w in (320, 640, 641, 1024, 1025, None)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "unknown",
    ]


def test_clicks_are_binned_on_a_16_pixel_grid_per_width_class() -> None:
    found = bins([click("a", 0, 5, 5), click("a", 1, 15, 0), click("b", 2, 16, 31, width=400)])
    assert found == {"large": Counter({(0, 0): 2}), "small": Counter({(16, 16): 1})}
    assert bins_as_json(found)["width_classes"]["large"] == [{"x": 0, "y": 0, "clicks": 2}]


def test_rage_clicks_are_three_clicks_within_a_second_and_30_px_in_one_session() -> None:
    clicks = [
        # a rage burst: four clicks in 600 ms within 12 px
        click("rage", 0, 100, 100),
        click("rage", 200, 108, 104),
        click("rage", 400, 96, 110),
        click("rage", 600, 102, 99),
        # near misses: two clicks; three spread over 1.5 s; three 40 px apart; three sessions
        click("two", 0, 10, 10),
        click("two", 100, 10, 10),
        click("slow", 0, 10, 10),
        click("slow", 700, 10, 10),
        click("slow", 1500, 10, 10),
        click("far", 0, 10, 10),
        click("far", 100, 50, 10),
        click("far", 200, 90, 10),
        click("s1", 0, 10, 10),
        click("s2", 10, 10, 10),
        click("s3", 20, 10, 10),
        # the same session on another page does not join the burst
        click("split", 0, 10, 10),
        click("split", 100, 10, 10, page="/q"),
        click("split", 200, 10, 10),
    ]
    (found,) = rage_clicks(clicks)
    assert (found.session_id, found.page, found.clicks) == ("rage", "/p", 4)
    assert (found.x, found.y) == (102, 103)
    assert found.started_at == T0


def test_the_png_is_a_density_map_with_a_legend() -> None:
    cells = Counter({(160, 320): 40, (800, 96): 3})
    image = Image.open(io.BytesIO(render_png(cells, title="/pricing (large)")))
    assert image.format == "PNG"
    assert image.size[0] >= 800
    hot = image.getpixel((168, 36 + 328))
    cold = image.getpixel((500, 36 + 370))
    assert hot != cold  # the busy cell is coloured, an empty place is the background
    assert cold == (250, 250, 250)


def test_a_click_far_out_is_counted_but_never_sizes_the_canvas() -> None:
    """Before: the canvas was sized from the largest click; one at (12000, 12000) took 6 s
    and 2.3 GB to draw, one at (1e6, 1e6) a MemoryError."""
    # GIVEN a page's clicks, two of them where no page goes (the contract allows 1,000,000)
    clicks = [click("a", 0, 100, 100), click("b", 1, 12_000, 12_000), click("c", 2, 10**6, 10**6)]
    # WHEN they are binned
    found = bins(clicks)
    # THEN only the one on the canvas is binned, the others are counted
    assert found == {"large": Counter({(96, 96): 1})}
    assert off_canvas(clicks) == 2
    # AND a map given cells beyond the canvas does not draw them
    image = Image.open(io.BytesIO(render_png(Counter({(10**6, 10**6): 1}), title="/p")))
    assert image.size == (320, 240 + 36)


def test_the_longest_map_the_canvas_allows_is_drawn_scaled_to_the_pixel_budget() -> None:
    # GIVEN clicks in the canvas' far corner: a page 4,096 px wide and 32,768 px long
    corner = Counter({(CANVAS_WIDTH_PX - 16, CANVAS_HEIGHT_PX - 16): 3, (0, 0): 1})
    # WHEN it is drawn
    image = Image.open(io.BytesIO(render_png(corner, title="/long")))
    # THEN the picture keeps the page's proportions within the pixel budget
    width, height = image.size[0], image.size[1] - 36
    assert width * height <= MAX_IMAGE_PIXELS
    assert abs(height / width - CANVAS_HEIGHT_PX / CANVAS_WIDTH_PX) < 0.05


def test_since_takes_a_span_or_a_time() -> None:
    import pytest

    from clickstream.cli.common import since_time
    from clickstream.kernel.errors import ConfigurationError

    assert since_time("90m", T0) == T0 - timedelta(minutes=90)
    assert since_time("2d", T0) == T0 - timedelta(days=2)
    assert since_time("2026-11-23T08:00", T0) == datetime(2026, 11, 23, 8, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="--since"):
        since_time("yesterday", T0)
