"""Building scenarios and chain configurations for tests that run the app on the local stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from demo.stack import SUBSCRIPTION, Stack, vault_id, vm_id

# Where every stack's clock starts when a test does not choose: a fixed Monday morning, so no test
# depends on the day CI runs on. Monday 03:00 UTC is two days from the weekly policy below
# (Wednesday 02:00) and from the weekend GC window (Saturday 00:00).
DEFAULT_START = datetime(2027, 1, 4, 3, 0, tzinfo=timezone.utc)

WEEKLY = {
    "name": "weekly",
    "frequency": "Weekly",
    "days": ["Wednesday"],
    "time": "02:00",
    "timeZone": "UTC",
    "retentionDays": 30,
}


def vm(
    name: str,
    *,
    os: str = "Linux",
    snapshot: tuple[float, float] = (6, 8),
    transfer: tuple[float, float] = (30, 40),
    **extra: Any,
) -> dict[str, Any]:
    """A scenario VM in resource group rg-app, protected by the weekly policy."""
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "os": os,
        "powerState": "running",
        "policy": "weekly",
        "protected": True,
        "snapshotMinutes": list(snapshot),
        "transferMinutes": list(transfer),
        **extra,
    }


def scenario(vms: list[dict[str, Any]], *, vault: str = "v1", seed: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "subscriptionId": SUBSCRIPTION,
        "seed": seed,
        "vaults": [
            {"resourceGroup": "rg-backup", "name": vault, "location": "japaneast", "policies": [WEEKLY], "vms": vms}
        ],
        **extra,
    }


def chain(name: str, vm_names: list[str], *, vault: str = "v1", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "targets": [{"vaultId": vault_id(vault), "vms": [vm_id(n) for n in vm_names]}],
        "snapshotMinutes": [6, 8],
        **extra,
    }


@contextmanager
def running_stack(
    base: Path,
    scenario_body: dict[str, Any],
    chains: list[dict[str, Any]],
    *,
    start: datetime = DEFAULT_START,
    **config: Any,
) -> Iterator[Stack]:
    """The stack on a manual clock starting at ``start`` (default :data:`DEFAULT_START`)."""
    stack = start_stack(base, scenario_body, chains, start=start, **config)
    try:
        yield stack
    finally:
        stack.stop()


def types_for(events: list[dict[str, Any]], vm_name: str | None = None) -> list[str]:
    """Event types (without prefix) for one VM, or chain-level events when ``vm_name`` is None."""
    out = []
    for event in events:
        subject = str(event.get("subject", ""))
        if (vm_name is None and subject.startswith("/chains/")) or (vm_name and subject.endswith("/" + vm_name)):
            out.append(str(event["type"]).split(".", 1)[1])
    return out


# --- helpers for the e2e chain suites ---------------------------------------------------------
PREFIX = "BackupChain."


def next_weekday_at(weekday: int, hour: int = 0, minute: int = 0) -> datetime:
    """A UTC start time for the manual clock: the first ``weekday`` (Monday=0) at least a day after
    :data:`DEFAULT_START`'s date, at ``hour:minute``. Fixed instants, not the wall clock's date, so
    a test runs the same calendar whatever day it runs on; a chosen weekday keeps the emulator's
    weekly (Wednesday) scheduled backups out of the way."""
    today = DEFAULT_START.replace(hour=0, minute=0, second=0, microsecond=0)
    days = (weekday - today.weekday()) % 7 or 7
    return today + timedelta(days=days, hours=hour, minutes=minute)


def start_stack(
    base: Path,
    scenario_body: dict[str, Any],
    chains: list[dict[str, Any]],
    *,
    start: datetime = DEFAULT_START,
    **config: Any,
) -> Stack:
    """Start the stack with its manual clock at ``start`` (a clock file already in ``base`` keeps
    its time)."""
    return Stack.start(base, scenario_body, {"chains": chains, **config}, clock_start=start)


def parse_time(text: str) -> datetime:
    from dateutil.parser import isoparse

    value = isoparse(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def records(stack: Stack) -> list[dict[str, Any]]:
    """Downstream records as the topic accepted them: ``{"receivedAt", "event", ...}``."""
    body = stack.admin("eventgrid", "GET", "/admin/events", params={"topic": "downstream"})
    return list(body["events"])


def run_events(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Downstream events of one run (by ``data.runId``), oldest first."""
    return [e for e in stack.downstream() if (e.get("data") or {}).get("runId") == run_id]


def kinds(events: list[dict[str, Any]], vm_name: str | None = None) -> list[str]:
    """Event types without prefix: per VM (subject is the VM id) or chain-level (vm_name None)."""
    return types_for(events, vm_name)


def of_type(events: list[dict[str, Any]], kind: str, vm_name: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == PREFIX + kind and (vm_name is None or str(e["subject"]).lower() == vm_id(vm_name).lower())
    ]


def one(events: list[dict[str, Any]], kind: str, vm_name: str | None = None) -> dict[str, Any]:
    found = of_type(events, kind, vm_name)
    assert len(found) == 1, f"expected one {kind} for {vm_name or 'the chain'}, got {len(found)}: {found}"
    return found[0]


def chain_completed(stack: Stack, run_id: str) -> bool:
    return any(e["type"] == PREFIX + "ChainCompleted" for e in run_events(stack, run_id))


def run_to_end(stack: Stack, run_id: str, *, step: float = 30.0, limit: float = 6 * 3600.0) -> list[dict[str, Any]]:
    """Advance the clock until run ``run_id`` published ChainCompleted; its events."""
    stack.run_until(lambda: chain_completed(stack, run_id), step=step, limit=limit, what=f"run {run_id} to complete")
    return run_events(stack, run_id)


def jobs(stack: Stack, vm_name: str) -> list[dict[str, Any]]:
    """The Recovery Services emulator's jobs for a VM (its truth), oldest first."""
    return list(reversed(stack.admin("recoveryservices", "GET", "/admin/jobs", params={"vm": vm_name})))


def deliver_upstream(stack: Stack, event_type: str, subject: str, data: Any = None, event_id: str | None = None) -> str:
    """Publish an upstream event (real publisher client → Event Grid emulator → subscription →
    devhost ``upstream_event``) and wait until the emulator delivered it, then let devhost settle."""
    before = _delivered(stack, event_id) if event_id else 0
    sent = stack.publish_upstream(event_type, subject, data if data is not None else {}, event_id)

    def delivered() -> bool:
        return _delivered(stack, sent) > before

    # Publishing queues a delivery at the current (virtual) time; the emulator sends it at once.
    stack.wait(delivered, timeout=30, what=f"delivery of upstream event {sent}")
    stack.settle()
    return sent


def _delivered(stack: Stack, event_id: str) -> int:
    body = stack.admin("eventgrid", "GET", "/admin/deliveries", params={"subscription": "upstream-to-app"})
    return sum(1 for d in body["deliveries"] if event_id in d["eventIds"] and d["state"] == "Delivered")


def durable_status(stack: Stack, instance_id: str) -> dict[str, Any]:
    """An orchestration's status through devhost's Durable management API ({} while it does not exist)."""
    response = stack.session.get(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances/{instance_id}",
        headers={"x-functions-key": stack.keys["masterKey"]},
        timeout=60,
    )
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return dict(response.json())


def terminate(stack: Stack, instance_id: str, reason: str) -> None:
    """Terminate an orchestration through devhost's Durable management API (a simulated crash)."""
    response = stack.session.post(
        f"{stack.devhost.url}/runtime/webhooks/durabletask/instances/{instance_id}/terminate",
        params={"reason": reason, "code": stack.keys["durabletask_extension"]},
        timeout=30,
    )
    assert response.status_code == 202, response.text


def now(stack: Stack) -> datetime:
    return stack.clock.now()
