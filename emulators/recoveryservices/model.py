"""In-memory resources: vaults, protected items, jobs, recovery points, async operations.

A job stores only its planned phase times and outcome; its status at any time is computed from the
clock (``Job.view``), so no timer or task exists per job (flat CPU and memory with thousands of VMs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.recoveryservices.errors import BackupError
from emulators.recoveryservices.scenario import PolicySpec, VaultSpec, VmSpec

SNAPSHOT_TASK = "Take Snapshot"  # task names as in GetJobDetails.json (azure-rest-api-specs)
TRANSFER_TASK = "Transfer data to vault"
RP_COLLECTION_LIMIT = 18  # at most 18 instant restore points per VM (docs/domain.md)


@dataclass(slots=True)
class Vault:
    spec: VaultSpec
    id: str
    policies: dict[str, PolicySpec]  # lower-case name -> policy


@dataclass(slots=True)
class RecoveryPoint:
    name: str
    time: float  # quiesce point (end of Take Snapshot)
    consistency: str  # AppConsistent | FileSystemConsistent | CrashConsistent
    expiry: float
    user_triggered: bool
    instant_valid: bool = True  # instant-restore snapshot still present (not collected by GC)
    in_vault: bool = False  # transfer to vault finished


@dataclass(slots=True)
class Item:
    vault: Vault
    vm: VmSpec
    container: str  # iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}
    name: str  # vm;iaasvmcontainerv2;{rg};{vm}
    policy: str | None  # policy name
    protected: bool  # False: ProtectionStopped (data retained)
    data_id: str
    gc_offset: float  # seconds after UTC midnight at which this item's daily GC runs
    rps: list[RecoveryPoint] = field(default_factory=list)
    active_job: Job | None = None
    last_backup_time: float | None = None
    last_backup_status: str | None = None
    seq: int = 0  # per-item counter feeding the deterministic random streams
    sched_version: int = 0
    next_sched: float | None = None
    next_gc: float | None = None
    on_demand_starts: list[float] = field(default_factory=list)  # accepted on-demand triggers (daily limit)

    @property
    def key(self) -> tuple[str, str]:
        return (self.vault.id.lower(), self.name.lower())

    def protection_state(self) -> str:
        if not self.protected:
            return "ProtectionStopped"
        return "Protected" if self.last_backup_status == "Completed" or self.rps else "IRPending"

    def uncollected_snapshots(self) -> int:
        return sum(1 for rp in self.rps if rp.instant_valid)


@dataclass(slots=True)
class TaskView:
    task_id: str
    status: str
    start: float | None
    end: float | None


@dataclass(slots=True)
class JobView:
    status: str
    end: float | None
    tasks: tuple[TaskView, TaskView]


@dataclass(slots=True)
class Job:
    id: str
    item: Item
    user_triggered: bool
    start: float
    snap_end: float  # planned (or forced) end of Take Snapshot
    transfer_end: float  # planned (or forced) end of Transfer data to vault
    outcome: str  # ok | snapshot_fail | transfer_fail | conflict
    error: BackupError | None = None
    expiry: float | None = None  # recoveryPointExpiryTimeInUTC of an on-demand backup
    cancelled_at: float | None = None
    version: int = 0
    done: bool = False
    activity_id: str = ""
    # GetJobDetails answers before / after Take Snapshot completed: benchmarks compare what each
    # way of watching a job spends (bench/chain_bench.py), per arm of the same run.
    reads_to_snapshot: int = 0
    reads_after_snapshot: int = 0
    # For a VM with a post-script: when its beacon is sent, and the reads before it (of
    # reads_to_snapshot) — what the beacon cannot save, e.g. the read confirming the trigger.
    beacon_at: float | None = None
    reads_before_beacon: int = 0

    def count_read(self, now: float) -> None:
        done = self.snapshot_completed_at()
        if done is not None and done <= now:
            self.reads_after_snapshot += 1
        else:
            self.reads_to_snapshot += 1
            if self.beacon_at is not None and now < self.beacon_at:
                self.reads_before_beacon += 1

    def finished_at(self) -> float:
        if self.cancelled_at is not None:
            return self.cancelled_at
        return self.snap_end if self.outcome in ("snapshot_fail", "conflict") else self.transfer_end

    def snapshot_completed_at(self) -> float | None:
        """True completion time of Take Snapshot (None if it fails or was cancelled before)."""
        if self.outcome in ("snapshot_fail", "conflict"):
            return None
        if self.cancelled_at is not None and self.cancelled_at < self.snap_end:
            return None
        return self.snap_end

    def view(self, now: float) -> JobView:
        """Job and task statuses at ``now`` (Azure's values: InProgress, Completed, Failed,
        Cancelled; a task not yet running is NotStarted as in GetJobDetails.json)."""
        cancel = self.cancelled_at if self.cancelled_at is not None and self.cancelled_at <= now else None
        if self.outcome == "conflict":
            snap = TaskView(SNAPSHOT_TASK, "Failed", self.start, self.snap_end)
            return JobView("Failed", self.snap_end, (snap, TaskView(TRANSFER_TASK, "NotStarted", None, None)))
        snap_fails = self.outcome == "snapshot_fail"
        if cancel is not None and cancel < self.snap_end:
            snap = TaskView(SNAPSHOT_TASK, "Cancelled", self.start, cancel)
            return JobView("Cancelled", cancel, (snap, TaskView(TRANSFER_TASK, "NotStarted", None, None)))
        if now < self.snap_end:
            snap = TaskView(SNAPSHOT_TASK, "InProgress", self.start, None)
            return JobView("InProgress", None, (snap, TaskView(TRANSFER_TASK, "NotStarted", None, None)))
        if snap_fails:
            snap = TaskView(SNAPSHOT_TASK, "Failed", self.start, self.snap_end)
            return JobView("Failed", self.snap_end, (snap, TaskView(TRANSFER_TASK, "NotStarted", None, None)))
        snap = TaskView(SNAPSHOT_TASK, "Completed", self.start, self.snap_end)
        if cancel is not None and cancel < self.transfer_end:
            return JobView("Cancelled", cancel, (snap, TaskView(TRANSFER_TASK, "Cancelled", self.snap_end, cancel)))
        if now < self.transfer_end:
            return JobView("InProgress", None, (snap, TaskView(TRANSFER_TASK, "InProgress", self.snap_end, None)))
        status = "Failed" if self.outcome == "transfer_fail" else "Completed"
        return JobView(
            status, self.transfer_end, (snap, TaskView(TRANSFER_TASK, status, self.snap_end, self.transfer_end))
        )


@dataclass(slots=True)
class Operation:
    """An async operation (trigger, protection change, cancel) behind operationsStatus/results."""

    id: str
    kind: str  # backup | protect | cancel
    start: float
    end: float
    job_id: str | None = None
    error: tuple[str, str] | None = None  # (code, message) when the operation failed
    item: Item | None = None
    http_status: int = 400  # the status operationResults answers for a failed operation
