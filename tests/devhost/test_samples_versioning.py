"""Orchestration versioning through devhost and the real SDK: the three scenarios of samples-v2
orchestration_versioning's README (default version, an explicit older version, an upgrade to 2.0
with an instance in flight), and the match/failure strategies of host.json."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.devhost_harness import DevHostProcess, wait_until

VERSIONING_APP = Path(__file__).parent / "apps" / "versioning"


class VersionedApp:
    """A copy of the versioning app whose host.json a test may change between devhost runs."""

    def __init__(self, base: Path):
        self.app_dir = base / "app"
        shutil.copytree(VERSIONING_APP, self.app_dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.host = DevHostProcess(self.app_dir, base / "state" / "state.db", base / "marks")

    def configure(self, **durable_task: str) -> None:
        path = self.app_dir / "host.json"
        config = json.loads(path.read_text())
        config["extensions"]["durableTask"].update(durable_task)
        path.write_text(json.dumps(config))

    def start(self, name: str, instance_id: str, version: str | None = None) -> None:
        params = {"version": version} if version else None
        response = self.host.call("POST", f"/api/start/{name}/{instance_id}", params=params)
        assert response.status_code == 202, response.text

    def proceed(self, instance_id: str) -> None:
        self.host.wait_status(instance_id, ("Running",))
        wait_until(
            lambda: self.host.status(instance_id).get("customStatus") == "waiting for Proceed",
            20,
            f"{instance_id} to wait for Proceed",
        )
        response = self.host.mgmt("POST", f"instances/{instance_id}/raiseEvent/Proceed", json=True)
        assert response.status_code == 202, response.text


@pytest.fixture
def versioned(tmp_path: Path) -> Iterator[VersionedApp]:
    app = VersionedApp(tmp_path)
    yield app
    app.host.stop(kill=True)


def _output(app: VersionedApp, instance_id: str) -> Any:
    status = app.host.wait_status(instance_id)
    assert status["runtimeStatus"] == "Completed", status
    return status["output"]


def test_default_version_comes_from_host_json(versioned: VersionedApp) -> None:
    versioned.host.start()
    versioned.start("versioned_flow", "v-default")
    versioned.proceed("v-default")
    assert _output(versioned, "v-default") == {
        "version": "1.0",
        "pinnedChild": "0.9",
        "defaultChild": "1.0",
        "greeting": "greeting from the 1.0 path",
    }


def test_explicit_version_wins_over_the_default(versioned: VersionedApp) -> None:
    versioned.host.start()
    versioned.start("versioned_flow", "v-explicit", version="0.9")
    versioned.proceed("v-explicit")
    assert _output(versioned, "v-explicit") == {
        "version": "0.9",
        "pinnedChild": "0.9",
        "defaultChild": "1.0",
        "greeting": "greeting from the newer path",
    }


def test_upgrade_to_2_0_keeps_the_in_flight_instance_on_its_version(versioned: VersionedApp) -> None:
    versioned.host.start()
    versioned.start("versioned_flow", "v-inflight")
    versioned.host.wait_status("v-inflight", ("Running",))
    wait_until(lambda: versioned.host.status("v-inflight").get("customStatus") == "waiting for Proceed", 20, "the wait")
    versioned.host.stop()
    versioned.configure(defaultVersion="2.0")
    versioned.host.start()
    versioned.proceed("v-inflight")
    # README: the instance keeps 1.0 and its old path; a child created after the change gets 2.0.
    assert _output(versioned, "v-inflight") == {
        "version": "1.0",
        "pinnedChild": "0.9",
        "defaultChild": "2.0",
        "greeting": "greeting from the 1.0 path",
    }
    versioned.start("versioned_flow", "v-new")
    versioned.proceed("v-new")
    assert _output(versioned, "v-new") == {
        "version": "2.0",
        "pinnedChild": "0.9",
        "defaultChild": "2.0",
        "greeting": "greeting from the newer path",
    }


def test_unversioned_host_gives_instances_a_null_version(versioned: VersionedApp) -> None:
    path = versioned.app_dir / "host.json"
    config = json.loads(path.read_text())
    del config["extensions"]["durableTask"]["defaultVersion"]
    path.write_text(json.dumps(config))
    versioned.host.start()
    versioned.start("quick", "v-none")
    status = versioned.host.wait_status("v-none")
    assert status["runtimeStatus"] == "Completed" and status["output"] is None


def test_newer_instance_is_rejected_until_a_host_with_its_version_runs(versioned: VersionedApp) -> None:
    versioned.host.start()  # CurrentOrOlder + Reject, the defaults
    versioned.start("quick", "v-newer", version="2.0")
    wait_until(lambda: "v-newer" in versioned.host.log() and "rejected" in versioned.host.log(), 20, "the rejection")
    versioned.host.advance(30)  # retried several times, still rejected
    wait_until(lambda: versioned.host.log().count("instance v-newer has version '2.0'") >= 2, 20, "a retry")
    status = versioned.host.status("v-newer")
    assert status["runtimeStatus"] == "Pending" and versioned.host.history("v-newer") == []
    versioned.host.stop()
    versioned.configure(defaultVersion="2.0")
    versioned.host.start()
    versioned.host.advance(10)
    assert _output(versioned, "v-newer") == "2.0"


def test_strict_fail_fails_a_mismatched_instance_with_version_mismatch(versioned: VersionedApp) -> None:
    versioned.configure(versionMatchStrategy="Strict", versionFailureStrategy="Fail")
    versioned.host.start()
    versioned.start("quick", "v-older", version="0.9")  # older is fine under CurrentOrOlder, not Strict
    status = versioned.host.wait_status("v-older")
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == "Orchestration version did not comply with Worker Versioning"
    history = versioned.host.history("v-older")
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "ExecutionCompleted"]
    assert history[-1]["OrchestrationStatus"] == "Failed"
    assert "v-older" in versioned.host.log() and "versionFailureStrategy Fail" in versioned.host.log()
    versioned.start("quick", "v-same", version="1.0")
    assert _output(versioned, "v-same") == "1.0"


def test_match_strategy_none_runs_any_version(versioned: VersionedApp) -> None:
    versioned.configure(versionMatchStrategy="None", versionFailureStrategy="Fail")
    versioned.host.start()
    versioned.start("quick", "v-any", version="9.0")
    assert _output(versioned, "v-any") == "9.0"
