"""HTTP, Event Grid and timer triggers, admin invocation and the clock, on the sample app."""

from __future__ import annotations

import json
import uuid

import requests

from tests.support.devhost_harness import DevHostProcess, wait_until


def test_typed_and_optional_route_parameters(host: DevHostProcess) -> None:
    assert host.call("GET", "/api/items/42", key=None, params={"q": "x"}).json() == {"id": 42, "q": "x"}
    assert host.call("GET", "/api/items/abc", key=None).text == "alpha:abc"  # async handler
    assert host.call("GET", "/api/items/a1", key=None).status_code == 404  # neither int nor alpha
    # optional {instance_id?}: without it the orchestrator gets a generated id
    response = host.call("POST", "/api/orchestrators/chain", data=json.dumps({"steps": 1}))
    assert response.status_code == 202
    assert host.wait_status(response.json()["id"])["output"] == [1]


def test_methods_and_response_translation(host: DevHostProcess) -> None:
    response = host.call("PUT", "/api/echo", data=b"hello")
    assert response.status_code == 201 and response.text == "hello" and response.headers["X-Method"] == "PUT"
    wrong = host.call("GET", "/api/echo")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


def test_function_level_auth(host: DevHostProcess) -> None:
    url = host.url + "/api/echo"
    assert requests.post(url, data=b"x", timeout=10).status_code == 401
    assert requests.post(url, data=b"x", params={"code": "wrong"}, timeout=10).status_code == 401
    assert requests.post(url, data=b"x", params={"code": host.key}, timeout=10).status_code == 201
    assert (
        requests.post(url, data=b"x", headers={"x-functions-key": host.info["keys"]["master"]}, timeout=10).status_code
        == 201
    )


def test_event_grid_validation_handshakes(host: DevHostProcess) -> None:
    url = host.url + "/runtime/webhooks/eventgrid"
    params = {"functionName": "on_event", "code": host.info["keys"]["eventgrid_extension"]}
    validation = [
        {
            "id": "v1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "subject": "",
            "data": {"validationCode": "CODE-123"},
            "eventTime": "2026-01-01T00:00:00Z",
            "dataVersion": "1",
        }
    ]
    response = requests.post(
        url, params=params, json=validation, headers={"aeg-event-type": "SubscriptionValidation"}, timeout=10
    )
    assert response.status_code == 200 and response.json() == {"validationResponse": "CODE-123"}
    options = requests.options(
        url, params=params, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, timeout=10
    )
    assert options.status_code == 200 and options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert requests.post(url, params={"functionName": "on_event"}, json=validation, timeout=10).status_code == 401
    unknown = requests.post(url, params={**params, "functionName": "echo"}, json=validation, timeout=10)
    assert unknown.status_code == 404


def test_event_grid_batches_in_both_schemas_invoke_once_per_event(host: DevHostProcess) -> None:
    url = host.url + "/runtime/webhooks/eventgrid"
    params = {"functionName": "on_event", "code": host.info["keys"]["eventgrid_extension"]}
    batch = [
        {
            "id": f"eg-{i}",
            "eventType": "Sample.Note",
            "subject": "/s",
            "data": {"i": i},
            "eventTime": "2026-01-01T00:00:00Z",
            "dataVersion": "1",
            "topic": "/t",
        }
        for i in range(3)
    ]
    assert (
        requests.post(
            url, params=params, json=batch, headers={"aeg-event-type": "Notification"}, timeout=10
        ).status_code
        == 202
    )
    start_id = uuid.uuid4().hex[:8]
    cloud = {
        "specversion": "1.0",
        "id": start_id,
        "source": "/src",
        "type": "Sample.Start",
        "subject": "/x",
        "time": "2026-01-01T00:00:00Z",
        "data": {"hello": "world"},
    }
    assert requests.post(url, params=params, json=cloud, timeout=10).status_code == 202
    records = host.read_marks("events")
    assert [r["id"] for r in records if r["type"] == "Sample.Note"][-3:] == ["eg-0", "eg-1", "eg-2"]
    assert {
        "schema": "cloudevents",
        "id": start_id,
        "type": "Sample.Start",
        "subject": "/x",
        "data": {"hello": "world"},
    } in records
    # the function used its durable client: the started orchestration completes
    assert host.wait_status(f"eg-{start_id}")["output"] == [1]
    assert requests.post(url, params=params, data=b"[not json", timeout=10).status_code == 400


def test_timespan_timer_fires_as_virtual_time_passes(host: DevHostProcess) -> None:
    before = len(host.read_marks("interval"))
    host.advance(10 * 60 + 1)
    wait_until(lambda: len(host.read_marks("interval")) == before + 1, what="interval timer")
    assert host.read_marks("interval")[-1] == {"past_due": False}


def test_ncrontab_timer_fires_at_the_top_of_the_hour(host: DevHostProcess) -> None:
    before = len(host.read_marks("hourly"))
    host.advance(3600)
    wait_until(lambda: len(host.read_marks("hourly")) >= before + 1, what="hourly timer")


def test_admin_invokes_non_http_functions_by_hand(host: DevHostProcess) -> None:
    before = len(host.read_marks("hourly"))
    assert host.call("POST", "/admin/functions/hourly", key="master", json={"input": ""}).status_code == 202
    wait_until(lambda: len(host.read_marks("hourly")) == before + 1, what="manual invocation")
    assert host.call("POST", "/admin/functions/hourly", key="function", json={}).status_code == 401
    event = json.dumps(
        {
            "id": "by-hand",
            "eventType": "Sample.Note",
            "subject": "/s",
            "data": {},
            "eventTime": "2026-01-01T00:00:00Z",
            "dataVersion": "1",
        }
    )
    assert host.call("POST", "/admin/functions/on_event", key="master", json={"input": event}).status_code == 202
    wait_until(lambda: any(r["id"] == "by-hand" for r in host.read_marks("events")), what="event by hand")
    assert host.call("POST", "/admin/functions/nope", key="master", json={}).status_code == 404


def test_clock_admin_rejects_bad_input(host: DevHostProcess) -> None:
    assert host.call("POST", "/admin/clock/advance", key="master", params={"seconds": "-5"}).status_code == 400
    assert host.call("POST", "/admin/clock/advance", key="master", params={"seconds": "abc"}).status_code == 400
    assert host.call("POST", "/admin/clock/advance", key="master").status_code == 400
    assert host.call("GET", "/admin/clock", key="master").json()["mode"] == "manual"


def test_one_log_line_per_invocation(host: DevHostProcess) -> None:
    host.start_orchestration("chain", "logged-1", {"steps": 1})
    host.wait_status("logged-1")
    log = host.log()
    assert "Executed 'Functions.chain' (Succeeded, InstanceId=logged-1, Duration=" in log
    assert "Executed 'Functions.add_one' (Succeeded, InstanceId=logged-1, Duration=" in log


def test_host_status_reports_the_backlog(host: DevHostProcess) -> None:
    host.start_orchestration("sleeper", "backlog-1", 5)
    host.wait_timers("backlog-1", 1)
    status = wait_until(lambda: (s := host.call("GET", "/admin/host/status").json())["idle"] and s, what="idle")
    assert status["readyMessages"] == 0 and status["pendingActivities"] == 0
    assert "chain" in status["functions"]
