"""What the main job shows: a live rich table of each VM's phase while the run goes (on a
terminal), one plain line per change otherwise (CI has no TTY), then the downstream events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dateutil.parser import isoparse
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from demo.scenario import vm_by_id

PHASE_STYLE = {
    "completed": "green",
    "transfer": "cyan",
    "snapshotCompleted": "green",
    "snapshot": "yellow",
    "failed": "bold red",
    "waitingForRunningJob": "magenta",
}


def hms(text: str | None) -> str:
    """``HH:MM:SS`` (UTC) of an ISO time, or an empty string."""
    if not text:
        return ""
    return isoparse(text).strftime("%H:%M:%S")


def short_job(job_id: str | None) -> str:
    return job_id[:8] if job_id else ""


def vm_name(resource_id: str | None) -> str:
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1]


def vault_name(resource_id: str | None) -> str:
    return vm_name(resource_id)


def vm_outcome(vm: dict[str, Any]) -> str:
    phase = vm.get("phase")
    if phase == "completed":
        return f"backed up, waited out job {short_job(vm['runningJobId'])}" if vm.get("runningJobId") else "backed up"
    if phase == "failed":
        return f"failed in {vm.get('failedPhase')}: {vm.get('errorCode')}"
    if phase == "waitingForRunningJob" and not vm.get("runningJobId") and vm.get("conflict"):
        return f"trigger met {vm['conflict']}: looking again shortly"
    if phase == "waitingForRunningJob":
        return f"waiting out job {short_job(vm.get('runningJobId'))}"
    if vm.get("runningJobId"):
        return f"waited out job {short_job(vm.get('runningJobId'))}"
    return ""


def vm_rows(run: dict[str, Any]) -> list[tuple[str, str, str, str, str, str, str]]:
    rows = []
    for vm in run.get("vms") or []:
        spec = vm_by_id(str(vm.get("vmId")))
        rows.append(
            (
                vm_name(vm.get("vmId")),
                spec.os if spec else "",
                vault_name(vm.get("vaultId")),
                str(vm.get("phase") or "pending"),
                short_job(vm.get("jobId")),
                hms(vm.get("snapshotCompletedAt")),
                vm_outcome(vm),
            )
        )
    return rows


def header(run: dict[str, Any] | None, now: datetime, scale: float, note: str = "") -> str:
    phase = (run or {}).get("phase") or "starting"
    outcome = (run or {}).get("outcome")
    run_id = (run or {}).get("runId", "")
    text = f"virtual time {now:%Y-%m-%d %H:%M:%S} UTC (x{scale:g})  chain nightly-etl run {run_id}  phase {phase}"
    if outcome:
        text += f"  outcome {outcome}"
    return text + (f"  {note}" if note else "")


def run_table(run: dict[str, Any] | None, now: datetime, scale: float, note: str = "") -> Group:
    table = Table(expand=False)
    widths = {"VM": 6, "OS": 7, "vault": 13, "phase": 20, "job id": 8, "snapshot completed": 18, "outcome": 30}
    for column, width in widths.items():
        table.add_column(column, no_wrap=True, min_width=width)
    for row in vm_rows(run or {}):
        style = PHASE_STYLE.get(row[3], "")
        table.add_row(*row[:3], Text(row[3], style=style), *row[4:])
    return Group(Text(header(run, now, scale, note), style="bold"), table)


class PlainLog:
    """Non-terminal output: one line when the chain's or a VM's phase changes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seen: dict[str, str] = {}

    def update(self, run: dict[str, Any], now: datetime) -> None:
        stamp = f"[{now:%H:%M:%S}]"
        for name, _os, _vault, phase, job, snap, outcome in vm_rows(run):
            if phase in ("pending", "starting", "checkingRunningJobs", "triggering", "waitingForBackupOperation"):
                continue  # transient; keeps the log short
            if self.seen.get(name) != phase:
                self.seen[name] = phase
                parts = (f"job {job}" if job else "", f"snapshot {snap}" if snap else "", outcome)
                detail = "  ".join(x for x in parts if x)
                self.console.print(f"{stamp} {name:<8} {phase:<21} {detail}".rstrip(), highlight=False)
        chain_phase = str(run.get("phase"))
        if self.seen.get("chain") != chain_phase:
            self.seen["chain"] = chain_phase
            self.console.print(f"{stamp} chain    {chain_phase}", highlight=False)


def event_detail(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    kind = str(event.get("type", "")).rsplit(".", 1)[-1]
    if kind == "ChainStarted":
        return f"startedBy={data.get('startedBy')} vms={data.get('vmCount')}"
    if kind == "UpstreamReceived":
        return f"upstream {data.get('upstreamStatus')}"
    if kind == "BackupTriggered":
        return f"job {short_job(data.get('jobId'))} adopted={'yes' if data.get('adopted') else 'no'}"
    if kind == "SnapshotCompleted":
        seconds = data.get("snapshotSeconds")
        took = f" (took {seconds / 60:.1f} min)" if isinstance(seconds, int | float) else ""
        return f"job {short_job(data.get('jobId'))} snapshot completed at {hms(data.get('snapshotCompletedAt'))}{took}"
    if kind == "BackupCompleted":
        seconds = data.get("durationSeconds")
        took = f" in {seconds / 60:.1f} min" if isinstance(seconds, int | float) else ""
        return f"job {short_job(data.get('jobId'))} {data.get('jobStatus')}{took}"
    if kind == "BackupFailed":
        return f"job {short_job(data.get('jobId'))} phase={data.get('phase')} errorCode={data.get('errorCode')}"
    if kind == "ChainCompleted":
        counts = " ".join(f"{k}={v}" for k, v in sorted((data.get("counts") or {}).items()))
        return f"outcome={data.get('outcome')} {counts}"
    return ""


def events_table(events: list[dict[str, Any]], prefix: str) -> Table:
    table = Table(title=f"downstream events received ({len(events)}, type prefix {prefix})", title_justify="left")
    table.add_column("time", no_wrap=True, min_width=8)
    table.add_column("type", no_wrap=True, min_width=17)
    table.add_column("subject", no_wrap=True, min_width=6)
    table.add_column("details", overflow="fold")
    for event in events:
        subject = str(event.get("subject", ""))
        who = "chain run" if subject.startswith("/chains/") else vm_name(subject)
        table.add_row(hms(event.get("time")), str(event.get("type")).removeprefix(prefix), who, event_detail(event))
    return table
