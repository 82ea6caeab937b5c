"""Shared fixtures. The local stack fixture starts real emulators on loopback ports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clickstream.kernel.logging import configure_logging
from clickstream.local import stack
from clickstream.local.settings import LocalStackSettings
from clickstream.local.stack import LocalStackState
from tests.support.phases import PHASES_FILE_VARIABLE, summary
from tests.support.stack import emulator_pids_alive, isolated_settings


def pytest_configure(config: pytest.Config) -> None:
    """One phases file per run, made by the controlling process before xdist starts its
    workers, which inherit the variable."""
    if hasattr(config, "workerinput") or os.environ.get(PHASES_FILE_VARIABLE):
        return
    handle, path = tempfile.mkstemp(prefix="clickstream-test-phases-", suffix=".jsonl")
    os.close(handle)
    os.environ[PHASES_FILE_VARIABLE] = path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The end-to-end tests first, in `e2e_order`: xdist (`--dist load --maxschedchunk 1`)
    hands tests out in this order, so the long ones start at once and the functional and
    unit tests fill in around them."""
    # xdist tells each worker how many there are (`-n` in pytest's options); one without it.
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    rank = {name: position for position, name in enumerate(e2e_order(E2E_LONGEST_FIRST, workers))}

    def order(item: pytest.Item) -> tuple[int, int]:
        if item.get_closest_marker("e2e") is not None:
            name = item.originalname if isinstance(item, pytest.Function) else item.name
            return (0, rank.get(name, len(rank)))
        return (1, 0)

    items.sort(key=order)  # stable: everything else keeps its collection order


E2E_LONGEST_FIRST = (
    "test_two_workers_count_exactly_through_kpl_input_and_a_graceful_restart",
    "test_the_dashboard_shows_the_demos_numbers_live_and_its_heatmap",
    "test_kill_9_mid_stream_several_times",
    "test_a_worker_cut_off_from_the_lease_table_is_fenced_by_its_own_lease_check",
    "test_hostile_records_at_scale_are_dead_lettered_with_their_reasons",
    "test_workers_joining_and_leaving_under_load",
    "test_a_paused_worker_wakes_up_as_a_zombie_and_is_fenced",
    "test_split_and_merge_while_events_flow",
    "test_throttles_and_5xx_from_dynamodb_and_s3",
    "test_a_lease_moved_to_a_joining_worker_is_replayed_from_its_checkpoint_exactly",
    "test_stack_up_produce_read_back_exactly_and_down",
    "test_a_browser_session_is_counted_exactly_and_its_clicks_archived_with_coordinates",
    "test_long_urls_a_crawler_and_resent_events_never_stop_a_shard",
)
"""By their durations in a clean-clone run (docs/testing.md); a test not listed goes last
among them."""


def e2e_order(longest_first: tuple[str, ...], n: int) -> list[str]:
    """xdist starts each of its `n` workers with two tests: the longest ones each paired with
    one of the shortest, then the rest longest first, handed out one by one as workers free
    up."""
    ordered = list(longest_first)
    longest, shortest, middle = ordered[:n], ordered[::-1][:n], ordered[n:-n]
    paired = [name for pair in zip(longest, shortest, strict=True) for name in pair]
    return [*paired, *middle]


# The dashboard's test (the demo) once went last, with the busiest functional tests before
# it: a demo whose producer was slowed by tests beside it saw a false drop on its last minute.
# The page rule now waits for a shard caught up only just (`PageRules.settle`), so it runs
# in its place among the longest, beside whatever xdist hands out (docs/testing.md).


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    path = os.environ.get(PHASES_FILE_VARIABLE)
    if not path or hasattr(terminalreporter.config, "workerinput"):
        return
    lines = summary(Path(path)) if Path(path).is_file() else []
    if lines:
        terminalreporter.section("where the end-to-end tests' time went")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("WARNING")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`, anyio's own plugin) run on asyncio, as the collector."""
    return "asyncio"


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> LocalStackSettings:
    return isolated_settings(tmp_path_factory.mktemp("local-stack"))


@pytest.fixture(scope="session")
def local_stack(stack_settings: LocalStackSettings) -> Iterator[LocalStackState]:
    """One local stack for the session's functional and end-to-end tests."""
    state = stack.up(stack_settings)
    yield state
    stack.down(stack_settings)
    leftovers = emulator_pids_alive([(e.pid, e.marker) for e in state.emulators])
    assert not leftovers, f"emulator processes left running: {leftovers}"
