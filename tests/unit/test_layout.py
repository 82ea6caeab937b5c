"""The layout's rules, checked on the import graph (ast over the tree), so they hold tomorrow.

- `clickstream/`'s kernel (its top-level modules) imports nothing else of ours;
- `consumer/core/` is pure: no AWS SDK, no amazon_kclpy, nothing from the consumer's edges;
- `producer` and `consumer` do not import each other; the worker (`consumer`) imports
  neither the read side, nor the command line, the local stack or the operator tools;
- the worker's settings import neither the producer's nor the local stack's;
- no source file is longer than MAX_LINES.
- docs/design.md's table of modules is the tree's, and README's Layout table names every
  package and only paths that exist.

Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clickstream.paths import PROJECT_ROOT
from clickstream.tools import layout_table

PACKAGES = ("clickstream", "consumer", "producer", "insights", "collector")
MAX_LINES = 500

SHELL = ("clickstream.cli", "clickstream.local", "clickstream.tools")
AWS_AND_KCL = ("boto3", "botocore", "aiobotocore", "amazon_kclpy", "aws_embedded_metrics")


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, dotted."""
    imported: str
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every module a source file imports, absolute, wherever in the file the import is."""
    module = module_name(root, path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from consumer import sinks` imports the module consumer.sinks.
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}", node.lineno)


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def is_kernel(name: str) -> bool:
    """clickstream itself and its top-level modules (and the names in them), not the shell."""
    return within(name, "clickstream") and not within(name, *SHELL)


def violations(root: Path) -> list[str]:
    """Each broken rule as `module:line imports name (rule)`; empty when the tree is clean."""
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")) if (root / package).is_dir() else []:
            for edge in imports_of(root, path):
                rule = broken_rule(edge)
                if rule:
                    found.append(f"{edge.module}:{edge.line} imports {edge.imported} ({rule})")
    return found


def broken_rule(edge: Import) -> str | None:
    module, imported = edge.module, edge.imported
    ours = within(imported, *PACKAGES)
    if is_kernel(module) and ours and not is_kernel(imported):
        return "the kernel imports nothing else of ours"
    if within(module, "consumer.core"):
        if within(imported, *AWS_AND_KCL):
            return "consumer.core is pure: no AWS SDK, no amazon_kclpy"
        if within(imported, "consumer") and not within(imported, "consumer.core"):
            return "consumer.core imports nothing from the consumer's edges"
    if within(module, "consumer") and within(imported, "producer", "insights", *SHELL):
        return "the worker imports neither producer, insights, nor the CLI, local stack, tools"
    if within(module, "producer") and within(imported, "consumer", "insights", *SHELL):
        return "the producer imports neither consumer, insights, nor the shell"
    if within(module, "insights") and within(imported, "producer", *SHELL):
        return "the read side imports neither the producer nor the shell"
    if within(module, "collector") and within(imported, "consumer", "producer", "insights", *SHELL):
        return "the collector imports only the kernel"
    return None


def long_files(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}: {lines} lines"
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]


def test_the_tree_keeps_the_layout_rules() -> None:
    assert violations(PROJECT_ROOT) == []


def test_no_source_file_is_longer_than_the_limit() -> None:
    assert long_files(PROJECT_ROOT) == []


# The checker itself, on small trees made for the purpose: each rule can fail.


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("relative", "source", "rule"),
    [
        ("clickstream/events.py", "from consumer.core import items\n", "kernel"),
        ("clickstream/aws.py", "def f():\n    from clickstream.cli import app\n", "kernel"),
        ("consumer/core/aggregate.py", "import boto3\n", "pure"),
        ("consumer/core/items.py", "from amazon_kclpy import kcl\n", "pure"),
        ("consumer/core/batch.py", "from consumer import sinks\n", "edges"),
        ("consumer/core/batch.py", "from ..sinks import Archive\n", "edges"),
        ("consumer/settings.py", "from producer.settings import ProducerSettings\n", "worker"),
        ("consumer/settings.py", "from clickstream.local.settings import X\n", "worker"),
        ("consumer/page_watch.py", "from insights import query\n", "worker"),
        ("producer/run.py", "from consumer.core.items import page_item\n", "producer"),
        ("insights/query.py", "from producer.manifest import Manifest\n", "read side"),
        ("collector/app.py", "from consumer.metrics import Metrics\n", "collector"),
        ("collector/intake.py", "from clickstream.cli import app\n", "collector"),
    ],
)
def test_the_checker_reports_each_broken_rule(
    tmp_path: Path, relative: str, source: str, rule: str
) -> None:
    # GIVEN a tree whose one module breaks one rule
    write(tmp_path, relative, source)
    # WHEN the checker reads it
    found = violations(tmp_path)
    # THEN it names that module and that rule
    assert len(found) == 1
    assert found[0].startswith(relative.removesuffix(".py").replace("/", "."))
    assert rule in found[0]


def test_the_checker_accepts_the_allowed_directions(tmp_path: Path) -> None:
    # GIVEN imports the layout allows: edges on core and kernel, the shell on everything
    write(tmp_path, "consumer/processor.py", "from consumer.core import items\nimport boto3\n")
    write(tmp_path, "consumer/core/items.py", "from clickstream.events import minute_key\n")
    write(tmp_path, "insights/query.py", "from consumer.core.items import page_sort_key\n")
    write(tmp_path, "clickstream/cli/demo.py", "from producer import run\nfrom insights import q\n")
    write(tmp_path, "clickstream/errors.py", "from clickstream.logging import get_logger\n")
    # THEN nothing is reported
    assert violations(tmp_path) == []


def test_the_length_check_reports_a_long_file(tmp_path: Path) -> None:
    write(tmp_path, "producer/long.py", "x = 1\n" * (MAX_LINES + 1))
    assert long_files(tmp_path) == [f"producer/long.py: {MAX_LINES + 1} lines"]


# The docs' pictures of the tree (issue 39): they change with it, in the same commit.


def test_design_md_shows_the_tree_as_it_is() -> None:
    design = (PROJECT_ROOT / layout_table.DESIGN).read_text()
    assert layout_table.written_table(design) == layout_table.table(PROJECT_ROOT), (
        "run python -m clickstream.tools.layout_table --write"
    )


def test_the_table_names_every_module_with_its_docstrings_first_sentence(tmp_path: Path) -> None:
    write(tmp_path, "insights/new.py", '"""A new reader. Details after.\n\nMore."""\n')
    write(tmp_path, "insights/bare.py", "x = 1\n")
    table = layout_table.table(tmp_path)
    assert "| `insights/new.py` | A new reader. |" in table
    assert "| `insights/bare.py` |  |" in table
    assert layout_table.written_table(f"before\n{table}\nafter") == table


def readme_layout_paths(readme: str) -> list[str]:
    """The paths in the first column of README's Layout table."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [path.rstrip("/") for cell in cells for path in re.findall(r"`([^`]+)`", cell)]


def test_readmes_layout_table_names_every_package_and_only_what_exists() -> None:
    named = readme_layout_paths((PROJECT_ROOT / "README.md").read_text())
    packages = {
        init.parent.relative_to(PROJECT_ROOT).as_posix()
        for package in PACKAGES
        for init in (PROJECT_ROOT / package).rglob("__init__.py")
    }
    assert packages - set(named) == set(), "packages missing from README's Layout table"
    assert [path for path in named if not (PROJECT_ROOT / path).exists()] == []
