"""weekend-window mode on devhost + emulators: windows, leases and chain backups together."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backup_chain.gc import protection_on
from demo.stack import Stack, vm_id
from harness.chain_stack import chain, running_stack, scenario, terminate, types_for, vm

GC = {"mode": "weekend-window", "policy": "weekly", "day": "Saturday", "at": "00:00", "windowHours": 48}


def protection(stack: Stack, name: str) -> str:
    items = stack.admin("recoveryservices", "GET", "/admin/items", params={"vm": name})
    entries = items.get("items", items) if isinstance(items, dict) else items
    return str(entries[0]["protectionState"])


def gc_events(stack: Stack) -> list[str]:
    return [str(e["type"]).split(".", 1)[1] for e in stack.downstream() if str(e["subject"]).startswith("/gc/")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm("gc01", protected=False), vm("gc02", protected=False)]
    with running_stack(
        tmp_path_factory.mktemp("gcwin"), scenario(vms), [chain("adhoc", ["gc01", "gc02"])], gc=GC
    ) as running:
        yield running


def lease(stack: Stack, name: str) -> dict[str, Any]:
    status = stack.api("GET", "gc").json()
    return next(v["lease"] for v in status["vms"] if v["vmId"] == vm_id(name))


def test_window_resumes_protection_and_a_chain_inside_it_leaves_it_on(stack: Stack) -> None:
    assert protection(stack, "gc01") == "ProtectionStopped"
    started = stack.api("POST", "gc/run", {"kind": "window"})
    assert started.status_code == 202, started.text
    stack.run_until(lambda: "GcWindowOpened" in gc_events(stack), step=5, limit=600, what="window to open")
    assert protection_on(protection(stack, "gc01")) and protection_on(protection(stack, "gc02"))
    assert lease(stack, "gc01")["phase"] == "on"
    assert stack.api("POST", "gc/run", {"kind": "window"}).status_code == 409  # singleton
    assert stack.api("POST", "chains/adhoc/runs", {"runId": "in-window"}).status_code == 202
    stack.run_until(
        lambda: "ChainCompleted" in types_for(stack.downstream()),
        step=60,
        limit=6 * 3600,
        what="chain run in the window",
    )
    # the backups held leases too, released them, and the window still holds protection on
    run = stack.api("GET", "chains/adhoc/runs/in-window").json()
    assert [v["protectionStopped"] for v in run["vms"]] == [False, False]
    assert protection(stack, "gc01") == "Protected"
    assert list(lease(stack, "gc01")["holders"]) == [started.json()["instanceId"]]
    stack.run_until(lambda: "GcWindowClosed" in gc_events(stack), step=3600, limit=49 * 3600, what="window close")
    assert protection(stack, "gc01") == "ProtectionStopped"
    assert lease(stack, "gc01") == {"phase": "off", "holders": {}}


def test_window_closing_during_a_running_backup_waits_for_it(stack: Stack) -> None:
    window = stack.api("POST", "gc/run", {"kind": "window"})
    assert window.status_code == 202, window.text
    stack.run_until(lambda: gc_events(stack).count("GcWindowOpened") == 2, step=5, limit=600, what="second window")
    # start a backup a little before the window closes: its job outlives the window
    stack.advance(48 * 3600 - 20 * 60)
    assert stack.api("POST", "chains/adhoc/runs", {"runId": "late", "vms": [vm_id("gc01")]}).status_code == 202
    stack.run_until(lambda: gc_events(stack).count("GcWindowClosed") == 2, step=60, limit=3600, what="window close")
    closed = [e for e in stack.downstream() if str(e["type"]).endswith("GcWindowClosed")][-1]
    assert closed["data"]["keptOnForRunningBackups"] == [vm_id("gc01")]
    assert protection(stack, "gc01") == "Protected"  # the running backup still holds it
    assert protection(stack, "gc02") == "ProtectionStopped"
    stack.run_until(lambda: lease(stack, "gc01")["phase"] == "off", step=300, limit=6 * 3600, what="backup to end")
    assert protection(stack, "gc01") == "ProtectionStopped"
    assert types_for(stack.downstream(), "gc01")[-1] == "BackupCompleted"


def test_a_crashed_lease_holder_is_reclaimed(stack: Stack) -> None:
    assert stack.api("POST", "chains/adhoc/runs", {"runId": "crash", "vms": [vm_id("gc02")]}).status_code == 202
    stack.run_until(lambda: lease(stack, "gc02")["phase"] == "on", step=5, limit=600, what="backup to hold lease")
    holder = next(iter(lease(stack, "gc02")["holders"]))
    terminate(stack, holder, "simulated crash")
    # the gc_weekly timer sweeps every 5 minutes
    stack.run_until(lambda: lease(stack, "gc02")["phase"] == "off", step=60, limit=1800, what="reclaim")
    assert protection(stack, "gc02") == "ProtectionStopped"
    assert lease(stack, "gc02")["holders"] == {}


def test_ad_hoc_backup_overlapping_the_scheduled_run_is_refused(stack: Stack) -> None:
    from datetime import timedelta

    from backup_chain.gc import next_weekly

    now = stack.clock.now()
    scheduled = next_weekly("Wednesday", "02:00", "UTC", now)  # the scenario's weekly policy
    stack.advance((scheduled - timedelta(minutes=30) - now).total_seconds())
    assert stack.api("POST", "chains/adhoc/runs", {"runId": "overlap", "vms": [vm_id("gc01")]}).status_code == 202
    stack.run_until(
        lambda: "ChainCompleted" in [t for t in types_for(stack.downstream())][-1:], step=5, limit=600, what="refusal"
    )
    failed = [e for e in stack.downstream() if str(e["type"]).endswith("BackupFailed")][-1]
    assert failed["data"]["errorCode"] == "OverlapsScheduledBackup"
    assert failed["data"]["phase"] == "trigger"
    run = stack.api("GET", "chains/adhoc/runs/overlap").json()
    assert run["outcome"] == "completedWithFailures"
