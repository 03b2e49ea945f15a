"""``watch_job``: reads on the poll plan's schedule, announces the snapshot when asked, and
continues as new after POLLS_PER_EXECUTION reads so a long watch keeps a short history."""

from __future__ import annotations

from datetime import timedelta

from tests.orchestrators.builders import CHAIN, job, read
from tests.support.orchestrator_tier import PLAN, PREFIX, VAULT_ID, OrchestratorTier, vm_id


def test_a_long_snapshot_is_watched_across_continue_as_new_and_announced_once(tier: OrchestratorTier) -> None:
    job_id = "job-longwatch"
    start = tier.at(0)
    running = read(job(job_id, start=start))
    snapshot_done = read(job(job_id, start=start, snapshot="Completed", snapshot_end=tier.at(600)))
    tier.script.on("get_job", job_id, *([running] * 12), snapshot_done)
    announce = {"chain": CHAIN, "runId": "run-longwatch", "vmId": vm_id("vm-longwatch"), "vaultId": VAULT_ID}
    spec = {
        "vaultId": VAULT_ID,
        "jobId": job_id,
        "until": "snapshot",
        "anchor": start,
        "plan": PLAN,
        "announce": {**announce, "prefix": PREFIX},
        "polls": 0,
        "behindKept": False,
    }
    status = tier.run("watch_job", "watch:longwatch", spec)
    output = status["output"]
    assert output["ok"] is True and output["polls"] == 13 and output["announced"] is True
    assert tier.input_of("watch:longwatch")["polls"] == 12  # the second execution's input
    assert tier.types("vm-longwatch") == ["SnapshotCompleted"]
    assert tier.published("vm-longwatch")[0]["data"]["jobId"] == job_id
    assert len(tier.script.calls("get_job", job_id)) == 13


def test_the_first_read_waits_until_just_before_the_expected_snapshot_window(tier: OrchestratorTier) -> None:
    job_id = "job-plan"
    start = tier.at(0)
    tier.script.on("get_job", job_id, read(job(job_id, status="Failed", start=start, snapshot="Failed")))
    spec = {"vaultId": VAULT_ID, "jobId": job_id, "until": "snapshot", "anchor": start, "plan": PLAN}
    output = tier.run("watch_job", "watch:plan", {**spec, "announce": None, "polls": 0})["output"]
    assert output["ok"] is True and output["announced"] is False  # a failed job ends the watch, unannounced
    # PollPlan.for_minutes(5, 15): dense reads from 30 s before the 5-minute mark.
    assert tier.timers("watch:plan")[0] - tier.started_at("watch:plan") == timedelta(seconds=270)
