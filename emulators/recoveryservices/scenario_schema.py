"""The scenario file's keys and their types (pydantic, unknown keys refused), so a mistyped key
fails loudly with its full path instead of being ignored. scenario.py checks the meaning
(ranges, references) and builds the dataclasses the emulator uses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyModel(_Strict):
    name: str
    policyType: Literal["V1", "V2"] = "V1"  # V2: an Enhanced policy (SimpleSchedulePolicyV2)
    frequency: str = "Daily"  # Daily | Weekly; Hourly needs policyType V2
    days: list[str] = []
    time: str = "02:00"  # Hourly: the window start
    timeZone: str = "UTC"
    # The IANA zone the service runs the schedule in when ``timeZone`` is a name outside the CLDR
    # map (a zone Azure added after the app's tzlocal/tzdata): how the app meets an unknown zone.
    timeZoneIana: str | None = None
    intervalHours: int | None = None  # Hourly only
    windowHours: int | None = None  # Hourly only
    retentionDays: int = 30
    retentionWeeks: int | None = None
    instantRpRetentionDays: int = 2


class VmFaultsModel(_Strict):
    snapshotFailureRate: float = 0.0
    snapshotErrorCode: str | None = None
    transferFailureRate: float = 0.0
    vssWriterFailureRate: float = 0.0


class PostScriptModel(_Strict):
    """A Linux VM's VMSnapshot post-script sending the snapshot beacon (docs/beacon.md)."""

    topic: str  # an Event Grid emulator topic name, or a full https publish URL
    gapSeconds: float = 5.0  # from the in-guest snapshot moment to Take Snapshot Completed


class RunningJobModel(_Strict):
    startedMinutesAgo: float = 0.0


class HistoryModel(_Strict):
    hoursAgo: float | None = None
    daysAgo: float | None = None
    userTriggered: bool = True
    status: str = "Completed"
    snapshotCollected: bool = False


class VmModel(_Strict):
    name: str
    resourceGroup: str | None = None
    os: str = "Linux"
    powerState: str = "running"
    policy: str | None = None
    protected: bool = True
    preScripts: bool = False
    postScript: PostScriptModel | None = None
    agentStatus: str = "Ready"
    snapshotMinutes: list[float] | None = None
    transferMinutes: list[float] | None = None
    faults: VmFaultsModel | None = None
    runningScheduledJob: RunningJobModel | None = None
    history: list[HistoryModel] | None = None
    jobs: list[HistoryModel] | None = None  # older name of history
    count: int = 1
    tags: dict[str, str] = {}  # Azure Resource Graph's ``tags`` of the VM


class MachineModel(_Strict):
    """A VM protected in no vault: Resource Graph finds it, Recovery Services has no item for it."""

    name: str
    resourceGroup: str = "rg"
    subscriptionId: str | None = None  # default: the scenario's subscriptionId
    location: str = "japaneast"
    tags: dict[str, str] = {}


class ResourceGraphModel(_Strict):
    """Resource Graph (resource_graph.py): ``maxPageSize`` caps a page below the query's $top."""

    maxPageSize: int | None = None


class VaultModel(_Strict):
    subscriptionId: str | None = None  # default: the scenario's subscriptionId
    resourceGroup: str = "rg"
    name: str = "vault"
    location: str = "japaneast"
    policies: list[PolicyModel] = []
    vms: list[VmModel] = []
    # Validated by resource_guard.py (Resource Guard / multi-user authorization).
    resourceGuard: bool | dict[str, Any] | None = None


class OperationFaultsModel(_Strict):
    rate429: float | None = None
    rate5xx: float | None = None
    rate503: float | None = None
    dropRate: float | None = None
    latencyMs: float | None = None
    retryAfterSeconds: float | None = None
    fail429Next: float | None = None
    fail5xxNext: float | None = None


class FaultsModel(OperationFaultsModel):
    asyncRetryAfterSeconds: float | None = None
    operations: dict[str, OperationFaultsModel] | None = None
    errors: dict[str, dict[str, Any] | None] | None = None  # validated by faults.py


class RoleDefinitionModel(_Strict):
    name: str  # a GUID
    roleName: str
    actions: list[str] = []
    notActions: list[str] = []


class RoleAssignmentModel(_Strict):
    principalId: str
    scope: str
    roleDefinitionId: str | None = None
    roleName: str | None = None  # a built-in (Reader, Backup Operator, Backup Contributor) or a listed one


class AuthorizationModel(_Strict):
    """Checked further by authorization.py (references, GUIDs, scopes)."""

    callerPrincipalId: str | None = None
    roleDefinitions: list[RoleDefinitionModel] = []
    roleAssignments: list[RoleAssignmentModel] = []


class ScenarioModel(_Strict):
    subscriptionId: str = "00000000-0000-0000-0000-000000000000"
    seed: int = 0
    bearerToken: str | None = None
    scheduleDelayMinutes: list[float] | None = None
    lateScheduleRate: float = 0.02
    jobRetentionDays: float = 14.0
    vaults: list[VaultModel] = []
    faults: FaultsModel | None = None
    throttling: Any = None  # validated (shape included) by throttling.py
    # Validated by trigger_rules.py (how Backups_Trigger answers).
    backupTrigger: dict[str, Any] | None = None
    authorization: AuthorizationModel | None = None
    unprotectedVms: list[MachineModel] = []
    resourceGraph: ResourceGraphModel | None = None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(raw: Any) -> list[str]:
    """Every key-path problem in ``raw`` (``vaults[0].vms[2].faults.snapshotFailRate: extra inputs
    are not permitted``); empty when the keys and their types are right."""
    try:
        ScenarioModel.model_validate(raw)
    except ValidationError as err:
        return [f"{_path(e['loc'])}: {e['msg'][:1].lower()}{e['msg'][1:]}" for e in err.errors()]
    return []
