"""The main job's sample world: two vaults of Linux and Windows VMs for the Recovery Services
emulator, the chain configuration the app runs with, and what the run is expected to do.

Minutes are virtual (the stack runs on a scaled clock). Take Snapshot takes 5–9 minutes, in the
5–15 minute range of real backup jobs (docs/domain.md); transfers are kept short
(6–9 minutes instead of the usual 1–3 hours) so the whole run fits in about a minute of wall time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from demo.stack import SUBSCRIPTION, vault_id, vm_id

CHAIN = "nightly-etl"
UPSTREAM_TYPE = "Contoso.Etl.JobFinished"
UPSTREAM_SUBJECT = "/jobs/nightly-etl"
PREFIX = "BackupChain."
SNAPSHOT_MINUTES = (5.0, 9.0)
TRANSFER_MINUTES = (6.0, 9.0)
FAILED_ERROR = "ExtensionFailedVssWriterInBadState"

# Where the main job's clock starts unless told otherwise: a fixed instant, so the run (and its
# self-check) is the same whatever day it runs on. A Monday night, as a nightly ETL would finish.
CLOCK_START = datetime(2027, 1, 4, 2, 40, tzinfo=timezone.utc)
POLICY_NAME = "weekly"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def weekly_policy(start: datetime) -> dict[str, Any]:
    """The VMs' weekly policy, three days after the run starts at 02:00 UTC: two days or more from
    the ~45 virtual minutes of the run, so neither a new scheduled backup nor the app's overlap
    refusal (2 h after a policy time) enters it, at whatever instant the clock starts. sql01's
    running scheduled backup is injected instead (a late one, as the service sometimes starts)."""
    day = DAYS[(start.astimezone(timezone.utc) + timedelta(days=3)).weekday()]
    return {
        "name": POLICY_NAME,
        "frequency": "Weekly",
        "days": [day],
        "time": "02:00",
        "timeZone": "UTC",
        "retentionDays": 30,
    }


@dataclass(frozen=True)
class DemoVm:
    name: str
    vault: str
    os: str
    role: str  # healthy | failsSnapshot | scheduledRunning

    @property
    def id(self) -> str:
        return vm_id(self.name)

    @property
    def vault_id(self) -> str:
        return vault_id(self.vault)


VMS = (
    DemoVm("web01", "rsv-prod-east", "Linux", "healthy"),
    DemoVm("web02", "rsv-prod-east", "Linux", "healthy"),
    DemoVm("app01", "rsv-prod-east", "Windows", "healthy"),
    DemoVm("sql01", "rsv-prod-east", "Windows", "scheduledRunning"),
    DemoVm("etl01", "rsv-prod-west", "Linux", "healthy"),
    DemoVm("file01", "rsv-prod-west", "Windows", "failsSnapshot"),
)


def _scenario_vm(vm: DemoVm) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": vm.name,
        "resourceGroup": "rg-app",
        "os": vm.os,
        "powerState": "running",
        "policy": POLICY_NAME,
        "protected": True,
        "snapshotMinutes": list(SNAPSHOT_MINUTES),
        "transferMinutes": list(TRANSFER_MINUTES),
    }
    if vm.role == "failsSnapshot":
        body["faults"] = {"snapshotFailureRate": 1.0, "snapshotErrorCode": FAILED_ERROR}
    if vm.role == "scheduledRunning":
        # The weekly scheduled backup started 4 minutes before the upstream job finished: the chain
        # must wait it out and then take its own backup (docs/design.md).
        body["runningScheduledJob"] = {"startedMinutesAgo": 4}
    return body


def scenario(start: datetime = CLOCK_START) -> dict[str, Any]:
    """The Recovery Services emulator's scenario (format: ``emulators/recoveryservices/scenario.py``)
    for a run whose clock starts at ``start``."""
    vaults = []
    for name, location in (("rsv-prod-east", "japaneast"), ("rsv-prod-west", "japanwest")):
        vaults.append(
            {
                "resourceGroup": "rg-backup",
                "name": name,
                "location": location,
                "policies": [weekly_policy(start)],
                "vms": [_scenario_vm(vm) for vm in VMS if vm.vault == name],
            }
        )
    return {"subscriptionId": SUBSCRIPTION, "seed": 11, "vaults": vaults}


def chains() -> dict[str, Any]:
    """The app's chain configuration (``BACKUPCHAIN_CONFIG``)."""
    targets = []
    for vault in dict.fromkeys(vm.vault for vm in VMS):
        targets.append({"vaultId": vault_id(vault), "vms": [vm.id for vm in VMS if vm.vault == vault]})
    return {
        "eventTypePrefix": PREFIX,
        "chains": [
            {
                "name": CHAIN,
                "upstream": {
                    "eventType": UPSTREAM_TYPE,
                    "subject": UPSTREAM_SUBJECT,
                    "timeout": "PT2H",
                    "onFailure": "skip",
                },
                "targets": targets,
                "retainDays": 30,
                "maxParallel": 10,
                "staggerSeconds": 20,
                "monitorTransfer": True,
                "snapshotMinutes": list(SNAPSHOT_MINUTES),
            }
        ],
    }


def vm_by_id(vm_id_: str) -> DemoVm | None:
    return next((vm for vm in VMS if vm.id.lower() == vm_id_.lower()), None)
