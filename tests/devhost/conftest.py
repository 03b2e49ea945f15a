from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.devhost_harness import DevHostProcess

SAMPLE_APP = Path(__file__).parent / "apps" / "sample"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    """One devhost (manual clock) running the sample app for a whole test module."""
    base = tmp_path_factory.mktemp("devhost")
    process = DevHostProcess(SAMPLE_APP, base / "state" / "state.db", base / "marks").start()
    yield process
    process.stop()


@pytest.fixture
def fresh_host(tmp_path: Path) -> Iterator[DevHostProcess]:
    """A devhost of its own for tests that restart or kill it."""
    process = DevHostProcess(SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks").start()
    yield process
    process.stop(kill=True)
