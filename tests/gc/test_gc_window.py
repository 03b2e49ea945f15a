"""weekend-window mode on devhost + emulators: windows, leases and chain backups together."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup_chain.gc import protection_on
from demo.stack import Stack, vm_id
from tests.support.chain_stack import chain, running_stack, scenario, types_for, vm

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
    # the backups released their leases but the window still holds protection on
    assert protection(stack, "gc01") == "Protected"
    assert list(lease(stack, "gc01")["holders"]) == [started.json()["instanceId"]]
    stack.run_until(lambda: "GcWindowClosed" in gc_events(stack), step=3600, limit=49 * 3600, what="window close")
    assert protection(stack, "gc01") == "ProtectionStopped"
    assert lease(stack, "gc01") == {"phase": "off", "holders": {}}
