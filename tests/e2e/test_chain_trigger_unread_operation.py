"""A trigger whose POST Azure accepted but whose operation the app cannot read (ARM answers 503 to
every operation read beyond the retries) while the job list still lags behind the new job: the app
looks at the job list again after the recheck wait, finds the job its own POST started and follows
it — one POST, the backup reported as it really went, not a BackupFailed while the backup runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.stack import Stack
from harness.chain_stack import chain, jobs, kinds, next_weekday_at, one, run_to_end, scenario, start_stack, vm

THURSDAY = 3
# Longer than the operation's Retry-After plus the app's retries of the unreadable operation (so
# the first look at the job list misses the job), shorter than that plus the 300 s recheck wait.
LAG_SECONDS = 400


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rules = {"retryAfterSeconds": 60, "operationSeconds": 30, "jobListLagSeconds": LAG_SECONDS}
    faults = {"operations": {"ProtectedItemOperationStatuses_Get": {"rate503": 1}}}
    body = scenario([vm("unread01", transfer=(30, 40))], backupTrigger=rules, faults=faults)
    running = start_stack(
        tmp_path_factory.mktemp("trigger-unread"),
        body,
        [chain("unread", ["unread01"])],
        start=next_weekday_at(THURSDAY),
    )
    try:
        yield running
    finally:
        running.stop()


def test_an_accepted_post_whose_operation_cannot_be_read_is_followed_through_its_job(stack: Stack) -> None:
    assert stack.api("POST", "chains/unread/runs", {"runId": "r-unread"}).status_code == 202
    events = run_to_end(stack, "r-unread")
    assert kinds(events, "unread01") == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
    (job,) = jobs(stack, "unread01")
    assert job["userTriggered"] is True and job["status"] == "Completed"
    assert one(events, "BackupTriggered", "unread01")["data"]["jobId"].lower() == job["id"].lower()
    posts = stack.admin("recoveryservices", "GET", "/admin/operations")["triggerPosts"]
    assert posts == {"unread01": 1}
    faults = stack.admin("recoveryservices", "GET", "/admin/state")["faultsInjected"]
    assert sum(faults.values()) >= 8  # the operation reads really failed beyond the retries
