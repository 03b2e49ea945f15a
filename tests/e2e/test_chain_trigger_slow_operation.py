"""A trigger whose operation outlasts the app's patience: a Retry-After above the cap is waited
only up to the cap (1 h) between reads, and an operation still InProgress after 2 h ends in one
BackupFailed (BackupOperationNeverEnded), never in a second POST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.stack import Stack
from harness.chain_stack import chain, kinds, next_weekday_at, one, run_to_end, scenario, start_stack, vm
from orchestrators.vm_backup import OPERATION_DEADLINE, RETRY_AFTER_CAP_SECONDS

THURSDAY = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    rules = {"retryAfterSeconds": 7200, "operationSeconds": 3 * 3600}
    body = scenario([vm("slow01", transfer=(8, 10))], backupTrigger=rules, lateScheduleRate=0.0)
    running = start_stack(
        tmp_path_factory.mktemp("chain-slow-op"), body, [chain("slow", ["slow01"])], start=next_weekday_at(THURSDAY)
    )
    try:
        response = running.api("POST", "chains/slow/runs", {"runId": "r-slow"})
        assert response.status_code == 202, response.text
        running.settle()
        yield running
    finally:
        running.stop()


def test_operation_outlasting_the_deadline_is_one_backup_failed(stack: Stack) -> None:
    events = run_to_end(stack, "r-slow", step=60.0)
    assert kinds(events, "slow01") == ["BackupFailed"]
    failed = one(events, "BackupFailed", "slow01")["data"]
    assert failed["phase"] == "trigger" and failed["errorCode"] == "BackupOperationNeverEnded"
    reads = stack.admin("recoveryservices", "GET", "/admin/requests")["byOperation"]
    # Read once per capped Retry-After (1 h) until the 2 h deadline, and POSTed once.
    assert (
        reads.get("ProtectedItemOperationStatuses_Get") == OPERATION_DEADLINE.total_seconds() // RETRY_AFTER_CAP_SECONDS
    )
    assert stack.admin("recoveryservices", "GET", "/admin/operations")["triggerPosts"] == {"slow01": 1}
