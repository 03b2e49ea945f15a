"""The fault suite's invariants, checked after a run against the emulators' truth, the downstream
topic and devhost's Durable management API — never against the app's own view of itself.

``observe(stack, ...)`` collects what the checks need; ``check(observed, case)`` is a pure
function returning every violation with detail (an empty list means the run was correct), so the
tests and ``bench/fault_bench.py`` share one definition. The invariants (names as reported):

``terminal-state``
    Every VM of the run has exactly one terminal event (distinct event ids over BackupCompleted
    and BackupFailed), it agrees with the emulator's job it names (BackupCompleted: the job
    Completed and the event was published after it ended; BackupFailed: the job failed in the
    phase the event says, with the error code the emulator gave it; phase ``trigger``: no job),
    with the VM's BackupTriggered/SnapshotCompleted job ids and with the ChainCompleted summary;
    the run has exactly one ChainCompleted, published after every VM's terminal event, whose
    counts add up to the VM count.
``scenario-outcome``
    The terminal state is the one the scenario demands: healthy VMs and VMs that waited out a
    scheduled job completed, the ones set to fail their snapshot or transfer failed in that phase
    (faults on the API must never turn into a failed backup), a VM whose resume Azure refuses
    failed at ``trigger`` with that code. A VM the driver exposed to an ARM outage longer than the
    retries (not yet triggered when ``Backups_Trigger`` went down) may instead have failed at
    ``trigger`` with ServiceUnavailable — or, when its last retry fell just after the outage, with
    the world's random fault then (500, dropped connection, 429) — and only such a VM.
``snapshot-after-truth``
    Every SnapshotCompleted names a job whose Take Snapshot really completed, was stamped
    (``time``) and received by the topic (``receivedAt``) at or after the emulator's
    ``snapshotCompletedAt``, and carries that time as ``data.snapshotCompletedAt``.
``snapshot-once``
    Per VM and run, distinct SnapshotCompleted event ids == 1 when the VM's job completed its
    snapshot, else 0. Redeliveries of the same id are at-least-once and allowed (counted in the
    report's ``duplicateDeliveries``).
``event-id-reuse``
    Records sharing an event id carry the same type, subject and meaning (run, VM, job, snapshot
    time, phase, error code, outcome).
``single-trigger``
    The emulator's user-triggered jobs for the VM started inside the run's time span: at most
    one; exactly the one the events name when that job is user-triggered; none when the VM
    adopted a running scheduled job or failed before any job existed.
``no-stuck-orchestration``
    Every instance in devhost's Durable management API is in a terminal state, except the eternal
    singletons (``gc:scheduler``, ``scheduler:{chain}``, ``poller:...``); none Failed.
``published-once``
    Nothing published is lost or duplicated under another id: the run has exactly one
    ChainStarted; each VM at most one BackupTriggered id, and exactly one when its terminal event
    names a job.
``per-vm-order``
    In the order the downstream topic received them, each VM's first BackupTriggered comes before
    its first SnapshotCompleted, and both before its first terminal event.
``outside-set``
    A VM of the scenario outside the chain's (and GC's) set gets no user-triggered job during the
    run and keeps the protection state it had when the run started.
``job-after-completion``
    No user-triggered job of any VM started after the run's ChainCompleted.
``undelivered``
    The run's GET lists no undelivered event once the downstream topic accepts again (nothing is
    lost), and never reports plain ``completed`` while it lists one.
``protection-lease`` (weekend-window mode)
    Per VM GC covers: the protection lease entity has holders exactly when the emulator's
    protected item is not ProtectionStopped; its phase is ``on`` with holders and ``off`` without
    (never left ``starting``/``stopping``); every holder is a live orchestration. The one
    exception is documented: a VM whose stop Azure refused (the case's ``stop_refused``) may be
    left protected with the lease ``on`` and no holder. A chain VM outside ``gc.vms`` keeps its
    protection on and never gets a lease holder.
``gc-refusals`` (weekend-window mode, from the GC window's events)
    ``GcWindowOpened.vms`` lists exactly the GC set minus the VMs whose resume was refused, and
    ``failed`` names exactly those with Azure's code; ``GcWindowClosed.stopFailed`` names exactly
    the VMs whose stop was refused, and ``stopped`` none of them; the window's ``GcStopFailed``
    findings name exactly those VMs too, each with Azure's code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from demo.stack import Stack
from harness.chain_stack import PREFIX, parse_time
from harness.faults.scenarios import CHAIN, OUTAGE_CODES, SNAPSHOT_ERRORS, WEEKEND_WINDOW, FaultCase

TERMINAL_STATUSES = ("Completed", "Failed", "Terminated", "Canceled")
ETERNAL_IDS = ("gc:scheduler",)
ETERNAL_PREFIXES = ("scheduler:", "poller:")
DURABLE = "/runtime/webhooks/durabletask"
SNAPSHOT_TASK = "Take Snapshot"
TRANSFER_TASK = "Transfer data to vault"
TIME_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Violation:
    invariant: str
    vm: str | None
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.vm or 'run'}: {self.detail}"


@dataclass
class Observed:
    """Everything the checks read, collected from the running stack at one moment."""

    run_id: str
    run_started_at: datetime
    now: datetime
    records: list[dict[str, Any]]  # downstream records of the run: {"receivedAt", "event"}
    jobs: dict[str, list[dict[str, Any]]]  # lower-case VM name -> the emulator's jobs
    items: dict[str, list[dict[str, Any]]]  # lower-case VM name -> the emulator's protected items
    instances: list[dict[str, Any]]  # devhost's Durable management API, every instance
    leases: dict[str, dict[str, Any] | None] | None = None  # lower-case VM id -> lease entity state
    # lower-case VM name -> protection state at run start, for the scenario's VMs outside the set
    bystanders: dict[str, str] = field(default_factory=dict)
    run_view: dict[str, Any] | None = None  # the run's GET .../runs/{runId} body, when read
    # VM names the driver exposed to an ARM outage on Backups_Trigger (not yet triggered then)
    exposed: set[str] = field(default_factory=set)


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def text(self) -> str:
        return "\n".join(str(v) for v in self.violations) or "no violations"


# --- collecting -------------------------------------------------------------------------------
def durable_instances(stack: Stack) -> list[dict[str, Any]]:
    """Every orchestration instance, page by page (``top`` + continuation token), bounded."""
    out: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(1000):
        headers = {"x-functions-key": stack.keys["masterKey"]}
        if token:
            headers["x-ms-continuation-token"] = token
        response = stack.session.get(
            f"{stack.devhost.url}{DURABLE}/instances", params={"top": "500"}, headers=headers, timeout=60
        )
        response.raise_for_status()
        out.extend(response.json())
        token = response.headers.get("x-ms-continuation-token")
        if not token or token == "null":
            return out
    raise AssertionError("the instance query kept returning continuation tokens")


def lease_state(stack: Stack, vm_id: str) -> dict[str, Any] | None:
    """The protection lease entity of a VM through the Durable HTTP API (None if it never existed)."""
    from backup_chain.ids import vm_hash  # the entity key scheme: a pure function of the VM id

    response = stack.session.get(
        f"{stack.devhost.url}{DURABLE}/entities/protection_lease/{vm_hash(vm_id)}",
        headers={"x-functions-key": stack.keys["masterKey"]},
        timeout=60,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body = response.json()
    return body if isinstance(body, dict) else None


def run_view(stack: Stack, case: FaultCase) -> dict[str, Any] | None:
    """The run as the app reports it (GET .../runs/{runId}); None while it does not exist."""
    response = stack.api("GET", f"chains/{CHAIN}/runs/{case.run_id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body = response.json()
    return body if isinstance(body, dict) else None


def observe(
    stack: Stack,
    case: FaultCase,
    run_started_at: datetime,
    bystanders: dict[str, str] | None = None,
    exposed: set[str] | None = None,
) -> Observed:
    """``bystanders``: lower-case VM name -> protection state at run start, for the scenario's
    VMs outside the chain's and GC's set; ``exposed``: VMs exposed to an ARM outage."""
    body = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": "downstream"})
    records = [r for r in body["events"] if (r["event"].get("data") or {}).get("runId") == case.run_id]
    jobs: dict[str, list[dict[str, Any]]] = {}
    for job in stack.admin("recoveryservices", "GET", "/admin/jobs", params={"limit": "100000"}):
        jobs.setdefault(str(job["vm"]).lower(), []).append(job)
    items: dict[str, list[dict[str, Any]]] = {}
    for item in stack.admin("recoveryservices", "GET", "/admin/items", params={"limit": "100000"}):
        items.setdefault(str(item["vm"]).lower(), []).append(item)
    leases = (
        {plan.vm_id.lower(): lease_state(stack, plan.vm_id) for plan in case.vms}
        if case.gc_mode == WEEKEND_WINDOW
        else None
    )
    return Observed(
        run_id=case.run_id,
        run_started_at=run_started_at,
        now=stack.clock.now(),
        records=records,
        jobs=jobs,
        items=items,
        instances=durable_instances(stack),
        leases=leases,
        bystanders=dict(bystanders or {}),
        run_view=run_view(stack, case),
        exposed=set(exposed or ()),
    )


# --- checking ---------------------------------------------------------------------------------
class _Run:
    """Indexes over one observation."""

    def __init__(self, observed: Observed):
        self.observed = observed
        self.first: dict[str, dict[str, Any]] = {}  # event id -> first record
        self.deliveries: Counter[str] = Counter()
        for record in observed.records:
            event_id = str(record["event"]["id"])
            self.deliveries[event_id] += 1
            self.first.setdefault(event_id, record)
        self.job_by_id = {str(j["id"]).lower(): j for jobs in observed.jobs.values() for j in jobs}

    def of(self, kind: str, vm_id: str | None = None) -> list[dict[str, Any]]:
        """First record of each distinct event id of ``kind`` (for one VM, or chain-level)."""
        out = []
        for record in self.first.values():
            event = record["event"]
            if event["type"] != PREFIX + kind:
                continue
            subject = str(event.get("subject", "")).lower()
            if (vm_id is None and subject.startswith("/chains/")) or (vm_id and subject == vm_id.lower()):
                out.append(record)
        return out

    def job(self, job_id: Any) -> dict[str, Any] | None:
        return self.job_by_id.get(str(job_id).lower()) if job_id else None


def _t(text: Any) -> datetime | None:
    return parse_time(str(text)) if text else None


def _data(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record["event"].get("data") or {})


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["event"]["id"]) for r in records]


def check(observed: Observed, case: FaultCase) -> Report:
    run = _Run(observed)
    report = Report()
    out = report.violations
    completed = run.of("ChainCompleted")
    run_end = (_t(completed[0]["event"]["time"]) if completed else None) or observed.now
    out += _check_chain(run, case, completed)
    for plan in case.vms:
        out += _check_vm(run, case, plan.name, completed, run_end)
    out += _check_id_reuse(run)
    out += check_published(run, case)
    out += check_order(run, case)
    out += check_outside_set(observed)
    out += check_after_completion(observed, completed)
    out += check_undelivered(observed.run_view)
    out += _check_instances(observed)
    if case.gc_mode == WEEKEND_WINDOW:
        out += check_protection(observed, case)
    duplicates = {i: n - 1 for i, n in run.deliveries.items() if n > 1}
    report.stats = {
        "events": len(observed.records),
        "distinctEvents": len(run.first),
        "duplicateDeliveries": sum(duplicates.values()),
        "duplicateIds": sorted(duplicates),
        "byType": dict(Counter(str(r["event"]["type"]).removeprefix(PREFIX) for r in run.first.values())),
        "instances": Counter(str(i["runtimeStatus"]) for i in observed.instances),
        "failedAtTrigger": dict(
            Counter(
                str(_data(r).get("errorCode"))
                for r in run.first.values()
                if r["event"]["type"] == PREFIX + "BackupFailed" and _data(r).get("phase") == "trigger"
            )
        ),
        "undelivered": len((observed.run_view or {}).get("undelivered") or []),
        "outcome": (observed.run_view or {}).get("outcome"),
    }
    return report


def _check_chain(run: _Run, case: FaultCase, completed: list[dict[str, Any]]) -> list[Violation]:
    if len(completed) != 1:
        return [Violation("terminal-state", None, f"{len(completed)} ChainCompleted events: {_ids(completed)}")]
    data = _data(completed[0])
    out = []
    counts = data.get("counts") or {}
    if sum(int(v) for v in counts.values()) != len(case.vms):
        out.append(Violation("terminal-state", None, f"ChainCompleted counts {counts} != {len(case.vms)} VMs"))
    return out


def _check_vm(
    run: _Run, case: FaultCase, name: str, completed: list[dict[str, Any]], run_end: datetime
) -> list[Violation]:
    plan = case.vm(name)
    vm_id = plan.vm_id
    out: list[Violation] = []

    def bad(invariant: str, detail: str) -> None:
        out.append(Violation(invariant, name, detail))

    done, failed = run.of("BackupCompleted", vm_id), run.of("BackupFailed", vm_id)
    triggered, snapshots = run.of("BackupTriggered", vm_id), run.of("SnapshotCompleted", vm_id)
    terminal = done + failed
    job: dict[str, Any] | None = None
    job_id: str | None = None
    if len(terminal) != 1:
        kinds = [str(r["event"]["type"]).removeprefix(PREFIX) + " " + str(r["event"]["id"]) for r in terminal]
        bad("terminal-state", f"{len(terminal)} terminal events (distinct ids): {kinds}")
    if terminal:
        record = terminal[0]
        data = _data(record)
        job_id = data.get("jobId")
        job = run.job(job_id)
        out += _check_terminal_truth(name, record, job)
        for other in triggered + snapshots:
            if str(_data(other).get("jobId") or "").lower() != str(job_id or "").lower():
                bad(
                    "terminal-state",
                    f"{other['event']['type']} {other['event']['id']} names job {_data(other).get('jobId')}, "
                    f"the terminal event {record['event']['id']} names {job_id}",
                )
        if completed:
            out += _check_summary(name, vm_id, record, completed[0])
        out += _check_scenario(
            name, plan.fate, plan.os, record, refusal=case.refusal_code, exposed=name in run.observed.exposed
        )
    elif snapshots or triggered:
        job_id = _data((snapshots or triggered)[0]).get("jobId")
        job = run.job(job_id)
    out += _check_snapshots(run, name, snapshots, job)
    out += _check_trigger(run, name, job, bool(terminal), triggered, run_end)
    return out


def _check_terminal_truth(name: str, record: dict[str, Any], job: dict[str, Any] | None) -> list[Violation]:
    event, data = record["event"], _data(record)
    kind = str(event["type"]).removeprefix(PREFIX)
    where = f"{kind} {event['id']} (job {data.get('jobId')})"
    phase = data.get("phase")
    if kind == "BackupFailed" and phase == "trigger":
        if job is not None and job["userTriggered"]:
            return [Violation("terminal-state", name, f"{where} failed at trigger, but the job exists: {job}")]
        return []
    if job is None:
        return [Violation("terminal-state", name, f"{where}: the emulator has no such job")]
    tasks = job.get("tasks") or {}
    problems = []
    if kind == "BackupCompleted":
        if job["status"] != "Completed":
            problems.append(f"the emulator's job is {job['status']} ({tasks})")
        ended = _t(job.get("endTime"))
        if ended is None or _t(event["time"]) is None or _t(event["time"]) + TIME_SLACK < ended:  # type: ignore[operator]
            problems.append(f"published at {event['time']}, before the job ended ({job.get('endTime')})")
    else:
        expected_tasks = {"snapshot": ("Failed", None), "transfer": ("Completed", "Failed")}.get(str(phase))
        if job["status"] != "Failed":
            problems.append(f"the emulator's job is {job['status']} ({tasks})")
        elif expected_tasks is None:
            problems.append(f"phase {phase!r} is not a job phase (job {tasks})")
        else:
            snap, transfer = expected_tasks
            if tasks.get(SNAPSHOT_TASK) != snap or (transfer and tasks.get(TRANSFER_TASK) != transfer):
                problems.append(f"phase {phase} but the job's tasks are {tasks}")
        if job["status"] == "Failed" and data.get("errorCode") != job.get("error"):
            problems.append(f"errorCode {data.get('errorCode')!r}, the emulator's {job.get('error')!r}")
    return [Violation("terminal-state", name, f"{where}: {p}") for p in problems]


def _check_summary(name: str, vm_id: str, record: dict[str, Any], completed: dict[str, Any]) -> list[Violation]:
    data = _data(completed)
    listed = [v for v in data.get("vms") or [] if str(v.get("vmId", "")).lower() == vm_id.lower()]
    out = []
    terminal_time, completed_time = _t(record["event"]["time"]), _t(completed["event"]["time"])
    if terminal_time and completed_time and completed_time < terminal_time:
        out.append(
            Violation(
                "terminal-state",
                name,
                f"ChainCompleted at {completed['event']['time']} before the VM's terminal event at "
                f"{record['event']['time']}",
            )
        )
    if data.get("vmsListed", "all") != "all" and not listed:
        return out  # large runs list only VMs that did not complete
    kind = str(record["event"]["type"]).removeprefix(PREFIX)
    want = "completed" if kind == "BackupCompleted" else "failed"
    if len(listed) != 1 or listed[0].get("outcome") != want:
        out.append(Violation("terminal-state", name, f"{kind} but ChainCompleted lists {listed}"))
    elif str(listed[0].get("jobId") or "").lower() != str(_data(record).get("jobId") or "").lower():
        out.append(Violation("terminal-state", name, f"ChainCompleted names job {listed[0].get('jobId')}"))
    return out


def _check_scenario(
    name: str, fate: str, os_name: str, record: dict[str, Any], *, refusal: str = "", exposed: bool = False
) -> list[Violation]:
    kind = str(record["event"]["type"]).removeprefix(PREFIX)
    data = _data(record)
    got = (kind, data.get("phase"), data.get("errorCode")) if kind == "BackupFailed" else (kind, None, None)
    want = {
        "ok": ("BackupCompleted", None, None),
        "waitout": ("BackupCompleted", None, None),
        "snapshot": ("BackupFailed", "snapshot", SNAPSHOT_ERRORS[os_name]),
        "transfer": ("BackupFailed", "transfer", "CopyingVHDsFromBackUpVaultTakingLongTime"),
        "refused": ("BackupFailed", "trigger", refusal),
    }[fate]
    outage = exposed and fate != "refused" and got[:2] == ("BackupFailed", "trigger") and got[2] in OUTAGE_CODES
    if got == want or outage:
        return []
    return [
        Violation(
            "scenario-outcome",
            name,
            f"scenario fate {fate!r} wants {want}, the VM ended with {got} "
            f"({record['event']['id']}: {data.get('message')!r})",
        )
    ]


def _check_snapshots(
    run: _Run, name: str, snapshots: list[dict[str, Any]], job: dict[str, Any] | None
) -> list[Violation]:
    out = []
    expected = 1 if job is not None and job.get("snapshotCompletedAt") else 0
    if len(snapshots) != expected:
        out.append(
            Violation(
                "snapshot-once",
                name,
                f"{len(snapshots)} distinct SnapshotCompleted ids {_ids(snapshots)}, expected {expected} "
                f"(job {job and job['id']}, snapshotCompletedAt {job and job.get('snapshotCompletedAt')})",
            )
        )
    for first in snapshots:
        event_id = first["event"]["id"]
        named = run.job(_data(first).get("jobId"))
        truth = _t(named.get("snapshotCompletedAt")) if named else None
        if truth is None:
            out.append(
                Violation(
                    "snapshot-after-truth",
                    name,
                    f"SnapshotCompleted {event_id} for job {_data(first).get('jobId')}, whose snapshot never "
                    f"completed in the emulator ({named and named.get('tasks')})",
                )
            )
            continue
        for record in [r for r in run.observed.records if r["event"]["id"] == event_id]:
            stamped, received = _t(record["event"].get("time")), _t(record.get("receivedAt"))
            if stamped is None or stamped < truth or received is None or received < truth:
                out.append(
                    Violation(
                        "snapshot-after-truth",
                        name,
                        f"SnapshotCompleted {event_id} time {record['event'].get('time')} / received "
                        f"{record.get('receivedAt')}, before Take Snapshot completed at "
                        f"{named['snapshotCompletedAt']}",  # type: ignore[index]
                    )
                )
        claimed = _t(_data(first).get("snapshotCompletedAt"))
        if claimed is None or abs(claimed - truth) > TIME_SLACK:
            out.append(
                Violation(
                    "snapshot-after-truth",
                    name,
                    f"SnapshotCompleted {event_id} says snapshotCompletedAt {_data(first).get('snapshotCompletedAt')}"
                    f", the emulator {named['snapshotCompletedAt']}",  # type: ignore[index]
                )
            )
    return out


def _check_trigger(
    run: _Run,
    name: str,
    job: dict[str, Any] | None,
    has_terminal: bool,
    triggered: list[dict[str, Any]],
    run_end: datetime,
) -> list[Violation]:
    start = run.observed.run_started_at - TIME_SLACK
    ours = [
        j
        for j in run.observed.jobs.get(name.lower(), [])
        if j["userTriggered"] and start <= (_t(j["startTime"]) or start) <= run_end + TIME_SLACK
    ]
    ours_ids = sorted(str(j["id"]).lower() for j in ours)
    if len(ours) > 1:
        return [Violation("single-trigger", name, f"{len(ours)} user-triggered jobs in the run: {ours_ids}")]
    if not has_terminal:
        return []
    if job is None:
        if ours:
            return [Violation("single-trigger", name, f"no job named by the events, but the run triggered {ours_ids}")]
        return []
    if job["userTriggered"]:
        if ours_ids != [str(job["id"]).lower()]:
            return [Violation("single-trigger", name, f"the events name job {job['id']}, the run triggered {ours_ids}")]
        return []
    # a scheduled job was adopted: nothing of our own may have been triggered
    adopted = [bool(_data(r).get("adopted")) for r in triggered]
    if ours or adopted != [True]:
        return [
            Violation(
                "single-trigger",
                name,
                f"scheduled job {job['id']} named (BackupTriggered adopted={adopted}), the run triggered {ours_ids}",
            )
        ]
    return []


MEANING = ("runId", "vmId", "jobId", "snapshotCompletedAt", "phase", "errorCode", "outcome")


def _check_id_reuse(run: _Run) -> list[Violation]:
    """A redelivery (same id) may be re-stamped, but must mean the same: type, subject and the
    data fields a subscriber acts on."""
    out = []
    for record in run.observed.records:
        first = run.first[str(record["event"]["id"])]
        a, b = first["event"], record["event"]
        da, db = a.get("data") or {}, b.get("data") or {}
        differs = [k for k in MEANING if da.get(k) != db.get(k)]
        if a["type"] != b["type"] or a.get("subject") != b.get("subject") or differs:
            out.append(
                Violation(
                    "event-id-reuse",
                    None,
                    f"event id {a['id']}: {a['type']} {a.get('subject')} and {b['type']} {b.get('subject')}, "
                    f"data differing in {differs}",
                )
            )
    return out


def check_published(run: _Run, case: FaultCase) -> list[Violation]:
    started = run.of("ChainStarted")
    out = []
    if len(started) != 1:
        out.append(Violation("published-once", None, f"{len(started)} ChainStarted events: {_ids(started)}"))
    for plan in case.vms:
        triggered = run.of("BackupTriggered", plan.vm_id)
        terminal = run.of("BackupCompleted", plan.vm_id) + run.of("BackupFailed", plan.vm_id)
        named = any(_data(r).get("jobId") for r in terminal)
        if len(triggered) > 1 or (named and len(triggered) != 1):
            out.append(
                Violation(
                    "published-once",
                    plan.name,
                    f"{len(triggered)} BackupTriggered ids {_ids(triggered)} for a terminal event "
                    f"{'naming' if named else 'without'} a job",
                )
            )
    return out


VM_ORDER = ("BackupTriggered", "SnapshotCompleted", "Terminal")


def check_order(run: _Run, case: FaultCase) -> list[Violation]:
    """Per VM, in the topic's order of receipt (``receivedAt``, then position)."""
    out = []
    received = sorted(
        enumerate(run.observed.records), key=lambda pair: (_t(pair[1].get("receivedAt")) or run.observed.now, pair[0])
    )
    for plan in case.vms:
        seen: list[str] = []
        for _, record in received:
            event = record["event"]
            if str(event.get("subject", "")).lower() != plan.vm_id.lower():
                continue
            kind = str(event["type"]).removeprefix(PREFIX)
            kind = "Terminal" if kind in ("BackupCompleted", "BackupFailed") else kind
            if kind in VM_ORDER and kind not in seen:
                seen.append(kind)
        if seen != sorted(seen, key=VM_ORDER.index):
            out.append(Violation("per-vm-order", plan.name, f"the topic received {seen}, expected {list(VM_ORDER)}"))
    return out


def check_outside_set(observed: Observed) -> list[Violation]:
    out = []
    start = observed.run_started_at - TIME_SLACK
    for name, before in sorted(observed.bystanders.items()):
        started = [
            str(j["id"])
            for j in observed.jobs.get(name, [])
            if j["userTriggered"] and (_t(j["startTime"]) or start) >= start
        ]
        if started:
            out.append(Violation("outside-set", name, f"user-triggered jobs {started} on a VM outside the set"))
        now = [str(i["protectionState"]) for i in observed.items.get(name, [])]
        if now != [before]:
            out.append(Violation("outside-set", name, f"protection {before} at run start, now {now}"))
    return out


def check_after_completion(observed: Observed, completed: list[dict[str, Any]]) -> list[Violation]:
    ended = _t(completed[0]["event"]["time"]) if len(completed) == 1 else None
    if ended is None:
        return []
    out = []
    for name, jobs in sorted(observed.jobs.items()):
        for job in jobs:
            started = _t(job.get("startTime"))
            if job["userTriggered"] and started is not None and started > ended + TIME_SLACK:
                out.append(
                    Violation(
                        "job-after-completion",
                        name,
                        f"user-triggered job {job['id']} started at {job['startTime']}, after ChainCompleted at "
                        f"{completed[0]['event']['time']}",
                    )
                )
    return out


def check_undelivered(run_view: dict[str, Any] | None, *, settled: bool = True) -> list[Violation]:
    """``settled``: the downstream topic has accepted again and the app had time to redeliver."""
    if run_view is None:
        return []
    undelivered = list(run_view.get("undelivered") or [])
    out = []
    if undelivered and run_view.get("outcome") == "completed":
        out.append(Violation("undelivered", None, f"outcome 'completed' with {len(undelivered)} undelivered events"))
    if undelivered and settled:
        ids = [str(u.get("id")) for u in undelivered[:10]]
        out.append(Violation("undelivered", None, f"{len(undelivered)} events still undelivered: {ids}"))
    return out


def eternal(instance_id: str) -> bool:
    return instance_id in ETERNAL_IDS or instance_id.startswith(ETERNAL_PREFIXES)


def _check_instances(observed: Observed) -> list[Violation]:
    out = []
    for inst in observed.instances:
        iid, status = str(inst["instanceId"]), str(inst["runtimeStatus"])
        if status == "Failed":
            output = str(inst.get("output"))[:300]
            out.append(Violation("no-stuck-orchestration", None, f"{inst['name']} {iid} Failed: {output}"))
        elif status not in TERMINAL_STATUSES and not eternal(iid):
            custom = inst.get("customStatus")
            out.append(
                Violation(
                    "no-stuck-orchestration",
                    None,
                    f"{inst['name']} {iid} is {status} after the run (custom status {custom}, "
                    f"last updated {inst.get('lastUpdatedTime')})",
                )
            )
    return out


def check_protection(observed: Observed, case: FaultCase) -> list[Violation]:
    """The ``protection-lease`` invariant alone (the driver also checks it mid-window)."""
    if observed.leases is None:
        return [Violation("protection-lease", None, "no lease states were observed")]
    status = {str(i["instanceId"]): str(i["runtimeStatus"]) for i in observed.instances}
    out = []
    for plan in case.vms:
        lease = observed.leases.get(plan.vm_id.lower()) or {}
        holders = dict(lease.get("holders") or {})
        phase = lease.get("phase", "off")
        items = observed.items.get(plan.name.lower(), [])
        if len(items) != 1:
            out.append(Violation("protection-lease", plan.name, f"{len(items)} protected items in the emulator"))
            continue
        state = str(items[0]["protectionState"])
        stopped = state == "ProtectionStopped"
        if not case.in_gc(plan.name):
            # outside gc.vms: a chain leaves its protection (on) alone and never leases it
            if stopped or holders or phase != "off":
                out.append(
                    Violation(
                        "protection-lease",
                        plan.name,
                        f"outside gc.vms, but protection {state}, lease phase {phase} holders {sorted(holders)}",
                    )
                )
            continue
        if plan.name in case.stop_refused and not stopped and phase == "on" and not holders:
            continue  # Azure refused the stop: protection really is on, the lease says so, no holder
        if bool(holders) == stopped:
            out.append(
                Violation(
                    "protection-lease",
                    plan.name,
                    f"protection {state} but the lease (phase {phase}) has holders {sorted(holders)}",
                )
            )
        if phase != ("on" if holders else "off"):
            out.append(Violation("protection-lease", plan.name, f"lease phase {phase} with holders {sorted(holders)}"))
        for holder in holders:
            if status.get(holder, "gone") in (*TERMINAL_STATUSES, "gone"):
                out.append(
                    Violation(
                        "protection-lease",
                        plan.name,
                        f"lease held by {holder}, which is {status.get(holder, 'gone')}",
                    )
                )
    return out


def _vm_ids(values: Any) -> set[str]:
    """VM ids (lower case) of a GC event's list: plain ids or ``{"vmId": ...}`` entries."""
    out = set()
    for value in values or []:
        out.add(str(value.get("vmId") if isinstance(value, dict) else value).lower())
    return out


def check_gc_refusals(events: list[dict[str, Any]], case: FaultCase) -> list[Violation]:
    """``gc-refusals``: the GC window's events (first of each id) against the refusals the case
    made. ``events``: the downstream topic's GcWindowOpened / GcWindowClosed events."""
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        first.setdefault(str(event["id"]), event)
    opened = [e for e in first.values() if e["type"] == PREFIX + "GcWindowOpened"]
    closed = [e for e in first.values() if e["type"] == PREFIX + "GcWindowClosed"]
    out = []
    if len(opened) != 1 or len(closed) != 1:
        return [Violation("gc-refusals", None, f"{len(opened)} GcWindowOpened, {len(closed)} GcWindowClosed")]
    gc_set = {p.vm_id.lower() for p in case.vms if case.in_gc(p.name)}
    refused = {case.vm(n).vm_id.lower() for n in case.resume_refused}
    stop_refused = {case.vm(n).vm_id.lower() for n in case.stop_refused}
    data = dict(opened[0].get("data") or {})
    if _vm_ids(data.get("vms")) != gc_set - refused:
        extra, missing = _vm_ids(data.get("vms")) - (gc_set - refused), (gc_set - refused) - _vm_ids(data.get("vms"))
        out.append(
            Violation("gc-refusals", None, f"GcWindowOpened.vms: extra {sorted(extra)}, missing {sorted(missing)}")
        )
    failed = data.get("failed") or []
    if _vm_ids(failed) != refused or any(f.get("errorCode") != case.refusal_code for f in failed):
        out.append(Violation("gc-refusals", None, f"GcWindowOpened.failed {failed}, refused {sorted(refused)}"))
    data = dict(closed[0].get("data") or {})
    stop_failed = data.get("stopFailed") or []
    if _vm_ids(stop_failed) != stop_refused or any(f.get("errorCode") != case.refusal_code for f in stop_failed):
        out.append(
            Violation("gc-refusals", None, f"GcWindowClosed.stopFailed {stop_failed}, refused {sorted(stop_refused)}")
        )
    if _vm_ids(data.get("stopped")) & (stop_refused | refused):
        out.append(Violation("gc-refusals", None, f"GcWindowClosed.stopped {data.get('stopped')} names a refused VM"))
    window_run = data.get("runId")
    findings = [
        dict(e.get("data") or {})
        for e in first.values()
        if e["type"] == PREFIX + "GcStopFailed" and (e.get("data") or {}).get("runId") == window_run
    ]
    if _vm_ids(findings) != stop_refused or any(f.get("errorCode") != case.refusal_code for f in findings):
        out.append(Violation("gc-refusals", None, f"GcStopFailed {findings}, refused {sorted(stop_refused)}"))
    return out
