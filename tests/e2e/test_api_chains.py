"""The API for operators on the real stack (manual clock): ``GET /api/chains`` (VMs, window and next
window, GC coverage, last run), a run's GET with each failed VM's Azure message and recommendations
and the events the downstream topic refused, and ``GET …/runs/{runId}/events``. One stack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from demo.stack import Stack, vm_id
from emulators.recoveryservices import errors as azure_errors
from harness.chain_stack import chain, parse_time, run_to_end, scenario, start_stack, vm

FAST: dict[str, Any] = {"snapshot": (5.0, 6.0), "transfer": (8.0, 10.0)}
MANY = [f"m{n:02d}" for n in range(11)]  # one more than GET /api/chains lists without ?vms=true
UPSTREAM = {"eventType": "Contoso.Api.Done", "subject": "/jobs/api", "timeout": "PT1H"}
XFER = "CopyingVHDsFromBackUpVaultTakingLongTime"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm(name, **FAST) for name in ["a1", "r1vm", "w1", *MANY]]
    vms.append(vm("xfer1", faults={"transferFailureRate": 1.0}, **FAST))
    chains = [
        chain("alpha", ["a1", "xfer1"]),
        chain("refused", ["r1vm"]),
        chain("win", ["w1"], upstream=UPSTREAM, window="0 30 22 * * *"),
        chain("many", MANY),
    ]
    running = start_stack(tmp_path_factory.mktemp("api-chains"), scenario(vms), chains)
    try:
        running.settle()
        yield running
    finally:
        running.stop()


def _get(stack: Stack, path: str) -> Any:
    response = stack.api("GET", path)
    assert response.status_code == 200, response.text
    return response.json()


def _chains(stack: Stack, query: str = "") -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in _get(stack, "chains" + query)["chains"]}


def test_chains_lists_vms_only_when_few_or_asked_and_refuses_a_bad_flag(stack: Stack) -> None:
    chains = _chains(stack)
    assert list(chains) == ["alpha", "refused", "win", "many"]
    assert chains["many"]["vmCount"] == 11 and chains["many"]["vms"] is None
    assert chains["alpha"]["vms"] == [vm_id("a1"), vm_id("xfer1")] and chains["alpha"]["vaults"] == [
        "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-backup/providers/"
        "Microsoft.RecoveryServices/vaults/v1"
    ]
    assert chains["alpha"]["gc"] is None and chains["alpha"]["lastRun"] is None
    assert chains["win"]["upstream"]["eventType"] == "Contoso.Api.Done"
    assert _chains(stack, "?vms=true")["many"]["vms"] == [vm_id(n) for n in MANY]
    assert _chains(stack, "?vms=false")["alpha"]["vms"] is None
    bad = stack.api("GET", "chains?vms=yes")
    assert bad.status_code == 400 and bad.json()["field"] == "vms"


def test_a_failed_vm_carries_azures_message_and_recommendations_and_last_run_follows(stack: Stack) -> None:
    assert stack.api("POST", "chains/alpha/runs", {"runId": "a-1"}).status_code == 202
    run_to_end(stack, "a-1")
    run = _get(stack, "chains/alpha/runs/a-1")
    expected = azure_errors.TRANSFER_ERRORS[XFER]
    failed = next(v for v in run["vms"] if v["vmId"] == vm_id("xfer1"))
    assert (failed["phase"], failed["failedPhase"], failed["errorCode"]) == ("failed", "transfer", XFER)
    assert failed["azureErrorCode"] == expected.number
    assert failed["message"] == expected.message
    assert failed["recommendations"] == list(expected.recommendations) and expected.recommendations
    completed = next(v for v in run["vms"] if v["vmId"] == vm_id("a1"))
    assert completed["phase"] == "completed" and "message" not in completed and "recommendations" not in completed
    last = _chains(stack)["alpha"]["lastRun"]
    assert (last["runId"], last["runtimeStatus"], last["outcome"]) == ("a-1", "Completed", "completedWithFailures")
    assert last["createdTime"] == run["createdTime"] and last["lastUpdatedTime"] == run["lastUpdatedTime"]


def test_events_the_topic_refused_show_on_the_run_and_in_its_event_list(stack: Stack) -> None:
    stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream", "status": 403})
    try:
        assert stack.api("POST", "chains/refused/runs", {"runId": "x-403"}).status_code == 202
        stack.run_until(
            lambda: _get(stack, "chains/refused/runs/x-403")["runtimeStatus"] == "Completed",
            step=60,
            limit=3 * 3600,
            what="run x-403 to finish",
        )
        run = _get(stack, "chains/refused/runs/x-403")
        listed = _get(stack, "chains/refused/runs/x-403/events")["events"]
    finally:
        stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream"})
    kinds = ["ChainStarted", "UpstreamReceived", "BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    assert run["delivery"] == "undelivered" and run["outcome"] == "completedWithUndeliveredEvents"
    assert sorted(u["type"] for u in run["undelivered"]) == sorted(
        f"BackupChain.{k}" for k in [*kinds, "ChainCompleted"]
    )
    for item in run["undelivered"]:
        assert "HTTP 403" in item["reason"] and item["attempts"] >= 1 and parse_time(item["since"])
    # The run's event list holds the same events, in the run's order, each marked undelivered.
    assert [e["type"] for e in listed] == [f"BackupChain.{k}" for k in [*kinds, "ChainCompleted"]]
    assert {e["id"]: e["delivery"] for e in listed} == {u["id"]: "undelivered" for u in run["undelivered"]}


def test_a_window_chain_shows_the_scheduler_next_window_before_and_while_its_run_waits(stack: Stack) -> None:
    win = _chains(stack)["win"]
    now = stack.clock.now()
    opening = now.replace(hour=22, minute=30, second=0, microsecond=0)
    assert opening > now  # the stack's day starts at 03:00
    assert (win["scheduler"], parse_time(win["nextWindow"])) == ("sleeping", opening)
    stack.run_until(lambda: _chains(stack)["win"]["scheduler"] == "running", step=1800, limit=24 * 3600)
    win = _chains(stack)["win"]
    # The window's run waits for upstream; the window after it is the next day's.
    assert parse_time(win["nextWindow"]) == opening + timedelta(days=1)
    assert win["lastRun"]["runtimeStatus"] == "Running" and win["lastRun"]["phase"] == "waitingForUpstream"


def test_the_event_list_of_an_unknown_chain_or_run_is_a_404_naming_it(stack: Stack) -> None:
    unknown_run = stack.api("GET", "chains/alpha/runs/nope/events")
    assert unknown_run.status_code == 404 and unknown_run.json()["field"] == "runId"
    unknown_chain = stack.api("GET", "chains/zeta/runs/a-1/events")
    assert unknown_chain.status_code == 404 and unknown_chain.json()["field"] == "chain"
    assert "no chain named 'zeta'" in unknown_chain.json()["detail"]
