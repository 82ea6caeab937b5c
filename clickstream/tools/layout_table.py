"""The source tree as a table for docs/design.md: each module and what its docstring says.

`python -m clickstream.tools.layout_table --write` rewrites the table between its markers in
docs/design.md; `tests/unit/test_layout.py` fails when the table and the tree differ, so a
module added, moved or removed shows in the docs in the same commit.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Final

from clickstream.kernel.paths import PROJECT_ROOT

PACKAGES: Final = ("clickstream", "collector", "consumer", "insights", "producer")
DESIGN: Final = Path("docs") / "design.md"
BEGIN: Final = "<!-- tree: written by `python -m clickstream.tools.layout_table --write` -->"
END: Final = "<!-- /tree -->"
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s")


def first_sentence(docstring: str | None) -> str:
    """The docstring's first sentence (its first paragraph when no sentence ends there)."""
    if not docstring:
        return ""
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    return _SENTENCE_END.split(paragraph, maxsplit=1)[0]


def modules(root: Path) -> list[tuple[str, str]]:
    """Every source module of the packages, by path, with its docstring's first sentence."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            docstring = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
            found.append((path.relative_to(root).as_posix(), first_sentence(docstring)))
    return found


def table(root: Path) -> str:
    lines = [BEGIN, "", "| module | what it is |", "| --- | --- |"]
    lines += [f"| `{path}` | {_cell(what)} |" for path, what in modules(root)]
    return "\n".join([*lines, "", END])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def written_table(text: str) -> str | None:
    """The table between the markers in a document, markers included; None without them."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)]


def main(argv: list[str]) -> int:
    design = PROJECT_ROOT / DESIGN
    text = design.read_text()
    written = written_table(text)
    if written is None:
        sys.stderr.write(f"{DESIGN}: no {BEGIN} ... {END} markers\n")
        return 1
    fresh = table(PROJECT_ROOT)
    if "--write" in argv:
        design.write_text(text.replace(written, fresh))
        return 0
    if written != fresh:
        sys.stderr.write(
            f"{DESIGN}'s tree is stale: run python -m clickstream.tools.layout_table --write\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
