"""Chain runs under trouble: a 429 storm on the vault API, and devhost killed (SIGKILL) and
restarted mid-chain. Either way the run completes, every VM gets exactly one backup job, and
downstream gets every event exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.stack import Stack
from harness.chain_stack import (
    chain,
    jobs,
    kinds,
    next_weekday_at,
    of_type,
    one,
    run_events,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

THURSDAY = 3
PER_VM = ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
STORM = [f"storm{i}" for i in range(1, 4)]
KILL = [f"kill{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm(name, snapshot=(5, 9), transfer=(10, 20)) for name in STORM + KILL]
    chains = [chain("storm", STORM), chain("kill", KILL, staggerSeconds=20)]
    base: Path = tmp_path_factory.mktemp("chain-resilience")
    running = start_stack(base, scenario(vms), chains, start=next_weekday_at(THURSDAY))
    try:
        yield running
    finally:
        running.stop()


def _faults(stack: Stack, body: dict[str, Any]) -> None:
    stack.admin("recoveryservices", "POST", "/admin/faults", json=body)


def _assert_complete_once(events: list[dict[str, Any]], names: list[str]) -> None:
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "an event was published twice"
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    for name in names:
        assert kinds(events, name) == PER_VM, name
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"


@pytest.mark.slow
def test_429_storm_still_completes_with_one_job_per_vm(stack: Stack) -> None:
    before = stack.admin("recoveryservices", "GET", "/admin/state")["faultsInjected"].get("429", 0)
    # Throttle 40% of every call (Retry-After 1 s); the trigger POST, which the SDK does not
    # retry, also fails its next 3 calls outright, so the orchestrators' durable retries kick in.
    _faults(
        stack,
        {
            "rate429": 0.4,
            "retryAfterSeconds": 1,
            "operations": {"Backups_Trigger": {"rate429": 0.3, "fail429Next": 3}},
        },
    )
    try:
        assert stack.api("POST", "chains/storm/runs", {"runId": "r-storm"}).status_code == 202
        events = run_to_end(stack, "r-storm", step=30)
    finally:
        _faults(stack, {"rate429": 0, "operations": {"Backups_Trigger": {"rate429": 0, "fail429Next": 0}}})
    injected = stack.admin("recoveryservices", "GET", "/admin/state")["faultsInjected"].get("429", 0) - before
    assert injected >= 10, f"the storm injected only {injected} throttled responses"
    _assert_complete_once(events, STORM)
    for name in STORM:
        truth = jobs(stack, name)
        assert len(truth) == 1 and truth[0]["userTriggered"] is True, (name, truth)
        assert one(events, "BackupTriggered", name)["data"]["jobId"].lower() == truth[0]["id"].lower()


def _advance_without_devhost(stack: Stack, seconds: float) -> None:
    """Move the shared clock while devhost is down (through the emulators' clock routes)."""
    stack.admin("recoveryservices", "POST", "/admin/clock/advance", params={"seconds": str(seconds)})
    stack.admin("eventgrid", "POST", "/admin/clock/advance", params={"seconds": "0"})


@pytest.mark.slow
def test_devhost_killed_mid_chain_loses_and_duplicates_nothing(stack: Stack) -> None:
    assert stack.api("POST", "chains/kill/runs", {"runId": "r-kill"}).status_code == 202

    def snapshots() -> int:
        return len(of_type(run_events(stack, "r-kill"), "SnapshotCompleted"))

    stack.run_until(lambda: snapshots() >= 1, step=15, what="a first SnapshotCompleted")
    assert snapshots() < len(KILL), "every snapshot finished at once: the kill would not be mid-chain"

    # 1. Killed right after a clock move, while timers fire and activities run.
    stack.advance(45)
    stack.kill_devhost()
    _advance_without_devhost(stack, 240)  # snapshots complete while the host is down
    stack.start_devhost()
    stack.run_until(
        lambda: of_type(run_events(stack, "r-kill"), "BackupCompleted"), step=30, what="a first BackupCompleted"
    )

    # 2. Killed at rest in the transfer phase, restarted after some jobs ended.
    stack.kill_devhost()
    _advance_without_devhost(stack, 600)
    stack.start_devhost()
    events = run_to_end(stack, "r-kill")

    _assert_complete_once(events, KILL)
    for name in KILL:
        truth = jobs(stack, name)
        assert len(truth) == 1 and truth[0]["status"] == "Completed", (name, truth)
        assert one(events, "SnapshotCompleted", name)["data"]["jobId"].lower() == truth[0]["id"].lower()
    run = stack.api("GET", "chains/kill/runs/r-kill").json()
    assert run["outcome"] == "completed" and {v["phase"] for v in run["vms"]} == {"completed"}
