"""Chain runs on devhost + both emulators with the manual clock: the happy path, upstream signals
through Event Grid (with duplicate delivery), upstream timeouts and failures with both policies,
snapshot and transfer failures, and cancellation. One stack for the module; every test uses its
own chain, VMs and run ids, and ends its runs before the next test moves the shared clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_chain.events import event_id
from backup_chain.ids import run_id_for_event
from demo.stack import Stack, vault_id, vm_id
from emulators.recoveryservices import errors as azure_errors
from harness.chain_stack import (
    PREFIX,
    chain,
    chain_completed,
    deliver_upstream,
    jobs,
    kinds,
    next_weekday_at,
    of_type,
    one,
    parse_time,
    records,
    run_events,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

THURSDAY = 3
SHORT: dict[str, Any] = {"transfer": (8.0, 10.0)}  # transfers of a few minutes keep the suite fast
PER_VM = ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]


def _upstream(event_type: str, **extra: Any) -> dict[str, Any]:
    return {"eventType": event_type, "subject": f"/jobs/{event_type.lower()}", "timeout": "PT30M", **extra}


VMS = [
    vm("app01", transfer=(30, 40)),
    vm("app02", os="Windows", transfer=(30, 40)),
    vm("etl01", **SHORT),
    vm("etl02", os="Windows", **SHORT),
    vm("gate01", **SHORT),
    vm("gateb01", **SHORT),
    vm("skip01", **SHORT),
    vm("fback01", **SHORT),
    vm(
        "snapfail",
        os="Windows",
        faults={"snapshotFailureRate": 1.0, "snapshotErrorCode": "ExtensionFailedVssWriterInBadState"},
        **SHORT,
    ),
    vm("xferfail", faults={"transferFailureRate": 1.0}, **SHORT),
    vm("faultok", **SHORT),
    vm("quick01", **SHORT),
    vm("c01", **SHORT),
    vm("c02", **SHORT),
    vm("c03", **SHORT),
]
CHAINS = [
    chain("nightly", ["app01", "app02"]),
    chain("etl", ["etl01", "etl02"], upstream=_upstream("Contoso.Etl.JobFinished")),
    chain("gate-end", ["gate01"], upstream=_upstream("Contoso.Gate.End")),
    chain("gate-backup", ["gateb01"], upstream=_upstream("Contoso.Gate.Backup", onTimeout="backup")),
    chain("fail-skip", ["skip01"], upstream=_upstream("Contoso.Fail.Skip", onFailure="skip")),
    chain("fail-backup", ["fback01"], upstream=_upstream("Contoso.Fail.Backup", onFailure="backup")),
    chain("faults", ["snapfail", "xferfail", "faultok"]),
    chain("quick", ["quick01"], upstream=_upstream("Contoso.Quick")),
    chain("cancel", ["c01", "c02", "c03"], maxParallel=1, upstream=_upstream("Contoso.Cancel")),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base: Path = tmp_path_factory.mktemp("chain-flows")
    running = start_stack(base, scenario(VMS), CHAINS, start=next_weekday_at(THURSDAY))
    try:
        yield running
    finally:
        running.stop()


def _start(stack: Stack, chain_name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.api("POST", f"chains/{chain_name}/runs", body)
    assert response.status_code == 202, response.text
    stack.settle()
    return dict(response.json())


def _run(stack: Stack, chain_name: str, run_id: str) -> dict[str, Any]:
    response = stack.api("GET", f"chains/{chain_name}/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _runs(stack: Stack, chain_name: str) -> list[dict[str, Any]]:
    return list(stack.api("GET", f"chains/{chain_name}/runs").json()["runs"])


def _assert_backed_up(events: list[dict[str, Any]], names: list[str]) -> None:
    for name in names:
        assert kinds(events, name) == PER_VM, name


def test_happy_path_events_in_order_with_azure_truth_and_deterministic_ids(stack: Stack) -> None:
    _start(stack, "nightly", {"runId": "r-happy"})
    events = run_to_end(stack, "r-happy")

    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    _assert_backed_up(events, ["app01", "app02"])
    received_at = {r["event"]["id"]: parse_time(r["receivedAt"]) for r in records(stack)}
    for event in events:
        data = event["data"]
        assert event["type"].startswith(PREFIX)
        assert data["chain"] == "nightly" and data["runId"] == "r-happy"
        kind = event["type"][len(PREFIX) :]
        scope = event["subject"] if event["subject"].startswith("/subscriptions/") else "chain"
        # Deterministic per (chain, run, VM or chain scope, type): a replayed publish keeps its id.
        assert event["id"] == event_id("r-happy", scope, kind, chain="nightly")
        if scope == "chain":
            assert event["subject"] == "/chains/nightly/runs/r-happy"
            assert event["source"] == stack.devhost_env["APP_RESOURCE_ID"]
    assert len({e["id"] for e in events}) == len(events) == 3 + 2 * 3

    for name in ("app01", "app02"):
        truth = jobs(stack, name)
        assert len(truth) == 1 and truth[0]["userTriggered"] is True and truth[0]["status"] == "Completed"
        job = truth[0]
        for kind in PER_VM:
            event = one(events, kind, name)
            assert event["source"] == vault_id("v1")
            assert event["subject"] == vm_id(name)
            assert event["data"]["vmId"] == vm_id(name)
            assert event["data"]["vaultId"] == vault_id("v1")
            assert str(event["data"]["jobId"]).lower() == job["id"].lower()
        snapshot = one(events, "SnapshotCompleted", name)
        truth_at = parse_time(job["snapshotCompletedAt"])
        assert parse_time(snapshot["data"]["snapshotCompletedAt"]) == truth_at
        # Published (accepted by the topic) not before the snapshot really completed, and soon after.
        assert truth_at <= received_at[snapshot["id"]] <= truth_at + timedelta(minutes=3)
        assert parse_time(snapshot["time"]) >= truth_at
        assert snapshot["data"]["snapshotSeconds"] > 0
        done = one(events, "BackupCompleted", name)
        expected = (parse_time(job["endTime"]) - parse_time(job["startTime"])).total_seconds()
        assert done["data"]["durationSeconds"] == pytest.approx(expected, abs=1)
        assert received_at[done["id"]] >= parse_time(job["endTime"])

    completed = one(events, "ChainCompleted")
    assert completed["data"]["outcome"] == "completed"
    assert {v["vmId"]: v["outcome"] for v in completed["data"]["vms"]} == {
        vm_id("app01"): "completed",
        vm_id("app02"): "completed",
    }
    run = _run(stack, "nightly", "r-happy")
    assert run["outcome"] == "completed" and run["runtimeStatus"] == "Completed"
    assert {v["phase"] for v in run["vms"]} == {"completed"}


def test_upstream_event_through_event_grid_releases_waiting_run_and_duplicates_change_nothing(stack: Stack) -> None:
    _start(stack, "etl", {"runId": "r-etl", "waitForUpstream": True})
    assert _run(stack, "etl", "r-etl")["phase"] == "waitingForUpstream"
    assert not jobs(stack, "etl01")

    # Event Grid delivers at least once: the same event arrives twice before the run moves on.
    subject = "/jobs/contoso.etl.jobfinished"
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-1")
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-1")
    events = run_to_end(stack, "r-etl")
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    assert one(events, "UpstreamReceived")["data"]["upstreamStatus"] == "Succeeded"
    _assert_backed_up(events, ["etl01", "etl02"])

    # ... and once more after the run ended: still no second run, no second backup.
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-1")
    stack.advance(600)
    stack.settle()
    assert [r["runId"] for r in _runs(stack, "etl")] == ["r-etl"]
    assert not _runs(stack, "etl")[0]["runId"].startswith("ev-")
    assert len(jobs(stack, "etl01")) == 1 and len(jobs(stack, "etl02")) == 1
    assert run_events(stack, "r-etl") == events
    assert not run_events(stack, run_id_for_event("etl-evt-1"))


def test_upstream_event_without_waiting_run_starts_one_run_once(stack: Stack) -> None:
    subject = "/jobs/contoso.etl.jobfinished"
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-2")
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-2")
    run_id = run_id_for_event("etl-evt-2")
    events = run_to_end(stack, run_id)
    _assert_backed_up(events, ["etl01", "etl02"])
    deliver_upstream(stack, "Contoso.Etl.JobFinished", subject, {"status": "Succeeded"}, "etl-evt-2")
    stack.advance(600)
    stack.settle()
    assert sorted(r["runId"] for r in _runs(stack, "etl")) == sorted(["r-etl", run_id])
    assert len(jobs(stack, "etl01")) == 2 and len(jobs(stack, "etl02")) == 2
    assert len(run_events(stack, run_id)) == len(events) == 3 + 2 * 3
    # An event of another type or subject matches no chain and starts nothing.
    deliver_upstream(stack, "Contoso.Etl.JobFinished", "/jobs/other", {}, "etl-evt-3")
    stack.settle()
    assert len(_runs(stack, "etl")) == 2


def test_upstream_timeout_ends_the_run_without_backups(stack: Stack) -> None:
    _start(stack, "gate-end", {"runId": "r-timeout", "waitForUpstream": True})
    started = parse_time(one(run_events(stack, "r-timeout"), "ChainStarted")["time"])
    events = run_to_end(stack, "r-timeout", step=120)
    assert kinds(events) == ["ChainStarted", "UpstreamTimedOut", "ChainCompleted"]
    timed_out = parse_time(one(events, "UpstreamTimedOut")["time"])
    assert timedelta(minutes=30) <= timed_out - started <= timedelta(minutes=33)
    assert one(events, "ChainCompleted")["data"]["outcome"] == "upstreamTimedOut"
    assert not jobs(stack, "gate01")
    # A late upstream signal does not revive the ended run.
    late = stack.api("POST", "chains/gate-end/runs/r-timeout/upstream", {"status": "Succeeded"})
    assert late.status_code == 409
    stack.advance(600)
    stack.settle()
    assert not jobs(stack, "gate01")


def test_upstream_timeout_with_on_timeout_backup_backs_up(stack: Stack) -> None:
    _start(stack, "gate-backup", {"runId": "r-timeout-b", "waitForUpstream": True})
    events = run_to_end(stack, "r-timeout-b", step=60)
    # Nothing was received: no UpstreamReceived after the UpstreamTimedOut.
    assert kinds(events) == ["ChainStarted", "UpstreamTimedOut", "ChainCompleted"]
    _assert_backed_up(events, ["gateb01"])
    assert parse_time(one(events, "BackupTriggered", "gateb01")["time"]) >= parse_time(
        one(events, "UpstreamTimedOut")["time"]
    )
    assert len(jobs(stack, "gateb01")) == 1
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"


def test_upstream_failure_with_skip_skips_the_backups(stack: Stack) -> None:
    _start(stack, "fail-skip", {"runId": "r-skip", "waitForUpstream": True})
    deliver_upstream(
        stack, "Contoso.Fail.Skip", "/jobs/contoso.fail.skip", {"status": "Failed", "detail": "etl exit 3"}, "fs-1"
    )
    events = run_to_end(stack, "r-skip")
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainSkipped", "ChainCompleted"]
    assert one(events, "UpstreamReceived")["data"]["upstreamStatus"] == "Failed"
    assert one(events, "ChainSkipped")["data"]["detail"] == "etl exit 3"
    assert one(events, "ChainCompleted")["data"]["outcome"] == "skipped"
    stack.advance(1800)
    stack.settle()
    assert not jobs(stack, "skip01")
    assert not kinds(run_events(stack, "r-skip"), "skip01")


def test_upstream_failure_with_backup_policy_backs_up(stack: Stack) -> None:
    _start(stack, "fail-backup", {"runId": "r-fback", "waitForUpstream": True})
    reported = stack.api("POST", "chains/fail-backup/runs/r-fback/upstream", {"status": "Failed", "detail": "x"})
    assert reported.status_code == 202, reported.text
    events = run_to_end(stack, "r-fback")
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    assert one(events, "UpstreamReceived")["data"]["upstreamStatus"] == "Failed"
    _assert_backed_up(events, ["fback01"])
    assert len(jobs(stack, "fback01")) == 1


def test_upstream_reported_right_after_the_start_is_accepted(stack: Stack) -> None:
    # A client starts a waiting run and reports its upstream at once: the run has not reached its
    # wait yet (still Pending, or publishing ChainStarted), but the signal must not be refused.
    started = stack.api("POST", "chains/quick/runs", {"runId": "r-quick", "waitForUpstream": True})
    assert started.status_code == 202, started.text
    reported = stack.api("POST", "chains/quick/runs/r-quick/upstream", {"status": "Succeeded", "detail": "q"})
    assert reported.status_code == 202, reported.text
    events = run_to_end(stack, "r-quick")
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    assert one(events, "UpstreamReceived")["data"]["detail"] == "q"
    _assert_backed_up(events, ["quick01"])
    # An upstream event published right after a waiting run was started joins that run.
    started = stack.api("POST", "chains/quick/runs", {"runId": "r-quick-2", "waitForUpstream": True})
    assert started.status_code == 202, started.text
    deliver_upstream(stack, "Contoso.Quick", "/jobs/contoso.quick", {"status": "Succeeded"}, "quick-evt-1")
    events = run_to_end(stack, "r-quick-2")
    _assert_backed_up(events, ["quick01"])
    assert sorted(r["runId"] for r in _runs(stack, "quick")) == ["r-quick", "r-quick-2"]
    assert len(jobs(stack, "quick01")) == 2


def test_snapshot_and_transfer_failures_report_azure_errors(stack: Stack) -> None:
    _start(stack, "faults", {"runId": "r-faults"})
    events = run_to_end(stack, "r-faults")

    assert kinds(events, "snapfail") == ["BackupTriggered", "BackupFailed"]
    failed = one(events, "BackupFailed", "snapfail")["data"]
    truth = jobs(stack, "snapfail")
    assert len(truth) == 1 and truth[0]["status"] == "Failed" and truth[0]["snapshotCompletedAt"] is None
    expected = azure_errors.SNAPSHOT_ERRORS["ExtensionFailedVssWriterInBadState"]
    assert failed["phase"] == "snapshot"
    assert failed["errorCode"] == truth[0]["error"] == expected.code
    # Azure's own fields, as the job's errorDetails carry them: the int code, the entity, the message.
    assert (failed["azureErrorCode"], failed["errorTitle"]) == (expected.number, "snapfail")
    assert failed["message"] == expected.message
    assert failed["recommendations"] == list(expected.recommendations)
    assert str(failed["jobId"]).lower() == truth[0]["id"].lower()

    assert kinds(events, "xferfail") == ["BackupTriggered", "SnapshotCompleted", "BackupFailed"]
    failed = one(events, "BackupFailed", "xferfail")["data"]
    truth = jobs(stack, "xferfail")
    expected = azure_errors.TRANSFER_ERRORS["CopyingVHDsFromBackUpVaultTakingLongTime"]
    assert failed["phase"] == "transfer"
    assert failed["errorCode"] == truth[0]["error"] == expected.code
    assert (failed["azureErrorCode"], failed["errorTitle"]) == (expected.number, "xferfail")
    assert failed["recommendations"] == list(expected.recommendations)
    snapshot = one(events, "SnapshotCompleted", "xferfail")["data"]
    assert parse_time(snapshot["snapshotCompletedAt"]) == parse_time(truth[0]["snapshotCompletedAt"])

    _assert_backed_up(events, ["faultok"])
    completed = one(events, "ChainCompleted")["data"]
    assert completed["outcome"] == "completedWithFailures"
    assert completed["counts"] == {"failed": 2, "completed": 1}
    summary = {v["vmId"]: v for v in completed["vms"]}
    assert summary[vm_id("snapfail")]["failedPhase"] == "snapshot"
    assert summary[vm_id("xferfail")]["failedPhase"] == "transfer"
    assert summary[vm_id("snapfail")]["errorCode"] == "ExtensionFailedVssWriterInBadState"


def test_cancel_mid_run_stops_new_backups(stack: Stack) -> None:
    _start(stack, "cancel", {"runId": "r-cancel"})
    stack.run_until(
        lambda: of_type(run_events(stack, "r-cancel"), "BackupTriggered", "c01"), step=15, what="c01 to be triggered"
    )
    response = stack.api("POST", "chains/cancel/runs/r-cancel/cancel")
    assert response.status_code == 202, response.text
    stack.settle()
    events = run_to_end(stack, "r-cancel")
    completed = one(events, "ChainCompleted")["data"]
    assert completed["outcome"] == "cancelled"
    assert {v["vmId"]: v["outcome"] for v in completed["vms"]} == {
        vm_id("c01"): "cancelled",
        vm_id("c02"): "cancelled",
        vm_id("c03"): "cancelled",
    }
    # Hours later: nothing else was started or published for this run.
    stack.advance(3 * 3600)
    stack.settle()
    assert run_events(stack, "r-cancel") == events
    assert len(jobs(stack, "c01")) == 1
    assert not jobs(stack, "c02") and not jobs(stack, "c03")
    assert _run(stack, "cancel", "r-cancel")["outcome"] == "cancelled"
    assert stack.api("POST", "chains/cancel/runs/r-cancel/cancel").status_code == 409


def test_cancel_while_waiting_for_upstream(stack: Stack) -> None:
    _start(stack, "cancel", {"runId": "r-cancel-wait", "waitForUpstream": True})
    assert _run(stack, "cancel", "r-cancel-wait")["phase"] == "waitingForUpstream"
    assert stack.api("POST", "chains/cancel/runs/r-cancel-wait/cancel").status_code == 202
    stack.settle()
    assert chain_completed(stack, "r-cancel-wait")
    # The cancelled run never times out or backs up.
    stack.advance(3600)
    stack.settle()
    events = run_events(stack, "r-cancel-wait")
    assert kinds(events) == ["ChainStarted", "ChainCompleted"]
    assert one(events, "ChainCompleted")["data"]["outcome"] == "cancelled"
    assert len(jobs(stack, "c01")) == 1  # only the previous test's backup
