"""Recovery Services emulator at scale: 5,000 VMs in one scenario. Loads it, triggers a few hundred
on-demand backups through the real SDK, advances the manual clock through days, and prints the
emulator process's RSS and CPU seconds at each stage (figures, not assertions).

    python -m bench.emulator_bench [--vms 5000] [--triggers 300] [--days 7]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

from bench.calendar import CLOCK_START
from devhost.procs import Service, start_service
from emulators.credential import StaticTokenCredential

SUB = "00000000-0000-0000-0000-0000000000be"


def scenario(vms: int) -> dict[str, Any]:
    half = vms // 2
    return {
        "subscriptionId": SUB,
        "seed": 11,
        "vaults": [
            {
                "resourceGroup": "rg",
                "name": "bench",
                "location": "japaneast",
                "policies": [
                    {"name": "daily", "frequency": "Daily", "time": "01:00", "timeZone": "Tokyo Standard Time"},
                    {
                        "name": "weekly",
                        "frequency": "Weekly",
                        "days": ["Wednesday"],
                        "time": "02:00",
                        "timeZone": "Tokyo Standard Time",
                    },
                ],
                "vms": [
                    {"name": "d", "resourceGroup": "rg-app", "policy": "daily", "count": half},
                    {"name": "w", "resourceGroup": "rg-app", "os": "Windows", "policy": "weekly", "count": vms - half},
                ],
            }
        ],
    }


def usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds user+system) of a live process, from /proc."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss_kib / 1024, (int(fields[11]) + int(fields[12])) / ticks


def report(label: str, svc: Service, extra: str = "") -> None:
    rss, cpu = usage(svc.process.pid)
    print(f"{label:<34} RSS {rss:7.1f} MiB   CPU {cpu:7.2f} s   {extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--triggers", type=int, default=300)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "scenario.json").write_text(json.dumps(scenario(args.vms)))
        started = time.monotonic()
        svc = start_service(
            "recoveryservices",
            [
                "emulators.recoveryservices",
                "--port",
                "0",
                "--scenario",
                str(tmp / "scenario.json"),
                "--manual-clock",
                "--clock-start",
                CLOCK_START.isoformat(),
                "--state-dir",
                str(tmp / "state"),
            ],
            log_dir=tmp / "logs",
            env={"DEVHOST_CLOCK_MODE": "real"},
        )
        try:
            ca = str(svc.info["ca"])

            def admin(method: str, path: str) -> Any:
                response = requests.request(method, svc.url + path, verify=ca, timeout=120)
                response.raise_for_status()
                return response.json()

            report(f"loaded {args.vms} VMs ({time.monotonic() - started:.1f} s)", svc)
            client = RecoveryServicesBackupClient(StaticTokenCredential(), SUB, base_url=svc.url, connection_verify=ca)
            t0 = time.monotonic()
            for i in range(1, args.triggers + 1):
                name = f"d-{i:04d}"
                client.backups.trigger(
                    "bench",
                    "rg",
                    "Azure",
                    f"iaasvmcontainer;iaasvmcontainerv2;rg-app;{name}",
                    f"vm;iaasvmcontainerv2;rg-app;{name}",
                    BackupRequestResource(properties=IaasVMBackupRequest()),
                )
            report(f"{args.triggers} triggers ({time.monotonic() - t0:.1f} s wall)", svc)
            for day in range(1, args.days + 1):
                t0 = time.monotonic()
                for _ in range(4):
                    admin("POST", "/admin/clock/advance?seconds=21600")
                state = admin("GET", "/admin/state")
                report(
                    f"day {day} ({time.monotonic() - t0:.2f} s wall)",
                    svc,
                    f"jobs {state['jobs']} inProgress {state['jobsInProgress']} events {state['stats']['events']} "
                    f"gc {state['stats']['gcRuns']}",
                )
            t0 = time.monotonic()
            jobs = sum(1 for _ in client.backup_jobs.list("bench", "rg", filter="status eq 'Completed'"))
            report(f"list {jobs} completed jobs ({time.monotonic() - t0:.1f} s)", svc)
            print("ARM requests:", admin("GET", "/admin/requests")["byOperation"])
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
