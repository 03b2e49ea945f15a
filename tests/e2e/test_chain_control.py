"""Retrying a run's failed VMs and pausing a chain, on devhost + emulators (manual clock, one
stack): a retry backs up only the VMs the emulator failed, once however often it is asked; a
chain paused during its window backs nothing up when its upstream event comes, says so
(ChainSkipped reason "paused"), stays paused across a devhost restart, skips its next window,
and after a resume its next window runs normally. Bad pause bodies change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backup_chain.ids import run_id_for_event, run_id_for_window
from demo.stack import Stack, vm_id
from harness.chain_stack import (
    DEFAULT_START,
    chain,
    deliver_upstream,
    jobs,
    kinds,
    of_type,
    one,
    run_events,
    run_to_end,
    scenario,
    start_stack,
    vm,
)

FAST: dict[str, Any] = {"snapshot": (5.0, 6.0), "transfer": (8.0, 10.0)}
SNAPSHOT_FAILS = {"snapshotFailureRate": 1.0, "snapshotErrorCode": "ExtensionFailedVssWriterInBadState"}
UPSTREAM = {"eventType": "Contoso.Etl.Done", "subject": "/jobs/etl", "timeout": "PT2H", "onTimeout": "backup"}
WINDOW = DEFAULT_START.replace(hour=9)  # "0 0 9 * * *": after the retry tests' runs have ended


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [vm(name, **FAST) for name in ("ok1", "ok2", "w1", "w2")]
    vms += [vm(name, faults=SNAPSHOT_FAILS, **FAST) for name in ("bad1", "bad2")]
    chains = [
        chain("retry", ["ok1", "bad1", "ok2", "bad2"]),
        chain("win", ["w1", "w2"], upstream=UPSTREAM, window="0 0 9 * * *"),
    ]
    running = start_stack(tmp_path_factory.mktemp("chain-control"), scenario(vms), chains)
    try:
        running.settle()
        yield running
    finally:
        running.stop()


def _json(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _chain(stack: Stack, name: str) -> dict[str, Any]:
    return next(c for c in _json(stack.api("GET", "chains"), 200)["chains"] if c["name"] == name)


def _runs(stack: Stack, name: str) -> list[dict[str, Any]]:
    return list(_json(stack.api("GET", f"chains/{name}/runs"), 200)["runs"])


def _pause(stack: Stack, body: Any, principal: str) -> Any:
    headers = {"x-functions-key": stack.keys["function"], "X-MS-CLIENT-PRINCIPAL-NAME": principal}
    return stack.session.post(f"{stack.devhost.url}/api/chains/win/pause", json=body, headers=headers, timeout=60)


def test_retry_backs_up_only_the_failed_vms_once(stack: Stack) -> None:
    _json(stack.api("POST", "chains/retry/runs", {"runId": "t-1"}), 202)
    busy = _json(stack.api("POST", "chains/retry/runs/t-1/retry"), 409)
    assert busy["field"] == "runId" and "has not finished" in busy["detail"]
    events = run_to_end(stack, "t-1")
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completedWithFailures"
    assert [len(jobs(stack, n)) for n in ("ok1", "bad1", "ok2", "bad2")] == [1, 1, 1, 1]

    first = _json(stack.api("POST", "chains/retry/runs/t-1/retry"), 202)
    assert (first["runId"], first["retryOf"], first["started"]) == ("t-1-r1", "t-1", True)
    assert first["vms"] == [vm_id("bad1"), vm_id("bad2")] and first["notRetried"] == []
    again = _json(stack.api("POST", "chains/retry/runs/t-1/retry"), 200)
    assert (again["runId"], again["started"]) == ("t-1-r1", False)

    retried = run_to_end(stack, "t-1-r1")
    started = one(retried, "ChainStarted")["data"]
    assert (started["retryOf"], started["vmCount"]) == ("t-1", 2)
    assert kinds(retried, "ok1") == [] and kinds(retried, "bad1")[-1] == "BackupFailed"
    # The emulator's own record: only the failed VMs got a second Azure job.
    assert [len(jobs(stack, n)) for n in ("ok1", "bad1", "ok2", "bad2")] == [1, 2, 1, 2]
    view = _json(stack.api("GET", "chains/retry/runs/t-1-r1"), 200)
    assert view["retryOf"] == "t-1" and [v["vmId"] for v in view["vms"]] == [vm_id("bad1"), vm_id("bad2")]
    assert _json(stack.api("GET", "chains/retry/runs/t-1"), 200)["retryOf"] is None
    # A retry of the retry is the next one in line.
    assert _json(stack.api("POST", "chains/retry/runs/t-1-r1/retry"), 202)["runId"] == "t-1-r2"
    run_to_end(stack, "t-1-r2")


def test_retry_refuses_unknown_runs_and_runs_with_nothing_to_retry(stack: Stack) -> None:
    missing = _json(stack.api("POST", "chains/retry/runs/nope/retry"), 404)
    assert missing["field"] == "runId"
    _json(stack.api("POST", "chains/nochain/runs/t-1/retry"), 404)
    _json(stack.api("POST", "chains/retry/runs", {"runId": "t-ok", "vms": [vm_id("ok1")]}), 202)
    run_to_end(stack, "t-ok")
    nothing = _json(stack.api("POST", "chains/retry/runs/t-ok/retry"), 409)
    assert nothing["detail"].startswith("nothing to retry: 1 of 1 VMs of run 't-ok' backed up")
    assert _json(stack.api("POST", "chains/retry/runs/t-ok/retry", {"vms": []}), 400)["field"] == "vms"
    assert _json(stack.api("GET", "chains/retry/runs/t-ok-r1"), 404)["field"] == "runId"


def test_retry_refuses_a_retry_id_held_by_a_run_that_is_not_its_retry(stack: Stack) -> None:
    # A run started by hand under the name a retry would take is no retry: the retry route must
    # not pass it off as one ("started": false) and leave the failed VM never retried.
    _json(stack.api("POST", "chains/retry/runs", {"runId": "t-h", "vms": [vm_id("bad1")]}), 202)
    _json(stack.api("POST", "chains/retry/runs", {"runId": "t-h-r1", "vms": [vm_id("ok1")]}), 202)
    run_to_end(stack, "t-h")
    run_to_end(stack, "t-h-r1")
    bad1_jobs, ok1_jobs = len(jobs(stack, "bad1")), len(jobs(stack, "ok1"))
    taken = _json(stack.api("POST", "chains/retry/runs/t-h/retry"), 409)
    assert taken["field"] == "runId" and "'t-h-r1'" in taken["detail"] and "not its retry" in taken["detail"]
    # Nothing changed: the hand-started run is still itself, and no Azure job was started.
    view = _json(stack.api("GET", "chains/retry/runs/t-h-r1"), 200)
    assert view["retryOf"] is None and [v["vmId"] for v in view["vms"]] == [vm_id("ok1")]
    assert (len(jobs(stack, "bad1")), len(jobs(stack, "ok1"))) == (bad1_jobs, ok1_jobs)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 5}, "reason"),
        ({"reason": ""}, "reason"),
        ({"why": "because"}, "why"),
        ("not json", None),
        ([1, 2], None),
    ],
)
def test_a_bad_pause_body_is_refused_naming_the_field_and_changes_nothing(
    stack: Stack, body: Any, field: str | None
) -> None:
    raw = body if isinstance(body, str) else None
    response = (
        stack.session.post(
            f"{stack.devhost.url}/api/chains/win/pause", data=raw, headers={"x-functions-key": stack.keys["function"]}
        )
        if raw is not None
        else stack.api("POST", "chains/win/pause", body)
    )
    refused = _json(response, 400)
    assert refused.get("field") == field
    assert (_chain(stack, "win")["paused"], _chain(stack, "win")["pause"]) == (False, None)
    assert of_type(stack.downstream(), "ChainPaused") == []


def test_pause_unknown_chain_is_404(stack: Stack) -> None:
    assert _json(stack.api("POST", "chains/nochain/pause"), 404)["field"] == "chain"
    assert _json(stack.api("POST", "chains/nochain/resume"), 404)["field"] == "chain"
    assert _json(stack.api("POST", "chains/win/resume", {"force": True}), 400)["field"] == "force"
    too_long = _json(_pause(stack, {}, "x" * 257), 400)
    assert too_long["field"] == "X-MS-CLIENT-PRINCIPAL-NAME"
    assert _chain(stack, "win")["paused"] is False


def test_pause_during_a_window_backs_nothing_up_and_says_so_then_resume_runs_the_next_window(stack: Stack) -> None:
    window_run = run_id_for_window(WINDOW)
    stack.run_until(lambda: _runs(stack, "win"), step=1800, limit=8 * 3600, what="the window to open")
    (run,) = _runs(stack, "win")
    assert (run["runId"], run["phase"]) == (window_run, "waitingForUpstream")

    # The caller App Service authentication names (Easy Auth sets this header) is who paused it.
    paused = _json(_pause(stack, {"reason": "storage maintenance"}, "ops@contoso.com"), 200)
    assert (paused["paused"], paused["changed"], paused["reason"]) == (True, True, "storage maintenance")
    assert paused["by"] == "ops@contoso.com"
    assert paused["endedWaitingRuns"] == [f"chain:win:{window_run}"]
    again = _json(stack.api("POST", "chains/win/pause", {"reason": "other"}), 200)
    assert (again["changed"], again["since"], again["reason"]) == (False, paused["since"], "storage maintenance")
    pause_event = one(stack.downstream(), "ChainPaused")["data"]
    assert (pause_event["since"], pause_event["reason"]) == (paused["since"], "storage maintenance")

    # The window's run ends skipped, saying why, without backing anything up.
    events = run_to_end(stack, window_run, step=60, limit=600)
    assert kinds(events) == ["ChainStarted", "ChainSkipped", "ChainCompleted"]
    skipped = one(events, "ChainSkipped")["data"]
    assert skipped["reason"] == "paused" and skipped["detail"]["since"] == paused["since"]
    assert one(events, "ChainCompleted")["data"]["outcome"] == "skipped"

    # The upstream event reaches no run and starts none; downstream hears the chain skipped it.
    sent = deliver_upstream(stack, "Contoso.Etl.Done", "/jobs/etl", {"status": "Succeeded"}, "etl-paused-1")
    told = run_events(stack, run_id_for_event(sent))
    assert kinds(told) == ["ChainSkipped"]
    assert told[0]["data"]["reason"] == "paused" and told[0]["data"]["detail"]["upstreamEventId"] == sent
    assert [r["runId"] for r in _runs(stack, "win")] == [window_run]
    assert jobs(stack, "w1") == [] and jobs(stack, "w2") == []

    refused = _json(stack.api("POST", "chains/win/runs", {"runId": "by-hand"}), 409)
    assert refused["field"] == "chain" and "paused" in refused["detail"]

    # The pause is durable: devhost restarts and still reads it.
    stack.kill_devhost()
    stack.start_devhost()
    stack.settle()
    shown = _chain(stack, "win")
    assert shown["paused"] is True and shown["pause"]["reason"] == "storage maintenance"

    # The next window, still paused, starts no run and says so.
    next_run = run_id_for_window(WINDOW + timedelta(days=1))
    stack.run_until(lambda: run_events(stack, next_run), step=3600, limit=26 * 3600, what="the next window")
    assert kinds(run_events(stack, next_run)) == ["ChainSkipped"]
    assert [r["runId"] for r in _runs(stack, "win")] == [window_run]

    resumed = _json(stack.api("POST", "chains/win/resume"), 200)
    assert (resumed["paused"], resumed["changed"], resumed["pausedSince"]) == (False, True, paused["since"])
    assert _json(stack.api("POST", "chains/win/resume"), 200)["changed"] is False
    assert one(stack.downstream(), "ChainResumed")["data"]["pausedSince"] == paused["since"]
    assert _chain(stack, "win")["paused"] is False

    # After the resume the following window runs as usual.
    third = run_id_for_window(WINDOW + timedelta(days=2))
    stack.run_until(
        lambda: any(r["runId"] == third for r in _runs(stack, "win")), step=3600, limit=26 * 3600, what="a window"
    )
    deliver_upstream(stack, "Contoso.Etl.Done", "/jobs/etl", {"status": "Succeeded"}, "etl-resumed-1")
    events = run_to_end(stack, third)
    assert one(events, "ChainCompleted")["data"]["outcome"] == "completed"
    # The app's on-demand jobs (the weekly policy's own Wednesday 02:00 jobs are not the app's).
    assert [len([j for j in jobs(stack, n) if j["userTriggered"]]) for n in ("w1", "w2")] == [1, 1]
