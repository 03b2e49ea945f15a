"""The CLI's API commands (``chains``, ``runs``, ``events``, ``gc``) against a running local stack
(devhost + both emulators, manual clock): some as real ``python -m backup_chain_cli`` subprocesses,
the rest through ``main(argv)`` with captured output; and bad input to each command, which gets one
clear line and a non-zero exit, never a traceback. One stack for the module."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from backup_chain_cli.main import main
from demo.stack import Stack, vm_id
from emulators.recoveryservices import errors as azure_errors
from harness.chain_stack import chain, run_to_end, scenario, start_stack, vm
from tests.cli.loopback import loopback_server

REPO = Path(__file__).resolve().parents[2]
FAST: dict[str, Any] = {"snapshot": (5.0, 6.0), "transfer": (8.0, 10.0)}
VSS = "ExtensionFailedVssWriterInBadState"
WIDE = "400"  # rich tables as wide as a long Azure message, so no cell wraps
UPSTREAM = {"eventType": "Contoso.Cli.Done", "subject": "/jobs/cli", "timeout": "PT6H"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    vms = [
        vm("ok1", **FAST),
        vm("bad1", os="Windows", faults={"snapshotFailureRate": 1.0, "snapshotErrorCode": VSS}, **FAST),
        vm("w1", **FAST),
    ]
    chains = [chain("alpha", ["ok1", "bad1"]), chain("win", ["w1"], upstream=UPSTREAM, window="0 0 22 * * *")]
    running = start_stack(tmp_path_factory.mktemp("cli-api"), scenario(vms), chains, gc={"vms": [vm_id("ok1")]})
    try:
        running.settle()
        yield running
    finally:
        running.stop()


def _env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP_CHAIN_")}
    base = {"BACKUP_CHAIN_URL": stack.devhost.url, "BACKUP_CHAIN_KEY": stack.keys["function"], "COLUMNS": WIDE}
    return {**env, **base, **extra}


def _subprocess(stack: Stack, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backup_chain_cli", *argv],
        cwd=REPO,
        env=_env(stack, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli(stack: Stack | None, *argv: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``main(argv)`` in this process, with the stack's URL and key in the environment."""
    for name in ("BACKUP_CHAIN_URL", "BACKUP_CHAIN_KEY", "BACKUP_CHAIN_TOKEN_SCOPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", WIDE)
    if stack is not None:
        monkeypatch.setenv("BACKUP_CHAIN_URL", stack.devhost.url)
        monkeypatch.setenv("BACKUP_CHAIN_KEY", stack.keys["function"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as usage:  # argparse refused the arguments
            code = usage.code if isinstance(usage.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_chains_lists_each_chain_with_its_next_window_gc_coverage_and_last_run(stack: Stack) -> None:
    done = _subprocess(stack, "--json", "chains")
    assert done.returncode == 0, done.stderr
    chains = {c["name"]: c for c in json.loads(done.stdout)["chains"]}
    assert sorted(chains) == ["alpha", "win"]
    assert chains["alpha"]["vmCount"] == 2 and chains["alpha"]["vms"] == [vm_id("ok1"), vm_id("bad1")]
    assert chains["alpha"]["gc"] == {"mode": "weekly-policy", "covered": 1}
    assert chains["alpha"]["window"] is None and chains["alpha"]["nextWindow"] is None
    # The stack's clock starts Monday 2027-01-04 03:00 UTC: the daily 22:00 window opens that evening.
    assert chains["win"]["nextWindow"] == "2027-01-04T22:00:00.000000Z"
    assert chains["win"]["scheduler"] == "sleeping" and chains["win"]["gc"] == {"mode": "weekly-policy", "covered": 0}

    table = _subprocess(stack, "chains")
    assert table.returncode == 0 and "2027-01-04T22:00:00" in table.stdout and "0 0 22 * * *" in table.stdout


START_R1 = ["runs", "start", "alpha", "--run-id", "r1", "--wait", "--poll-seconds", "0.2", "--wait-timeout", "300"]


def test_runs_start_wait_follows_the_run_and_reports_a_failed_vm_with_azure_advice(stack: Stack) -> None:
    expected = azure_errors.SNAPSHOT_ERRORS[VSS]
    process = subprocess.Popen(
        [sys.executable, "-m", "backup_chain_cli", *START_R1],
        cwd=REPO,
        env=_env(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The clock is manual: move it while the CLI follows the run, until the CLI has seen the end.
        stack.run_until(lambda: process.poll() is not None, step=60, limit=3 * 3600, what="runs start --wait to end")
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, err  # a VM failed: the operator has something to look at
    assert "run r1 of alpha started" in err
    # Each VM's phase changes as the CLI saw them (how many it saw depends on its polls' timing).
    changes = [line.strip() for line in err.splitlines()]
    failed = [line for line in changes if re.fullmatch(r"bad1: [A-Za-z-]+ -> failed \(.*\)", line)]
    assert len(failed) == 1, err
    assert failed[0].endswith(f" -> failed ({VSS}: {expected.message})"), err
    assert [line for line in changes if re.fullmatch(r"ok1: [A-Za-z-]+ -> completed", line)], err
    assert "outcome completedWithFailures" in out
    assert f"bad1: recommended: {expected.recommendations[0]}" in out

    listed = _subprocess(stack, "--json", "runs", "list", "alpha", "--top", "5")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert [(r["runId"], r["outcome"]) for r in runs] == [("r1", "completedWithFailures")]


def test_runs_show_and_events_read_back_what_the_run_did(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    if not any(r["runId"] == "r1" for r in stack.api("GET", "chains/alpha/runs").json()["runs"]):
        stack.api("POST", "chains/alpha/runs", {"runId": "r1"})
        run_to_end(stack, "r1")
    expected = azure_errors.SNAPSHOT_ERRORS[VSS]
    code, out, _ = _cli(stack, "--json", "runs", "show", "alpha", "r1", monkeypatch=monkeypatch)
    assert code == 0
    run = json.loads(out)
    bad = next(v for v in run["vms"] if v["vmId"] == vm_id("bad1"))
    assert (bad["errorCode"], bad["message"], bad["recommendations"]) == (
        VSS,
        expected.message,
        list(expected.recommendations),
    )
    code, out, _ = _cli(stack, "runs", "show", "alpha", "r1", monkeypatch=monkeypatch)
    assert code == 0 and expected.message in out and VSS in out

    code, out, _ = _cli(stack, "--json", "events", "alpha", "r1", monkeypatch=monkeypatch)
    assert code == 0
    listed = json.loads(out)["events"]
    published = {e["id"]: e for e in stack.downstream() if (e.get("data") or {}).get("runId") == "r1"}
    # Exactly what the topic accepted for the run, each delivered.
    assert sorted(e["id"] for e in listed) == sorted(published)
    assert {e["delivery"] for e in listed} == {"delivered"}, [(e["type"], e["delivery"]) for e in listed]
    assert [e["type"] for e in listed][:2] == ["BackupChain.ChainStarted", "BackupChain.UpstreamReceived"]
    assert listed[-1]["type"] == "BackupChain.ChainCompleted"
    code, out, _ = _cli(stack, "events", "alpha", "r1", "--top", "1", monkeypatch=monkeypatch)
    assert code == 0 and "ChainCompleted" in out and "UpstreamReceived" not in out


def test_runs_cancel_stops_a_waiting_run_and_a_second_cancel_is_refused(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = _cli(
        stack, "runs", "start", "win", "--run-id", "r-wait", "--wait-upstream", monkeypatch=monkeypatch
    )
    assert code == 0 and "started: r-wait" in out, err
    stack.settle()
    code, out, err = _cli(stack, "runs", "cancel", "win", "r-wait", monkeypatch=monkeypatch)
    assert code == 0 and "cancelled run r-wait of win" in out, err
    stack.settle()
    done = _subprocess(stack, "--json", "runs", "show", "win", "r-wait")
    assert done.returncode == 0 and json.loads(done.stdout)["outcome"] == "cancelled", done.stdout
    code, _, err = _cli(stack, "runs", "cancel", "win", "r-wait", monkeypatch=monkeypatch)
    assert code == 1
    assert _one_line_error(err) == "error: the app answered HTTP 409: run 'r-wait' already ended (Completed)"


def test_runs_start_wait_gives_up_after_its_timeout_and_leaves_the_run_going(stack: Stack) -> None:
    # The manual clock stands still: the run keeps waiting for its upstream signal. Starting the
    # same run id again follows the existing run.
    assert stack.api("POST", "chains/win/runs", {"runId": "r-slow", "waitForUpstream": True}).status_code == 202
    stack.settle()
    argv = ["runs", "start", "win", "--run-id", "r-slow", "--wait-upstream", "--wait", "--wait-timeout", "1"]
    done = _subprocess(stack, *argv, "--poll-seconds", "0.2")
    assert done.returncode == 1
    assert "run r-slow of win already exists (Running)" in done.stderr
    assert _one_line_error(done.stderr) == (
        "error: run r-slow had not ended after 1 s (phase waitingForUpstream); it keeps running: "
        "backup-chain runs show win r-slow"
    )
    assert "run r-slow: waitingForUpstream" in done.stderr
    assert stack.api("GET", "chains/win/runs/r-slow").json()["runtimeStatus"] == "Running"
    assert stack.api("POST", "chains/win/runs/r-slow/cancel").status_code == 202
    stack.settle()


def test_gc_run_starts_a_check_and_gc_status_shows_it(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _cli(stack, "--json", "gc", "run", "--kind", "check", monkeypatch=monkeypatch)
    assert code == 0, err
    started = json.loads(out)
    assert started["kind"] == "check" and started["instanceId"].startswith("gc:check:")
    stack.settle()
    done = _subprocess(stack, "--json", "gc", "status")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert [v["vmId"] for v in status["vms"]] == [vm_id("ok1")]
    assert status["vms"][0]["lastCheck"]["protectionState"] == "Protected"
    table = _subprocess(stack, "gc", "status")
    assert table.returncode == 0 and "ok1" in table.stdout and "Protected" in table.stdout
    code, _, err = _cli(stack, "gc", "run", "--kind", "window", monkeypatch=monkeypatch)
    assert code == 2
    assert (
        _one_line_error(err)
        == "error: the app refused the request: a GC window needs gc.mode 'weekend-window' (field kind)"
    )


NO_CHAIN = "error: not found: no chain named 'nope'; configured chains: alpha, win (field chain)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chains"], None),
        (
            ["runs", "list", "nope"],
            NO_CHAIN,
        ),
        (["runs", "show", "alpha", "zzz"], "error: not found: run 'zzz' of chain 'alpha' does not exist (field runId)"),
        (["events", "win", "zzz"], "error: not found: run 'zzz' of chain 'win' does not exist (field runId)"),
        (["runs", "cancel", "nope", "r1"], NO_CHAIN),
        (["runs", "start", "nope"], NO_CHAIN),
        (["runs", "show", "nope", "r1"], NO_CHAIN),
        (["events", "nope", "r1"], NO_CHAIN),
        (
            ["runs", "cancel", "alpha", "zzz"],
            "error: not found: run 'zzz' of chain 'alpha' does not exist (field runId)",
        ),
        (
            ["runs", "start", "alpha", "--vm", vm_id("ok1"), vm_id("w1")],
            f"error: the app refused the request: VM {vm_id('w1')} is not a target of chain 'alpha' (field vms)",
        ),
        (
            ["runs", "start", "alpha", "--vm", vm_id("w1")],
            f"error: the app refused the request: VM {vm_id('w1')} is not a target of chain 'alpha' (field vms)",
        ),
        (
            ["runs", "start", "alpha", "--wait-upstream"],
            "error: the app refused the request: chain 'alpha' has no upstream to wait for (field waitForUpstream)",
        ),
    ],
)
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str | None
) -> None:
    if message is None:  # the control: the same environment works
        assert _cli(stack, *argv, monkeypatch=monkeypatch)[0] == 0
        return
    before = {name: stack.api("GET", f"chains/{name}/runs").json()["runs"] for name in ("alpha", "win")}
    code, out, err = _cli(stack, *argv, monkeypatch=monkeypatch)
    assert code == 2 and out == ""
    assert _one_line_error(err) == message
    # Refused input changes nothing: no run started or cancelled.
    assert {name: stack.api("GET", f"chains/{name}/runs").json()["runs"] for name in ("alpha", "win")} == before


def test_arguments_the_cli_itself_refuses(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    before = stack.api("GET", "chains/alpha/runs").json()["runs"]
    done = _subprocess(stack, "runs", "start", "alpha", "--vm", "not-a-vm")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'not-a-vm' is not a VM resource id" in done.stderr
    code, _, err = _cli(stack, "runs", "list", "alpha", "--top", "0", monkeypatch=monkeypatch)
    assert code == 2 and "0 is not between 1 and 500" in err
    code, _, err = _cli(stack, "runs", "show", "alpha", "bad id!", monkeypatch=monkeypatch)
    assert code == 2 and "'bad id!' is not a run id" in err
    # Nothing was started by any of these.
    assert stack.api("GET", "chains/alpha/runs").json()["runs"] == before


def test_no_url_wrong_key_no_token_unreachable_url_and_a_non_json_answer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, _, err = _cli(None, "chains", monkeypatch=monkeypatch)
    assert code == 2 and _one_line_error(err) == "error: no app URL: give --url or set BACKUP_CHAIN_URL"
    code, _, err = _cli(stack, "chains", "--url", "ftp://127.0.0.1/x", monkeypatch=monkeypatch)
    assert code == 2
    assert (
        _one_line_error(err)
        == "error: --url 'ftp://127.0.0.1/x' is not an http(s) URL, e.g. https://myapp.azurewebsites.net"
    )
    # No credential can give a token (only the Azure CLI is allowed, and it is not on PATH): one line.
    done = _subprocess(
        stack,
        "chains",
        "--token-scope",
        "api://backup-chain/.default",
        BACKUP_CHAIN_KEY="",
        AZURE_TOKEN_CREDENTIALS="AzureCliCredential",
        PATH=str(tmp_path),
    )
    assert done.returncode == 1 and _one_line_error(done.stderr) == (
        "error: could not get a token for scope 'api://backup-chain/.default': "
        "AzureCliCredential: Azure CLI not found on path"
    )
    assert done.stderr.count("\n") == 1

    done = _subprocess(stack, "runs", "list", "alpha", BACKUP_CHAIN_KEY="not-the-key")
    assert done.returncode == 1 and _one_line_error(done.stderr) == "error: the function key was refused (HTTP 401)"
    done = _subprocess(stack, "chains", BACKUP_CHAIN_KEY="")
    assert done.returncode == 1
    assert _one_line_error(done.stderr) == "error: the request without a key was refused (HTTP 401)"

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, _, err = _cli(stack, "gc", "status", "--url", closed, monkeypatch=monkeypatch)
    assert code == 2 and _one_line_error(err) == f"error: cannot reach {closed}: connection refused"

    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a sign-in page</html>")

        def log_message(self, *args: Any) -> None:
            return None

    with loopback_server(Html) as url:
        code, _, err = _cli(stack, "chains", "--url", url, monkeypatch=monkeypatch)
    assert code == 1
    assert _one_line_error(err) == "error: GET /api/chains answered HTTP 200 with a body that is not JSON"


def test_a_token_scope_sends_the_bearer_token_with_the_key_when_both_are_given(stack: Stack, tmp_path: Path) -> None:
    """azure-identity's AzureCliCredential runs ``az account get-access-token --scope ... --output
    json`` and reads ``accessToken``/``expires_on``; an ``az`` of that shape on PATH stands in for a
    signed-in Azure CLI. The answer goes to a loopback server that records the headers it got."""
    fake_az = tmp_path / "az"
    fake_az.write_text(
        "#!/bin/sh\n"
        'echo \'{"accessToken": "token-from-az", "expiresOn": "2099-01-01 00:00:00.000000", '
        '"expires_on": 4070908800, "tokenType": "Bearer"}\'\n'
    )
    fake_az.chmod(0o755)
    seen: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({name.lower(): value for name, value in self.headers.items()})
            body = json.dumps({"chains": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    with loopback_server(Recorder) as url:
        answers = [
            _subprocess(
                stack,
                "--json",
                "chains",
                "--url",
                url,
                "--token-scope",
                "api://backup-chain/.default",
                BACKUP_CHAIN_KEY=key,
                AZURE_TOKEN_CREDENTIALS="AzureCliCredential",
                PATH=str(tmp_path),
            )
            for key in ("key-1", "")
        ]
    assert [(done.returncode, done.stderr) for done in answers] == [(0, ""), (0, "")]
    assert [(h.get("authorization"), h.get("x-functions-key")) for h in seen] == [
        ("Bearer token-from-az", "key-1"),
        ("Bearer token-from-az", None),
    ]
