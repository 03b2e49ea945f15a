"""The Durable HTTP API, through the real DurableOrchestrationClient and over raw HTTP."""

from __future__ import annotations

import json

import requests

from tests.support.devhost_harness import DevHostProcess, wait_until


def test_start_returns_check_status_links_that_work_when_followed(host: DevHostProcess) -> None:
    response = host.start_orchestration("chain", "links-1", {"steps": 1})
    assert response.status_code == 202
    links = response.json()
    assert response.headers["Location"] == links["statusQueryGetUri"]
    assert set(links) >= {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"}
    host.wait_status("links-1")
    followed = requests.get(links["statusQueryGetUri"], timeout=10)
    assert followed.status_code == 200
    assert followed.json()["runtimeStatus"] == "Completed"
    assert followed.json()["input"] == '{"steps": 1}'  # the SDK client JSON-encodes input, as in Azure
    purged = requests.delete(links["purgeHistoryDeleteUri"], timeout=10)
    assert purged.json() == {"instancesDeleted": 1}
    assert requests.get(links["statusQueryGetUri"], timeout=10).status_code == 404


def test_start_without_instance_id_generates_one(host: DevHostProcess) -> None:
    response = host.mgmt("POST", "orchestrators/chain", json={"steps": 1})
    assert response.status_code == 202
    instance_id = response.json()["id"]
    assert len(instance_id) == 32
    assert host.wait_status(instance_id)["output"] == [1]


def test_start_with_running_id_conflicts_and_completed_id_is_replaced(host: DevHostProcess) -> None:
    host.start_orchestration("wait_event", "dup-1")
    host.wait_status("dup-1", ("Running",))
    again = host.mgmt("POST", "orchestrators/wait_event/dup-1")
    assert again.status_code == 409
    assert "already exists" in again.json()["Message"]
    host.client("terminate", "dup-1", "done")
    assert host.wait_status("dup-1")["runtimeStatus"] == "Terminated"
    assert host.mgmt("POST", "orchestrators/chain/dup-1", json={"steps": 1}).status_code == 202
    assert host.wait_status("dup-1")["output"] == [1]


def test_unknown_orchestrator_is_a_400_and_nothing_is_created(host: DevHostProcess) -> None:
    response = host.mgmt("POST", "orchestrators/nope/x-1")
    assert response.status_code == 400
    assert "nope" in response.json()["ExceptionMessage"]
    assert host.mgmt("GET", "instances/x-1").status_code == 404


def test_bad_json_body_is_rejected(host: DevHostProcess) -> None:
    response = host.mgmt(
        "POST", "orchestrators/chain/badjson", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert host.mgmt("GET", "instances/badjson").status_code == 404


def test_status_codes_and_history_options(host: DevHostProcess) -> None:
    host.start_orchestration("wait_event", "st-1")
    host.wait_status("st-1", ("Running",))
    running = host.mgmt("GET", "instances/st-1")
    assert running.status_code == 202 and running.headers["Retry-After"] == "5"
    host.client("raise", "st-1", {"name": "go", "data": 1})
    host.wait_status("st-1")
    done = host.mgmt("GET", "instances/st-1", params={"showHistory": "true", "showHistoryOutput": "true"})
    assert done.status_code == 200
    events = done.json()["historyEvents"]
    kinds = [e["EventType"] for e in events]
    # The timer was cancelled before it fired; orchestrator episode markers are not shown.
    assert kinds == ["ExecutionStarted", "TimerCreated", "EventRaised", "ExecutionCompleted"]
    assert events[-1]["OrchestrationStatus"] == "Completed" and events[-1]["Result"] == {"event": 1}
    raised = next(e for e in events if e["EventType"] == "EventRaised")
    assert raised["Name"] == "go"
    # The extension strips every event's Input from the history, showInput or not.
    assert [e for e in events if "Input" in e] == []
    no_input = host.mgmt("GET", "instances/st-1", params={"showInput": "false"}).json()
    assert no_input["input"] is None


def test_status_through_the_sdk_client(host: DevHostProcess) -> None:
    host.start_orchestration("chain", "sdk-st", {"steps": 2})
    host.wait_status("sdk-st")
    status = host.client("status", "sdk-st")
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == [1, 2]
    activity_results = [e for e in status["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert [e["FunctionName"] for e in activity_results] == ["add_one", "add_one"]
    assert [e["Result"] for e in activity_results] == [1, 2]
    assert [e["EventType"] for e in status["historyEvents"] if "Input" in e] == []


def test_query_by_status_prefix_and_time(host: DevHostProcess) -> None:
    for i in range(3):
        host.start_orchestration("chain", f"q-done-{i}", {"steps": 1})
        host.wait_status(f"q-done-{i}")
    host.start_orchestration("wait_event", "q-run-0")
    host.wait_status("q-run-0", ("Running",))
    assert host.client("query", "x", {"prefix": "q-done-"}) == ["q-done-0", "q-done-1", "q-done-2"]
    assert host.client("query", "x", {"prefix": "q-", "statuses": ["Running"]}) == ["q-run-0"]
    page = host.mgmt("GET", "instances", params={"instanceIdPrefix": "q-", "top": "2"})
    assert len(page.json()) == 2
    token = page.headers["x-ms-continuation-token"]
    rest = host.mgmt(
        "GET", "instances", params={"instanceIdPrefix": "q-", "top": "2"}, headers={"x-ms-continuation-token": token}
    )
    assert {s["instanceId"] for s in page.json() + rest.json()} == {"q-done-0", "q-done-1", "q-done-2", "q-run-0"}
    future = host.mgmt("GET", "instances", params={"createdTimeFrom": "2999-01-01T00:00:00Z"}).json()
    assert future == []
    bad = host.mgmt("GET", "instances", params={"runtimeStatus": "Sleeping"})
    assert bad.status_code == 400


def test_raise_event_errors(host: DevHostProcess) -> None:
    assert host.mgmt("POST", "instances/missing/raiseEvent/go", json=1).status_code == 404
    host.start_orchestration("chain", "ev-done", {"steps": 1})
    host.wait_status("ev-done")
    assert host.mgmt("POST", "instances/ev-done/raiseEvent/go", json=1).status_code == 410
    host.start_orchestration("raw_event", "ev-ctype")
    host.wait_status("ev-ctype", ("Running",))
    wrong = host.mgmt("POST", "instances/ev-ctype/raiseEvent/go", data="x", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 400
    assert host.mgmt("POST", "instances/ev-ctype/raiseEvent/go", json={"a": 1}).status_code == 202
    assert host.wait_status("ev-ctype")["output"] == {"a": 1}


def test_terminate_suspend_resume(host: DevHostProcess) -> None:
    host.start_orchestration("two_events", "ctl-1")
    host.wait_status("ctl-1", ("Running",))
    host.client("suspend", "ctl-1")
    host.wait_status("ctl-1", ("Suspended",))
    host.client("raise", "ctl-1", {"name": "first", "data": {"v": 1}})
    host.client("raise", "ctl-1", {"name": "second", "data": {"v": 2}})
    assert host.status("ctl-1")["runtimeStatus"] == "Suspended"  # events wait while suspended
    host.client("resume", "ctl-1")
    assert host.wait_status("ctl-1")["output"] == [{"v": 1}, {"v": 2}]
    host.start_orchestration("two_events", "ctl-2")
    host.wait_status("ctl-2", ("Running",))
    host.client("terminate", "ctl-2", "operator said so")
    status = host.wait_status("ctl-2")
    assert status["runtimeStatus"] == "Terminated" and status["output"] == "operator said so"
    history = host.history("ctl-2")
    assert [e["EventType"] for e in history] == ["ExecutionStarted", "ExecutionTerminated", "ExecutionCompleted"]
    assert history[-1]["OrchestrationStatus"] == "Terminated" and history[-1]["Result"] == "operator said so"
    assert host.mgmt("POST", "instances/ctl-2/terminate", params={"reason": "again"}).status_code == 410
    assert host.mgmt("POST", "instances/nobody/suspend").status_code == 404


def test_purge_rules(host: DevHostProcess) -> None:
    host.start_orchestration("raw_event", "purge-run")
    host.wait_status("purge-run", ("Running",))
    assert host.mgmt("DELETE", "instances/purge-run").status_code == 412
    assert host.client("purge", "nobody") == 0
    host.start_orchestration("chain", "purge-done", {"steps": 1})
    host.wait_status("purge-done")
    assert host.client("purge", "purge-done") == 1
    assert host.mgmt("DELETE", "instances").status_code == 400  # createdTimeFrom is required


def test_restart_starts_a_new_instance_with_the_same_input(host: DevHostProcess) -> None:
    host.start_orchestration("chain", "rs-1", {"steps": 2})
    host.wait_status("rs-1")
    response = host.mgmt("POST", "instances/rs-1/restart")
    assert response.status_code == 202
    new_id = response.json()["id"]
    assert new_id != "rs-1"
    assert host.wait_status(new_id)["output"] == [1, 2]


def test_entity_signal_and_state_from_client(host: DevHostProcess) -> None:
    host.client("signal", "k-client", {"op": "add", "input": 3})
    host.client("signal", "k-client", {"op": "add", "input": 4})
    wait_until(lambda: host.client("entity", "k-client") == {"exists": True, "state": 7}, what="entity state 7")
    assert host.client("entity", "k-none") == {"exists": False, "state": None}
    raw = host.mgmt("GET", "entities/counter/k-client")
    assert raw.status_code == 200 and raw.json() == 7
    assert host.mgmt("POST", "entities/counter/k-client").status_code == 400  # op is required
    assert host.mgmt("POST", "entities/counter/k-client", params={"op": "reset"}).status_code == 202
    wait_until(lambda: host.mgmt("GET", "entities/counter/k-client").json() == 0, what="reset")


def test_management_api_requires_the_system_key(host: DevHostProcess) -> None:
    url = host.url + "/runtime/webhooks/durabletask/instances"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, params={"code": host.info["keys"]["function"]}, timeout=10).status_code == 401
    assert requests.get(url, params={"code": host.info["keys"]["durabletask_extension"]}, timeout=10).status_code == 200


def test_client_binding_points_at_devhost(host: DevHostProcess) -> None:
    links = host.client("links", "some-id")
    assert links["statusQueryGetUri"].startswith(host.url + "/runtime/webhooks/durabletask/instances/some-id?")
    assert "taskHub=SampleHub" in links["statusQueryGetUri"]
    assert json.loads(json.dumps(links))["id"] == "some-id"
