"""Downstream events (docs/events.md): CloudEvents 1.0 with deterministic ids, so a replayed
or retried publish is a duplicate that subscribers can drop."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backup_chain.jobs import JobView

EVENT_TYPES = (
    "ChainStarted",
    "UpstreamReceived",
    "UpstreamTimedOut",
    "ChainSkipped",
    "BackupTriggered",
    "SnapshotCompleted",
    "BackupCompleted",
    "BackupFailed",
    "ChainCompleted",
    "GcWindowOpened",
    "GcWindowClosed",
    "GcOverdue",
    "RestorePointsNearLimit",
    "BackupDelayed",
    "GcResumeFailed",
    "GcCheckFailed",
    "GcStopFailed",
    "PolicyUnreadable",
    "SnapshotLate",
    "ChainPaused",
    "ChainResumed",
    "GcMembershipUnreadable",
)
_NAMESPACE = uuid.UUID("6f1c2a57-7c1e-4d53-9a55-0b3f5f8e2b10")
# The major version of each type's data schema (docs/events.md, Versioning): a breaking change to a
# type's data bumps its major; docs/events/schemas/<Type>.schema.json is that version's schema.
SCHEMA_MAJORS: dict[str, int] = {event_type: 1 for event_type in EVENT_TYPES}
SCHEMA_ROUTE = "schemas/events"  # under the app's HTTP route prefix (triggers/schemas.py)


def event_id(run_id: str, scope: str, event_type: str, *, chain: str | None = None, detail: str | None = None) -> str:
    """Deterministic per (chain, run, VM or chain scope, type, detail), so a replayed or retried
    publish of one event keeps its id while any two distinct events differ: runs of two chains may
    share a run id (one upstream event, one window, one HTTP ``runId``), so the chain is part of the
    key; ``detail`` tells apart several events of one type for one scope (a GC finding's code).
    Chain names and VM ids are case-insensitive (as in the configuration and Azure), run ids are
    not. The key is a JSON list, so no choice of names can make two keys collide."""
    key = json.dumps([(chain or "").lower(), run_id, scope.lower(), event_type, detail or ""])
    return str(uuid.uuid5(_NAMESPACE, key))


def cloud_event(
    *,
    prefix: str,
    event_type: str,
    source: str,
    subject: str,
    run_id: str,
    scope: str,
    time: str,
    data: dict[str, Any],
    chain: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """A CloudEvents 1.0 event as a JSON-ready dict (the activity turns it into an SDK CloudEvent)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return {
        "specversion": "1.0",
        "id": event_id(run_id, scope, event_type, chain=chain, detail=detail),
        "source": source,
        "type": f"{prefix}{event_type}",
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    }


def schema_type(cloud_type: str) -> str:
    """The event type a CloudEvents ``type`` (``eventTypePrefix`` + type) names: the longest known
    type it ends with, so no prefix is needed (a kept event may predate a prefix change)."""
    found = max((t for t in EVENT_TYPES if cloud_type.endswith(t)), key=len, default=None)
    if found is None:
        raise ValueError(f"unknown event type {cloud_type!r}")
    return found


def data_schema_uri(base_url: str, cloud_type: str) -> str:
    """The CloudEvents ``dataschema`` of an event: ``{base}/{Type}/v{major}``, where the schema of
    that type's major version is served (docs/events.md, Versioning)."""
    name = schema_type(cloud_type)
    return f"{base_url.rstrip('/')}/{name}/v{SCHEMA_MAJORS[name]}"


def with_data_schema(event: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """The event with its ``dataschema`` (after ``datacontenttype``, as the examples show it)."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key != "dataschema":
            out[key] = value
        if key == "datacontenttype":
            out["dataschema"] = data_schema_uri(base_url, str(event["type"]))
    return out


def chain_subject(chain: str, run_id: str) -> str:
    return f"/chains/{chain}/runs/{run_id}"


def chain_cloud_event(
    *, prefix: str, chain: str, run_id: str, source: str, event_type: str, time: str, **data: Any
) -> dict[str, Any]:
    """A chain-level event (subject is the run): one per (chain, run, type)."""
    body = {"chain": chain, "runId": run_id, "vmId": None, "vaultId": None, **data}
    return cloud_event(
        prefix=prefix,
        event_type=event_type,
        source=source,
        subject=chain_subject(chain, run_id),
        run_id=run_id,
        scope="chain",
        time=time,
        data=body,
        chain=chain,
    )


def gc_cloud_event(
    *,
    prefix: str,
    source: str,
    gc_run: str,
    event_type: str,
    time: str,
    vm_id: str | None,
    vault_id: str | None,
    finding: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A GC event of GC run ``gc_run`` (its instance id): one per (run, VM, type, ``finding``
    code), since one VM can have several findings of one kind. Subject is the VM, or the GC run."""
    extra = {"finding": finding} if finding is not None else {}
    body = {"chain": None, "runId": gc_run, "vmId": vm_id, "vaultId": vault_id, **extra, **data}
    return cloud_event(
        prefix=prefix,
        event_type=event_type,
        source=vault_id or source,
        subject=vm_id or f"/gc/{gc_run}",
        run_id=gc_run,
        scope=vm_id or "gc",
        time=time,
        data=body,
        detail=finding,
    )


def iso(dt: datetime) -> str:
    """The one timestamp format of events and orchestration status (UTC, microseconds, ``Z``)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (None for none)."""
    if not text:
        return None
    from dateutil.parser import isoparse

    value: datetime = isoparse(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return (b - a).total_seconds() if a and b else None


def vm_cloud_event(
    spec: Mapping[str, Any], job_id: str | None, event_type: str, time: str, **data: Any
) -> dict[str, Any]:
    """A per-VM event: subject is the VM, source its vault (docs/events.md). ``spec`` carries
    ``prefix``, ``chain``, ``runId``, ``vmId`` and ``vaultId``."""
    body = {
        "chain": spec["chain"],
        "runId": spec["runId"],
        "vmId": spec["vmId"],
        "vaultId": spec["vaultId"],
        "jobId": job_id,
        **data,
    }
    return cloud_event(
        prefix=spec["prefix"],
        event_type=event_type,
        source=spec["vaultId"],
        subject=spec["vmId"],
        run_id=spec["runId"],
        scope=spec["vmId"],
        time=time,
        data=body,
        chain=spec["chain"],
    )


def snapshot_completed_event(spec: Mapping[str, Any], job: JobView, time: str) -> dict[str, Any]:
    return vm_cloud_event(
        spec,
        job.job_id,
        "SnapshotCompleted",
        time,
        snapshotCompletedAt=job.snapshot_end,
        snapshotSeconds=seconds_between(job.snapshot_start or job.start_time, job.snapshot_end),
        jobStartedAt=job.start_time,
    )
