"""``FUNCTIONS_WORKER_PROCESS_COUNT``: orchestrator and entity episodes run in app worker
processes apart from devhost (as the Functions host runs the Python worker), with the same
results; a worker killed mid-run is replaced and nothing is lost; a bad setting is refused."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.procs import ServiceStartError
from tests.devhost.conftest import SAMPLE_APP
from tests.support.devhost_harness import DevHostProcess


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    base = tmp_path_factory.mktemp("pooled")
    process = DevHostProcess(
        SAMPLE_APP, base / "state" / "state.db", base / "marks", env={"FUNCTIONS_WORKER_PROCESS_COUNT": "2"}
    ).start()
    yield process
    process.stop()


def _devhost_pid(host: DevHostProcess) -> int:
    assert host.service is not None
    return host.service.process.pid


def test_episodes_run_in_worker_processes_with_the_same_results(pooled: DevHostProcess) -> None:
    pooled.start_orchestration("whoami", "who-1")
    who = pooled.wait_status("who-1")
    assert who["runtimeStatus"] == "Completed", who
    assert who["output"]["workers"] == "2"  # the app settings reach the workers
    assert who["output"]["pid"] != _devhost_pid(pooled)
    pooled.start_orchestration("fan_out", "fan-1", 20)
    assert pooled.wait_status("fan-1")["output"] == sum(range(1, 21))
    pooled.start_orchestration("use_entity", "ent-1", "pooled-key")
    status = pooled.wait_status("ent-1")
    assert status["output"]["after_add"] == 7 and "entity refused" in status["output"]["failure"]
    assert pooled.client("entity", "pooled-key") == {"exists": True, "state": 7}


def test_a_killed_worker_is_replaced_and_its_episode_retried(pooled: DevHostProcess) -> None:
    pooled.start_orchestration("whoami", "who-2")
    worker = pooled.wait_status("who-2")["output"]["pid"]
    os.kill(worker, signal.SIGKILL)
    pooled.start_orchestration("chain", "after-kill", {"steps": 3})
    status = pooled.wait_status("after-kill")
    assert status["runtimeStatus"] == "Completed" and status["output"] == [1, 2, 3], status
    assert "an app worker process died; starting new ones" in pooled.log()
    pooled.start_orchestration("whoami", "who-3")
    assert pooled.wait_status("who-3")["output"]["pid"] not in (worker, _devhost_pid(pooled))


@pytest.mark.parametrize("value", ["0", "11", "two"])
def test_a_bad_worker_count_is_refused_by_name(tmp_path: Path, value: str) -> None:
    process = DevHostProcess(
        SAMPLE_APP, tmp_path / "state" / "state.db", tmp_path / "marks", env={"FUNCTIONS_WORKER_PROCESS_COUNT": value}
    )
    with pytest.raises(ServiceStartError) as failure:
        process.start()
    assert "FUNCTIONS_WORKER_PROCESS_COUNT" in (tmp_path / "state" / "devhost.log").read_text() + str(failure.value)
