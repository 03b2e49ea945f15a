"""A run's deadlines on the real orchestrators (Azure answers scripted, manual clock): the start
window (VMs not triggered by its end are ``notStarted`` — queued behind maxParallel, in batches,
or waiting inside their own backup) and the per-VM snapshot deadline (one SnapshotLate, the
backup watched on; none for a snapshot heard of first)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backup_chain.deadlines import START_WINDOW_CLOSED
from backup_chain.events import iso
from backup_chain.ids import vm_batch_instance_id, vm_hash, vm_instance_id, watcher_instance_id
from backup_chain.polling import PollPlan
from orchestrators.protection import WAIT_SECONDS
from tests.orchestrators.builders import (
    accepted,
    in_progress,
    job,
    no_job,
    operation_succeeded,
    read,
    running,
    triggers,
    vm_input,
    vm_instance,
)
from tests.support.activity_script import ok
from tests.support.orchestrator_tier import PREFIX, VAULT_ID, OrchestratorTier, custom, moment, vault_id, vm_id

WINDOW_SECONDS = 3600
SLOW_TRIGGER_READS = 6  # the trigger's operation, read every 700 s, ends after the window (4900 s)


def _chain(name: str, vms: list[str], vault: str = VAULT_ID, **extra: Any) -> dict[str, Any]:
    """A chain's configuration as chain_run receives it (backup_chain.runs.chain_snapshot)."""
    return {
        "name": name,
        "targets": [{"vaultId": vault, "vms": [vm_id(vm) for vm in vms]}],
        "retainDays": 30,
        "monitorTransfer": False,
        "snapshotMinutes": [5, 15],
        "staggerSeconds": 0,
        "maxParallel": 4,
        "upstream": None,
        "startWindowSeconds": WINDOW_SECONDS,
        "snapshotDeadlineSeconds": None,
        **extra,
    }


def _run_input(chain: dict[str, Any]) -> dict[str, Any]:
    return {
        "chain": chain,
        "runId": "r1",
        "prefix": PREFIX,
        "source": "/backup-chain/tests",
        "waitForUpstream": False,
        "upstream": None,
        "startedBy": "http",
        "gc": None,
        "polling": None,
    }


def _instance(chain: str) -> str:
    return f"chain:{chain}:r1"


def _slow_trigger(tier: OrchestratorTier, vm: str) -> None:
    """``vm``: its trigger's operation runs past the start window; the snapshot is then done."""
    tier.script.on("find_active_job", vm, no_job())
    tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=700))
    done = operation_succeeded(job(f"job-{vm}", start=tier.at(0)))
    tier.script.on("backup_operation", f"op-{vm}", *[in_progress()] * SLOW_TRIGGER_READS, done)
    tier.script.on("get_job", f"job-{vm}", read(job(f"job-{vm}", start=tier.at(0), snapshot="Completed")))


def _not_started_count(status: dict[str, Any]) -> int:
    return int((custom(status, "counts") or {}).get("notStarted", 0))


def _assert_not_started(result: dict[str, Any], start_by: datetime) -> None:
    assert result["outcome"] == "notStarted" and result["errorCode"] == START_WINDOW_CLOSED, result
    assert _iso(start_by) in result["message"], result


def _iso(when: datetime) -> str:
    return iso(when)  # as the orchestrators write times


def test_vms_queued_behind_max_parallel_are_not_started_when_the_window_closes(tier: OrchestratorTier) -> None:
    vms = ["dl-q-a", "dl-q-b", "dl-q-c"]
    chain = _chain("dl-q", vms, maxParallel=1)
    _slow_trigger(tier, "dl-q-a")  # holds the only slot past the window; b and c are never scripted
    tier.begin("chain_run", _instance("dl-q"), _run_input(chain))
    tier.settle()
    started = tier.started_at(_instance("dl-q"))
    start_by = started + timedelta(seconds=WINDOW_SECONDS)
    # Reported at the window's end (its durable timer), not when the slot frees 1300 s later.
    tier.drive(_instance("dl-q"), lambda s: _not_started_count(s) == 2)
    assert tier.now() == start_by
    status = tier.drive(_instance("dl-q"))
    output = status["output"]
    assert output["outcome"] == "completedWithFailures"
    assert output["counts"] == {"snapshotCompleted": 1, "notStarted": 2}
    by_vm = {v["vmId"]: v for v in output["vms"]}
    for vm in ("dl-q-b", "dl-q-c"):
        _assert_not_started(by_vm[vm_id(vm)], start_by)
        asked = [c["activity"] for c in tier.script.calls(when=vm) if c["activity"] != "publish_events"]
        assert asked == []  # never triggered, not even looked at (ChainCompleted names it)
        assert tier.host.status(vm_instance_id("r1", "dl-q", vm_id(vm))) == {}  # no orchestration
    assert tier.input_of(vm_instance_id("r1", "dl-q", vm_id("dl-q-a")))["startBy"] == _iso(start_by)
    completed = tier.published("dl-q")[-1]
    assert completed["type"] == f"{PREFIX}ChainCompleted"
    assert completed["data"]["counts"] == {"snapshotCompleted": 1, "notStarted": 2}
    assert tier.unscripted("dl-q") == []


def test_a_run_done_within_its_window_ends_without_waiting_for_it(tier: OrchestratorTier) -> None:
    vms = ["dl-fast-a", "dl-fast-b"]
    chain = _chain("dl-fast", vms, maxParallel=1)  # b waits for a's slot: the window's timer is set
    for vm in vms:
        tier.script.on("find_active_job", vm, no_job())
        tier.script.on("trigger_backup", vm, accepted(f"op-{vm}", retry_after=5))
        tier.script.on("backup_operation", f"op-{vm}", operation_succeeded(job(f"job-{vm}", start=tier.at(0))))
        tier.script.on("get_job", f"job-{vm}", read(job(f"job-{vm}", start=tier.at(0), snapshot="Completed")))
    status = tier.run("chain_run", _instance("dl-fast"), _run_input(chain))
    assert status["runtimeStatus"] == "Completed" and status["output"]["outcome"] == "completed"
    start_by = tier.started_at(_instance("dl-fast")) + timedelta(seconds=WINDOW_SECONDS)
    assert tier.timers(_instance("dl-fast")) == [start_by]
    assert tier.now() < start_by  # ended without waiting for the window's (cancelled) timer


def test_a_batch_run_reports_vms_queued_in_a_batch_and_a_batch_not_started(tier: OrchestratorTier) -> None:
    vms = [f"dl-b-{n:02d}" for n in range(51)]
    vault = vault_id("vault-dl-b")
    chain = _chain("dl-b", vms, vault=vault, maxParallel=4)
    for vm in vms[:4]:  # the first wave of batch 0 holds its 4 slots past the window
        _slow_trigger(tier, vm)
    tier.begin("chain_run", _instance("dl-b"), _run_input(chain))
    tier.settle()
    start_by = tier.started_at(_instance("dl-b")) + timedelta(seconds=WINDOW_SECONDS)
    output = tier.drive(_instance("dl-b"))["output"]
    assert output["outcome"] == "completedWithFailures"
    assert output["counts"] == {"snapshotCompleted": 4, "notStarted": 47}
    by_vm = {v["vmId"]: v for v in output["vms"]}
    for vm in vms[4:]:  # 46 queued inside batch 0, and batch 1's one VM
        _assert_not_started(by_vm[vm_id(vm)], start_by)
    looked_at = [
        c["request"]["vmId"] for c in tier.script.calls(when="vault-dl-b") if c["activity"] == "find_active_job"
    ]
    assert sorted(looked_at) == sorted(vm_id(vm) for vm in vms[:4])  # only the first wave ever started
    assert tier.input_of(vm_batch_instance_id("dl-b", "r1", 0))["startBy"] == _iso(start_by)
    assert tier.host.status(vm_batch_instance_id("dl-b", "r1", 1)) == {}  # batch 1 never started
    batch0 = vm_batch_instance_id("dl-b", "r1", 0)
    assert tier.timers(batch0) == [start_by]
    assert tier.unscripted("dl-b") == []


def test_a_vm_delayed_for_the_scheduled_backup_past_the_window_is_not_started(tier: OrchestratorTier) -> None:
    name = "dl-overlap"
    at = (tier.now() + timedelta(minutes=60)).replace(second=0, microsecond=0)
    schedule = {
        "frequency": "Daily",
        "days": [],
        "times": [at.strftime("%H:%M")],
        "time_zone": "UTC",
        "interval_hours": 0,
        "window_hours": 0,
    }
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": schedule, "policy": "daily"}))
    start_by = tier.now() + timedelta(minutes=30)  # the overlap delay lasts until 2 h after `at`
    gc = {"mode": "weekly-policy", "policy": "weekly", "overlap": "delay"}
    spec = vm_input(name, tier.at(-600), gc=gc, startBy=_iso(start_by))
    started = tier.now()
    status = tier.run("vm_backup", vm_instance(name), spec)
    output = status["output"]
    _assert_not_started(output, start_by)
    # The delay would end 2 h after `at`, past the window: not started at once, with no
    # BackupDelayed promising a resumesAt that never comes, and no wait holding the VM's slot.
    assert _iso(at + timedelta(hours=2)) in output["message"]
    assert tier.types(name) == []
    assert tier.script.calls("find_active_job", name) == [] and tier.script.calls("trigger_backup", name) == []
    assert tier.timers(vm_instance(name)) == [] and tier.now() == started
    assert custom(status, "phase") == "notStarted"


def test_a_vm_delayed_past_the_window_frees_its_slot_for_a_vm_that_can_start(tier: OrchestratorTier) -> None:
    # maxParallel 1: the first VM's overlap delay would outlast the window. Waiting it out would
    # hold the only slot until the window closed and the second VM, which GC does not cover,
    # would be notStarted too although nothing kept it from starting in time.
    delayed, free = "dl-slot-a", "dl-slot-b"
    at = (tier.now() + timedelta(minutes=30)).replace(second=0, microsecond=0)
    schedule = {
        "frequency": "Daily",
        "days": [],
        "times": [at.strftime("%H:%M")],
        "time_zone": "UTC",
        "interval_hours": 0,
        "window_hours": 0,
    }
    tier.script.on("get_policy_schedule", delayed, ok({"ok": True, "schedule": schedule, "policy": "daily"}))
    tier.script.on("find_active_job", free, no_job())
    tier.script.on("trigger_backup", free, accepted(f"op-{free}", retry_after=5))
    tier.script.on("backup_operation", f"op-{free}", operation_succeeded(job(f"job-{free}", start=tier.at(0))))
    tier.script.on("get_job", f"job-{free}", read(job(f"job-{free}", start=tier.at(0), snapshot="Completed")))
    run = _run_input(_chain("dl-slot", [delayed, free], maxParallel=1))
    run["gc"] = {"mode": "weekly-policy", "policy": "weekly", "overlap": "delay", "vms": [vm_id(delayed).lower()]}
    status = tier.run("chain_run", _instance("dl-slot"), run)
    output = status["output"]
    start_by = tier.started_at(_instance("dl-slot")) + timedelta(seconds=WINDOW_SECONDS)
    assert output["counts"] == {"notStarted": 1, "snapshotCompleted": 1}, output
    by_vm = {v["vmId"]: v for v in output["vms"]}
    _assert_not_started(by_vm[vm_id(delayed)], start_by)
    assert by_vm[vm_id(free)]["outcome"] == "snapshotCompleted"
    assert len(tier.script.calls("trigger_backup", free)) == 1 and tier.script.calls("trigger_backup", delayed) == []
    assert tier.now() < start_by  # the run did not wait for its window to close
    assert tier.unscripted("dl-slot") == []


def test_a_vm_waiting_for_the_protection_lease_past_the_window_is_not_started(tier: OrchestratorTier) -> None:
    name = "dl-lease"
    key = vm_hash(vm_id(name))
    # Another holder is mid-transition (weekend-window GC): the backup waits WAIT_SECONDS at a time.
    tier.signal("protection_lease", key, "acquire", {"holder": "gc:window:dl", "kind": "window", "at": tier.at(0)})
    tier.script.on("get_policy_schedule", name, ok({"ok": True, "schedule": None, "policy": "weekly"}))
    start_by = tier.now() + timedelta(seconds=WAIT_SECONDS * 1.5)
    gc = {"mode": "weekend-window", "policy": "weekly", "overlap": "refuse"}
    spec = vm_input(name, tier.at(-600), gc=gc, startBy=_iso(start_by))
    status = tier.run("vm_backup", vm_instance(name), spec)
    _assert_not_started(status["output"], start_by)
    started = tier.started_at(vm_instance(name))
    assert tier.timers(vm_instance(name)) == [started + timedelta(seconds=WAIT_SECONDS), start_by]
    assert tier.script.calls("set_protection", name) == [] and tier.script.calls("find_active_job", name) == []
    assert tier.types(name) == []
    lease = tier.host.mgmt("GET", f"entities/protection_lease/{key}").json()
    assert list(lease["holders"]) == ["gc:window:dl"]  # never taken, so nothing to give back


def _waiting_out(tier: OrchestratorTier, name: str, **extra: Any) -> tuple[dict[str, Any], datetime]:
    """``name``: a backup older than the upstream signal runs on; the window closes in 10 min."""
    older = job(f"job-{name}", start=tier.at(-3600))
    tier.script.on("find_active_job", name, running(older))
    tier.script.on("get_job", f"job-{name}", read(older))  # still running, whenever read
    start_by = tier.now() + timedelta(minutes=10)
    spec = vm_input(name, tier.at(-600), startBy=_iso(start_by), **extra)
    status = tier.run("vm_backup", vm_instance(name), spec)
    return status, start_by


def test_a_vm_waiting_out_an_older_job_past_the_window_is_not_started(tier: OrchestratorTier) -> None:
    name = "dl-waitout"
    status, start_by = _waiting_out(tier, name)
    _assert_not_started(status["output"], start_by)
    assert tier.now() == start_by  # at the window's end, not when the older job ends
    assert tier.script.calls("trigger_backup", name) == [] and tier.types(name) == []
    assert start_by in tier.timers(vm_instance(name))
    tier.terminate(watcher_instance_id(vm_instance(name), "wait0"))  # its watch would read on


def test_with_shared_polling_a_vm_waiting_out_an_older_job_past_the_window_is_not_started(
    tier: OrchestratorTier,
) -> None:
    name = "dl-sharedwaitout"
    status, start_by = _waiting_out(tier, name, polling={"shared": True}, vaultId=vault_id(f"vault-{name}"))
    _assert_not_started(status["output"], start_by)
    assert tier.now() == start_by  # before the 1 h fallback wake
    assert tier.script.calls("trigger_backup", name) == [] and tier.types(name) == []


def test_a_vm_staggered_past_the_window_is_not_started(tier: OrchestratorTier) -> None:
    name = "dl-stagger"
    start_by = tier.now() + timedelta(seconds=60)
    status = tier.run(
        "vm_backup", vm_instance(name), vm_input(name, tier.at(-600), delaySeconds=120, startBy=_iso(start_by))
    )
    _assert_not_started(status["output"], start_by)
    # Waited to the window's end, not freed at once: the stagger keeps queued VMs from a burst.
    assert tier.timers(vm_instance(name)) == [start_by]
    assert tier.script.calls(when=name) == [] and tier.types(name) == []


# --- the snapshot deadline -----------------------------------------------------------------------
# Job reads (per-VM polling) at job start + 240, 360, 480 s: the trigger's operation is read at
# +60 and +120 s (triggeredAt), the watch's first read comes at +240 s and every 120 s after.
PLAN = dict(PollPlan(snapshot_low_s=60, snapshot_high_s=60, lead_s=0, overdue_min_s=120, overdue_max_s=120).__dict__)


def _late_vm(tier: OrchestratorTier, name: str, late_read: dict[str, Any]) -> dict[str, Any]:
    """``name``'s backup: the snapshot is seen Completed at the watch's third read (+480 s);
    ``late_read`` answers the read at the deadline (it names the VM, the watch's reads do not)."""
    job_id = f"job-{name}"
    start = tier.at(0)
    tier.script.on("get_job", name, late_read)
    snap = job(job_id, start=start, snapshot="Completed", snapshot_end=tier.at(450))
    tier.script.on("get_job", job_id, read(job(job_id, start=start)), read(job(job_id, start=start)), read(snap))
    triggers(tier, name, job_id, f"op-{name}")
    return snap


def test_a_late_snapshot_is_reported_once_then_its_completion(tier: OrchestratorTier) -> None:
    name = "dl-late"
    _late_vm(tier, name, read(job(f"job-{name}", start=tier.at(0))))
    spec = vm_input(name, tier.at(-600), plan=PLAN, monitorTransfer=False, snapshotDeadlineSeconds=300)
    output = tier.run("vm_backup", vm_instance(name), spec)["output"]
    assert output["outcome"] == "snapshotCompleted" and output["snapshotLate"] is True
    assert tier.types(name) == ["BackupTriggered", "SnapshotLate", "SnapshotCompleted"]
    triggered = tier.published(name)[0]["data"]["triggeredAt"]
    late = tier.published(name)[1]
    deadline = moment(triggered) + timedelta(seconds=300)
    assert late["data"]["triggeredAt"] == triggered and moment(late["data"]["deadline"]) == deadline
    assert moment(late["time"]) == deadline  # told at the deadline, not at the next job read
    assert late["data"]["jobId"] == f"job-{name}" and late["data"]["snapshotStatus"] == "InProgress"
    assert late["data"]["jobStatus"] == "InProgress" and late["data"]["readError"] is None
    assert len(tier.script.calls("get_job", name)) == 1  # one read at the deadline
    assert tier.unscripted(name) == []


def test_a_snapshot_heard_of_before_the_deadline_is_not_late(tier: OrchestratorTier) -> None:
    name = "dl-intime"
    _late_vm(tier, name, read(job(f"job-{name}", start=tier.at(0))))
    # Deadline at +520 s: the watch hears of the snapshot at its +480 s read, 40 s before it.
    spec = vm_input(name, tier.at(-600), plan=PLAN, monitorTransfer=False, snapshotDeadlineSeconds=400)
    status = tier.run("vm_backup", vm_instance(name), spec)
    assert status["runtimeStatus"] == "Completed"
    assert "snapshotLate" not in status["output"]
    tier.host.advance(600)  # past the deadline: the cancelled timer tells nothing
    tier.settle()
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted"]
    assert tier.script.calls("get_job", name) == []
    triggered = moment(tier.published(name)[0]["data"]["triggeredAt"])
    assert triggered + timedelta(seconds=400) in tier.timers(vm_instance(name))


def test_a_snapshot_the_deadlines_read_shows_completed_is_not_late(tier: OrchestratorTier) -> None:
    name = "dl-readdone"
    start = tier.at(0)
    done = job(f"job-{name}", start=start, snapshot="Completed", snapshot_end=tier.at(410))
    _late_vm(tier, name, read(done))
    spec = vm_input(name, tier.at(-600), plan=PLAN, monitorTransfer=False, snapshotDeadlineSeconds=300)
    output = tier.run("vm_backup", vm_instance(name), spec)["output"]
    assert output["outcome"] == "snapshotCompleted" and "snapshotLate" not in output
    assert tier.types(name) == ["BackupTriggered", "SnapshotCompleted"]
    assert len(tier.script.calls("get_job", name)) == 1


def _shared(name: str) -> dict[str, Any]:
    return {"polling": {"shared": True}, "vaultId": vault_id(f"vault-{name}"), "monitorTransfer": False}


def _adopting(tier: OrchestratorTier, name: str, deadline_seconds: float) -> None:
    """Start ``name`` with shared polling (adopting its running job) and drive it to its snapshot wait."""
    tier.script.on("find_active_job", name, running(job(f"job-{name}", start=tier.at(-60))))
    spec = vm_input(name, tier.at(-600), **_shared(name), snapshotDeadlineSeconds=deadline_seconds)
    tier.begin("vm_backup", vm_instance(name), spec)
    tier.drive(vm_instance(name), lambda s: custom(s, "phase") == "snapshot")


def test_shared_polling_reports_a_late_snapshot_then_its_notice(tier: OrchestratorTier) -> None:
    name = "dl-sharedlate"
    tier.script.on("get_job", name, read(job(f"job-{name}", start=tier.at(-60), snapshot="InProgress")))
    _adopting(tier, name, 300)
    tier.drive(vm_instance(name), lambda s: custom(s, "snapshotLate") is True)
    assert tier.types(name) == ["BackupTriggered", "SnapshotLate"]
    started = tier.started_at(vm_instance(name))
    assert tier.now() == started + timedelta(seconds=300)  # before the 900 s fallback wake
    snap = job(f"job-{name}", start=tier.at(-360), snapshot="Completed", snapshot_end=tier.at(0))
    tier.raise_event(vm_instance(name), "job:snapshot", {"ok": True, "job": snap, "announced": False})
    output = tier.drive(vm_instance(name))["output"]
    assert output["outcome"] == "snapshotCompleted" and output["snapshotLate"] is True
    assert tier.types(name) == ["BackupTriggered", "SnapshotLate", "SnapshotCompleted"]


def test_shared_polling_with_a_notice_before_the_deadline_tells_no_lateness(tier: OrchestratorTier) -> None:
    name = "dl-sharedintime"
    _adopting(tier, name, 300)
    snap = job(f"job-{name}", start=tier.at(-60), snapshot="Completed", snapshot_end=tier.at(0))
    tier.raise_event(vm_instance(name), "job:snapshot", {"ok": True, "job": snap, "announced": True})
    status = tier.drive(vm_instance(name))
    assert status["runtimeStatus"] == "Completed" and "snapshotLate" not in status["output"]
    tier.host.advance(600)
    tier.settle()
    assert tier.types(name) == ["BackupTriggered"]  # the poller announced the snapshot; no SnapshotLate
    assert tier.script.calls("get_job", name) == []
