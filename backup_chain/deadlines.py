"""A run's deadlines, after AWS Backup's start and completion windows (docs/configuration.md):
the start window (a VM not triggered by its end is ``notStarted``, never triggered later) and the
per-VM snapshot deadline (a Take Snapshot phase still running past it is reported late)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backup_chain.jobs import JobView

NOT_STARTED = "notStarted"  # a VM outcome: the start window closed before its backup was triggered
START_WINDOW_CLOSED = "StartWindowClosed"  # its errorCode


def not_started(vm_id: str, start_by: str, message: str | None = None) -> dict[str, Any]:
    """A VM's result when the start window closed (at ``start_by``) before its backup was
    triggered; ``message`` when it says more (``closes_first``)."""
    message = message or f"the run's start window closed at {start_by} before this VM's backup was triggered"
    return {"vmId": vm_id, "outcome": NOT_STARTED, "errorCode": START_WINDOW_CLOSED, "message": message}


def closes_first(start_by: str, waiting_for: str, until: str) -> str:
    """Why a VM is not started before its window closes: it would wait for ``waiting_for`` until
    ``until``, at or after the window's end, holding a parallelism slot another VM could use."""
    return f"the run's start window closes at {start_by}, before {waiting_for} ends at {until}: not triggered"


def window_closed(start_by: datetime | None, at: datetime) -> bool:
    """Has the start window (closing at ``start_by``; None: no window) closed at ``at``?"""
    return start_by is not None and at >= start_by


def snapshot_late(job: JobView | None) -> bool:
    """Is the snapshot late, by a read of its job at the deadline (None: the read failed, so
    nothing shows it completed)? One the read shows completed is not: its SnapshotCompleted is
    on its way, and a SnapshotLate after it would mislead."""
    return job is None or not job.snapshot_done
