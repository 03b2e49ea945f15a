"""The HTTP API and the upstream Event Grid trigger on devhost + both emulators (manual clock),
over real HTTP with the function key. One stack serves the whole module; every test uses run ids
of its own. Bad input must change nothing: no orchestration instance (devhost's management API)
and no backup job (the Recovery Services emulator's admin API)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from demo.stack import Stack, vm_id
from harness.chain_stack import chain, running_stack, scenario, types_for, vm

ETL_TYPE = "Contoso.Etl.JobFinished"
ETL_SUBJECT = "/jobs/nightly-etl"
APP01, APP02, APP03 = vm_id("app01"), vm_id("app02"), vm_id("app03")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chains = [
        chain(
            "nightly",
            ["app01", "app02"],
            upstream={"eventType": ETL_TYPE, "subject": ETL_SUBJECT, "timeout": "PT6H", "onFailure": "skip"},
            monitorTransfer=False,
        ),
        chain("adhoc", ["app03"], monitorTransfer=False),
    ]
    body = scenario([vm("app01"), vm("app02", os="Windows"), vm("app03")])
    with running_stack(tmp_path_factory.mktemp("chain-http"), body, chains) as running:
        running.settle()
        yield running


# --- what exists -------------------------------------------------------------------------------
def instances(stack: Stack) -> dict[str, str]:
    """Every orchestration instance devhost knows: instance id -> runtime status."""
    response = requests.get(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances",
        params={"code": stack.keys["durabletask_extension"]},
        timeout=30,
    )
    response.raise_for_status()
    return {row["instanceId"]: row["runtimeStatus"] for row in response.json()}


def jobs(stack: Stack) -> list[str]:
    return sorted(job["id"] for job in stack.admin("recoveryservices", "GET", "/admin/jobs"))


@contextmanager
def nothing_started(stack: Stack) -> Iterator[None]:
    stack.settle()
    before_instances, before_jobs, before_events = set(instances(stack)), jobs(stack), len(stack.downstream())
    yield
    stack.settle()
    assert set(instances(stack)) == before_instances, "an orchestration was started"
    assert jobs(stack) == before_jobs, "a backup job was started"
    assert len(stack.downstream()) == before_events, "an event was published"


def problem(response: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return dict(body)


def raw(stack: Stack, method: str, path: str, data: bytes | str, *, key: str | None = "function") -> requests.Response:
    headers = {"x-functions-key": stack.keys[key]} if key else {}
    return requests.request(method, f"{stack.devhost.url}/api/{path}", data=data, headers=headers, timeout=30)


def run_status(stack: Stack, chain_name: str, run_id: str) -> dict[str, Any]:
    response = stack.api("GET", f"chains/{chain_name}/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def phase_is(stack: Stack, chain_name: str, run_id: str, phase: str) -> Callable[[], bool]:
    return lambda: run_status(stack, chain_name, run_id)["phase"] == phase


# --- POST /api/chains/{chain}/runs ---------------------------------------------------------------
def test_start_run_is_202_then_idempotent_200_and_backs_up_only_the_requested_vms(stack: Stack) -> None:
    first = stack.api("POST", "chains/nightly/runs", {"runId": "subset-1", "vms": [APP01]})
    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["chain"], body["runId"], body["started"]) == ("nightly", "subset-1", True)
    assert body["instanceId"] == "chain:nightly:subset-1"

    again = stack.api("POST", "chains/nightly/runs", {"runId": "subset-1", "vms": [APP01]})
    assert again.status_code == 200, again.text
    assert (again.json()["runId"], again.json()["started"]) == ("subset-1", False)

    stack.run_until(
        lambda: run_status(stack, "nightly", "subset-1")["phase"] == "completed", step=60, what="subset run"
    )
    run = run_status(stack, "nightly", "subset-1")
    assert run["outcome"] == "completed"
    assert run["runtimeStatus"] == "Completed"
    assert run["output"]["counts"] == {"snapshotCompleted": 1}  # monitorTransfer: false
    # Only the requested VM belongs to the run, and it reports its phase, job id and times.
    assert [v["vmId"] for v in run["vms"]] == [APP01]
    (app01,) = run["vms"]
    assert app01["phase"] == "snapshotCompleted"
    assert app01["runtimeStatus"] == "Completed"
    assert app01["jobId"] in jobs(stack)
    assert app01["snapshotCompletedAt"] and app01["updatedAt"] and app01["triggeredAt"]
    events = stack.downstream()
    assert types_for(events, "app01")[:2] == ["BackupTriggered", "SnapshotCompleted"]
    assert types_for(events, "app02") == []
    # The retried request started no second backup.
    assert len([j for j in stack.admin("recoveryservices", "GET", "/admin/jobs") if j["vm"] == "app01"]) == 1


def test_start_run_without_run_id_names_one(stack: Stack) -> None:
    response = stack.api("POST", "chains/adhoc/runs", {"waitForUpstream": False})
    assert response.status_code == 202, response.text
    run_id = response.json()["runId"]
    assert run_id.startswith("h-")
    assert run_status(stack, "adhoc", run_id)["runId"] == run_id
    stack.api("POST", f"chains/adhoc/runs/{run_id}/cancel")


def test_empty_body_starts_a_run(stack: Stack) -> None:
    response = raw(stack, "POST", "chains/adhoc/runs", b"")
    assert response.status_code == 202, response.text
    stack.api("POST", f"chains/adhoc/runs/{response.json()['runId']}/cancel")


# --- waiting for upstream, POST …/upstream, POST …/cancel ----------------------------------------
def test_waiting_run_takes_an_upstream_report_once(stack: Stack) -> None:
    response = stack.api("POST", "chains/nightly/runs", {"runId": "wait-1", "waitForUpstream": True})
    assert response.status_code == 202, response.text
    stack.wait(phase_is(stack, "nightly", "wait-1", "waitingForUpstream"), what="run to wait for upstream")
    assert run_status(stack, "nightly", "wait-1")["custom"]["deadline"]

    report = stack.api("POST", "chains/nightly/runs/wait-1/upstream", {"status": "Failed", "detail": {"exit": 3}})
    assert report.status_code == 202, report.text
    assert report.json() == {"chain": "nightly", "runId": "wait-1", "accepted": True}
    stack.settle()
    stack.wait(phase_is(stack, "nightly", "wait-1", "completed"), what="run to end")
    run = run_status(stack, "nightly", "wait-1")
    assert run["outcome"] == "skipped"  # onFailure: skip
    assert run["custom"]["upstream"]["status"] == "Failed"
    assert run["custom"]["upstream"]["detail"] == {"exit": 3}

    with nothing_started(stack):
        problem(stack.api("POST", "chains/nightly/runs/wait-1/upstream", {"status": "Succeeded"}), 409)


def test_upstream_report_on_a_run_that_is_not_waiting_is_409(stack: Stack) -> None:
    assert stack.api("POST", "chains/nightly/runs", {"runId": "nowait-1", "vms": [APP02]}).status_code == 202
    stack.settle()
    problem(stack.api("POST", "chains/nightly/runs/nowait-1/upstream", {"status": "Succeeded"}), 409)
    assert stack.api("POST", "chains/nightly/runs/nowait-1/cancel").status_code == 202


def test_upstream_report_for_unknown_run_is_404(stack: Stack) -> None:
    with nothing_started(stack):
        problem(stack.api("POST", "chains/nightly/runs/no-such-run/upstream", {"status": "Succeeded"}), 404, "runId")


def test_cancel_a_waiting_run_then_409_once_ended(stack: Stack) -> None:
    assert stack.api("POST", "chains/nightly/runs", {"runId": "cancel-1", "waitForUpstream": True}).status_code == 202
    stack.wait(phase_is(stack, "nightly", "cancel-1", "waitingForUpstream"), what="run to wait for upstream")
    response = stack.api("POST", "chains/nightly/runs/cancel-1/cancel")
    assert response.status_code == 202, response.text
    assert response.json()["cancelled"] is True
    stack.settle()
    stack.wait(phase_is(stack, "nightly", "cancel-1", "completed"), what="cancelled run to end")
    run = run_status(stack, "nightly", "cancel-1")
    assert (run["outcome"], run["runtimeStatus"]) == ("cancelled", "Completed")
    assert types_for(stack.downstream(), None).count("ChainCompleted") >= 1
    with nothing_started(stack):
        problem(stack.api("POST", "chains/nightly/runs/cancel-1/cancel"), 409)
        problem(stack.api("POST", "chains/nightly/runs/cancel-1/upstream", {"status": "Succeeded"}), 409)


def test_cancel_unknown_run_is_404(stack: Stack) -> None:
    with nothing_started(stack):
        problem(stack.api("POST", "chains/nightly/runs/never-started/cancel"), 404, "runId")


# --- GET -------------------------------------------------------------------------------------
def test_get_unknown_run_is_404(stack: Stack) -> None:
    problem(stack.api("GET", "chains/nightly/runs/never-started"), 404, "runId")


def test_list_runs_newest_first_and_top(stack: Stack) -> None:
    for run_id in ("list-a", "list-b"):
        assert stack.api("POST", "chains/nightly/runs", {"runId": run_id, "waitForUpstream": True}).status_code == 202
        stack.advance(1)  # distinct creation times
        stack.settle()
    listing = stack.api("GET", "chains/nightly/runs")
    assert listing.status_code == 200, listing.text
    runs = listing.json()["runs"]
    ids = [r["runId"] for r in runs]
    assert {"list-a", "list-b"} <= set(ids)
    assert ids.index("list-b") < ids.index("list-a")
    created = [r["createdTime"] for r in runs]
    assert created == sorted(created, reverse=True)
    assert all(r["instanceId"].startswith("chain:nightly:") for r in runs)
    assert all(not r["instanceId"].startswith("chain:adhoc:") for r in runs)

    top = stack.api("GET", "chains/nightly/runs?top=1").json()["runs"]
    assert [r["runId"] for r in top] == [ids[0]]
    for bad in ("0", "501", "abc", "-1", "1.5"):
        problem(stack.api("GET", f"chains/nightly/runs?top={bad}"), 400, "top")
    for run_id in ("list-a", "list-b"):
        stack.api("POST", f"chains/nightly/runs/{run_id}/cancel")


# --- bad input: nothing is started -------------------------------------------------------------
BAD_START_BODIES: list[tuple[str, Any, str | None]] = [
    ("wrong type of runId", {"runId": 5}, "runId"),
    ("invalid runId", {"runId": "bad id!"}, "runId"),
    ("runId with a newline", {"runId": "r1\n"}, "runId"),
    ("string for a boolean", {"waitForUpstream": "yes"}, "waitForUpstream"),
    ("number for a boolean", {"waitForUpstream": 1}, "waitForUpstream"),
    ("unknown field", {"runID": "r1"}, "runID"),
    ("vms not a list", {"vms": APP01}, "vms"),
    ("vms empty", {"vms": []}, "vms"),
    ("vms not a resource id", {"vms": ["app01"]}, "vms"),
    ("VM not in the chain", {"vms": [APP01, APP03]}, "vms"),
    ("bad upstream status", {"upstream": {"status": "Done"}}, "upstream.status"),
    ("unknown upstream field", {"upstream": {"status": "Failed", "why": 1}}, "upstream.why"),
    ("wait and upstream", {"waitForUpstream": True, "upstream": {"status": "Succeeded"}}, "upstream"),
    ("oversized detail", {"upstream": {"status": "Failed", "detail": "x" * 20000}}, "upstream.detail"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_START_BODIES], ids=[n for n, _, _ in BAD_START_BODIES]
)
def test_bad_start_bodies_are_400_naming_the_field(stack: Stack, body: Any, field: str) -> None:
    with nothing_started(stack):
        detail = problem(stack.api("POST", "chains/nightly/runs", body), 400, field)["detail"]
    assert field.split(".")[0] in detail or "VM" in detail


def test_malformed_bodies_are_400_and_oversized_413(stack: Stack) -> None:
    with nothing_started(stack):
        for data in (b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"[" * 10000):
            problem(raw(stack, "POST", "chains/nightly/runs", data), 400)
            problem(raw(stack, "POST", "chains/nightly/runs/wait-1/upstream", data), 400)
        big = json.dumps({"runId": "big", "upstream": {"status": "Failed", "detail": "x" * 70000}})
        problem(raw(stack, "POST", "chains/nightly/runs", big), 413)
        problem(raw(stack, "POST", "chains/nightly/runs/wait-1/upstream", big), 413)


def test_wait_for_upstream_on_a_chain_without_upstream_is_400(stack: Stack) -> None:
    with nothing_started(stack):
        problem(stack.api("POST", "chains/adhoc/runs", {"waitForUpstream": True}), 400, "waitForUpstream")


def test_bad_upstream_reports_are_400(stack: Stack) -> None:
    assert stack.api("POST", "chains/nightly/runs", {"runId": "wait-bad", "waitForUpstream": True}).status_code == 202
    stack.wait(phase_is(stack, "nightly", "wait-bad", "waitingForUpstream"), what="run to wait for upstream")
    with nothing_started(stack):
        problem(raw(stack, "POST", "chains/nightly/runs/wait-bad/upstream", b""), 400)
        problem(stack.api("POST", "chains/nightly/runs/wait-bad/upstream", {}), 400, "status")
        problem(stack.api("POST", "chains/nightly/runs/wait-bad/upstream", {"status": "ok"}), 400, "status")
        problem(stack.api("POST", "chains/nightly/runs/wait-bad/upstream", {"status": 1}), 400, "status")
        problem(stack.api("POST", "chains/nightly/runs/wait-bad/upstream", {"status": "Failed", "x": 1}), 400, "x")
    assert run_status(stack, "nightly", "wait-bad")["phase"] == "waitingForUpstream"
    stack.api("POST", "chains/nightly/runs/wait-bad/cancel")


ROUTES = [
    ("POST", "chains/{chain}/runs", {"runId": "r-x"}),
    ("GET", "chains/{chain}/runs", None),
    ("GET", "chains/{chain}/runs/{run}", None),
    ("POST", "chains/{chain}/runs/{run}/upstream", {"status": "Succeeded"}),
    ("POST", "chains/{chain}/runs/{run}/cancel", None),
]


@pytest.mark.parametrize(("method", "route", "body"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_every_route_rejects_unknown_chain_invalid_run_and_missing_key(
    stack: Stack, method: str, route: str, body: Any
) -> None:
    with nothing_started(stack):
        detail = problem(stack.api(method, route.format(chain="weekly-etl", run="wait-1"), body), 404, "chain")
        assert "nightly" in detail["detail"]  # names the configured chains
        if "{run}" in route:
            for bad in ("bad!id", "-lead", "x" * 81):
                problem(stack.api(method, route.format(chain="nightly", run=bad), body), 404, "runId")
            # devhost's router already answers a path segment with a newline with a plain 404
            assert stack.api(method, route.format(chain="nightly", run="r1%0A"), body).status_code == 404
        path = route.format(chain="nightly", run="wait-1")
        data = json.dumps(body) if body is not None else None
        url = f"{stack.devhost.url}/api/{path}"
        assert requests.request(method, url, data=data, timeout=30).status_code == 401
        wrong = {"x-functions-key": secrets.token_urlsafe(24)}
        assert requests.request(method, url, data=data, headers=wrong, timeout=30).status_code == 401


# --- the upstream Event Grid trigger -------------------------------------------------------------
def deliver(stack: Stack, events: Any) -> requests.Response:
    """Post a delivery straight to the Event Grid trigger webhook, as Event Grid does."""
    return requests.post(
        f"{stack.devhost.url}/runtime/webhooks/eventgrid",
        params={"functionName": "upstream_event", "code": stack.keys["eventgrid_extension"]},
        data=json.dumps(events),
        headers={"Content-Type": "application/cloudevents-batch+json; charset=utf-8", "aeg-event-type": "Notification"},
        timeout=30,
    )


def cloud_event(**fields: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "source": "/upstream/tests",
        "type": ETL_TYPE,
        "subject": ETL_SUBJECT,
        "time": "2025-01-01T00:00:00Z",
        "data": {"status": "Succeeded"},
        **fields,
    }


REJECTED_EVENTS = [
    ("no chain's type", cloud_event(type="Contoso.Etl.JobStarted")),
    ("no chain's subject", cloud_event(subject="/jobs/nightly-etl-2")),
    ("no subject", cloud_event(subject=None)),
    ("no id", cloud_event(id=None)),
    ("no type", cloud_event(type=None)),
    ("numeric type", cloud_event(type=42)),
    ("object subject", cloud_event(subject={"path": ETL_SUBJECT})),
    ("numeric id", cloud_event(id=7)),
    ("oversized data", cloud_event(data={"status": "Succeeded", "detail": "x" * (70 * 1024)})),
]


@pytest.mark.parametrize("event", [e for _, e in REJECTED_EVENTS], ids=[n for n, _ in REJECTED_EVENTS])
def test_upstream_events_that_cannot_start_a_run_are_acknowledged(stack: Stack, event: dict[str, Any]) -> None:
    with nothing_started(stack):
        response = deliver(stack, [event])
        assert 200 <= response.status_code < 300, response.text


def test_unmatched_event_through_the_event_grid_emulator_is_delivered_once_and_starts_nothing(stack: Stack) -> None:
    with nothing_started(stack):
        stack.publish_upstream("Contoso.Other.Thing", ETL_SUBJECT, {"status": "Succeeded"}, event_id="unmatched-1")
        delivery = stack.wait(lambda: delivered(stack, "unmatched-1"), what="delivery to the app")
    assert (delivery["attempts"], delivery["lastHttpStatusCode"]) == (1, 202)


def delivered(stack: Stack, event_id: str) -> dict[str, Any] | None:
    stack.admin("eventgrid", "POST", "/admin/clock/advance", params={"seconds": "0"})
    for item in stack.admin("eventgrid", "GET", "/admin/deliveries")["deliveries"]:
        if event_id in item["eventIds"] and item["state"] == "Delivered":
            return dict(item)
    return None


def test_matching_event_starts_one_run_and_a_redelivery_changes_nothing(stack: Stack) -> None:
    stack.settle()  # earlier tests' cancels processed: no run of the chain waits for upstream
    assert not any(r["phase"] == "waitingForUpstream" for r in stack.api("GET", "chains/nightly/runs").json()["runs"])
    event = cloud_event(id="etl-done-1", type=ETL_TYPE.lower())  # types match case-insensitively
    assert deliver(stack, [event]).status_code == 202
    stack.settle()
    started = {i for i in instances(stack) if i.startswith("chain:nightly:ev-")}
    assert len(started) == 1
    with nothing_started(stack):
        assert deliver(stack, [event]).status_code == 202
    for instance_id in started:
        stack.api("POST", f"chains/nightly/runs/{instance_id.split(':', 2)[2]}/cancel")


def test_event_raised_into_the_waiting_run_once(stack: Stack) -> None:
    assert stack.api("POST", "chains/nightly/runs", {"runId": "wait-ev", "waitForUpstream": True}).status_code == 202
    stack.wait(phase_is(stack, "nightly", "wait-ev", "waitingForUpstream"), what="run to wait for upstream")
    before = set(instances(stack))
    event = cloud_event(id="etl-done-2", data={"status": "failed", "detail": {"rows": 0}})
    assert deliver(stack, [event]).status_code == 202
    stack.settle()
    stack.wait(phase_is(stack, "nightly", "wait-ev", "completed"), what="run to take the event")
    run = run_status(stack, "nightly", "wait-ev")
    assert run["outcome"] == "skipped"  # "failed" in any case is a failed upstream; onFailure: skip
    assert run["custom"]["upstream"]["eventId"] == "etl-done-2"
    assert run["custom"]["upstream"]["detail"] == {"rows": 0}
    assert set(instances(stack)) == before  # raised into the waiting run, no run of its own
    with nothing_started(stack):
        assert deliver(stack, [event]).status_code == 202  # redelivery: already handled
