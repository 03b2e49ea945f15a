from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devhost_harness import CLOCK_START
from tests.support.orchestrator_tier import OrchestratorTier


@pytest.fixture(scope="package")
def tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrchestratorTier]:
    """One devhost for the whole tier; each test scripts and watches only its own names."""
    started = OrchestratorTier.start(tmp_path_factory.mktemp("orchestrators"), CLOCK_START)
    yield started
    started.stop()
