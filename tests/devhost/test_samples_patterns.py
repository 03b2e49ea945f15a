"""The Durable patterns of azure-functions-durable-python samples-v2 (function_chaining, blueprint,
serialize_arguments, simple_sub_orchestration, fan_in_fan_out), each in an app of our own
(tests/devhost/apps/patterns) run by devhost through the real SDK, asserting what the samples and
the tutorials their READMEs point to say the result is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.devhost_harness import DevHostProcess

PATTERNS_APP = Path(__file__).parent / "apps" / "patterns"


@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHostProcess]:
    base = tmp_path_factory.mktemp("patterns")
    process = DevHostProcess(PATTERNS_APP, base / "state" / "state.db", base / "marks").start()
    yield process
    process.stop()


def _run(host: DevHostProcess, path: str, payload: Any = None) -> dict[str, Any]:
    """Start through the app's own HTTP starter and wait for the instance to finish."""
    response = host.call("POST", path, data=json.dumps(payload) if payload is not None else None)
    assert response.status_code == 202, response.text
    return host.wait_status(response.json()["id"])


def test_function_chaining_greets_the_three_cities_in_order(patterns: DevHostProcess) -> None:
    status = _run(patterns, "/api/start/greet_cities")
    # durable-functions-sequence (Python): ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    history = patterns.history(status["instanceId"])
    assert [(e["EventType"], e.get("FunctionName")) for e in history] == [
        ("ExecutionStarted", "greet_cities"),
        ("TaskCompleted", "greet"),
        ("TaskCompleted", "greet"),
        ("TaskCompleted", "greet"),
        ("ExecutionCompleted", None),
    ]


def test_blueprint_functions_registered_into_the_app_run(patterns: DevHostProcess) -> None:
    status = _run(patterns, "/api/blueprint/start")
    assert status["name"] == "blueprint_tour" and status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Welcome to Oslo!", "Welcome to Lima!", "Welcome to Perth!"]


def test_custom_classes_cross_orchestrator_and_activity_through_to_json_from_json(patterns: DevHostProcess) -> None:
    status = _run(patterns, "/api/parcels/start")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {
        "inputType": "Parcel",
        "inputGrams": 5,
        "activityResultType": "Parcel",
        "activityResultGrams": 7,
    }
    # Stored the way the SDK serializes a custom object: its class, module and to_json text.
    assert json.loads(status["input"]) == {
        "__class__": "Parcel",
        "__module__": "parcel",
        "__data__": json.dumps({"label": "books", "grams": 5}),
    }


def test_sub_orchestration_result_reaches_the_parent(patterns: DevHostProcess) -> None:
    status = _run(patterns, "/api/start/visit", "Seattle")
    assert status["runtimeStatus"] == "Completed" and status["output"] == "Hello Seattle!"
    kinds = [e["EventType"] for e in patterns.history(status["instanceId"])]
    assert kinds == ["ExecutionStarted", "SubOrchestrationInstanceCompleted", "ExecutionCompleted"]


def test_fan_out_fan_in_backs_up_every_file_and_sums_the_bytes(patterns: DevHostProcess, tmp_path: Path) -> None:
    source, target = tmp_path / "site", tmp_path / "backup"
    contents = {"index.html": b"<h1>hi</h1>", "css/site.css": b"body{}" * 50, "img/a/logo.svg": b"<svg/>" * 7}
    for relative, data in contents.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    status = _run(patterns, "/api/start/back_up_directory", {"source": str(source), "target": str(target)})
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"files": 3, "bytes": sum(len(d) for d in contents.values())}
    for relative, data in contents.items():
        assert (target / relative).read_bytes() == data
    history = patterns.history(status["instanceId"])
    copies = [e for e in history if e["EventType"] == "TaskCompleted" and e["FunctionName"] == "copy_file"]
    assert len(copies) == 3


def test_fan_out_fan_in_without_a_directory_fails_the_orchestration(patterns: DevHostProcess) -> None:
    status = _run(patterns, "/api/start/back_up_directory", {"target": "/nowhere"})
    assert status["runtimeStatus"] == "Failed"
    assert "a source directory is required as input" in status["output"]
    assert status["output"].startswith("Orchestrator function 'back_up_directory' failed:")
    assert [e["EventType"] for e in patterns.history(status["instanceId"])] == [
        "ExecutionStarted",
        "ExecutionCompleted",
    ]
