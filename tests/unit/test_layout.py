"""The layout's rules, so they hold tomorrow.

The import rules are import-linter contracts in pyproject.toml (`make lint` runs
`lint-imports`): the shell on the wings, the wings (consumer, insights, producer, collector)
independent of each other on the stores, the stores on the kernel, which imports nothing else
of ours; the worker's core pure and below its edges; no import cycles among our modules.
Here the tree is checked against them, and each contract is shown to fail on a copy of the
tree with one import that breaks it (a contract that cannot fail checks nothing).

Also: no source file past `MAX_LINES` (a smell detector: files are split by topic, and one
past this is likely several), docs/design.md's table of modules is the tree's, and README's
Layout table names every package and only paths that exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clickstream.kernel.paths import PROJECT_ROOT
from clickstream.tools import layout_table

PACKAGES = ("clickstream", "consumer", "producer", "insights", "collector")
MAX_LINES = 800
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts over the packages in `tree`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_tree_keeps_the_import_contracts() -> None:
    checked = lint_imports(PROJECT_ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages' source files, copied once: each case edits one module and restores it."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            target = root / path.relative_to(PROJECT_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("clickstream/kernel/events.py", "import consumer.core.aggregate", "The house"),
        ("clickstream/stores/alerts.py", "import insights.query", "The house"),
        ("insights/query.py", "import consumer.sinks", "The house"),
        ("collector/intake.py", "import producer.sender", "The house"),
        ("consumer/page_watch.py", "import clickstream.cli.common", "The house"),
        ("consumer/core/limits.py", "import boto3", "core is pure"),
        ("consumer/core/batch.py", "import consumer.sinks", "edges"),
        ("consumer/core/positioned.py", "import consumer.core.aggregate", "cycles"),
    ],
)
def test_each_contract_fails_on_an_import_that_breaks_it(
    tree_copy: Path, module: str, line: str, contract: str
) -> None:
    # GIVEN the tree with one module given one import that breaks one contract
    path = tree_copy / module
    source = path.read_text()
    path.write_text(f"{source}\n{line}  # noqa\n")
    try:
        # WHEN import-linter checks it
        checked = lint_imports(tree_copy)
    finally:
        path.write_text(source)
    # THEN it fails, naming that contract broken
    assert checked.returncode != 0
    broken = checked.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, checked.stdout


def long_files(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}: {lines} lines"
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]


def test_no_source_file_is_longer_than_the_limit() -> None:
    assert long_files(PROJECT_ROOT) == []


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


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
