"""Job polling on devhost + emulators (manual clock): the shared, budgeted vault poller keeps job
reads within the configured budget without losing a snapshot; per-job polling (polling.shared off)
still runs the same chain; a backup whose poller is gone reads its job itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backup_chain.ids import poller_instance_id
from demo.stack import Stack, vault_id
from harness.chain_stack import (
    chain,
    jobs,
    next_weekday_at,
    one,
    parse_time,
    run_to_end,
    scenario,
    start_stack,
)
from localclock.clock import Clock

THURSDAY = 3
NAMES = [f"p{i:02d}" for i in range(1, 7)]


def _vms(snapshot: tuple[float, float] = (6, 6.5)) -> list[dict[str, Any]]:
    from harness.chain_stack import vm

    return [vm(n, snapshot=snapshot, transfer=(10, 12)) for n in NAMES]


def _job_reads(stack: Stack) -> int:
    return int(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"].get("JobDetails_Get", 0))


def _lags(stack: Stack, events: list[dict[str, Any]], names: list[str] = NAMES) -> list[float]:
    out = []
    for name in names:
        told = parse_time(one(events, "SnapshotCompleted", name)["time"])
        truth = parse_time(jobs(stack, name)[-1]["snapshotCompletedAt"])
        assert told >= truth, f"{name}: SnapshotCompleted before the snapshot completed"
        out.append((told - truth).total_seconds())
    return out


def _run(tmp_path: Path, polling: dict[str, Any]) -> tuple[Stack, list[dict[str, Any]], float]:
    start = next_weekday_at(THURSDAY, 10)
    chains = [chain("poll", NAMES, snapshotMinutes=[6, 6.5])]
    stack = start_stack(tmp_path, scenario(_vms()), chains, start=start, polling=polling)
    assert stack.api("POST", "chains/poll/runs", {"runId": "r1"}).status_code == 202
    events = run_to_end(stack, "r1", step=5)
    minutes = (stack.clock.now() - start).total_seconds() / 60
    return stack, events, minutes


def test_a_small_read_budget_slows_polling_but_loses_nothing(tmp_path: Path) -> None:
    stack, events, minutes = _run(tmp_path / "tight", {"readsPerMinute": 12, "tickSeconds": 5})
    try:
        reads = _job_reads(stack)
        lags = _lags(stack, events)
        # Within budget: 12 reads/min refilled, plus a 2-read burst, plus any fallback reads (the
        # transfer phase's first reads come 10 min in, so few are needed at all).
        assert reads <= 12 * minutes + 2 + len(NAMES), (reads, minutes)
        assert sorted(e["data"]["vmId"] for e in events if e["type"].endswith("SnapshotCompleted")) == sorted(
            {e["data"]["vmId"] for e in events if e["type"].endswith("SnapshotCompleted")}
        )
        poller = stack.admin(
            "devhost", "GET", f"/runtime/webhooks/durabletask/instances/{poller_instance_id(vault_id('v1'))}"
        )
        assert poller["runtimeStatus"] == "Running" and poller["customStatus"]["reads"] <= reads
    finally:
        stack.stop()
    roomy, roomy_events, _ = _run(tmp_path / "roomy", {"readsPerMinute": 900, "tickSeconds": 5})
    try:
        # Six dense snapshot watches need ~72 reads/min; at 12 each waits its turn: later news.
        assert max(lags) > max(_lags(roomy, roomy_events))
    finally:
        roomy.stop()


def test_per_job_polling_runs_the_same_chain(tmp_path: Path) -> None:
    stack, events, _ = _run(tmp_path, {"shared": False})
    try:
        assert all(lag <= 10 for lag in _lags(stack, events))  # dense 5 s polls, each VM on its own
        rows = stack.admin(
            "devhost", "GET", "/runtime/webhooks/durabletask/instances", params={"instanceIdPrefix": "vm:"}
        )
        assert {r["name"] for r in rows} >= {"vm_backup", "watch_job"}
        assert not stack.admin(
            "devhost", "GET", "/runtime/webhooks/durabletask/instances", params={"instanceIdPrefix": "poller:"}
        )
    finally:
        stack.stop()


def test_a_backup_reads_its_job_itself_when_its_poller_is_gone(tmp_path: Path) -> None:
    start = next_weekday_at(THURSDAY, 10)
    tmp_path.mkdir(parents=True, exist_ok=True)
    Clock.manual(tmp_path / "clock", start=start)
    stack = Stack.start(
        tmp_path,
        scenario(_vms()[:1]),
        {"chains": [chain("poll", NAMES[:1], snapshotMinutes=[6, 6.5])]},
        # The keep-alive timer off (Azure's app setting): no poller ever runs for the vault.
        extra_env={"AzureWebJobs.job_pollers.Disabled": "true"},
    )
    try:
        assert stack.api("POST", "chains/poll/runs", {"runId": "r1"}).status_code == 202
        events = run_to_end(stack, "r1", step=30)
        assert not stack.admin(
            "devhost", "GET", "/runtime/webhooks/durabletask/instances", params={"instanceIdPrefix": "poller:"}
        )
        # Nobody polled for it: at its first fallback (15 min of silence) the backup found its
        # poller silent too, withdrew the watch and read the job itself: the snapshot was done
        # (downstream heard late, but heard), and the transfer likewise.
        lag = _lags(stack, events, NAMES[:1])[0]
        assert 60 < lag <= 15 * 60
        assert one(events, "BackupCompleted", NAMES[0])
        assert _job_reads(stack) <= 3
    finally:
        stack.stop()
