"""The scenario file: subscription, vaults, policies, VMs, faults. Parsed into plain dataclasses.

Minimal form plus optional extensions (emulators/README.md)::

    {"subscriptionId": "...", "seed": 7, "bearerToken": null,
     "scheduleDelayMinutes": [5, 20], "lateScheduleRate": 0.02, "jobRetentionDays": 14,
     "vaults": [{"resourceGroup": "rg", "name": "v1", "location": "japaneast",
       "subscriptionId": "...",
       "policies": [{"name": "weekly-wed", "frequency": "Weekly", "days": ["Wednesday"],
                     "time": "02:00", "timeZone": "Tokyo Standard Time", "retentionDays": 30,
                     "retentionWeeks": null, "instantRpRetentionDays": 2},
                    {"name": "enhanced-4h", "policyType": "V2", "frequency": "Hourly",
                     "time": "08:00", "intervalHours": 4, "windowHours": 16,
                     "timeZone": "India Standard Time", "instantRpRetentionDays": 7}],
       "vms": [{"name": "app01", "resourceGroup": "rg-app", "os": "Linux", "powerState": "running",
                "policy": "weekly-wed", "protected": true, "preScripts": false,
                "agentStatus": "Ready", "snapshotMinutes": [5, 15], "transferMinutes": [60, 180],
                "faults": {"snapshotFailureRate": 0.0, "snapshotErrorCode": "...",
                           "transferFailureRate": 0.0, "vssWriterFailureRate": 0.0},
                "runningScheduledJob": {"startedMinutesAgo": 3},
                "history": [{"hoursAgo": 30, "userTriggered": true, "status": "Completed",
                             "snapshotCollected": false}],
                "count": 1}]}],
     "faults": {"rate429": 0.0, "rate5xx": 0.0, "rate503": 0.0, "retryAfterSeconds": 1,
                "latencyMs": 0, "dropRate": 0.0, "operations": {"Backups_Trigger": {...}}},
     "throttling": {"enabled": false, "reads": {"bucket": 250, "refillPerSecond": 25},
                    "writes": {"bucket": 200, "refillPerSecond": 10},
                    "deletes": {"bucket": 200, "refillPerSecond": 10}}}

``count`` > 1 expands one VM entry into ``name-0001`` ... (benchmarks). ``throttling`` (ARM's
per-subscription token buckets, see throttling.py) is off unless ``enabled``; omitted limits are ARM's.
A vault's ``subscriptionId`` (default: the top-level one) puts it in another subscription.

Policies: ``policyType`` ``V1`` (SimpleSchedulePolicy: Daily or Weekly) or ``V2`` (Enhanced,
SimpleSchedulePolicyV2: Hourly, Daily or Weekly; instant restore 1-30 days). Hourly runs at
``time`` and every ``intervalHours`` (4, 6, 8 or 12) after it while inside ``windowHours`` (up to
24). ``timeZone`` is a Windows zone id (CLDR windowsZones, as Azure policies carry it) or an IANA
name; anything else is refused, unless ``timeZoneIana`` names the zone the service runs it in (a
zone newer than the app's map: how the app meets an unknown zone). Every key is checked
(scenario_schema.py): an unknown one is an error naming its path. ``backupTrigger`` and a vault's
``resourceGuard`` are checked by their own modules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.recoveryservices import authorization, resource_guard, trigger_rules
from emulators.recoveryservices.scenario_schema import problems
from emulators.recoveryservices.throttling import ThrottlingConfig, ThrottlingConfigError, parse_config
from emulators.recoveryservices.timezones import zone

# An Enhanced policy's hourly interval (the portal's choices; "as frequently as every 4 hours") and
# up to 30 days of instant restore: learn.microsoft.com/azure/backup/backup-azure-vms-enhanced-policy
HOURLY_INTERVALS = (4, 6, 8, 12)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScenarioError(ValueError):
    """The scenario file is malformed."""


@dataclass(frozen=True)
class PolicySpec:
    name: str
    frequency: str  # Daily | Weekly
    days: tuple[str, ...]
    time: str  # HH:MM, wall clock in time_zone
    time_zone: str  # Windows time zone name, as Azure policies carry it
    retention_days: int
    retention_weeks: int
    instant_rp_days: int
    policy_type: str = "V1"  # V1 | V2 (Enhanced)
    interval_hours: int = 0  # Hourly (V2): hours between runs from ``time``
    window_hours: int = 0  # Hourly (V2): the window's length from ``time``
    time_zone_iana: str | None = None  # the schedule's zone when time_zone is outside the CLDR map


@dataclass(frozen=True)
class VmFaults:
    snapshot_failure_rate: float = 0.0
    snapshot_error_code: str = "ExtensionFailedVssWriterInBadState"
    transfer_failure_rate: float = 0.0
    vss_writer_failure_rate: float = 0.0  # Windows: some VSS writers fail -> file-system consistent


@dataclass(frozen=True)
class HistoryEntry:
    hours_ago: float
    user_triggered: bool
    status: str
    snapshot_collected: bool


@dataclass(frozen=True)
class PostScript:
    """The snapshot beacon post-script: sends to ``topic`` at the in-guest snapshot moment,
    ``gap_seconds`` before the job shows Take Snapshot Completed."""

    topic: str
    gap_seconds: float


MAX_BEACON_GAP_SECONDS = 600.0


@dataclass(frozen=True)
class VmSpec:
    name: str
    resource_group: str
    os: str
    power_state: str
    policy: str | None
    protected: bool
    pre_scripts: bool
    agent_status: str
    snapshot_minutes: tuple[float, float]
    transfer_minutes: tuple[float, float]
    faults: VmFaults
    running_scheduled_minutes_ago: float | None
    history: tuple[HistoryEntry, ...]
    tags: tuple[tuple[str, str], ...] = ()
    post_script: PostScript | None = None


@dataclass(frozen=True)
class MachineSpec:
    """A VM as Resource Graph lists it (resource_graph.py)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )


@dataclass(frozen=True)
class VaultSpec:
    resource_group: str
    name: str
    location: str
    policies: tuple[PolicySpec, ...]
    vms: tuple[VmSpec, ...]
    subscription_id: str = ""  # the vault's own subscription (parse fills in the scenario's)
    resource_guard: resource_guard.ResourceGuard | None = None


@dataclass
class Scenario:
    subscription_id: str
    seed: int
    vaults: tuple[VaultSpec, ...]
    faults: dict[str, Any] = field(default_factory=dict)
    bearer_token: str | None = None
    schedule_delay_minutes: tuple[float, float] = (5.0, 20.0)
    late_schedule_rate: float = 0.02
    job_retention_days: float = 14.0
    throttling: ThrottlingConfig = field(default_factory=ThrottlingConfig)
    trigger_rules: trigger_rules.TriggerRules = field(default_factory=lambda: trigger_rules.TriggerRules())
    authorization: authorization.Authorization = field(default_factory=lambda: authorization.parse(None))
    unprotected_vms: tuple[MachineSpec, ...] = ()
    graph_page_size: int | None = None  # resourceGraph.maxPageSize


def _pair(raw: Any, default: tuple[float, float], what: str) -> tuple[float, float]:
    if raw is None:
        return default
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, int | float) for x in raw)):
        raise ScenarioError(f"{what} must be [min, max] minutes, got {raw!r}")
    low, high = float(raw[0]), float(raw[1])
    if not 0 < low <= high:
        raise ScenarioError(f"{what} must satisfy 0 < min <= max, got {raw!r}")
    return low, high


def _policy(raw: dict[str, Any], where: str) -> PolicySpec:
    name = str(raw["name"])
    policy_type = str(raw.get("policyType", "V1"))
    frequency = str(raw.get("frequency", "Daily")).capitalize()
    allowed = ("Hourly", "Daily", "Weekly") if policy_type == "V2" else ("Daily", "Weekly")
    if frequency not in allowed:
        raise ScenarioError(f"{where}.frequency: a {policy_type} policy runs {' or '.join(allowed)}, got {frequency!r}")
    days = tuple(str(d).capitalize() for d in raw.get("days", []))
    if frequency == "Weekly" and not days:
        raise ScenarioError(f"{where}.days: a Weekly policy needs days")
    if any(d not in DAYS for d in days):
        raise ScenarioError(f"{where}.days: must be English weekday names, got {list(days)}")
    time = str(raw.get("time", "02:00"))
    hh, _, mm = time.partition(":")
    if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ScenarioError(f"{where}.time: must be HH:MM, got {time!r}")
    interval, window = raw.get("intervalHours"), raw.get("windowHours")
    if frequency == "Hourly":
        if interval not in HOURLY_INTERVALS:
            raise ScenarioError(f"{where}.intervalHours: must be one of {HOURLY_INTERVALS}, got {interval!r}")
        if not (isinstance(window, int) and interval <= window <= 24):
            raise ScenarioError(f"{where}.windowHours: must be intervalHours..24, got {window!r}")
    elif interval is not None or window is not None:
        raise ScenarioError(f"{where}: intervalHours and windowHours belong to an Hourly policy")
    time_zone = str(raw.get("timeZone", "UTC"))
    iana = raw.get("timeZoneIana")
    try:
        zone(iana if iana is not None else time_zone)
    except KeyError:
        key, name = ("timeZoneIana", iana) if iana is not None else ("timeZone", time_zone)
        raise ScenarioError(
            f"{where}.{key}: unknown time zone {name!r} (neither a Windows zone id nor an IANA name)"
        ) from None
    retention_days = int(raw.get("retentionDays", 30))
    retention_weeks = int(raw.get("retentionWeeks") or max(1, -(-retention_days // 7)))
    instant = int(raw.get("instantRpRetentionDays", 2))
    most = 30 if policy_type == "V2" else 5
    if not 1 <= instant <= most:
        raise ScenarioError(f"{where}.instantRpRetentionDays: must be 1..{most} on a {policy_type} policy")
    return PolicySpec(
        name,
        frequency,
        days,
        f"{int(hh):02d}:{int(mm):02d}",
        time_zone,
        retention_days,
        retention_weeks,
        instant,
        policy_type,
        int(interval or 0),
        int(window or 0),
        str(iana) if iana is not None else None,
    )


def vm_spec(raw: dict[str, Any], vault_rg: str) -> VmSpec:
    """One VM entry (no ``count``) as the scenario's parser reads it."""
    return _vm({**raw, "count": 1}, vault_rg)[0]


def _post_script(raw: Any, name: str, os_name: str) -> PostScript | None:
    if raw is None:
        return None
    if os_name != "Linux":
        # learn.microsoft.com/azure/backup/backup-azure-linux-app-consistent: Linux VMs only.
        raise ScenarioError(f"vm {name}: postScript needs os Linux (the pre/post-script framework is Linux-only)")
    topic, gap = str(raw.get("topic") or ""), float(raw.get("gapSeconds", 5.0))
    if not topic.strip():
        raise ScenarioError(f"vm {name}: postScript.topic must name an Event Grid topic")
    if not 0.0 <= gap <= MAX_BEACON_GAP_SECONDS:
        raise ScenarioError(f"vm {name}: postScript.gapSeconds must be within 0-{MAX_BEACON_GAP_SECONDS:g}")
    return PostScript(topic.strip(), gap)


def _vm(raw: dict[str, Any], vault_rg: str) -> list[VmSpec]:
    name = str(raw["name"])
    faults_raw = raw.get("faults") or {}
    faults = VmFaults(
        float(faults_raw.get("snapshotFailureRate", 0.0)),
        str(faults_raw.get("snapshotErrorCode") or "ExtensionFailedVssWriterInBadState"),
        float(faults_raw.get("transferFailureRate", 0.0)),
        float(faults_raw.get("vssWriterFailureRate", 0.0)),
    )
    running = raw.get("runningScheduledJob")
    history = tuple(
        HistoryEntry(
            float(h["hoursAgo"] if h.get("hoursAgo") is not None else 24.0 * float(h.get("daysAgo") or 1)),
            bool(h.get("userTriggered", True)),
            str(h.get("status", "Completed")),
            bool(h.get("snapshotCollected", False)),
        )
        for h in raw.get("history") or raw.get("jobs") or []
    )
    os_name = str(raw.get("os", "Linux")).capitalize()
    if os_name not in ("Linux", "Windows"):
        raise ScenarioError(f"vm {name}: os must be Linux or Windows")
    post_script = _post_script(raw.get("postScript"), name, os_name)
    base = dict(
        post_script=post_script,
        resource_group=str(raw.get("resourceGroup") or vault_rg),
        os=os_name,
        power_state=str(raw.get("powerState", "running")).lower(),
        policy=raw.get("policy"),
        protected=bool(raw.get("protected", True)),
        pre_scripts=bool(raw.get("preScripts", False)),
        agent_status=str(raw.get("agentStatus", "Ready")),
        snapshot_minutes=_pair(raw.get("snapshotMinutes"), (5.0, 15.0), f"vm {name} snapshotMinutes"),
        transfer_minutes=_pair(raw.get("transferMinutes"), (60.0, 180.0), f"vm {name} transferMinutes"),
        faults=faults,
        running_scheduled_minutes_ago=(
            float(running.get("startedMinutesAgo", 0)) if isinstance(running, dict) else None
        ),
        history=history,
        tags=tuple(sorted((str(k), str(v)) for k, v in (raw.get("tags") or {}).items())),
    )
    count = int(raw.get("count", 1))
    if count <= 1:
        return [VmSpec(name=name, **base)]  # type: ignore[arg-type]
    return [VmSpec(name=f"{name}-{i:04d}", **base) for i in range(1, count + 1)]  # type: ignore[arg-type]


def parse(raw: dict[str, Any]) -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError("the scenario must be a JSON object")
    found = problems(raw)
    if found:
        raise ScenarioError("; ".join(found))
    try:
        throttling = parse_config(raw.get("throttling"))
    except ThrottlingConfigError as err:
        raise ScenarioError(str(err)) from None
    subscription = str(raw.get("subscriptionId", "00000000-0000-0000-0000-000000000000"))
    vaults = []
    for index, v in enumerate(raw.get("vaults", [])):
        rg = str(v.get("resourceGroup", "rg"))
        policies = tuple(_policy(p, f"vaults[{index}].policies[{i}]") for i, p in enumerate(v.get("policies", [])))
        names = {p.name for p in policies}
        vms: list[VmSpec] = []
        for vm_raw in v.get("vms", []):
            vms.extend(_vm(vm_raw, rg))
        for vm in vms:
            if vm.policy is not None and vm.policy not in names:
                raise ScenarioError(f"vm {vm.name}: unknown policy {vm.policy!r}")
        seen = {(vm.resource_group.lower(), vm.name.lower()) for vm in vms}
        if len(seen) != len(vms):
            raise ScenarioError(f"vault {v.get('name')}: duplicate VM (resourceGroup, name)")
        vaults.append(
            VaultSpec(
                rg,
                str(v.get("name", "vault")),
                str(v.get("location", "japaneast")),
                policies,
                tuple(vms),
                str(v.get("subscriptionId") or subscription),
                resource_guard.parse(v.get(resource_guard.KEY)),
            )
        )
    return Scenario(
        subscription_id=subscription,
        seed=int(raw.get("seed", 0)),
        vaults=tuple(vaults),
        faults=dict(raw.get("faults") or {}),
        bearer_token=raw.get("bearerToken"),
        schedule_delay_minutes=_pair(raw.get("scheduleDelayMinutes"), (5.0, 20.0), "scheduleDelayMinutes"),
        late_schedule_rate=float(raw.get("lateScheduleRate", 0.02)),
        job_retention_days=float(raw.get("jobRetentionDays", 14)),
        throttling=throttling,
        trigger_rules=trigger_rules.parse(raw.get("backupTrigger")),
        authorization=_authorization(raw.get(authorization.KEY)),
        unprotected_vms=tuple(
            MachineSpec(
                str(m.get("subscriptionId") or subscription),
                str(m.get("resourceGroup", "rg")),
                str(m["name"]),
                str(m.get("location", "japaneast")),
                tuple(sorted((str(k), str(v)) for k, v in (m.get("tags") or {}).items())),
            )
            for m in raw.get("unprotectedVms") or []
        ),
        graph_page_size=_page_size((raw.get("resourceGraph") or {}).get("maxPageSize")),
    )


def _page_size(value: Any) -> int | None:
    if value is not None and not 1 <= int(value) <= 1000:
        raise ScenarioError(f"resourceGraph.maxPageSize: must be 1..1000 (Resource Graph's largest $top), got {value}")
    return None if value is None else int(value)


def _authorization(raw: dict[str, Any] | None) -> authorization.Authorization:
    try:
        return authorization.parse(raw)
    except ValueError as err:
        raise ScenarioError(str(err)) from None


def load(path: Path) -> Scenario:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None
    return parse(raw)
