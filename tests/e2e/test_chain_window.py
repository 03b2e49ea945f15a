"""The window scheduler: the ``chain_windows`` timer (on start-up, then every 5 minutes) keeps one
``scheduler:{chain}`` orchestration per chain with a ``window``; it sleeps on a durable timer to
the window, opens a run that waits for the upstream signal, and carries on to the next window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_chain.ids import run_id_for_window
from demo.stack import Stack
from harness.chain_stack import (
    chain,
    deliver_upstream,
    durable_status,
    jobs,
    kinds,
    next_weekday_at,
    one,
    parse_time,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

THURSDAY = 3
START = next_weekday_at(THURSDAY, hour=0, minute=50)
WINDOW = START.replace(hour=1, minute=0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chains = [
        chain(
            "nightly",
            ["win01", "win02"],
            window="0 0 1 * * *",
            upstream={"eventType": "Contoso.Etl.JobFinished", "subject": "/jobs/nightly", "timeout": "PT2H"},
        )
    ]
    vms = [vm("win01", transfer=(8, 10)), vm("win02", os="Windows", transfer=(8, 10))]
    base: Path = tmp_path_factory.mktemp("chain-window")
    running = start_stack(base, scenario(vms), chains, start=START)
    try:
        yield running
    finally:
        running.stop()


def _runs(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.api("GET", "chains/nightly/runs").json()["runs"])


def test_window_opens_a_run_that_waits_for_upstream_then_backs_up(stack: Stack) -> None:
    # The start-up firing of the timer started the scheduler, which sleeps until 01:00.
    scheduler = stack.wait(
        lambda: durable_status(stack, "scheduler:nightly").get("customStatus"), what="the window scheduler"
    )
    assert scheduler["phase"] == "sleeping"
    assert parse_time(scheduler["nextWindow"]) == WINDOW
    stack.advance(9 * 60)  # 00:59: still closed
    stack.settle()
    assert _runs(stack) == []

    run_id = run_id_for_window(WINDOW)
    stack.run_until(lambda: _runs(stack), step=30, limit=600, what="the window to open")
    assert stack.clock.now() >= WINDOW
    (run,) = _runs(stack)
    assert run["runId"] == run_id and run["phase"] == "waitingForUpstream"
    assert not jobs(stack, "win01")

    deliver_upstream(stack, "Contoso.Etl.JobFinished", "/jobs/nightly", {"status": "Succeeded"}, "etl-night-1")
    events = run_to_end(stack, run_id)
    assert kinds(events) == ["ChainStarted", "UpstreamReceived", "ChainCompleted"]
    assert one(events, "ChainStarted")["data"]["startedBy"] == "window"
    for name in ("win01", "win02"):
        assert kinds(events, name) == ["BackupTriggered", "SnapshotCompleted", "BackupCompleted"]
        assert len(jobs(stack, name)) == 1
    assert [r["runId"] for r in _runs(stack)] == [run_id]  # the event joined the window's run

    # The scheduler carries on to the next day's window.
    stack.settle()
    scheduler = durable_status(stack, "scheduler:nightly")
    assert scheduler["runtimeStatus"] == "Running"
    assert scheduler["customStatus"]["phase"] == "sleeping"
    assert parse_time(scheduler["customStatus"]["nextWindow"]) == WINDOW + timedelta(days=1)
