"""``vm_backup``: one VM's on-demand backup — adopt or wait out a running job, trigger, watch Take
Snapshot, tell downstream at once, then (optionally) watch the transfer to the end."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from activities.backup import backup_operation, find_active_job, get_job, latest_recovery_point, trigger_backup
from activities.protection import get_policy_schedule
from backup_chain.custom_status import failure_for_status
from backup_chain.deadlines import (
    NOT_STARTED,
    START_WINDOW_CLOSED,
    closes_first,
    not_started,
    snapshot_late,
    window_closed,
)
from backup_chain.errors import CONFLICT_CODES, ErrorDict, error_dict, retries_exhausted
from backup_chain.gc import PolicySchedule, overlap_decision
from backup_chain.ids import watcher_instance_id
from backup_chain.jobs import JobView
from backup_chain.messages import (
    ActiveJobResult,
    Announce,
    GcSettings,
    JobResult,
    OperationResult,
    PolicyScheduleRequest,
    PolicyScheduleResult,
    RecoveryPointResult,
    TriggerResult,
    VmBackupInput,
    VmRequest,
    Watch,
    WatchJobInput,
    WatchOutcome,
    WatchUntil,
)
from backup_chain.stop_findings import stop_finding
from entities.job_watch import watch_entity
from orchestrators.common import (
    AZURE_RETRY,
    after,
    decode_event_data,
    follow,
    iso,
    kept_any,
    now,
    parse_time,
    publish,
    seconds_between,
    snapshot_completed,
    vm_event,
)
from orchestrators.notify import tell
from orchestrators.protection import acquire, release
from orchestrators.watch_job import watch_job

bp = df.Blueprint()
AD_HOC_BACKUP_HOURS = timedelta(hours=3)  # an incremental backup usually ends within 1-3 h (docs/domain.md)
MAX_TRIGGER_ROUNDS = 4  # find → (adopt | wait out | trigger) rounds before giving up on conflicts
CONFLICT_RECHECK_SECONDS = 300.0  # a conflict that names no job: look again after the job list caught up
# The trigger's async operation: read it after its Retry-After (60 s in azure-rest-api-specs
# recoveryservicesbackup examples/Common/TriggerBackup_Post.json), at least this
# often and at most this rarely, and give up when it runs this long.
OPERATION_POLL_FLOOR_SECONDS = 5.0
RETRY_AFTER_CAP_SECONDS = 3600.0
OPERATION_DEADLINE = timedelta(hours=2)
# Shared polling: ask the vault's poller board about the watch when nothing was heard for this long.
FALLBACK_SECONDS = {"snapshot": 900.0, "transfer": 3600.0, "end": 3600.0}
MAX_FALLBACK_WAKES = 48  # 12 h of snapshot or 48 h of transfer without a notice: give up on the job


# A wait-out watch that the start window's end cut short (no Azure code is StartWindowClosed).
_WINDOW_CLOSED: WatchOutcome = {
    "ok": False,
    "error": error_dict(START_WINDOW_CLOSED, "the start window closed while waiting out the VM's running job"),
}


class _SnapshotDeadline:
    """The snapshot deadline's durable timer, racing the snapshot watch (told: SnapshotLate is
    decided, at most once)."""

    def __init__(self, timer: Any, deadline: str, triggered_at: str):
        self.timer = timer
        self.deadline = deadline
        self.triggered_at = triggered_at
        self.told = False

    def pending(self) -> bool:
        return not self.told and not self.timer.is_completed


class _VmBackupState:
    """Per-execution state of one VM backup (rebuilt identically on every replay)."""

    def __init__(self, context: df.DurableOrchestrationContext, spec: VmBackupInput):
        self.context = context
        self.spec = spec
        self.request: VmRequest = {"vaultId": spec["vaultId"], "vmId": spec["vmId"]}
        self.status: dict[str, Any] = {"phase": "starting", "vmId": spec["vmId"], "jobId": None}
        self.start_by = parse_time(spec.get("startBy"))  # the run's start window closes (None: no window)
        self.late: _SnapshotDeadline | None = None

    def window_closed(self) -> bool:
        return window_closed(self.start_by, now(self.context))

    def window_closes_first(self, waiting_for: str, until: datetime) -> str | None:
        """Why this VM is not started now, when a wait for ``waiting_for`` until ``until`` would end
        only once the start window has closed (None: it ends in time). Known in advance, it is
        not waited out: the wait would hold the VM's parallelism slot from VMs that could start."""
        if self.start_by is None or until < self.start_by:
            return None
        return closes_first(iso(self.start_by), waiting_for, iso(until))

    def not_started(self, message: str | None = None) -> dict[str, Any]:
        """The start window closed before this VM's backup was triggered (``message``: or will
        before a wait it knows of ends): it never is."""
        result = not_started(self.spec["vmId"], str(self.spec.get("startBy")), message)
        self.phase(NOT_STARTED, errorCode=START_WINDOW_CLOSED, message=result["message"])
        return self.summary(NOT_STARTED, errorCode=START_WINDOW_CLOSED, message=result["message"])

    def before_window_closes(self, tasks: list[Any]) -> Generator[Any, Any, Any]:
        """The first of ``tasks`` to complete, or None when the start window closes first (a
        durable timer, cancelled when a task wins)."""
        if self.start_by is None:
            return (yield self.context.task_any(tasks))
        closing = self.context.create_timer(self.start_by)
        winner = yield self.context.task_any([*tasks, closing])
        if winner is closing:
            return None
        closing.cancel()
        return winner

    def race(self, tasks: list[Any], until: WatchUntil) -> Generator[Any, Any, Any]:
        """The first of ``tasks`` to complete. While the snapshot is watched, the snapshot
        deadline's timer races them: when it fires first, SnapshotLate is decided and the wait
        goes on (the backup is never cancelled)."""
        while True:
            late = self.late if until == "snapshot" else None
            if late is None or late.told:
                return (yield self.context.task_any(tasks))
            if late.timer.is_completed:
                yield from self._snapshot_late(late)
                continue
            winner = yield self.context.task_any([*tasks, late.timer])
            if winner is not late.timer:
                return winner

    def _snapshot_late(self, late: _SnapshotDeadline) -> Generator[Any, Any, None]:
        """At the deadline: read the job; unless the read shows the snapshot completed, publish
        one SnapshotLate with the phase the job shows, and the VM's result says snapshotLate."""
        late.told = True
        job_id = str(self.status.get("jobId"))
        try:
            read: JobResult = yield self.context.call_activity_with_retry(
                get_job, AZURE_RETRY, {**self.request, "jobId": job_id}
            )
        except Exception as err:
            read = {"ok": False, "error": retries_exhausted(str(err))}
        job = JobView.from_dict(read["job"]) if read["ok"] else None
        if not snapshot_late(job):
            return
        self.phase(str(self.status["phase"]), snapshotLate=True)
        error = None if read["ok"] else {k: read["error"].get(k) for k in ("code", "message")}
        yield publish(
            self.context,
            [
                self.event(
                    "SnapshotLate",
                    triggeredAt=late.triggered_at,
                    deadline=late.deadline,
                    jobStatus=job.status if job else None,
                    snapshotStatus=job.snapshot_status if job else None,
                    readError=error,
                )
            ],
        )

    def phase(self, phase: str, **fields: Any) -> None:
        self.status.update(phase=phase, updatedAt=iso(now(self.context)), **fields)
        self.context.set_custom_status(self.status)

    def event(self, event_type: str, **data: Any) -> dict[str, Any]:
        return vm_event(self.context, self.spec, self.status.get("jobId"), event_type, **data)

    def watch(
        self, job_id: str, until: WatchUntil, anchor: str | None, label: str
    ) -> Generator[Any, Any, WatchOutcome]:
        """Until the job reaches ``until``: ``{"ok": True, "job": JobView, "announced": bool}``
        or ``{"ok": False, "error": ...}``. ``announced``: SnapshotCompleted is published."""
        # Whoever sees the snapshot first publishes SnapshotCompleted (same event id either way).
        spec = self.spec
        announce: Announce | None = (
            {
                "chain": spec["chain"],
                "runId": spec["runId"],
                "vmId": spec["vmId"],
                "vaultId": spec["vaultId"],
                "prefix": spec["prefix"],
            }
            if until == "snapshot"
            else None
        )
        if not (spec.get("polling") or {}).get("shared"):
            watch_input: WatchJobInput = {
                "vaultId": spec["vaultId"],
                "jobId": job_id,
                "until": until,
                "anchor": anchor,
                "plan": spec["plan"],
                "announce": announce,
                "polls": 0,
                "behindKept": kept_any(self.context),
            }
            watching = self.context.call_sub_orchestrator(
                watch_job, watch_input, watcher_instance_id(self.context.instance_id, label)
            )
            if until == "snapshot" and self.late is not None:
                yield from self.race([watching], until)
            elif (
                until == "end"
                and self.start_by is not None
                and (yield from self.before_window_closes([watching])) is None
            ):
                return _WINDOW_CLOSED  # the watch goes on to the job's end, unheard
            watched: WatchOutcome = yield watching  # its result now, or its failure raised (the SDK re-yields)
            return watched
        return (yield from self._shared_watch(job_id, until, anchor, label, announce))

    def _shared_watch(
        self, job_id: str, until: WatchUntil, anchor: str | None, label: str, announce: Announce | None
    ) -> Generator[Any, Any, WatchOutcome]:
        """Register with the vault's budgeted poller and wait to be told. If it stays silent for
        long, ask its board why: a poller that is alive but behind is waited for (reading too would
        announce the snapshot twice); one that already finished the watch has its notice on the
        way; only a silent poller's watch is withdrawn and the job read here, then registered again."""
        context = self.context
        entity = watch_entity(self.spec["vaultId"])
        started = parse_time(anchor) or now(context)
        watch: Watch = {
            "key": watcher_instance_id(context.instance_id, label),
            "owner": context.instance_id,
            "event": f"job:{label}",
            "vaultId": self.spec["vaultId"],
            "jobId": job_id,
            "until": until,
            "anchor": started.timestamp(),
            "plan": self.spec["plan"],
            "announce": announce,
        }
        # One notice task for the whole wait: a notice that lands after a timer won must still count.
        notice = context.wait_for_external_event(watch["event"])
        register, heard_finished = True, False
        for _ in range(MAX_FALLBACK_WAKES):
            if register:
                context.signal_entity(entity, "watch", {"watch": watch, "now": now(context).timestamp()})
            timer = context.create_timer(after(context, FALLBACK_SECONDS[until]))
            if until == "end":  # waiting out another job: not past the start window
                winner = yield from self.before_window_closes([notice, timer])
                if winner is None:
                    timer.cancel()
                    return _WINDOW_CLOSED  # the poller drops the watch of a backup no longer waiting
            else:
                winner = yield from self.race([notice, timer], until)
            if winner is notice:
                timer.cancel()
                heard: WatchOutcome = decode_event_data(notice.result)
                return heard
            verdict = yield context.call_entity(
                entity,
                "fallback",
                {"key": watch["key"], "now": now(context).timestamp(), "silentSeconds": FALLBACK_SECONDS[until]},
            )
            register = False
            if verdict == "watching" or (verdict == "finished" and not heard_finished):
                heard_finished = heard_finished or verdict == "finished"
                continue
            # withdrawn (the poller is silent), or finished but its notice never came: read it here.
            read: JobResult = yield context.call_activity_with_retry(
                get_job, AZURE_RETRY, {"vaultId": self.spec["vaultId"], "jobId": job_id}
            )
            if not read["ok"] or JobView.from_dict(read["job"]).reached(until):
                return {**read, "announced": False}
            register, heard_finished = True, False
        error = error_dict(
            "JobWatchGaveUp",
            f"job {job_id} did not reach {until} in {MAX_FALLBACK_WAKES} fallback periods without a notice",
            recommendations=["Check the job in the vault's Backup jobs blade."],
        )
        return {"ok": False, "error": error}

    def summary(self, outcome: str, **fields: Any) -> dict[str, Any]:
        return {
            "vmId": self.spec["vmId"],
            "outcome": outcome,
            **{k: v for k, v in self.status.items() if k != "vmId"},
            **fields,
        }


@bp.orchestration_trigger(context_name="context")
def vm_backup(context: df.DurableOrchestrationContext):
    """Input: ``chain``, ``runId``, ``vmId``, ``vaultId``, ``retainDays``, ``monitorTransfer``,
    ``upstreamAt`` (ISO time of the upstream signal), ``prefix``, ``plan``, ``delaySeconds`` and
    ``gc`` (set only for a VM GC covers: ``{"mode", "policy", "overlap"}``)."""
    spec: VmBackupInput = context.get_input()
    follow(context, spec)
    run = _VmBackupState(context, spec)
    run.phase("starting")
    # Every step before the backup too (the schedule check, a BackupDelayed and its delay,
    # resuming protection) ends in a BackupFailed if it fails beyond its retries.
    result = yield from _answered(run, _vm_backup(run, spec))
    return {**result, "eventsKept": True} if kept_any(context) else result


def _vm_backup(run: _VmBackupState, spec: VmBackupInput) -> Generator[Any, Any, dict[str, Any]]:
    context = run.context
    if spec.get("delaySeconds"):
        # A stagger past the window is waited out to the window's end (then notStarted): freeing
        # the slot at once would start queued VMs together, the burst the stagger is there to avoid.
        wake = after(context, float(spec["delaySeconds"]))
        yield context.create_timer(min(wake, run.start_by) if run.start_by is not None else wake)
    if run.window_closed():
        return run.not_started()
    gc = spec.get("gc")  # set only for VMs GC covers (backup_chain.runs.gc_for_vm)
    if not gc:
        return (yield from _backup(run, watch_to_end=bool(spec["monitorTransfer"])))
    # Either GC mode: never overlap the policy's scheduled backup, which garbage collection depends
    # on — refuse, or wait until it is clear (gc.overlap; docs/gc.md).
    conflict = yield from _clear_of_schedule(run, gc)
    if conflict is not None and conflict["code"] == START_WINDOW_CLOSED:
        return run.not_started(conflict["message"])
    if conflict is not None:
        return (yield from _failed(run, "trigger", conflict))
    if run.window_closed():  # while delayed for the scheduled backup
        return run.not_started()
    if gc["mode"] != "weekend-window":
        return (yield from _backup(run, watch_to_end=bool(spec["monitorTransfer"])))
    policy = gc["policy"]
    assert policy is not None  # the configuration requires gc.policy in weekend-window mode
    # weekend-window: hold the protection lease (resuming protection) for as long as the job
    # runs, then give it back.
    run.phase("resumingProtection")
    lease = yield from acquire(context, spec["vaultId"], spec["vmId"], policy, "backup", give_up_at=run.start_by)
    if not lease.get("ok") and lease["error"].get("code") == START_WINDOW_CLOSED:
        return run.not_started()  # the lease was never taken: nothing to give back
    if not lease.get("ok"):
        return (yield from _failed(run, "trigger", lease["error"]))
    summary = yield from _answered(run, _backup(run, watch_to_end=True))  # then give the lease back
    released = yield from release(context, spec["vaultId"], spec["vmId"], policy)
    stopped = released["stopped"]
    extra: dict[str, Any] = {"protectionStopped": stopped}
    if released["error"] is not None:
        code, message = released["error"]["code"], released["error"]["message"]
        extra["protectionStopError"] = {"code": code, "message": message, **stop_finding(code, message).to_dict()}
    run.phase(run.status["phase"], **extra)
    return {**summary, **extra}


# The orchestration phase an exception escaped from → the BackupFailed phase it is reported in.
_FAILED_PHASE = {
    "starting": "trigger",
    "resumingProtection": "trigger",
    "checkingSchedule": "trigger",
    "delayedForScheduledBackup": "trigger",
    "checkingRunningJobs": "trigger",
    "waitingForRunningJob": "trigger",
    "triggering": "trigger",
    "waitingForBackupOperation": "trigger",
    "snapshot": "snapshot",
    "transfer": "transfer",
}


def _answered(run: _VmBackupState, steps: Generator[Any, Any, dict[str, Any]]) -> Generator[Any, Any, dict[str, Any]]:
    """Run ``steps``; an activity or watch that still failed after its durable retries (an ARM
    outage) ends in a BackupFailed with the phase and Azure's code, never a silent failure."""
    try:
        return (yield from steps)
    except Exception as err:
        phase = _FAILED_PHASE.get(str(run.status.get("phase")))
        if phase is None:  # after the outcome was published: nothing to report as a backup failure
            raise
        return (yield from _failed(run, phase, retries_exhausted(str(err))))


def _clear_of_schedule(run: _VmBackupState, gc: GcSettings) -> Generator[Any, Any, ErrorDict | None]:
    """``None`` when an ad hoc backup now keeps clear of the policy's scheduled backup (after a
    BackupDelayed and a durable timer with ``overlap: delay``), else the error to fail with.
    weekend-window reads ``gc.policy`` (the one protection resumes with); weekly-policy the
    VM's own policy (V1 or Enhanced schedules; a VM without one has no scheduled backup to collide with)."""
    context, spec = run.context, run.spec
    run.phase("checkingSchedule")
    request: PolicyScheduleRequest = {"vaultId": spec["vaultId"], "vmId": spec["vmId"]}
    if gc["mode"] == "weekend-window" and gc["policy"]:
        request["policy"] = gc["policy"]
    try:
        found: PolicyScheduleResult = yield context.call_activity_with_retry(get_policy_schedule, AZURE_RETRY, request)
    except Exception as err:
        return retries_exhausted(str(err))
    if not found["ok"]:
        return found["error"]
    if found["schedule"] is None:
        return None
    schedule = PolicySchedule.from_dict(found["schedule"])
    decision = overlap_decision(schedule, now(context), AD_HOC_BACKUP_HOURS, str(gc.get("overlap") or "refuse"))
    if decision is None:
        return None
    scheduled = iso(decision["scheduledAt"])
    if decision["action"] == "refuse":
        return error_dict(
            "OverlapsScheduledBackup",
            f"an ad hoc backup now would overlap the policy's scheduled backup at {scheduled} "
            "(Azure Backup's garbage collection depends on that scheduled backup); run the chain at another time",
            recommendations=[
                "Move the chain's window or the policy's schedule so they do not overlap, or set gc.overlap to 'delay'."
            ],
        )
    clear_at = decision["clearAt"]
    too_late = run.window_closes_first("the delay clear of the policy's scheduled backup", clear_at)
    if too_late is not None:  # not started, rather than a BackupDelayed whose resumesAt never comes
        return error_dict(START_WINDOW_CLOSED, too_late)
    run.phase("delayedForScheduledBackup", scheduledBackupAt=scheduled, resumesAt=iso(clear_at))
    yield publish(
        context,
        [
            run.event(
                "BackupDelayed",
                reason="an ad hoc backup now would overlap the policy's scheduled backup",
                scheduledBackupAt=scheduled,
                resumesAt=iso(clear_at),
            )
        ],
    )
    yield context.create_timer(clear_at)
    return None


def _job_since(run: _VmBackupState, upstream_at: datetime | None) -> Generator[Any, Any, JobView | None]:
    """The VM's running job if it started at or after the upstream signal (None if there is none,
    or it cannot be read)."""
    try:
        found: ActiveJobResult = yield run.context.call_activity_with_retry(find_active_job, AZURE_RETRY, run.request)
    except Exception:
        return None
    if not found["ok"] or not found["job"]:
        return None
    job = JobView.from_dict(found["job"])
    started = parse_time(job.start_time)
    if upstream_at is not None and (started is None or started < upstream_at):
        return None
    return job


def _running(run: _VmBackupState, known_job: str | None) -> Generator[Any, Any, ActiveJobResult]:
    """``{"ok": True, "job": JobView dict | None}``: the job a conflict named, if it still runs,
    else the VM's running job from the job list."""
    context = run.context
    if known_job is None:
        found: ActiveJobResult = yield context.call_activity_with_retry(find_active_job, AZURE_RETRY, run.request)
        return found
    read: JobResult = yield context.call_activity_with_retry(get_job, AZURE_RETRY, {**run.request, "jobId": known_job})
    if not read["ok"]:
        return {"ok": False, "error": read["error"]}
    job = read["job"]
    return {"ok": True, "job": None if JobView.from_dict(job).terminal else job}


def _recheck_later(run: _VmBackupState, reason: str) -> Generator[Any, Any, None]:
    """A conflict that does not name the running job: wait before looking again, so the job list
    has caught up with the job that just started."""
    run.phase("waitingForRunningJob", runningJobId=None, conflict=reason)
    yield run.context.create_timer(after(run.context, CONFLICT_RECHECK_SECONDS))


def _follow_operation(run: _VmBackupState, triggered: TriggerResult) -> Generator[Any, Any, OperationResult]:
    """Read the trigger's operation until it ends, waiting its Retry-After (capped) on durable
    timers between reads; never POSTs again. Gives up (final) after OPERATION_DEADLINE."""
    context = run.context
    wait = min(max(float(triggered["retryAfterSeconds"]), OPERATION_POLL_FLOOR_SECONDS), RETRY_AFTER_CAP_SECONDS)
    deadline = now(context) + OPERATION_DEADLINE
    run.phase("waitingForBackupOperation", operationId=triggered["operationId"])
    while now(context) < deadline:
        yield context.create_timer(after(context, wait))
        polled: OperationResult = yield context.call_activity_with_retry(
            backup_operation, AZURE_RETRY, {**run.request, "operationId": triggered["operationId"]}
        )
        if polled.get("status") != "InProgress":
            return polled
    error = error_dict(
        "BackupOperationNeverEnded",
        f"backup operation {triggered['operationId']} was still InProgress after {OPERATION_DEADLINE}",
        recommendations=["Check the VM's backup jobs in the vault; a job it started may still be running."],
    )
    return {"ok": False, "error": error}


def _backup(run: _VmBackupState, *, watch_to_end: bool) -> Generator[Any, Any, dict[str, Any]]:
    context, spec = run.context, run.spec
    # 1. Get a job: adopt one that started after the upstream signal, wait out an older one, or
    #    trigger our own. Azure reports "a backup is already running" in three forms (a failed
    #    operation naming the running job, a job that fails at once with
    #    UserErrorBackupOperationInProgress, a synchronous BMSUserErrorObjectLocked): each means
    #    look again — at the named job, or after CONFLICT_RECHECK_SECONDS at the job list.
    upstream_at = parse_time(spec.get("upstreamAt"))
    job_id: str | None = None
    anchor: str | None = None
    adopted = False
    known_job: str | None = None  # the running job a conflict named
    for round_ in range(MAX_TRIGGER_ROUNDS):
        run.phase("checkingRunningJobs")
        found = yield from _running(run, known_job)
        known_job = None
        if not found["ok"]:
            return (yield from _failed(run, "trigger", found["error"]))
        active = JobView.from_dict(found["job"]) if found["job"] else None
        if active is not None:
            started = parse_time(active.start_time)
            if upstream_at is None or (started is not None and started >= upstream_at):
                job_id, anchor, adopted = active.job_id, active.start_time, True
                break
            if run.window_closed():
                return run.not_started()
            run.phase("waitingForRunningJob", runningJobId=active.job_id)
            waited = yield from run.watch(active.job_id, "end", active.start_time, f"wait{round_}")
            if not waited["ok"] and waited["error"]["code"] == START_WINDOW_CLOSED:
                return run.not_started()
            if not waited["ok"]:
                return (yield from _failed(run, "trigger", waited["error"]))
            continue
        # The last moment before the trigger (after any lease, overlap delay, stagger or running
        # job was waited for): a closed start window means this VM is not started.
        if run.window_closed():
            return run.not_started()
        run.phase("triggering")
        expiry = after(context, float(spec["retainDays"]) * 86400)
        try:
            triggered: TriggerResult = yield context.call_activity_with_retry(
                trigger_backup, AZURE_RETRY, {**run.request, "expiryUtc": iso(expiry)}
            )
            outcome: OperationResult = (
                (yield from _follow_operation(run, triggered))
                if triggered["ok"]
                else {"ok": False, "error": triggered["error"]}
            )
        except Exception as err:
            # Retries exhausted (an ARM outage) — but an earlier attempt's POST may have been
            # accepted before that attempt failed (its operation unread): the job it started is
            # ours. Take it rather than report a failed trigger while a backup runs. The job list
            # shows a new job only after a lag, and the outage may still be on: look once more
            # after CONFLICT_RECHECK_SECONDS before giving up.
            orphan = yield from _job_since(run, upstream_at)
            if orphan is None:
                yield from _recheck_later(run, "triggerOutcomeUnknown")
                orphan = yield from _job_since(run, upstream_at)
            if orphan is None:
                raise err
            job_id, anchor = orphan.job_id, orphan.start_time
            break
        if outcome["ok"]:
            job = JobView.from_dict(outcome["job"])
            if not (job.terminal and job.error_code in CONFLICT_CODES):
                job_id, anchor = outcome["jobId"], job.start_time or iso(now(context))
                break
            yield from _recheck_later(run, str(job.error_code))  # the operation's job failed at once
            continue
        if outcome["error"]["kind"] != "conflict":
            return (yield from _failed(run, "trigger", outcome["error"]))
        known_job = outcome.get("jobId")
        if known_job is None:
            yield from _recheck_later(run, str(outcome["error"]["code"]))
    if job_id is None:
        error = error_dict(
            "BackupKeptConflicting", f"another backup kept running after {MAX_TRIGGER_ROUNDS} attempts", kind="conflict"
        )
        return (yield from _failed(run, "trigger", error))

    triggered_at = iso(now(context))
    run.phase("snapshot", jobId=job_id, adopted=adopted, triggeredAt=triggered_at)
    deadline_seconds = spec.get("snapshotDeadlineSeconds")
    if deadline_seconds:  # from the trigger, on a durable timer racing the snapshot watch
        deadline = after(context, float(deadline_seconds))
        run.late = _SnapshotDeadline(context.create_timer(deadline), iso(deadline), triggered_at)
    yield publish(context, [run.event("BackupTriggered", adopted=adopted, triggeredAt=triggered_at)])

    # 2. Take Snapshot: downstream hears the moment it is Completed.
    watched = yield from run.watch(job_id, "snapshot", anchor, "snapshot")
    if run.late is not None and run.late.pending():
        # Heard first: no SnapshotLate, and the timer is cancelled (an orchestration completes
        # only once its pending timers completed or were cancelled: Durable Functions TimerTask docs).
        run.late.told = True
        run.late.timer.cancel()
    if not watched["ok"]:
        return (yield from _failed(run, "snapshot", watched["error"]))
    job = JobView.from_dict(watched["job"])
    if not job.snapshot_done:
        return (yield from _failed(run, job.failed_phase, _job_error(job)))
    run.phase("transfer" if watch_to_end else "snapshotCompleted", snapshotCompletedAt=job.snapshot_end)
    if not watched.get("announced"):
        yield publish(context, [snapshot_completed(context, spec, job)])
    yield from tell(context, spec, "snapshot", snapshotCompletedAt=job.snapshot_end)  # frees the parent's slot
    if not watch_to_end:
        return run.summary("snapshotCompleted")

    # 3. Transfer data to vault: hours, watched sparsely in its own bounded-history orchestration.
    watched = yield from run.watch(job_id, "transfer", job.snapshot_end, "transfer")
    if not watched["ok"]:
        return (yield from _failed(run, "transfer", watched["error"]))
    job = JobView.from_dict(watched["job"])
    if not job.succeeded:
        return (yield from _failed(run, job.failed_phase, _job_error(job)))
    # Optional: the recovery point's name and consistency. Its lookup failing (even beyond the
    # retries) never fails a completed backup; the event says the lookup failed.
    run.phase("completed", completedAt=job.end_time)
    try:
        point: RecoveryPointResult = yield context.call_activity_with_retry(
            latest_recovery_point, AZURE_RETRY, {**run.request, "since": job.start_time}
        )
    except Exception as err:
        point = {"ok": False, "error": retries_exhausted(str(err))}
    restore_point = point.get("recoveryPoint") if point["ok"] else None
    lookup = None if point.get("ok") else {k: point["error"].get(k) for k in ("code", "message")}
    yield publish(
        context,
        [
            run.event(
                "BackupCompleted",
                jobStartedAt=job.start_time,
                jobEndedAt=job.end_time,
                durationSeconds=seconds_between(job.start_time, job.end_time),
                backupSize=job.backup_size,
                jobStatus=job.status,
                consistency=restore_point["consistency"] if restore_point else None,
                recoveryPoint=restore_point["name"] if restore_point else None,
                recoveryPointLookupError=lookup,
            )
        ],
    )
    return run.summary("completed")


def _job_error(job: JobView) -> ErrorDict:
    """A failed job's error: the symbolic code where the table knows it, else Azure's number."""
    number = str(job.error_number) if job.error_number is not None else None
    return error_dict(
        job.error_code or number or job.status,
        job.error_message or "",
        recommendations=job.recommendations,
        extras={"number": job.error_number, "title": job.error_title},
    )


def _failed(run: _VmBackupState, phase: str, error: ErrorDict):
    # Azure's message and recommendations stay on the VM's status too (bounded), so the run's GET
    # shows them (custom status only: nothing replayed depends on it).
    run.phase(
        "failed",
        failedPhase=phase,
        errorCode=error.get("code"),
        azureErrorCode=error.get("number"),
        **failure_for_status(error.get("message"), error.get("recommendations", [])),
    )
    yield publish(
        run.context,
        [
            run.event(
                "BackupFailed",
                phase=phase,
                errorCode=error.get("code"),
                azureErrorCode=error.get("number"),
                errorTitle=error.get("title"),
                message=error.get("message"),
                recommendations=error.get("recommendations", []),
            )
        ],
    )
    return run.summary("failed", failedPhase=phase, errorCode=error.get("code"), message=error.get("message"))
