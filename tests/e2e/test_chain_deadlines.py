"""A late snapshot on devhost + both emulators (manual clock): a chain with a snapshotDeadline,
one VM whose Take Snapshot outlasts it and one whose does not. The late one's SnapshotLate reaches
the Event Grid emulator's downstream topic once, before its SnapshotCompleted; the backup is not
cancelled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from harness.chain_stack import chain, jobs, kinds, one, parse_time, run_to_end, running_stack, scenario, vm


def test_a_snapshot_past_its_deadline_is_reported_late_then_completed(tmp_path: Path) -> None:
    vms = [vm("slow01", snapshot=(20, 21)), vm("fast01", snapshot=(3, 4))]
    config = chain("late", ["slow01", "fast01"], snapshotDeadline="PT10M", monitorTransfer=False)
    with running_stack(tmp_path, scenario(vms), [config]) as stack:
        assert stack.api("POST", "chains/late/runs", {"runId": "r1"}).status_code == 202
        events = run_to_end(stack, "r1", step=30)
        assert kinds(events, "slow01") == ["BackupTriggered", "SnapshotLate", "SnapshotCompleted"]
        assert kinds(events, "fast01") == ["BackupTriggered", "SnapshotCompleted"]
        late = one(events, "SnapshotLate", "slow01")
        triggered = one(events, "BackupTriggered", "slow01")["data"]["triggeredAt"]
        deadline = parse_time(late["data"]["deadline"])
        assert late["data"]["triggeredAt"] == triggered
        assert deadline == parse_time(triggered) + timedelta(minutes=10)
        assert parse_time(late["time"]) >= deadline
        # The emulator's own record: the snapshot really completed after the deadline, in the job
        # the late event names, and the job was not cancelled.
        (job,) = jobs(stack, "slow01")
        assert str(late["data"]["jobId"]).lower() == job["id"].lower()
        assert late["data"]["snapshotStatus"] == "InProgress" and late["data"]["readError"] is None
        assert parse_time(job["snapshotCompletedAt"]) > deadline
        assert job["status"] != "Cancelled"
        completed = one(events, "ChainCompleted")["data"]
        assert completed["outcome"] == "completed" and completed["counts"] == {"snapshotCompleted": 2}
        by_vm = {v["vmId"].rsplit("/", 1)[-1]: v for v in completed["vms"]}
        assert by_vm["slow01"]["snapshotLate"] is True and "snapshotLate" not in by_vm["fast01"]


def test_a_vm_queued_past_the_start_window_is_not_started_and_never_triggered(tmp_path: Path) -> None:
    # maxParallel 1: the first VM's Take Snapshot (70 min) holds the only slot past the one-hour
    # start window, so the second is notStarted, and the emulator never sees a job for it.
    vms = [vm("long01", snapshot=(70, 71)), vm("queued01", snapshot=(3, 4))]
    config = chain("window", ["long01", "queued01"], startWindow="PT1H", maxParallel=1, monitorTransfer=False)
    with running_stack(tmp_path, scenario(vms), [config]) as stack:
        assert stack.api("POST", "chains/window/runs", {"runId": "r1"}).status_code == 202
        events = run_to_end(stack, "r1", step=60)
        assert kinds(events, "long01") == ["BackupTriggered", "SnapshotCompleted"]
        assert kinds(events, "queued01") == []
        completed = one(events, "ChainCompleted")["data"]
        assert completed["outcome"] == "completedWithFailures"
        assert completed["counts"] == {"snapshotCompleted": 1, "notStarted": 1}
        by_vm = {v["vmId"].rsplit("/", 1)[-1]: v for v in completed["vms"]}
        queued = by_vm["queued01"]
        assert (queued["outcome"], queued["errorCode"], queued["jobId"]) == ("notStarted", "StartWindowClosed", None)
        started = parse_time(one(events, "ChainStarted")["time"])
        closed = parse_time(queued["message"].split(" closed at ")[1].split(" ")[0])
        # The window opens as the run starts backing up, just after ChainStarted (one clock step).
        assert timedelta(hours=1) <= closed - started <= timedelta(hours=1, minutes=1)
        assert len(jobs(stack, "long01")) == 1 and jobs(stack, "queued01") == []
