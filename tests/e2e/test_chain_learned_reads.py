"""Reads where they matter, end to end on devhost + emulators (manual clock; docs/beacon.md, "What
the board learns"): Linux VMs of a beacon chain whose post-script beacons each snapshot. The first
two runs teach the vault's board each VM's snapshot duration and that a beacon covered it; from the
third run on their snapshot watches are not read before the learned window ends, so the beacon's
reads are the only ones — fewer job reads than the first run, with the same lag."""

from __future__ import annotations

from pathlib import Path

from demo.stack import BEACON_TOPIC, Stack
from harness.chain_stack import chain, chain_completed, next_weekday_at, run_events, scenario, start_stack, vm
from tests.e2e.test_chain_beacon import GAP, _beacons_arrived, _job_reads, _lag

THURSDAY = 3
NAMES = ["lin1", "lin2"]


def _run(stack: Stack, run_id: str, step: float = 5.0, limit: float = 3600.0) -> tuple[int, dict[str, float]]:
    """Run the chain once to its end; the job reads it took and each VM's SnapshotCompleted lag."""
    before = _job_reads(stack)
    assert stack.api("POST", "chains/lin/runs", {"runId": run_id}).status_code == 202
    elapsed = 0.0
    stack.settle()
    while not chain_completed(stack, run_id):
        assert elapsed < limit, f"run {run_id} did not complete"
        stack.advance(step)
        elapsed += step
        stack.wait(lambda: _beacons_arrived(stack, forged=0), timeout=30, what="the beacons' deliveries")
        stack.settle()
    reads = _job_reads(stack) - before
    lags = {n: _lag(stack, run_events(stack, run_id), n) for n in NAMES}
    stack.advance(600)  # the jobs' transfers end before the next run triggers its own
    stack.settle()
    return reads, lags


def test_a_beaconed_vm_s_learned_window_is_left_to_its_beacon(tmp_path: Path) -> None:
    # Take Snapshot takes 9 minutes: the chain's 5-15 minute window is read every 60 s from 4.5 min
    # until the beacon, about five reads per VM before it.
    vms = [vm(n, snapshot=(9, 9.2), transfer=(2, 3)) for n in NAMES]
    for entry in vms:
        entry["postScript"] = {"topic": BEACON_TOPIC, "gapSeconds": GAP}
    chains = [chain("lin", NAMES, snapshotMinutes=[5, 15], monitorTransfer=False, beacons=True)]
    stack = start_stack(
        tmp_path, scenario(vms), chains, start=next_weekday_at(THURSDAY, 10), polling={"readsPerMinute": 900}
    )
    try:
        runs = [_run(stack, f"r{n}") for n in (1, 2, 3)]
        stats = stack.admin("recoveryservices", "GET", "/admin/state")["stats"]
        assert (stats["beaconsSent"], stats["beaconsLost"]) == (6, 0)
        (first, second, third) = (reads for reads, _lags in runs)
        # Two runs teach the board (snapshot_history.MIN_LEARNED); the third reads only after beacons.
        assert third + 3 * len(NAMES) <= min(first, second), runs
        # The beacon still brings the news at once: no lag for the reads saved.
        assert all(lag <= 15 for _reads, run_lags in runs for lag in run_lags.values()), runs
    finally:
        stack.stop()
