"""The emulator's behaviour on the shared clock: one heap of due events (phase ends, scheduled
backups, daily GC, housekeeping) settled lazily up to "now" on each request and on a coarse tick.

Everything random is drawn from streams seeded by (scenario seed, item, per-item counter), so a
scenario replays identically whatever the request timing.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from emulators.recoveryservices import errors
from emulators.recoveryservices.consistency import consistency_type
from emulators.recoveryservices.gc import DAY, collect, next_gc_time
from emulators.recoveryservices.model import (
    RP_COLLECTION_LIMIT,
    Item,
    Job,
    Operation,
    RecoveryPoint,
    Vault,
)
from emulators.recoveryservices.scenario import MachineSpec, PolicySpec, Scenario, VmSpec
from emulators.recoveryservices.scheduler import next_policy_time, start_delay_seconds
from emulators.recoveryservices.shapes import vm_id

ON_DEMAND_DEFAULT_RETENTION = 30 * DAY  # portal default retain-until for "Backup now"
HOUSEKEEPING_EVERY = 6 * 3600.0


@dataclass(frozen=True)
class DueBeacon:
    """A post-script's beacon to send: the VM, its topic and the in-guest snapshot moment."""

    vm_id: str
    topic: str
    at: float
    job_id: str


class Engine:
    def __init__(self, scenario: Scenario, now: float):
        self.scenario = scenario
        self.vaults: dict[str, Vault] = {}
        self.items: dict[tuple[str, str], Item] = {}
        self.by_vm: dict[str, list[Item]] = {}
        self.machines: dict[str, MachineSpec] = {}  # lower-case VM id → VM, as Resource Graph lists it
        self.jobs: dict[str, Job] = {}
        self.operations: dict[str, Operation] = {}
        self.trigger_posts: Counter[str] = Counter()  # Backups_Trigger POSTs per VM name (lower case)
        self._heap: list[tuple[float, int, str, Any, int]] = []
        self._counter = 0
        self.settled_to = now
        self.stats = {
            "events": 0,
            "gcRuns": 0,
            "snapshotsCollected": 0,
            "recoveryPointsExpired": 0,
            "beaconsDue": 0,
            "beaconsSent": 0,
            "beaconsLost": 0,
        }
        self.beacons: list[DueBeacon] = []  # due post-script beacons, sent by beacons.py
        self._load(now)

    # --- deterministic randomness -------------------------------------------------------------
    def rng(self, *parts: object) -> random.Random:
        return random.Random("|".join([str(self.scenario.seed), *map(str, parts)]))

    @staticmethod
    def _uuid(rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    # --- loading ------------------------------------------------------------------------------
    def _load(self, now: float) -> None:
        for spec in self.scenario.vaults:
            vid = (
                f"/subscriptions/{spec.subscription_id}/resourceGroups/{spec.resource_group}"
                f"/providers/Microsoft.RecoveryServices/vaults/{spec.name}"
            )
            vault = Vault(spec, vid, {p.name.lower(): p for p in spec.policies})
            self.vaults[vid.lower()] = vault
            for vm in spec.vms:
                self.add_item(vault, vm, now)
                machine = MachineSpec(spec.subscription_id, vm.resource_group, vm.name, spec.location, vm.tags)
                self.machines.setdefault(machine.id.lower(), machine)
        for machine in self.scenario.unprotected_vms:
            self.machines.setdefault(machine.id.lower(), machine)
        self._push(now + HOUSEKEEPING_EVERY, "housekeeping", None, 0)

    def add_item(self, vault: Vault, vm: VmSpec, now: float) -> Item:
        """Protect ``vm`` in ``vault``: its protected item, seeded history and schedules."""
        rg, name = vm.resource_group.lower(), vm.name.lower()
        rng = self.rng("item", vault.id.lower(), rg, name)
        item = Item(
            vault=vault,
            vm=vm,
            container=f"iaasvmcontainer;iaasvmcontainerv2;{rg};{name}",
            name=f"VM;iaasvmcontainerv2;{rg};{name}",
            policy=vm.policy,
            protected=vm.protected and vm.policy is not None,
            data_id=str(rng.randrange(10**17, 10**18)),
            gc_offset=rng.uniform(0, DAY),
        )
        self.items[item.key] = item
        self.by_vm.setdefault(name, []).append(item)
        self._seed_history(item, now)
        if vm.running_scheduled_minutes_ago is not None:
            self._start_job(item, now - vm.running_scheduled_minutes_ago * 60, user_triggered=False)
        self._schedule_next(item, now)
        item.next_gc = next_gc_time(item, now)
        self._push(item.next_gc, "gc", item, 0)
        return item

    def remove_item(self, item: Item) -> None:
        """Stop protection and delete the backup data: the vault no longer lists the VM (its
        past jobs stay in the job list, as Azure keeps them)."""
        del self.items[item.key]
        self.by_vm[item.vm.name.lower()].remove(item)
        item.protected = False  # its pending schedule and GC events find nothing to do
        item.sched_version += 1

    def _seed_history(self, item: Item, now: float) -> None:
        for entry in sorted(item.vm.history, key=lambda h: -h.hours_ago):
            start = now - entry.hours_ago * 3600
            job = self._new_job(item, start, entry.user_triggered, None)
            if entry.user_triggered:  # an on-demand backup: counts toward the daily limit
                item.on_demand_starts.append(start)
            if entry.status == "Failed":
                job.outcome = "snapshot_fail"
                job.error = errors.SNAPSHOT_ERRORS[item.vm.faults.snapshot_error_code]
            job.transfer_end = min(job.transfer_end, now)
            job.snap_end = min(job.snap_end, job.transfer_end)
            self.jobs[job.id] = job
            if job.outcome == "ok":
                rp = self._make_rp(job)
                rp.in_vault = True
                rp.instant_valid = not entry.snapshot_collected
            self._finalize(job)

    # --- event heap ---------------------------------------------------------------------------
    def _push(self, when: float, kind: str, obj: Any, version: int) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, kind, obj, version))

    def settle(self, now: float) -> None:
        """Apply every event due at or before ``now``, each at its own time."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, kind, obj, version = heapq.heappop(heap)
            self.stats["events"] += 1
            if kind == "snap":
                if version == obj.version and not obj.done:
                    self._on_snapshot_end(obj)
            elif kind == "end":
                if version == obj.version and not obj.done:
                    self._finalize(obj)
            elif kind == "sched":
                if version == obj.sched_version:
                    self._on_schedule(obj, when)
            elif kind == "beacon":
                if version == obj.version and not obj.done:
                    self._on_beacon(obj, when)
            elif kind == "gc":
                self._on_gc(obj, when)
            elif kind == "housekeeping":
                self._housekeeping(when)
                self._push(when + HOUSEKEEPING_EVERY, "housekeeping", None, 0)
        self.settled_to = max(self.settled_to, now)

    # --- jobs ---------------------------------------------------------------------------------
    def _new_job(self, item: Item, start: float, user_triggered: bool, expiry: float | None) -> Job:
        item.seq += 1
        rng = self.rng("job", item.key, item.seq)
        snap = rng.uniform(*item.vm.snapshot_minutes) * 60
        transfer = rng.uniform(*item.vm.transfer_minutes) * 60
        job = Job(
            id=self._uuid(rng),
            item=item,
            user_triggered=user_triggered,
            start=start,
            snap_end=start + snap,
            transfer_end=start + snap + transfer,
            outcome="ok",
            expiry=expiry,
            activity_id=self._uuid(rng),
        )
        faults = item.vm.faults
        if item.uncollected_snapshots() >= RP_COLLECTION_LIMIT:
            job.outcome, job.error = "snapshot_fail", errors.RP_COLLECTION_LIMIT
            job.snap_end = start + min(snap, rng.uniform(60, 180))
        elif faults.snapshot_failure_rate and rng.random() < faults.snapshot_failure_rate:
            job.outcome = "snapshot_fail"
            job.error = errors.SNAPSHOT_ERRORS.get(
                faults.snapshot_error_code, errors.SNAPSHOT_ERRORS["ExtensionFailedVssWriterInBadState"]
            )
        elif faults.transfer_failure_rate and rng.random() < faults.transfer_failure_rate:
            job.outcome = "transfer_fail"
            job.error = errors.TRANSFER_ERRORS["CopyingVHDsFromBackUpVaultTakingLongTime"]
        return job

    def _start_job(self, item: Item, start: float, user_triggered: bool, expiry: float | None = None) -> Job:
        job = self._new_job(item, start, user_triggered, expiry)
        self.jobs[job.id] = job
        item.active_job = job
        self._push(job.snap_end, "snap", job, job.version)
        if job.outcome != "snapshot_fail":
            self._push(job.transfer_end, "end", job, job.version)
            script = item.vm.post_script
            if script is not None:
                # The post-script runs "immediately after" the snapshot, before the job's task shows
                # Completed (learn.microsoft.com/azure/backup/backup-azure-linux-app-consistent).
                job.beacon_at = max(start, job.snap_end - script.gap_seconds)
                self._push(job.beacon_at, "beacon", job, job.version)
        return job

    def _on_beacon(self, job: Job, when: float) -> None:
        script = job.item.vm.post_script
        if script is not None and job.cancelled_at is None:
            self.beacons.append(DueBeacon(vm_id(job.item), script.topic, when, job.id))
            self.stats["beaconsDue"] += 1

    def _conflict_job(self, item: Item, when: float, user_triggered: bool) -> Job:
        job = self._new_job(item, when, user_triggered, None)
        job.snap_end = job.transfer_end = when
        job.outcome, job.error = "conflict", errors.BACKUP_IN_PROGRESS
        self.jobs[job.id] = job
        job.done = True
        item.last_backup_status = "Failed"
        return job

    def _make_rp(self, job: Job) -> RecoveryPoint:
        item = job.item
        rng = self.rng("rp", item.key, job.id)
        if job.user_triggered:
            expiry = job.expiry if job.expiry is not None else job.snap_end + ON_DEMAND_DEFAULT_RETENTION
        else:
            policy = self.policy_of(item)
            days = (
                30
                if policy is None
                else (policy.retention_days if policy.frequency == "Daily" else policy.retention_weeks * 7)
            )
            expiry = job.snap_end + days * DAY
        rp = RecoveryPoint(
            name=str(rng.randrange(10**13, 10**14)),
            time=job.snap_end,
            consistency=consistency_type(item.vm, rng),
            expiry=expiry,
            user_triggered=job.user_triggered,
        )
        item.rps.append(rp)
        return rp

    def _on_snapshot_end(self, job: Job) -> None:
        if job.outcome == "snapshot_fail":
            self._finalize(job)
        else:
            self._make_rp(job)

    def _finalize(self, job: Job) -> None:
        job.done = True
        item = job.item
        if item.active_job is job:
            item.active_job = None
        if job.cancelled_at is not None:
            return
        item.last_backup_time = job.start
        if job.outcome == "ok":
            item.last_backup_status = "Completed"
            for rp in reversed(item.rps):
                if rp.time == job.snap_end:
                    rp.in_vault = True
                    break
        else:
            item.last_backup_status = "Failed"

    # --- schedule and GC ----------------------------------------------------------------------
    def policy_of(self, item: Item) -> PolicySpec | None:
        return item.vault.policies.get(item.policy.lower()) if item.policy else None

    def _schedule_next(self, item: Item, after: float) -> None:
        item.sched_version += 1
        item.next_sched = None
        policy = self.policy_of(item)
        if not item.protected or policy is None:
            return
        base = next_policy_time(policy, after)
        item.seq += 1
        delay = start_delay_seconds(
            self.rng("sched", item.key, item.seq),
            self.scenario.schedule_delay_minutes,
            self.scenario.late_schedule_rate,
        )
        item.next_sched = base + delay
        self._push(item.next_sched, "sched", item, item.sched_version)

    def _on_schedule(self, item: Item, when: float) -> None:
        if item.protected:
            if item.active_job is not None and not item.active_job.done:
                self._conflict_job(item, when, user_triggered=False)
            else:
                self._start_job(item, when, user_triggered=False)
        self._schedule_next(item, when)

    def _on_gc(self, item: Item, when: float) -> None:
        policy = self.policy_of(item)
        if item.protected:
            self.stats["gcRuns"] += 1
            snaps, expired = collect(item, when, policy.instant_rp_days if policy else 2)
            self.stats["snapshotsCollected"] += snaps
            self.stats["recoveryPointsExpired"] += expired
        item.next_gc = next_gc_time(item, when)
        self._push(item.next_gc, "gc", item, 0)

    def _housekeeping(self, when: float) -> None:
        horizon = when - self.scenario.job_retention_days * DAY
        for jid in [j.id for j in self.jobs.values() if j.done and j.finished_at() < horizon]:
            del self.jobs[jid]
        for oid in [o.id for o in self.operations.values() if o.end < when - DAY]:
            del self.operations[oid]

    # --- operations the ARM routes call -------------------------------------------------------
    def _operation(self, kind: str, now: float, item: Item | None) -> Operation:
        rng = self.rng("op", kind, now, len(self.operations), self._counter)
        op = Operation(id=self._uuid(rng), kind=kind, start=now, end=now, item=item)
        self.operations[op.id] = op
        return op

    def trigger(self, item: Item, now: float, expiry: float | None) -> Operation:
        """On-demand backup. Raises ArmError for a stopped item, the daily limit and (in the
        ``objectLocked`` form) a running job; the other conflict forms answer through the operation.
        The operation stays InProgress for ``operationSeconds``; the job starts at once."""
        rules = self.scenario.trigger_rules
        self.trigger_posts[item.vm.name.lower()] += 1
        if not item.protected:
            raise errors.ArmError(400, errors.PROTECTION_STOPPED_CODE, errors.PROTECTION_STOPPED_MESSAGE)
        item.on_demand_starts = [t for t in item.on_demand_starts if t > now - DAY]
        if len(item.on_demand_starts) >= rules.on_demand_per_day:
            raise errors.ArmError(400, *errors.ON_DEMAND_LIMIT)
        running = item.active_job if item.active_job is not None and not item.active_job.done else None
        form = rules.conflict_form_for(item.vm.name)
        if running is not None and form == "objectLocked":
            raise errors.ArmError(400, *errors.OBJECT_LOCKED)
        op = self._operation("backup", now, item)
        op.end = now + rules.operation_seconds
        if running is not None and form == "failedOperation":
            # The operation fails carrying the running job's id: Azure/azure-powershell
            # src/RecoveryServices/RecoveryServices.Backup/RSBackupVaultCmdletBase.cs HandleCreatedJob
            # outputs the job a Failed operation's properties.jobId names, then throws its error.
            err = errors.BACKUP_IN_PROGRESS
            op.error, op.job_id = (err.code, err.message), running.id
            return op
        item.on_demand_starts.append(now)
        if running is not None:  # failedJob: the operation succeeds, its job fails at once
            op.job_id = self._conflict_job(item, now, user_triggered=True).id
            return op
        op.job_id = self._start_job(item, now, user_triggered=True, expiry=expiry).id
        self.settle(now)
        return op

    def set_protection(self, item: Item, *, stop: bool, policy: str | None, now: float) -> Operation:
        op = self._operation("protect", now, item)
        if stop:
            item.protected = False
            self._schedule_next(item, now)  # cancels the pending scheduled backup
            return op
        if policy is None and item.policy is None:
            raise errors.bad_request("A backup policy is required to resume protection.", "BMSUserErrorInvalidInput")
        if policy is not None:
            if policy.lower() not in item.vault.policies:
                raise errors.not_found(f"{item.vault.id}/backupPolicies/{policy}")
            item.policy = item.vault.policies[policy.lower()].name
        item.protected = True
        self._schedule_next(item, now)
        return op

    def cancel(self, job: Job, now: float) -> Operation:
        """Cancel a job in Take Snapshot. In transfer the POST is accepted and its operation fails
        (400 on its result); a finished job is refused at once."""
        if job.done or job.view(now).status != "InProgress":
            raise errors.ArmError(400, *errors.JOB_NOT_CANCELLABLE)
        op = self._operation("cancel", now, job.item)
        op.job_id = job.id
        if now >= job.snap_end:
            op.error = errors.JOB_NOT_CANCELLABLE_IN_TRANSFER
            return op
        job.cancelled_at = now
        job.version += 1
        job.beacon_at = None  # its beacon is not sent (stale version)
        self._finalize(job)
        return op

    def force_next(self, job: Job, now: float) -> str:
        """Make the job's current phase end now (admin). Returns the new job status."""
        if job.done:
            return job.view(now).status
        job.version += 1
        if now < job.snap_end:
            transfer = job.transfer_end - job.snap_end
            job.snap_end = now
            job.beacon_at = None  # its beacon is not sent (stale version)
            job.transfer_end = now + transfer
            self._push(job.snap_end, "snap", job, job.version)
            if job.outcome != "snapshot_fail":
                self._push(job.transfer_end, "end", job, job.version)
        else:
            job.transfer_end = now
            self._push(now, "end", job, job.version)
        self.settle(now)
        return job.view(now).status

    # --- queries ------------------------------------------------------------------------------
    def vault(self, sub: str, rg: str, name: str) -> Vault:
        vid = (f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{name}").lower()
        try:
            return self.vaults[vid]
        except KeyError:
            raise errors.ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{name}' under resource group '{rg}' was not found.",
            ) from None

    def item(self, vault: Vault, container: str, name: str) -> Item:
        found = self.items.get((vault.id.lower(), name.lower()))
        if found is None or found.container.lower() != container.lower():
            raise errors.not_found(
                f"{vault.id}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{name}"
            )
        return found

    def vault_items(self, vault: Vault) -> Iterator[Item]:
        vid = vault.id.lower()
        return (i for i in self.items.values() if i.vault.id.lower() == vid)

    def vault_jobs(self, vault: Vault) -> Iterator[Job]:
        vid = vault.id.lower()
        return (j for j in self.jobs.values() if j.item.vault.id.lower() == vid)
