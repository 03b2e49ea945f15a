"""The messages orchestrations exchange, as TypedDicts: every activity's request and result, every
orchestrator's input, the external events, the entity answers orchestrators read, and the outputs
with a fixed shape (job watch, GC runs, reclaim, deliverer). A VM backup's and a chain run's
outputs stay open dicts: they carry the custom status fields as they are.

They are plain dicts at run time, so the JSON in Durable histories is exactly what the keys say
(orchestrations in flight replay unchanged); mypy checks each key where a message is built or
read. An activity's parameter may carry any annotation: the worker's activity trigger converter
accepts every type and hands over the decoded JSON (azure-functions ``ActivityTriggerConverter``).
``Job`` is a ``JobView.to_dict()`` and ``CloudEvent`` a ``backup_chain.events`` event, both
JSON objects with their own builders. docs/design.md describes the flows.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from typing_extensions import NotRequired

from backup_chain.errors import ErrorDict

Job = dict[str, Any]
CloudEvent = dict[str, Any]
WatchUntil = Literal["snapshot", "transfer", "end"]


# Activities that drive Azure Backup (activities/backup.py, activities/protection.py).


class VmRequest(TypedDict):
    """``find_active_job``: the backup job running for the VM right now."""

    vaultId: str
    vmId: str


class TriggerRequest(VmRequest):
    """``trigger_backup``: one POST of an on-demand backup kept until ``expiryUtc``."""

    expiryUtc: str


class OperationRequest(VmRequest):
    """``backup_operation``: one read of the trigger's operation."""

    operationId: str


class JobRequest(TypedDict):
    """``get_job``."""

    vaultId: str
    jobId: str


class RecoveryPointRequest(VmRequest):
    """``latest_recovery_point``: the newest restore point at or after ``since``."""

    since: str | None


class PolicyScheduleRequest(TypedDict):
    """``get_policy_schedule``: the schedule of ``policy``, else of the policy protecting ``vmId``."""

    vaultId: str
    vmId: str
    policy: NotRequired[str]


class InspectRequest(VmRequest):
    """``inspect_protection``; ``now`` is the orchestration's time (the look-back follows it)."""

    now: str


class SetProtectionRequest(VmRequest):
    """``set_protection``: resume with ``policy`` (``on``) or stop keeping the data."""

    on: bool
    policy: str | None


class AzureResult(TypedDict):
    """Every Azure activity's result: ``ok``, or Azure's (or the app's) ``error``."""

    ok: bool
    error: NotRequired[ErrorDict]


class TriggerResult(AzureResult):
    operationId: NotRequired[str]
    retryAfterSeconds: NotRequired[int]


class OperationResult(AzureResult):
    """``status`` InProgress; Succeeded with ``jobId`` and ``job``; or an error (with the
    ``jobId`` the operation names, if any)."""

    status: NotRequired[str]
    jobId: NotRequired[str | None]
    job: NotRequired[Job]


class JobResult(AzureResult):
    """``get_job``."""

    job: NotRequired[Job]


class ActiveJobResult(AzureResult):
    """``find_active_job``: ``job`` is ``None`` when none runs."""

    job: NotRequired[Job | None]


class RecoveryPoint(TypedDict):
    name: str | None
    time: str
    consistency: str | None


class RecoveryPointResult(AzureResult):
    recoveryPoint: NotRequired[RecoveryPoint | None]


class PolicyScheduleResult(AzureResult):
    """``schedule`` is a ``PolicySchedule.to_dict()``; ``None`` when no policy protects the VM."""

    schedule: NotRequired[dict[str, Any] | None]
    policy: NotRequired[str | None]


class ScheduledJob(TypedDict):
    jobId: str
    status: str
    startTime: str | None


class InspectionResult(AzureResult):
    vmId: NotRequired[str]
    vaultId: NotRequired[str]
    protectionState: NotRequired[str | None]
    policy: NotRequired[str | None]
    schedule: NotRequired[dict[str, Any] | None]
    lastScheduledJob: NotRequired[ScheduledJob | None]
    restorePoints: NotRequired[int]
    instantSnapshots: NotRequired[int]
    inspectedAt: NotRequired[str]


class ProtectionResult(AzureResult):
    """``set_protection``; an acquired lease whose protection was already on: ``changed`` False."""

    changed: NotRequired[bool]
    protectionState: NotRequired[str | None]


# Job polling (activities/job_poll.py, activities/run_jobs.py, orchestrators/job_poller.py).


class Announce(TypedDict):
    """What a SnapshotCompleted event is built from (``backup_chain.events.snapshot_completed_event``)."""

    chain: str
    runId: str
    vmId: str
    vaultId: str
    prefix: str


class Watch(TypedDict):
    """One watch on a vault's ``job_watch`` board."""

    key: str
    owner: str
    event: str
    vaultId: str
    jobId: str
    until: WatchUntil
    anchor: float
    plan: dict[str, Any]
    announce: Announce | None


class PollRequest(TypedDict):
    """``poll_jobs``: the watches due, read at the poller's time ``at``."""

    vaultId: str
    at: str
    watches: list[Watch]


class PollResult(TypedDict):
    """``finished`` watch keys, ``read`` calls made and, per finished snapshot watch whose job
    shows Take Snapshot completed, the seconds from its ``anchor`` to that completion (``learned``;
    absent from results recorded before the board learned)."""

    finished: list[str]
    read: int
    learned: NotRequired[dict[str, float]]


class WatchOutcome(AzureResult):
    """What a job watch ends with (``watch_job``'s output, a poller's notice): the ``job`` once
    it reached the phase, whether SnapshotCompleted was ``announced``, and ``polls`` made."""

    job: NotRequired[Job]
    announced: NotRequired[bool]
    polls: NotRequired[int]


class RunJobsRequest(TypedDict):
    """``run_jobs``: per VM [vmId, vaultId, vm_backup instance id, job id or None]."""

    vms: list[list[Any]]
    readJobs: NotRequired[bool]


class RunJob(TypedDict):
    vmId: str
    jobId: str | None
    jobStatus: str | None
    jobRunning: bool | None
    readError: NotRequired[str]


# Events and notices (activities/events.py, activities/notify.py, orchestrators/delivery.py).


class PublishRequest(TypedDict):
    """``publish_events``; ``queue``: the caller already queued events, keep its order."""

    events: list[CloudEvent]
    at: str
    queue: bool


class PublishedEvent(TypedDict):
    """What a publish did with one event: sent at once, or ``kept`` in the run's outbox."""

    id: str
    type: str
    subject: str
    time: str | None
    kept: bool


class PublishResult(TypedDict):
    ok: bool
    sent: int
    queued: int
    reasons: list[str]
    # Each event, so the run's history records what it published (GET …/runs/{runId}/events):
    # the status API shows activity results, never activity inputs (azure-functions-durable-extension
    # DurableClient.GetDurableOrchestrationStatusAsync drops TaskScheduled's Input).
    events: NotRequired[list[PublishedEvent]]


class EventBatch(TypedDict):
    """``send_event_batch``."""

    events: list[CloudEvent]


class SendResult(TypedDict):
    """The topic's answer; ``error`` carries the HTTP ``status``, ``code`` and ``message``."""

    ok: bool
    count: NotRequired[int]
    error: NotRequired[dict[str, Any]]


class Undelivered(TypedDict):
    """``report_undelivered``."""

    key: str
    reason: str
    events: list[CloudEvent]


class Notice(TypedDict):
    """``tell_parent``: raise ``event`` with ``data`` into ``instanceId``."""

    instanceId: str
    event: str
    data: dict[str, Any]


class NoticeResult(TypedDict):
    ok: bool
    gone: NotRequired[bool]


# Orchestrator inputs.


class WatchJobInput(TypedDict):
    """``watch_job``: read the job until ``until``; ``polls`` so far (continue-as-new)."""

    vaultId: str
    jobId: str
    until: WatchUntil
    anchor: str | None
    plan: dict[str, Any]
    announce: Announce | None
    polls: int
    behindKept: bool


class PollerInput(TypedDict):
    """``job_poller``; ``reads``, ``finished`` and their ``learned`` durations are carried across
    continue-as-new."""

    vaultId: str
    readsPerMinute: float
    tickSeconds: float
    fingerprint: NotRequired[str]
    reads: NotRequired[int]
    finished: NotRequired[list[str]]
    learned: NotRequired[dict[str, float]]


class DelivererInput(TypedDict):
    """``deliver_events``; ``attempt`` and ``delivered`` are carried across continue-as-new,
    ``retry``: undelivered events go again (the sweep, the operator's route)."""

    key: str
    retrySeconds: float
    firstBackoffSeconds: float
    maxBackoffSeconds: float
    attempt: NotRequired[int]
    delivered: NotRequired[int]
    retry: NotRequired[bool]


class GcInput(TypedDict):
    """``gc_scheduler``, ``gc_check`` and ``gc_window``: the ``gc`` section, [vaultId, vmId] targets."""

    gc: dict[str, Any]
    targets: list[list[str]]
    prefix: str
    source: str
    fingerprint: str
    selections: NotRequired[list[dict[str, Any]]]  # chain targets with a select: resolved at each run


class ReclaimInput(TypedDict):
    """``lease_reclaim``: free ``vmId``'s lease from a ``holder`` that is gone."""

    vaultId: str
    vmId: str
    holder: str
    policy: str | None
    prefix: str
    source: str


class SchedulerInput(TypedDict):
    """``chain_scheduler``: a ``chain_run`` input without ``runId``."""

    run: dict[str, Any]
    fingerprint: str


class VmBatchInput(TypedDict):
    """``vm_batch``: [vmId, vm_backup input, instance id] per VM; ``tell`` as every child's."""

    items: list[list[Any]]
    parallel: int
    tell: NotRequired[dict[str, list[str]]]
    startBy: NotRequired[str | None]  # the run's start window closes (ISO time); None: no window


class GcSettings(TypedDict):
    """What a chain's VM backups know of GC enforcement (``backup_chain.runs.gc_settings``);
    ``vms``: the covered VMs (lower case), ``None`` for all; a VM's own copy has no ``vms``."""

    mode: str
    policy: str | None
    overlap: str
    vms: NotRequired[list[str] | None]


class UpstreamSignal(TypedDict):
    """What a run is told about its upstream job (the ``upstream`` event, or a run's input when
    already known); the run stamps ``receivedAt`` when it takes it in."""

    status: str
    detail: Any
    eventId: str | None


class CancelNotice(TypedDict):
    """The ``cancel`` event; ``at`` is a note for people reading the history."""

    at: str


class WakeNotice(TypedDict):
    """The deliverer's ``wake`` event; ``retry``: undelivered events go again too."""

    retry: bool


class ChainRunInput(TypedDict):
    """``chain_run`` (``backup_chain.runs.run_input``): ``chain`` is the chain's configuration,
    ``upstream`` the signal when already known. ``vms`` ([vault id, VM id] pairs): the run backs
    up exactly these, resolving no membership (a retry of run ``retryOf``)."""

    chain: dict[str, Any]
    runId: str
    prefix: str
    source: str
    startedBy: Literal["window", "http", "event"]
    waitForUpstream: bool
    upstream: UpstreamSignal | None
    gc: GcSettings | None
    polling: dict[str, Any]
    vms: NotRequired[list[list[str]]]  # [vaultId, vmId] of the only VMs to back up (a retry)
    retryOf: NotRequired[str]  # the run this one retries


class ResolveMembersRequest(TypedDict):
    """``resolve_members``: one target as configured (vaultId, vms, select, exclude)."""

    target: dict[str, Any]


class ResolveMembersResult(TypedDict):
    """``members`` and ``notProtected``: [VM id, how chosen] (backup_chain/membership.py)."""

    ok: bool
    vaultId: NotRequired[str]
    members: NotRequired[list[list[str]]]
    notProtected: NotRequired[list[list[str]]]
    counts: NotRequired[dict[str, int]]
    error: NotRequired[ErrorDict]


class VmBackupInput(TypedDict):
    """``vm_backup``: one VM of a run; ``upstreamAt`` is when the run learned of its upstream job,
    ``gc`` is set only for a VM GC covers, ``tell`` asks for notices (orchestrators/notify.py)."""

    chain: str
    runId: str
    vmId: str
    vaultId: str
    retainDays: int
    monitorTransfer: bool
    upstreamAt: str
    prefix: str
    plan: dict[str, Any]
    gc: GcSettings | None
    polling: dict[str, Any] | None
    delaySeconds: float
    behindKept: bool
    tell: NotRequired[dict[str, list[str]]]
    # Deadlines (absent or None: none). startBy: the run's start window closes (ISO time), no
    # trigger after it; snapshotDeadlineSeconds: from the trigger until SnapshotLate.
    startBy: NotRequired[str | None]
    snapshotDeadlineSeconds: NotRequired[float | None]


class LeaseReleased(TypedDict):
    """Giving a protection lease back (orchestrators/protection.py): whether protection was
    stopped, and Azure's error when it refused the stop (protection and lease stay on)."""

    stopped: bool
    error: ErrorDict | None


# Entity operations orchestrations read the answers of (entities/, backup_chain.job_watch,
# backup_chain.delivery, backup_chain.gc.lease_apply).


class WatchTake(TypedDict):
    """``job_watch`` ``take``: the reads due at ``at`` within the budget; ``done`` are the watch
    keys that finished since the last take, ``learned`` their snapshot durations (PollResult)."""

    at: float
    readsPerMinute: float
    done: list[str]
    learned: NotRequired[dict[str, float]]
    now: NotRequired[float]  # the poller's time: hinted watches due by then are flagged ``readNow``


class WatchHint(TypedDict):
    """``job_watch`` ``hint``: a snapshot beacon from ``vmId`` sent at ``at`` (epoch seconds)."""

    vmId: str
    at: float
    beaconId: str


class WatchTaken(TypedDict):
    watches: list[Watch]
    nextWake: float | None
    watching: int
    readNow: NotRequired[list[str]]  # hinted watches already due at the take's ``now``


class OutboxTaken(TypedDict):
    """``delivery_outbox`` ``take``: the oldest events to send, since when the head waits, and
    how many events the outbox keeps."""

    events: list[CloudEvent]
    since: str | None
    kept: int


class LeaseDecision(TypedDict):
    """``protection_lease``: what the caller must do next (``granted``, ``resume``, ``wait``,
    ``released``, ``stop`` or ``ok``)."""

    action: str
    holders: NotRequired[int]
    phase: NotRequired[str]


# Orchestrator outputs with a fixed shape (GET /api/gc reads the GC runs' outputs).


class GcCheckOutput(TypedDict):
    """``gc_check``: per VM what was inspected and found (or its ``error``)."""

    kind: Literal["check"]
    at: str
    vms: list[dict[str, Any]]
    selectionsFailed: NotRequired[list[dict[str, Any]]]


class GcWindowOutput(TypedDict):
    """``gc_window``: per VM whether protection resumed; which stops Azure refused."""

    kind: Literal["window"]
    openedAt: str
    vms: list[dict[str, Any]]
    stopped: list[str]
    keptOn: list[str]
    stopFailed: list[dict[str, Any]]
    selectionsFailed: NotRequired[list[dict[str, Any]]]


class ReclaimOutput(TypedDict):
    holder: str
    stoppedProtection: bool
    error: ErrorDict | None


class DelivererOutput(TypedDict):
    """``deliver_events`` once the outbox is empty or keeps only undelivered events."""

    key: str
    delivered: int
    undelivered: int
