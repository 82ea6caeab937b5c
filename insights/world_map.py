"""The world map the site owner's view draws countries on: `@svg-maps/world` (CC BY 4.0,
pinned in infra/web, installed by scripts/bootstrap.sh), served by the dashboard itself as
JSON, `{"viewBox", "locations": [{"id": ISO 3166-1 alpha-2 in lower case, "name", "path"}]}`.
Nothing is fetched from elsewhere; without the package the view shows the countries' table
alone and says why."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Final

from clickstream.kernel.logging import get_logger
from clickstream.kernel.paths import TOOLS_DIR

MAP_FILE: Final = TOOLS_DIR / "web" / "node_modules" / "@svg-maps" / "world" / "index.js"
CREDIT: Final = "Map: svg-maps/world by Victor Cazanave, CC BY 4.0"

log = get_logger(component="dashboard")


@functools.cache
def world_map(path: Path = MAP_FILE) -> bytes | None:
    """The map as JSON bytes, or None when the package is not installed (or unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
        # The package is one ES module: `export default {...}` of plain JSON.
        document = json.loads(text.strip().removeprefix("export default").strip().rstrip(";"))
        shapes = [
            {"id": str(place["id"]), "name": str(place["name"]), "path": str(place["path"])}
            for place in document["locations"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("no world map: the view shows the countries' table alone", why=str(exc))
        return None
    answer = {"viewBox": document["viewBox"], "credit": CREDIT, "locations": shapes}
    return json.dumps(answer, separators=(",", ":")).encode()
