"""Helpers for the Recovery Services emulator tests: a scenario writer, the emulator as a real
subprocess on a manual clock, an SDK client, and the admin calls (clock, faults) the tests need."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from azure.core.rest import HttpRequest
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

from devhost.procs import Service, start_service
from emulators.credential import StaticTokenCredential

SUB = "11111111-2222-3333-4444-555555555555"
RG = "rg-backup"
VAULT = "vault1"
TOKEN = "test-token"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def container(vm: str, rg: str = "rg-app") -> str:
    return f"iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}"


def item(vm: str, rg: str = "rg-app") -> str:
    return f"vm;iaasvmcontainerv2;{rg};{vm}"


def vm_entry(name: str, policy: str | None, **extra: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "resourceGroup": "rg-app",
        "os": "Linux",
        "powerState": "running",
        "policy": policy,
        "protected": True,
        "snapshotMinutes": [5, 15],
        "transferMinutes": [60, 180],
    }
    entry.update(extra)
    return entry


def far_policies(now: datetime) -> list[dict[str, Any]]:
    """A daily policy 12 h from now and a weekly one 5 days away: tests that advance the clock by less
    than that see no scheduled backup unless they want one."""
    daily_at = now + timedelta(hours=12)
    weekly_day = DAYS[(now + timedelta(days=5)).weekday()]
    return [
        {
            "name": "daily",
            "frequency": "Daily",
            "time": daily_at.strftime("%H:%M"),
            "timeZone": "UTC",
            "retentionDays": 7,
        },
        {
            "name": "weekly",
            "frequency": "Weekly",
            "days": [weekly_day],
            "time": "02:00",
            "timeZone": "Tokyo Standard Time",
            "retentionDays": 30,
        },
    ]


def scenario(vms: list[dict[str, Any]], policies: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subscriptionId": SUB,
        "seed": 7,
        "bearerToken": TOKEN,
        "lateScheduleRate": 0.0,
        "vaults": [{"resourceGroup": RG, "name": VAULT, "location": "japaneast", "policies": policies, "vms": vms}],
        "faults": {"rate429": 0.0, "rate5xx": 0.0},
    }
    body.update(extra)
    return body


@dataclass
class Emulator:
    service: Service
    ca: str

    @property
    def url(self) -> str:
        return self.service.url

    def client(self, token: str = TOKEN, **kwargs: Any) -> Any:
        kwargs.setdefault("polling_interval", 0.01)
        return RecoveryServicesBackupClient(
            StaticTokenCredential(token), SUB, base_url=self.url, connection_verify=self.ca, **kwargs
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, self.url + path, verify=self.ca, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> datetime:
        body = self.admin("POST", f"/admin/clock/advance?seconds={seconds}")
        return datetime.fromisoformat(body["now"].replace("Z", "+00:00"))

    def now(self) -> datetime:
        return datetime.fromisoformat(self.admin("GET", "/admin/clock")["now"].replace("Z", "+00:00"))

    def raw(self, client: Any, method: str, path: str) -> Any:
        """A raw ARM call through the SDK's own pipeline (auth, retries), for shape checks."""
        sep = "&" if "?" in path else "?"
        response = client.send_request(HttpRequest(method, f"{self.url}{path}{sep}api-version=2026-10-01"))
        response.raise_for_status()
        return response


# Where the emulator's manual clock starts: a fixed instant (a Monday), so its schedules and
# "N hours ago" histories are the same whatever day the tests run on.
CLOCK_START = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)


def start_emulator(tmp: Path, body: dict[str, Any], *, start: datetime = CLOCK_START) -> Iterator[Emulator]:
    path = tmp / "scenario.json"
    path.write_text(json.dumps(body))
    service = start_service(
        "recoveryservices",
        [
            "emulators.recoveryservices",
            "--port",
            "0",
            "--scenario",
            str(path),
            "--manual-clock",
            "--clock-start",
            start.isoformat(),
            "--state-dir",
            str(tmp / "state"),
        ],
        log_dir=tmp / "logs",
        env={"DEVHOST_CLOCK_MODE": "real"},  # a fresh manual clock of its own
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        yield Emulator(service, str(service.info["ca"]))
    finally:
        service.stop()


def utcnow() -> datetime:
    """The emulator's time before any advance (its pinned clock start), not the wall clock."""
    return CLOCK_START


def vault_path() -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"


def vm_resource_id(vm: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{vm}"


def trigger(client: Any, vm: str, **props: Any) -> dict[str, str]:
    headers = client.backups.trigger(
        VAULT,
        RG,
        "Azure",
        container(vm),
        item(vm),
        {"properties": {"objectType": "IaasVMBackupRequest", **props}},
        cls=lambda pipeline_response, _body, _headers: dict(pipeline_response.http_response.headers),
    )
    return headers


def operation_id(headers: dict[str, str]) -> str:
    return headers["Azure-AsyncOperation"].split("/operationsStatus/")[1].split("?")[0]


def op_status(client: Any, vm: str, op: str) -> Any:
    return client.protected_item_operation_statuses.get(VAULT, RG, "Azure", container(vm), item(vm), op)


def tasks(job: Any) -> list[tuple[str, str]]:
    return [(t.task_id, t.status) for t in job.properties.extended_info.tasks_list]


def stop_protection(client: Any, vm: str) -> Any:
    body = {
        "properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "protectionState": "ProtectionStopped",
            "sourceResourceId": vm_resource_id(vm),
        }
    }
    return client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container(vm), item(vm), body).result()


def resume_protection(client: Any, vm: str, policy: str) -> Any:
    body = {
        "properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "sourceResourceId": vm_resource_id(vm),
            "policyId": f"{vault_path()}/backupPolicies/{policy}",
        }
    }
    return client.protected_items.begin_create_or_update(VAULT, RG, "Azure", container(vm), item(vm), body).result()
