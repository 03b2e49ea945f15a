"""The scenario's ``backupTrigger`` settings: how an on-demand backup trigger behaves (operation
latency and Retry-After, the form a conflict with a running job takes, the daily on-demand limit,
the job-list lag). Parsed strictly: a bad value raises ScenarioError naming its key path.

::

    "backupTrigger": {"retryAfterSeconds": 60, "operationSeconds": 30, "onDemandPerDay": 9,
                      "conflictForm": "failedOperation", "jobListLagSeconds": 0,
                      "vms": {"app01": {"conflictForm": "objectLocked"}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast

# scenario.py imports this module to parse its key; the error class is read at raise time.
from emulators.recoveryservices import scenario

ConflictForm = Literal["failedOperation", "failedJob", "objectLocked"]
CONFLICT_FORMS: tuple[ConflictForm, ...] = ("failedOperation", "failedJob", "objectLocked")
_KEYS = {"retryAfterSeconds", "operationSeconds", "onDemandPerDay", "conflictForm", "jobListLagSeconds", "vms"}
_VM_KEYS = {"conflictForm"}
ROOT = "backupTrigger"


@dataclass(frozen=True)
class TriggerRules:
    # azure-rest-api-specs recoveryservicesbackup examples (Common/TriggerBackup_Post.json) answer
    # 202 with "Retry-After": "60".
    retry_after_seconds: int = 60
    operation_seconds: float = 30.0  # how long the trigger's async operation stays InProgress
    # MicrosoftDocs/azure-docs articles/backup/backup-support-matrix-iaas.md: "The Azure Backup
    # service supports up to nine on-demand backups per day".
    on_demand_per_day: int = 9
    conflict_form: ConflictForm = "failedOperation"
    job_list_lag_seconds: float = 0.0  # a started job shows in BackupJobs_List only after this long
    vm_conflict_forms: Mapping[str, ConflictForm] = field(default_factory=lambda: MappingProxyType({}))

    def conflict_form_for(self, vm_name: str) -> ConflictForm:
        return self.vm_conflict_forms.get(vm_name.lower(), self.conflict_form)


def _object(raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise scenario.ScenarioError(f"{path}: must be an object, got {raw!r}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise scenario.ScenarioError(f"{path}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return raw


def _number(raw: dict[str, Any], key: str, path: str, default: float, *, integer: bool, minimum: float) -> float:
    value = raw.get(key, default)
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise scenario.ScenarioError(f"{path}.{key}: must be {kind} >= {minimum:g}, got {value!r}")
    if value < minimum:
        raise scenario.ScenarioError(f"{path}.{key}: must be >= {minimum:g}, got {value!r}")
    return value


def _form(raw: dict[str, Any], path: str, default: ConflictForm) -> ConflictForm:
    value = raw.get("conflictForm", default)
    if value not in CONFLICT_FORMS:
        raise scenario.ScenarioError(f"{path}.conflictForm: must be one of {', '.join(CONFLICT_FORMS)}, got {value!r}")
    return cast(ConflictForm, value)


def parse(raw: Any | None) -> TriggerRules:
    if raw is None:
        return TriggerRules()
    body = _object(raw, ROOT, _KEYS)
    defaults = TriggerRules()
    form = _form(body, ROOT, defaults.conflict_form)
    vms: dict[str, ConflictForm] = {}
    vms_raw = body.get("vms", {})
    for name, vm_raw in _object(vms_raw, f"{ROOT}.vms", set(vms_raw) if isinstance(vms_raw, dict) else set()).items():
        path = f"{ROOT}.vms.{name}"
        vms[str(name).lower()] = _form(_object(vm_raw, path, _VM_KEYS), path, form)
    return TriggerRules(
        retry_after_seconds=int(
            _number(body, "retryAfterSeconds", ROOT, defaults.retry_after_seconds, integer=True, minimum=0)
        ),
        operation_seconds=float(
            _number(body, "operationSeconds", ROOT, defaults.operation_seconds, integer=False, minimum=0)
        ),
        on_demand_per_day=int(
            _number(body, "onDemandPerDay", ROOT, defaults.on_demand_per_day, integer=True, minimum=1)
        ),
        conflict_form=form,
        job_list_lag_seconds=float(
            _number(body, "jobListLagSeconds", ROOT, defaults.job_list_lag_seconds, integer=False, minimum=0)
        ),
        vm_conflict_forms=MappingProxyType(vms),
    )
