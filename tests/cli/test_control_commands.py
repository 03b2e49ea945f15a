"""``backup-chain chains pause|resume`` and ``runs retry`` against a running local stack (devhost +
both emulators, manual clock), as real ``python -m backup_chain_cli`` subprocesses and through
``main(argv)``; bad input gets one clear line and a non-zero exit and changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from demo.stack import Stack, vm_id
from harness.chain_stack import chain, jobs, run_to_end, scenario, start_stack, vm
from tests.cli.test_api_commands import REPO, _cli, _env, _one_line_error, _subprocess

FAST: dict[str, Any] = {"snapshot": (5.0, 6.0), "transfer": (8.0, 10.0)}
VSS = "ExtensionFailedVssWriterInBadState"
UPSTREAM = {"eventType": "Contoso.Cli.Done", "subject": "/jobs/cli", "timeout": "PT6H"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [
        vm("ok1", **FAST),
        vm("bad1", faults={"snapshotFailureRate": 1.0, "snapshotErrorCode": VSS}, **FAST),
        vm("w1", **FAST),
    ]
    chains = [chain("alpha", ["ok1", "bad1"]), chain("win", ["w1"], upstream=UPSTREAM, window="0 0 22 * * *")]
    running = start_stack(tmp_path_factory.mktemp("cli-control"), scenario(vms), chains)
    try:
        running.settle()
        yield running
    finally:
        running.stop()


def _chains(stack: Stack) -> dict[str, Any]:
    return {c["name"]: c for c in stack.api("GET", "chains").json()["chains"]}


def test_chains_pause_shows_in_chains_and_resume_lifts_it(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for run_id in ("r-wait1", "r-wait2"):  # two runs waiting for upstream: the pause ends both
        body = {"runId": run_id, "waitForUpstream": True}
        assert stack.api("POST", "chains/win/runs", body).status_code == 202
    stack.settle()
    done = _subprocess(stack, "--json", "chains", "pause", "win", "--reason", "disk swap")
    assert done.returncode == 0, done.stderr
    paused = json.loads(done.stdout)
    assert (paused["paused"], paused["changed"], paused["reason"]) == (True, True, "disk swap")
    assert sorted(paused["endedWaitingRuns"]) == ["chain:win:r-wait1", "chain:win:r-wait2"]  # same created time
    stack.settle()
    for run_id in ("r-wait1", "r-wait2"):
        run = stack.api("GET", f"chains/win/runs/{run_id}").json()
        assert (run["runtimeStatus"], run["outcome"]) == ("Completed", "skipped"), run

    code, out, err = _cli(stack, "chains", "pause", "win", monkeypatch=monkeypatch)
    assert code == 0 and f"win already paused since {paused['since']}: disk swap" in out, err
    table = _subprocess(stack, "chains")
    assert table.returncode == 0 and f"since {paused['since']}: disk swap" in table.stdout, table.stderr
    listed = json.loads(_subprocess(stack, "--json", "chains").stdout)["chains"]
    assert [(c["name"], c["paused"]) for c in listed] == [("alpha", False), ("win", True)]

    refused = _subprocess(stack, "runs", "start", "win", "--run-id", "by-hand")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "chain 'win' is paused since" in refused.stderr

    code, out, err = _cli(stack, "chains", "resume", "win", monkeypatch=monkeypatch)
    assert code == 0 and out.strip() == f"win resumed (paused since {paused['since']})", err
    code, out, _ = _cli(stack, "chains", "resume", "win", monkeypatch=monkeypatch)
    assert code == 0 and out.strip() == "win was not paused"
    assert _chains(stack)["win"]["pause"] is None


def test_runs_retry_wait_backs_up_only_the_failed_vm_and_a_second_retry_finds_it(stack: Stack) -> None:
    assert stack.api("POST", "chains/alpha/runs", {"runId": "r1"}).status_code == 202
    run_to_end(stack, "r1")
    argv = ["runs", "retry", "alpha", "r1", "--wait", "--poll-seconds", "0.2", "--wait-timeout", "300"]
    process = subprocess.Popen(
        [sys.executable, "-m", "backup_chain_cli", *argv],
        cwd=REPO,
        env=_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stack.run_until(lambda: process.poll() is not None, step=60, limit=3 * 3600, what="runs retry --wait to end")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err  # the VM failed again: something to look at
    assert "retry r1-r1 of run r1 started with 1 VM(s)" in err
    assert "run r1-r1 of alpha" in out and "outcome completedWithFailures" in out
    assert [len(jobs(stack, "ok1")), len(jobs(stack, "bad1"))] == [1, 2]

    again = _subprocess(stack, "--json", "runs", "retry", "alpha", "r1")
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["runId"], json.loads(again.stdout)["started"]) == ("r1-r1", False)
    assert "already exists" in again.stderr


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["runs", "retry", "alpha", "nope"], 2, "run 'nope' of chain 'alpha' does not exist"),
        (["chains", "pause", "nochain"], 2, "no chain named 'nochain'"),
        (["chains", "pause", "win", "--reason", ""], 2, "a reason is 1 to 500 characters"),
        (["chains", "pause", "win", "--reason", "x" * 501], 2, "a reason is 1 to 500 characters"),
        (["runs", "retry", "alpha", "bad id!"], 2, "'bad id!' is not a run id"),
    ],
)
def test_bad_input_gets_one_clear_line_and_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, argv: list[str], code: int, message: str
) -> None:
    before = {name: stack.api("GET", f"chains/{name}/runs").json()["runs"] for name in ("alpha", "win")}
    got, out, err = _cli(stack, *argv, monkeypatch=monkeypatch)
    assert got == code and out == "", err
    assert "Traceback" not in err and message in err
    assert {name: stack.api("GET", f"chains/{name}/runs").json()["runs"] for name in ("alpha", "win")} == before
    assert _chains(stack)["win"]["paused"] is False


def test_a_retry_with_nothing_to_retry_is_one_line_and_exit_1(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.api("POST", "chains/alpha/runs", {"runId": "r-ok", "vms": [vm_id("ok1")]}).status_code == 202
    run_to_end(stack, "r-ok")
    got, _, err = _cli(stack, "runs", "retry", "alpha", "r-ok", monkeypatch=monkeypatch)
    assert got == 1
    assert _one_line_error(err) == (
        "error: the app answered HTTP 409: nothing to retry: 1 of 1 VMs of run 'r-ok' backed up (field runId)"
    )
    got, _, err = _cli(stack, "runs", "retry", "alpha", "nope", monkeypatch=monkeypatch)
    assert got == 2
    assert _one_line_error(err) == "error: not found: run 'nope' of chain 'alpha' does not exist (field runId)"
