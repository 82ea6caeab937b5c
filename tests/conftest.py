"""Shared fixtures. The local stack fixture starts real emulators on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clickstream.local import stack
from clickstream.local.settings import LocalStackSettings
from clickstream.local.stack import LocalStackState
from clickstream.logging import configure_logging
from tests.support.stack import emulator_pids_alive, isolated_settings


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
