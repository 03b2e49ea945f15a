"""Reading a backup job (REST shape of ``backupJobs/{name}``, as the SDK serializes it): its
status, its Take Snapshot / Transfer data to vault subtasks and Azure's error details."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from backup_chain.backup_error_codes import symbolic_code

SNAPSHOT_TASK = "take snapshot"
TRANSFER_TASK = "transfer data to vault"
TERMINAL = ("Completed", "CompletedWithWarnings", "Failed", "Cancelled")
SUCCEEDED = ("Completed", "CompletedWithWarnings")


@dataclass(frozen=True)
class JobView:
    job_id: str
    status: str
    start_time: str | None = None
    end_time: str | None = None
    user_triggered: bool | None = None
    entity_friendly_name: str | None = None
    container_name: str | None = None
    snapshot_status: str | None = None
    snapshot_start: str | None = None
    snapshot_end: str | None = None
    snapshot_duration: str | None = None
    transfer_status: str | None = None
    error_code: str | None = None  # symbolic (UserErrorFsFreezeFailed), where backup_error_codes knows it
    error_number: int | None = None  # Azure's int errorDetails[0].errorCode
    error_title: str | None = None  # errorTitle: the entity the error pertains to
    error_message: str | None = None
    recommendations: list[str] = field(default_factory=list)
    backup_size: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED

    @property
    def snapshot_done(self) -> bool:
        return self.snapshot_status in SUCCEEDED

    def reached(self, until: str) -> bool:
        """Whether a watch ``until`` ``snapshot`` (or the job ended first), ``transfer`` or
        ``end`` is over."""
        if until == "snapshot":
            return self.snapshot_done or self.terminal
        return self.terminal

    @property
    def failed_phase(self) -> str:
        """Where a failed job failed: before the snapshot was safe, or while transferring."""
        return "transfer" if self.snapshot_done else "snapshot"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobView:
        return cls(**data)


def parse_job(resource: dict[str, Any]) -> JobView:
    """A ``JobResource`` (``{"name", "properties": {...}}``) as a :class:`JobView`."""
    props = resource.get("properties") or {}
    extended = props.get("extendedInfo") or {}
    tasks = {str(t.get("taskId", "")).lower(): t for t in extended.get("tasksList") or []}
    snapshot = tasks.get(SNAPSHOT_TASK, {})
    transfer = tasks.get(TRANSFER_TASK, {})
    errors = props.get("errorDetails") or []
    first = errors[0] if errors else {}
    number = _int_or_none(first.get("errorCode"))
    message = first.get("errorString") or extended.get("dynamicErrorMessage")
    bag = extended.get("propertyBag") or {}
    return JobView(
        job_id=str(resource.get("name") or str(resource.get("id", "")).rsplit("/", 1)[-1]),
        status=str(props.get("status", "Unknown")),
        start_time=props.get("startTime"),
        end_time=props.get("endTime"),
        user_triggered=props.get("isUserTriggered"),
        entity_friendly_name=props.get("entityFriendlyName"),
        container_name=props.get("containerName"),
        snapshot_status=snapshot.get("status"),
        snapshot_start=snapshot.get("startTime"),
        snapshot_end=snapshot.get("endTime"),
        snapshot_duration=snapshot.get("duration"),
        transfer_status=transfer.get("status"),
        # errorString is localized; the job details' dynamicErrorMessage is not (bms.json).
        error_code=symbolic_code(number, first.get("errorString"))
        or symbolic_code(None, extended.get("dynamicErrorMessage")),
        error_number=number,
        error_title=first.get("errorTitle") or None,
        error_message=message,
        recommendations=[str(r) for r in first.get("recommendations") or []],
        backup_size=bag.get("Backup Size"),
    )


def _int_or_none(value: Any) -> int | None:
    """``errorCode`` is an int in the spec; tolerate a numeric string, keep nothing else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def listed_for_vm(entry: dict[str, Any], vm_name: str) -> bool:
    """Whether a ``BackupJobs_List`` entry may be the VM's: list entries carry ``entityFriendlyName``
    but neither ``containerName`` nor ``isUserTriggered`` (ListJobsWithAllSupportedFilters.json), so
    the VM name only narrows the candidates; :func:`is_vm_job` decides on the job's details."""
    props = entry.get("properties") or {}
    return str(props.get("entityFriendlyName") or "").lower() == vm_name.lower()


def is_vm_job(job: JobView, container_name: str) -> bool:
    """Whether a job read with ``JobDetails_Get`` backs up the VM whose container is
    ``iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}``. Details without a ``containerName``
    (GetJobDetails.json has none) are taken on the friendly name the list matched."""
    if job.container_name is None:
        return True
    suffix = container_name.lower().split(";", 1)[1]
    return str(job.container_name).lower().endswith(suffix)
