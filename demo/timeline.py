"""A run's per-VM timeline: where the time went, built from what the run published and recorded.

Pure: the inputs are the run as ``GET /api/chains/{chain}/runs/{runId}`` answers it, the run's
downstream events as the topic accepted them (full CloudEvents) and, per event id, what the Event
Grid emulator records of its delivery to the downstream subscriber. No I/O; rendering is
``demo/timeline_render.py``, collecting from the local stack ``demo/timeline_collect.py``.

Per VM the segments follow each other on the run's (virtual) clock:

- ``waiting``: upstream received (or the run's start, without upstream) until the backup was
  triggered; includes queueing behind ``maxParallel``, the stagger and waiting out a running job;
- ``snapshot``: triggered until Azure's Take Snapshot completed (``snapshotCompletedAt``);
- ``transfer``: until the backup job ended (``jobEndedAt``).

The VM's events are the primary source (what downstream saw); where an event is missing (not yet
accepted by the topic) the run's own record of the VM (its GET) fills in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dateutil.parser import isoparse

SEGMENT_KINDS = ("waiting", "snapshot", "transfer")
TERMINAL_STATUSES = ("Completed", "Failed", "Terminated", "Canceled")


@dataclass(frozen=True)
class Delivery:
    """The Event Grid emulator's record of one event's delivery to the downstream subscriber:
    ``state`` Pending, Delivered, DeadLettered or Dropped; ``delivered_at`` the successful attempt."""

    state: str
    delivered_at: datetime | None


@dataclass(frozen=True)
class Segment:
    kind: str  # one of SEGMENT_KINDS
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class VmTimeline:
    vm_id: str
    name: str
    vault: str
    # completed | failed | running | notStarted (the run ended before its trigger) | cancelled (the
    # run was cancelled before the VM's backup ended, ChainCompleted says) | unfinished (the run
    # ended otherwise, e.g. terminated, before the VM's backup did)
    outcome: str
    segments: tuple[Segment, ...]
    error_code: str | None = None
    failed_phase: str | None = None
    failed_at: datetime | None = None
    snapshot_completed_at: datetime | None = None
    snapshot_published_at: datetime | None = None  # the SnapshotCompleted event's time
    heard: Delivery | None = None  # its delivery to downstream; None: no SnapshotCompleted event
    note: str = ""

    @property
    def start(self) -> datetime | None:
        return self.segments[0].start if self.segments else None

    @property
    def end(self) -> datetime | None:
        return self.segments[-1].end if self.segments else None

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.segments)

    def seconds_in(self, kind: str) -> float:
        return sum(s.seconds for s in self.segments if s.kind == kind)


@dataclass(frozen=True)
class RunTimeline:
    chain: str
    run_id: str
    runtime_status: str
    outcome: str | None
    started_at: datetime
    upstream_at: datetime | None
    ended_at: datetime
    vms: tuple[VmTimeline, ...]

    @property
    def finished(self) -> bool:
        return self.runtime_status in TERMINAL_STATUSES

    def first(self) -> datetime:
        return min([self.started_at, *(vm.start for vm in self.vms if vm.start is not None)])

    def last(self) -> datetime:
        times = [self.ended_at, *(vm.end for vm in self.vms if vm.end is not None)]
        times += [vm.heard.delivered_at for vm in self.vms if vm.heard and vm.heard.delivered_at]
        return max(times)

    def rows(self, limit: int) -> tuple[list[VmTimeline], int]:
        """At most ``limit`` VMs, longest total time first, failed VMs kept before any healthy one
        is; and how many were left out."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        by_total = sorted(self.vms, key=lambda vm: (-vm.total_seconds, vm.name))
        chosen = {id(vm) for vm in sorted(by_total, key=lambda vm: vm.outcome != "failed")[:limit]}
        shown = [vm for vm in by_total if id(vm) in chosen]
        return shown, len(self.vms) - len(shown)


class TimelineError(ValueError):
    """The run data cannot be drawn; the message names the field."""


def _time(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = isoparse(str(value))
    except ValueError:
        raise TimelineError(f"{what}: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise TimelineError(f"{what}: time without an offset: {value!r}")
    return parsed


def _kind(event: Mapping[str, Any]) -> str:
    return str(event.get("type", "")).rsplit(".", 1)[-1]


def _name(resource_id: Any) -> str:
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1]


def _field(event: Mapping[str, Any] | None, key: str) -> Any:
    if event is None:
        return None
    data = event.get("data")
    return data.get(key) if isinstance(data, Mapping) else None


def build_timeline(
    run: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    deliveries: Mapping[str, Delivery],
) -> RunTimeline:
    """The timeline of ``run`` from its downstream ``events`` (CloudEvents, any order) and the
    ``deliveries`` of those events to the downstream subscriber (by event id)."""
    chain, run_id = str(run.get("chain") or ""), str(run.get("runId") or "")
    if not chain or not run_id:
        raise TimelineError("run: 'chain' and 'runId' are required")
    raw_custom = run.get("custom")
    custom: Mapping[str, Any] = raw_custom if isinstance(raw_custom, Mapping) else {}
    chain_events = {_kind(e): e for e in events if not _field(e, "vmId")}
    started = _time((chain_events.get("ChainStarted") or {}).get("time"), "ChainStarted.time") or _time(
        custom.get("startedAt"), "run.custom.startedAt"
    )
    started = started or _time(run.get("createdTime"), "run.createdTime")
    if started is None:
        raise TimelineError("run: no start time (ChainStarted event, custom.startedAt or createdTime)")
    upstream = custom.get("upstream") if isinstance(custom.get("upstream"), Mapping) else None
    upstream_at = _time(_field(chain_events.get("UpstreamReceived"), "receivedAt"), "UpstreamReceived.receivedAt")
    if upstream_at is None and upstream is not None:
        upstream_at = _time(upstream.get("receivedAt"), "run.custom.upstream.receivedAt")
    ended = _time((chain_events.get("ChainCompleted") or {}).get("time"), "ChainCompleted.time")
    ended = ended or _time(run.get("lastUpdatedTime"), "run.lastUpdatedTime") or started

    per_vm: dict[str, dict[str, Mapping[str, Any]]] = {}
    for event in events:
        vm_id = _field(event, "vmId")
        if vm_id:
            per_vm.setdefault(str(vm_id).lower(), {})[_kind(event)] = event
    views = [vm for vm in run.get("vms") or [] if isinstance(vm, Mapping) and vm.get("vmId")]
    known = {str(vm["vmId"]).lower() for vm in views}
    views += [{"vmId": _field(next(iter(evs.values())), "vmId")} for key, evs in per_vm.items() if key not in known]
    # ChainCompleted's per-VM summary: a VM a cancel skipped has no orchestration (not in the GET).
    summary_list = _field(chain_events.get("ChainCompleted"), "vms")
    summaries = {
        str(entry["vmId"]).lower(): entry
        for entry in (summary_list if isinstance(summary_list, list) else [])
        if isinstance(entry, Mapping) and entry.get("vmId")
    }
    known |= set(per_vm)
    views += [{"vmId": entry["vmId"]} for key, entry in summaries.items() if key not in known]
    finished = str(run.get("runtimeStatus")) in TERMINAL_STATUSES
    wait_from = upstream_at or started
    vms = tuple(
        _vm_timeline(
            view,
            per_vm.get(str(view["vmId"]).lower(), {}),
            summaries.get(str(view["vmId"]).lower(), {}),
            wait_from,
            ended,
            finished,
            deliveries,
        )
        for view in views
    )
    return RunTimeline(
        chain=chain,
        run_id=run_id,
        runtime_status=str(run.get("runtimeStatus") or ""),
        outcome=run.get("outcome"),
        started_at=started,
        upstream_at=upstream_at,
        ended_at=ended,
        vms=vms,
    )


def _vm_timeline(
    view: Mapping[str, Any],
    events: Mapping[str, Mapping[str, Any]],
    summary: Mapping[str, Any],
    wait_from: datetime,
    run_ended: datetime,
    run_finished: bool,
    deliveries: Mapping[str, Delivery],
) -> VmTimeline:
    name = _name(view["vmId"])
    triggered_event, snapshot_event = events.get("BackupTriggered"), events.get("SnapshotCompleted")
    completed_event, failed_event = events.get("BackupCompleted"), events.get("BackupFailed")
    triggered = _time(_field(triggered_event, "triggeredAt") or (triggered_event or {}).get("time"), f"{name} trigger")
    triggered = triggered or _time(view.get("triggeredAt"), f"{name}.triggeredAt")
    snapshot = _time(_field(snapshot_event, "snapshotCompletedAt"), f"{name} SnapshotCompleted.snapshotCompletedAt")
    snapshot = snapshot or _time(view.get("snapshotCompletedAt"), f"{name}.snapshotCompletedAt")
    done = _time(_field(completed_event, "jobEndedAt") or (completed_event or {}).get("time"), f"{name} completion")
    done = done or _time(view.get("completedAt"), f"{name}.completedAt")
    failed_at = _time((failed_event or {}).get("time"), f"{name} BackupFailed.time")
    error_code = _field(failed_event, "errorCode") or view.get("errorCode") or summary.get("errorCode")
    failed_phase = _field(failed_event, "phase") or view.get("failedPhase") or summary.get("failedPhase")
    said_failed = view.get("phase") == "failed" or summary.get("outcome") == "failed"
    if failed_at is None and (failed_event is not None or said_failed):
        failed_at = _time(view.get("updatedAt"), f"{name}.updatedAt") or run_ended
    if failed_at is not None:
        outcome = "failed"
    elif done is not None:
        outcome = "completed"
    elif summary.get("outcome") == "cancelled":
        outcome = "cancelled"
    elif triggered is None and run_finished:
        outcome = "notStarted"
    elif run_finished:
        outcome = "unfinished"
    else:
        outcome = "running"
    end = failed_at or done or run_ended

    # Boundaries in order; a missing one means the VM is (or ended) in the segment before it.
    boundaries: list[tuple[str, datetime | None]] = [("waiting", triggered), ("snapshot", snapshot), ("transfer", done)]
    segments: list[Segment] = []
    cursor = min(wait_from, triggered) if triggered is not None else wait_from
    for kind, until in boundaries:
        stop = until if until is not None else end
        stop = max(stop, cursor)
        if stop > cursor or until is None:
            segments.append(Segment(kind, cursor, stop))
        cursor = stop
        if until is None:
            break
    running_job = view.get("runningJobId")
    note = f"waited out job {str(running_job)[:8]}" if running_job and not view.get("adopted") else ""
    if view.get("adopted"):
        note = "adopted a running job"
    snapshot_id = (snapshot_event or {}).get("id")
    heard = None
    if snapshot_event is not None:
        heard = deliveries.get(str(snapshot_id), Delivery("notRecorded", None))
    return VmTimeline(
        vm_id=str(view["vmId"]),
        name=name,
        vault=_name(view.get("vaultId") or _field(triggered_event, "vaultId")),
        outcome=outcome,
        segments=tuple(segments),
        error_code=str(error_code) if error_code else None,
        failed_phase=str(failed_phase) if failed_phase else None,
        failed_at=failed_at,
        snapshot_completed_at=snapshot,
        snapshot_published_at=_time((snapshot_event or {}).get("time"), f"{name} SnapshotCompleted.time"),
        heard=heard,
        note=note,
    )
