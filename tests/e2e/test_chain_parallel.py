"""``maxParallel`` bounds the VMs between trigger and SnapshotCompleted, not whole backups: a VM's
slot frees at its snapshot and transfers (hours) are watched without holding one. And a cancelled
run keeps each VM's job id and says which Azure jobs it leaves running. Times are the Recovery
Services emulator's (its truth) and the downstream events'."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from demo.stack import Stack, vm_id
from harness.chain_stack import (
    chain,
    jobs,
    of_type,
    one,
    parse_time,
    run_events,
    run_to_end,
    scenario,
    start_stack,
    vm,
)
from orchestrators.chain_run import BATCH_SIZE

MONDAY = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc)  # the weekly scheduled backup is Wednesday 02:00
LONG: dict[str, Any] = {"snapshot": (6.0, 8.0), "transfer": (120.0, 180.0)}  # real incremental transfers take 1-3 h
PAR = [f"p{i:02d}" for i in range(1, 9)]
CAN = ["k01", "k02", "k03"]
UNREAD = ["u01"]
BIG = [f"b{i:03d}" for i in range(BATCH_SIZE + 2)]  # two vm_batch sub-orchestrations
BIGC = [f"c{i:03d}" for i in range(BATCH_SIZE + 2)]
VMS = [vm(name, **LONG) for name in PAR + CAN + UNREAD + BIG + BIGC]
CHAINS = [
    chain("par", PAR, maxParallel=4, staggerSeconds=0),
    chain("can", CAN, maxParallel=1, staggerSeconds=0),
    chain("unread", UNREAD, maxParallel=1, staggerSeconds=0),
    chain("big", BIG, maxParallel=10, staggerSeconds=0),
    chain("bigc", BIGC, maxParallel=10, staggerSeconds=0),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("chain-parallel"), scenario(VMS), CHAINS, start=MONDAY)
    try:
        yield running
    finally:
        running.stop()


def _start(stack: Stack, chain_name: str, run_id: str) -> None:
    response = stack.api("POST", f"chains/{chain_name}/runs", {"runId": run_id})
    assert response.status_code == 202, response.text
    stack.settle()


def _job(stack: Stack, name: str) -> dict[str, Any]:
    found = jobs(stack, name)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def test_a_slot_frees_at_the_snapshot_not_at_the_end_of_the_transfer(stack: Stack) -> None:
    _start(stack, "par", "r-par")
    events = run_to_end(stack, "r-par", step=60, limit=10 * 3600)
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"
    truth = {name: _job(stack, name) for name in PAR}
    start = {n: parse_time(j["startTime"]) for n, j in truth.items()}
    snapshot = {n: parse_time(j["snapshotCompletedAt"]) for n, j in truth.items()}
    end = {n: parse_time(j["endTime"]) for n, j in truth.items()}
    assert all(end[n] - snapshot[n] >= timedelta(hours=2) for n in PAR)  # the transfers are long

    # The first wave is p01-p04; p05 goes as soon as one of them finished its snapshot, not hours
    # later when one of them finished its transfer.
    first_snapshot = min(snapshot[n] for n in PAR[:4])
    first_end = min(end[n] for n in PAR[:4])
    for late in PAR[4:]:
        assert first_snapshot <= start[late] <= first_snapshot + timedelta(minutes=10), (late, start[late])
        assert start[late] < first_end - timedelta(hours=1)
        triggered = parse_time(one(events, "BackupTriggered", late)["time"])
        first_announced = min(parse_time(one(events, "SnapshotCompleted", n)["time"]) for n in PAR[:4])
        assert first_announced <= triggered <= first_announced + timedelta(minutes=10)
        assert triggered < min(parse_time(one(events, "BackupCompleted", n)["time"]) for n in PAR[:4])

    # The bound still holds: never more than 4 VMs between their trigger and their snapshot.
    for at in start.values():
        snapshotting = [n for n in PAR if start[n] <= at < snapshot[n]]
        assert len(snapshotting) <= 4, (at, snapshotting)
    assert max(len([n for n in PAR if start[n] <= at < snapshot[n]]) for at in start.values()) == 4
    # Every transfer was still watched to its end.
    for name in PAR:
        assert parse_time(one(events, "BackupCompleted", name)["data"]["jobEndedAt"]) == end[name]


def test_a_cancelled_run_keeps_job_ids_and_says_which_azure_jobs_still_run(stack: Stack) -> None:
    _start(stack, "can", "r-can")
    # maxParallel 1: k02 starts when k01's snapshot is done; cancel while k02 snapshots and k01
    # transfers; k03 never starts.
    stack.run_until(
        lambda: of_type(run_events(stack, "r-can"), "BackupTriggered", "k02"), step=30, what="k02 to be triggered"
    )
    response = stack.api("POST", "chains/can/runs/r-can/cancel")
    assert response.status_code == 202, response.text
    stack.settle()
    events = run_to_end(stack, "r-can", step=30, limit=3600)
    completed = one(events, "ChainCompleted")["data"]
    assert completed["outcome"] == "cancelled"

    triggered = {n: one(events, "BackupTriggered", n)["data"]["jobId"] for n in ("k01", "k02")}
    azure = {n: _job(stack, n) for n in ("k01", "k02")}
    assert not jobs(stack, "k03")
    assert {n: azure[n]["id"] for n in azure} == triggered
    assert all(azure[n]["status"] == "InProgress" for n in azure)  # cancelling stops watching only

    by_vm = {v["vmId"]: v for v in completed["vms"]}
    for name in ("k01", "k02"):
        assert by_vm[vm_id(name)]["jobId"] == triggered[name]
        assert by_vm[vm_id(name)]["jobRunning"] is True
        assert by_vm[vm_id(name)]["jobStatus"] == "InProgress"
    assert by_vm[vm_id("k03")]["jobId"] is None and by_vm[vm_id("k03")]["jobRunning"] is False
    assert sorted((j["vmId"], j["jobId"]) for j in completed["jobsStillRunning"]) == sorted(
        (vm_id(n), job) for n, job in triggered.items()
    )
    output = stack.api("GET", "chains/can/runs/r-can").json()["output"]
    assert sorted(j["jobId"] for j in output["jobsStillRunning"]) == sorted(triggered.values())


def test_a_cancelled_run_whose_job_lookup_keeps_failing_still_ends_saying_so(stack: Stack) -> None:
    """After the cancel, reading the VMs' jobs (run_jobs) fails beyond its retries (every job GET
    answers 503): the run still publishes ChainCompleted, each VM keeping its job id with the read
    error, instead of failing silently."""
    _start(stack, "unread", "r-unread")
    stack.run_until(
        lambda: of_type(run_events(stack, "r-unread"), "BackupTriggered", "u01"), step=30, what="u01 to be triggered"
    )
    triggered = one(run_events(stack, "r-unread"), "BackupTriggered", "u01")["data"]["jobId"]
    stack.admin("recoveryservices", "POST", "/admin/faults", json={"operations": {"JobDetails_Get": {"rate503": 1}}})
    try:
        response = stack.api("POST", "chains/unread/runs/r-unread/cancel")
        assert response.status_code == 202, response.text
        stack.settle()
        events = run_to_end(stack, "r-unread", step=30, limit=3600)
    finally:
        stack.admin(
            "recoveryservices", "POST", "/admin/faults", json={"operations": {"JobDetails_Get": {"rate503": 0}}}
        )
    completed = one(events, "ChainCompleted")["data"]
    assert completed["outcome"] == "cancelled"
    (summary,) = completed["vms"]
    assert summary["vmId"] == vm_id("u01") and summary["jobId"] == triggered
    assert summary["jobRunning"] is None and summary["jobStatus"] is None
    assert "job lookup failed beyond its retries" in summary["readError"], summary
    output = stack.api("GET", "chains/unread/runs/r-unread").json()["output"]
    assert output["outcome"] == "cancelled"
    assert output["vms"][0]["readError"] == summary["readError"]


def test_large_runs_free_a_batch_slot_once_all_its_vms_snapshotted(stack: Stack) -> None:
    """Runs over 50 VMs go through vm_batch sub-orchestrations (here 10 VMs at once, one batch at a
    time): the second batch starts when every VM of the first is past its snapshot, hours before
    the first batch's transfers end."""
    _start(stack, "big", "r-big")
    events = run_to_end(stack, "r-big", step=60, limit=10 * 3600)
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"
    truth = {name: _job(stack, name) for name in BIG}
    first, second = BIG[:BATCH_SIZE], BIG[BATCH_SIZE:]
    last_snapshot = max(parse_time(truth[n]["snapshotCompletedAt"]) for n in first)
    last_end = max(parse_time(truth[n]["endTime"]) for n in first)
    for name in second:
        started = parse_time(truth[name]["startTime"])
        assert last_snapshot <= started <= last_snapshot + timedelta(minutes=10), (name, started)
        assert started < last_end - timedelta(hours=1)
    # Within a batch, at most 10 VMs between trigger and snapshot at any VM's start.
    spans = [(parse_time(j["startTime"]), parse_time(j["snapshotCompletedAt"])) for j in truth.values()]
    assert max(sum(1 for s, e in spans if s <= at < e) for at, _ in spans) <= 10
    for name in BIG:
        assert one(events, "BackupCompleted", name)["data"]["jobStatus"] == "Completed"


def test_a_cancelled_large_run_keeps_the_job_ids_of_its_batches_vms(stack: Stack) -> None:
    """Cancelling terminates the vm_batch and vm_backup instances; the run still reports each
    VM's job, read from the VM orchestrations' status, and which of them Azure still runs."""
    _start(stack, "bigc", "r-bigc")
    stack.run_until(
        lambda: len(of_type(run_events(stack, "r-bigc"), "BackupTriggered")) >= 10, step=30, what="ten triggers"
    )
    assert stack.api("POST", "chains/bigc/runs/r-bigc/cancel").status_code == 202
    stack.settle()
    events = run_to_end(stack, "r-bigc", step=30, limit=3600)
    completed = one(events, "ChainCompleted")["data"]
    assert completed["outcome"] == "cancelled"
    triggered = {e["data"]["vmId"]: e["data"]["jobId"] for e in of_type(events, "BackupTriggered")}
    assert len(triggered) >= 10
    by_vm = {v["vmId"]: v for v in completed["vms"]}
    assert len(by_vm) == len(BIGC)
    azure = {vm_id(n): jobs(stack, n) for n in BIGC}
    for vm_key, job_id in triggered.items():
        assert by_vm[vm_key]["jobId"] == job_id
    for vm_key, view in by_vm.items():
        assert [j["id"] for j in azure[vm_key]] == ([view["jobId"]] if view["jobId"] else [])
    running = {j["vmId"]: j["jobId"] for j in completed["jobsStillRunning"]}
    in_azure = {key: found[0]["id"] for key, found in azure.items() if found and found[0]["status"] == "InProgress"}
    assert running == in_azure
    assert set(triggered) <= set(running)
    # Nothing starts after the cancel: the batches were stopped before their VMs.
    stack.advance(3600)
    stack.settle()
    assert {vm_id(n): [j["id"] for j in jobs(stack, n)] for n in BIGC} == {
        key: [j["id"] for j in found] for key, found in azure.items()
    }
    assert run_events(stack, "r-bigc") == events
