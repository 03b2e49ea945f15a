"""Snapshot beacons end to end on devhost + emulators (manual clock; docs/beacon.md): Linux VMs whose
post-script sends a beacon at the in-guest snapshot moment (RS emulator → Event Grid emulator →
``beacon_event`` on devhost) get SnapshotCompleted soon after the job shows the snapshot, with far
fewer job reads than dense polling uses; a lost beacon falls back to polling and still completes;
a forged beacon (a VM in no run, a VM whose job has not snapshotted) publishes nothing."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from demo.stack import BEACON_TOPIC, Stack, vm_id
from harness.chain_stack import (
    chain,
    chain_completed,
    jobs,
    next_weekday_at,
    one,
    parse_time,
    run_events,
    scenario,
    start_stack,
    vm,
)

THURSDAY = 3
NAMES = ["lin1", "lin2", "lin3"]
GAP = 5.0  # beacon → Take Snapshot Completed in the job
FALLBACK = 60.0  # backup_chain.polling.BEACON_FALLBACK_SECONDS


def _job_reads(stack: Stack) -> int:
    return int(stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"].get("JobDetails_Get", 0))


def _lag(stack: Stack, events: list[dict[str, Any]], name: str) -> float:
    told = parse_time(one(events, "SnapshotCompleted", name)["time"])
    truth = parse_time(jobs(stack, name)[-1]["snapshotCompletedAt"])
    assert told >= truth, f"{name}: SnapshotCompleted before the snapshot completed"
    return (told - truth).total_seconds()


def _beacon_deliveries(stack: Stack) -> list[dict[str, Any]]:
    body = stack.admin("eventgrid", "GET", "/admin/deliveries", params={"subscription": "beacon-to-app"})
    return [d for d in body["deliveries"] if d["state"] == "Delivered"]


def _forge(stack: Stack, vm_name: str) -> None:
    """A beacon nobody's post-script sent: any identity with Data Sender could publish this."""
    event = {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "type": "BackupChain.Beacon.SnapshotTaken",
        "source": vm_id(vm_name),
        "time": stack.clock.now().isoformat().replace("+00:00", "Z"),
    }
    before = len(_beacon_deliveries(stack))
    response = stack.session.post(
        stack.topic(BEACON_TOPIC)["endpoint"],
        json=event,
        headers={"Content-Type": "application/cloudevents+json", "Authorization": "Bearer forged-but-authorized"},
        verify=str(stack.base / "ca-bundle.pem"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    stack.wait(lambda: len(_beacon_deliveries(stack)) > before, timeout=30, what="the forged beacon's delivery")
    stack.settle()


def _beacons_arrived(stack: Stack, forged: int) -> bool:
    """Every beacon the RS emulator made due is sent or lost, and every one sent (and forged) was
    delivered to the app: the beacon path runs in real time, the test's clock steps must wait."""
    stats = stack.admin("recoveryservices", "GET", "/admin/state")["stats"]
    if stats["beaconsSent"] + stats["beaconsLost"] < stats["beaconsDue"]:
        return False
    return len(_beacon_deliveries(stack)) >= stats["beaconsSent"] + forged


def _run_to_end(stack: Stack, forged: int, step: float = 5.0, limit: float = 3600.0) -> list[dict[str, Any]]:
    elapsed = 0.0
    stack.settle()
    while not chain_completed(stack, "r1"):
        assert elapsed < limit, "run r1 did not complete"
        stack.advance(step)
        elapsed += step
        stack.wait(lambda: _beacons_arrived(stack, forged), timeout=30, what="the beacons' deliveries")
        stack.settle()
    return run_events(stack, "r1")


def _run(tmp_path: Path, vms: list[dict[str, Any]], *, beacons: bool, forge: str | None = None) -> tuple[Stack, Any]:
    start = next_weekday_at(THURSDAY, 10)
    chains = [chain("lin", NAMES, snapshotMinutes=[5, 15], monitorTransfer=False, beacons=beacons)]
    stack = start_stack(tmp_path, scenario(vms), chains, start=start, polling={"readsPerMinute": 900})
    if forge is not None:
        reads = _job_reads(stack)
        _forge(stack, "ghost")  # a VM in no run, in no chain: nothing read, nothing published
        assert _job_reads(stack) == reads and stack.downstream() == []
    assert stack.api("POST", "chains/lin/runs", {"runId": "r1"}).status_code == 202
    if forge is not None:
        stack.run_until(lambda: bool(jobs(stack, forge)), step=5, what=f"{forge}'s backup job")
        stack.advance(60)
        stack.settle()
        _forge(stack, forge)  # its job is minutes from its snapshot
        stack.advance(30)  # inside the hint's window: the job is read densely, still in Take Snapshot
        stack.settle()
        assert not [e for e in stack.downstream() if e["type"].endswith("SnapshotCompleted")]
    return stack, _run_to_end(stack, forged=0 if forge is None else 2)


def test_beacons_bring_the_snapshot_news_with_far_fewer_reads_a_lost_or_forged_one_changes_nothing(
    tmp_path: Path,
) -> None:
    beaconed = [vm(n, snapshot=(6, 6.5), transfer=(10, 12)) for n in NAMES]
    for entry in beaconed[:2]:
        entry["postScript"] = {"topic": BEACON_TOPIC, "gapSeconds": GAP}
    # lin3's post-script publishes to a topic that does not exist: its beacon is lost.
    beaconed[2]["postScript"] = {"topic": "no-such-topic", "gapSeconds": GAP}
    stack, events = _run(tmp_path / "beacon", beaconed, beacons=True, forge="lin3")
    try:
        beacon_reads = _job_reads(stack)
        lags = {n: _lag(stack, events, n) for n in NAMES}
        stats = stack.admin("recoveryservices", "GET", "/admin/state")["stats"]
        assert (stats["beaconsSent"], stats["beaconsLost"]) == (2, 1)
        # Beaconed: the job was read right after the beacon, then every tick until it showed the
        # snapshot (GAP later): news within a couple of ticks, not the 60 s fallback.
        assert lags["lin1"] <= 15 and lags["lin2"] <= 15, lags
        # Lost beacon: the 60 s fallback polling found it anyway.
        assert lags["lin3"] <= FALLBACK + 10, lags
        assert len(_beacon_deliveries(stack)) == 4  # two real beacons, two forged ones
    finally:
        stack.stop()
    polled = [vm(n, snapshot=(6, 6.5), transfer=(10, 12)) for n in NAMES]
    stack, events = _run(tmp_path / "polling", polled, beacons=False)
    try:
        polling_reads = _job_reads(stack)
        assert all(_lag(stack, events, n) <= 10 for n in NAMES)
    finally:
        stack.stop()
    # Far fewer reads (the forged beacon's dense minute included) than dense 5 s polling.
    assert beacon_reads * 2 < polling_reads, (beacon_reads, polling_reads)
    assert timedelta(seconds=max(lags.values())) < timedelta(seconds=FALLBACK + 10)
