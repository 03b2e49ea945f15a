"""Sub-commands that drive the app through its HTTP API (docs/http-api.md, docs/cli.md):
``chains [pause|resume]``, ``runs list|show|start|cancel|retry``, ``events``, ``gc status|run``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from backup_chain.chain_control import MAX_REASON_CHARS
from backup_chain.ids import valid_chain_name, valid_run_id
from backup_chain_cli.api_client import ApiClient, add_connection_options, segment
from backup_chain_cli.output import EXIT_OK, EXIT_PROBLEM, CliError, Output

ENDED = ("Completed", "Failed", "Terminated", "Canceled")
# A followed run that ended with any other outcome needs the operator's attention (exit 1): failures,
# a cancel, an upstream that failed or never came (skipped, upstreamTimedOut), undelivered events.
SUCCESS = "completed"
Command = Callable[[argparse.Namespace, Output], int]


def _name(resource_id: Any) -> str:
    """A VM's or vault's name: the last segment of its resource id."""
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1]


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient.from_args(args)


def _run_id(value: str) -> str:
    if not valid_run_id(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a run id (letters, digits, '.', '_', '-'; at most 80)")
    return value


def _chain(value: str) -> str:
    if not valid_chain_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a chain name (letters, digits, '_', '-'; at most 63)")
    return value


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number < 10**7:  # refuses nan and inf too
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 and less than 10000000")
    return number


def _top(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= number <= 500:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 500")
    return number


def _vm_id(value: str) -> str:
    parts = value.strip("/").split("/")
    if len(parts) != 8 or [p.lower() for p in (parts[0], parts[2], parts[4], parts[5], parts[6])] != [
        "subscriptions",
        "resourcegroups",
        "providers",
        "microsoft.compute",
        "virtualmachines",
    ]:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a VM resource id "
            "(/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>)"
        )
    return value


def _add(commands: Any, name: str, help_text: str, run: Command) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    add_connection_options(parser)
    parser.set_defaults(run=run)
    return parser


# --- chains -----------------------------------------------------------------------------------
def chains(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("GET", "chains", params={"vms": "true"} if args.vms else None)
    output.data(body)
    rows = []
    for chain in body.get("chains", []):
        last = chain.get("lastRun") or {}
        gc = chain.get("gc")
        vms = chain.get("vms")
        rows.append(
            [
                chain.get("name"),
                f"{chain.get('vmCount')}" + (f": {', '.join(_name(v) for v in vms)}" if vms else ""),
                chain.get("window") or "-",
                chain.get("nextWindow") or ("-" if not chain.get("window") else f"({chain.get('scheduler')})"),
                f"{gc['covered']}/{chain.get('vmCount')} ({gc['mode']})" if gc else "off",
                last.get("runId") or "-",
                last.get("outcome") or last.get("runtimeStatus") or "",
                last.get("lastUpdatedTime") or "",
                _paused(chain.get("pause")),
            ]
        )
    output.table(
        "Chains", ["chain", "VMs", "window", "next window", "GC", "last run", "status", "updated", "paused"], rows
    )
    return EXIT_OK


def _paused(pause: Any) -> str:
    if not isinstance(pause, dict):
        return "-"
    return f"since {pause.get('since')}" + (f": {pause.get('reason')}" if pause.get("reason") else "")


def _reason(value: str) -> str:
    if not value.strip() or len(value) > MAX_REASON_CHARS:
        raise argparse.ArgumentTypeError(f"a reason is 1 to {MAX_REASON_CHARS} characters")
    return value


def chains_pause(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call(
        "POST", f"chains/{segment(args.chain)}/pause", body={"reason": args.reason} if args.reason else {}
    )
    output.data(body)
    if body.get("accepted"):
        output.text(f"pause of {body.get('chain')} accepted ({body.get('instanceId')}); chains shows when it holds")
        return EXIT_OK
    state = "paused" if body.get("changed") else "already paused"
    output.text(f"{body.get('chain')} {state} {_paused(body)}")
    for ended in body.get("endedWaitingRuns") or []:
        output.text(f"its run waiting for upstream ends skipped: {ended}")
    return EXIT_OK


def chains_resume(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("POST", f"chains/{segment(args.chain)}/resume", body={})
    output.data(body)
    if body.get("accepted"):
        output.text(f"resume of {body.get('chain')} accepted ({body.get('instanceId')}); chains shows when it holds")
    elif body.get("changed"):
        output.text(f"{body.get('chain')} resumed (paused since {body.get('pausedSince')})")
    else:
        output.text(f"{body.get('chain')} was not paused")
    return EXIT_OK


# --- runs -------------------------------------------------------------------------------------
def runs_list(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("GET", f"chains/{segment(args.chain)}/runs", params={"top": str(args.top)})
    output.data(body)
    rows = [
        [
            r.get("runId"),
            r.get("runtimeStatus"),
            r.get("phase"),
            r.get("outcome") or "",
            ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items()),
            r.get("createdTime"),
            r.get("lastUpdatedTime"),
        ]
        for r in body.get("runs", [])
    ]
    output.table(
        f"Runs of {body.get('chain')}", ["run", "status", "phase", "outcome", "VMs", "created", "updated"], rows
    )
    return EXIT_OK


def _show_run(run: dict[str, Any], output: Output) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in (run.get("counts") or {}).items())
    output.text(
        f"run {run.get('runId')} of {run.get('chain')}: {run.get('runtimeStatus')}, phase {run.get('phase')}, "
        f"outcome {run.get('outcome') or '-'}" + (f" ({counts})" if counts else "")
    )
    output.text(f"created {run.get('createdTime')}, updated {run.get('lastUpdatedTime')}")
    rows = [
        [_name(v.get("vmId")), v.get("phase"), v.get("jobId") or "", v.get("errorCode") or "", v.get("message") or ""]
        for v in run.get("vms", [])
    ]
    output.table("VMs", ["VM", "phase", "job", "error", "message"], rows)
    for vm in run.get("vms", []):
        for advice in vm.get("recommendations") or []:
            output.text(f"{_name(vm.get('vmId'))}: recommended: {advice}")
    undelivered = run.get("undelivered") or []
    if undelivered:
        output.table(
            f"Events downstream has not accepted (delivery: {run.get('delivery')})",
            ["event", "subject", "reason", "since", "attempts"],
            [
                [e.get("type"), _name(e.get("subject")), e.get("reason"), e.get("since"), e.get("attempts")]
                for e in undelivered
            ],
        )


def runs_show(args: argparse.Namespace, output: Output) -> int:
    run = _client(args).call("GET", f"chains/{segment(args.chain)}/runs/{segment(args.run_id)}")
    output.data(run)
    _show_run(run, output)
    return EXIT_OK


def runs_start(args: argparse.Namespace, output: Output) -> int:
    client = _client(args)
    body: dict[str, Any] = {}
    if args.run_id:
        body["runId"] = args.run_id
    if args.vm:
        body["vms"] = args.vm
    if args.wait_upstream:
        body["waitForUpstream"] = True
    if args.upstream_status:
        body["upstream"] = {"status": args.upstream_status, "detail": {"source": "backup-chain CLI"}}
    started = client.call("POST", f"chains/{segment(args.chain)}/runs", body=body)
    run_id = str(started.get("runId"))
    output.progress(
        f"run {run_id} of {started.get('chain')} "
        + ("started" if started.get("started") else f"already exists ({started.get('runtimeStatus')})")
    )
    return _started_or_followed(client, started, args, output)


def _started_or_followed(client: ApiClient, started: dict[str, Any], args: argparse.Namespace, output: Output) -> int:
    """A run just started (or found existing): its answer, or with ``--wait`` the run followed to
    its end (exit 0 only when it completed with every VM backed up)."""
    run_id = str(started.get("runId"))
    if not args.wait:
        output.data(started)
        output.text(f"{'started' if started.get('started') else 'exists'}: {run_id} ({started.get('runtimeStatus')})")
        return EXIT_OK
    run = _follow(client, str(started.get("chain")), run_id, args.wait_timeout, args.poll_seconds, output)
    output.data(run)
    _show_run(run, output)
    return EXIT_OK if run.get("outcome") == SUCCESS and run.get("runtimeStatus") == "Completed" else EXIT_PROBLEM


def _follow(client: ApiClient, chain: str, run_id: str, limit: float, every: float, output: Output) -> dict[str, Any]:
    """Read the run until it ended, telling each phase change of the run and its VMs on stderr."""
    path = f"chains/{segment(chain)}/runs/{segment(run_id)}"
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + limit
    while True:
        run = client.call("GET", path)
        if run.get("phase") != seen.get("run"):
            output.progress(f"run {run_id}: {run.get('phase') or run.get('runtimeStatus')}")
            seen["run"] = run.get("phase")
        for vm in run.get("vms", []):
            key, phase = str(vm.get("vmId")), vm.get("phase")
            if phase is not None and phase != seen.get(key):
                extra = f" ({vm.get('errorCode')}: {vm.get('message')})" if phase == "failed" else ""
                output.progress(f"  {_name(key)}: {seen.get(key) or '-'} -> {phase}{extra}")
                seen[key] = phase
        if run.get("runtimeStatus") in ENDED:
            return dict(run)
        if time.monotonic() >= deadline:
            raise CliError(
                f"run {run_id} had not ended after {limit:g} s (phase {run.get('phase')}); it keeps running: "
                f"backup-chain runs show {chain} {run_id}",
                EXIT_PROBLEM,
            )
        time.sleep(every)


def runs_retry(args: argparse.Namespace, output: Output) -> int:
    client = _client(args)
    retry = client.call("POST", f"chains/{segment(args.chain)}/runs/{segment(args.run_id)}/retry", body={})
    run_id = str(retry.get("runId"))
    if retry.get("started"):
        output.progress(f"retry {run_id} of run {args.run_id} started with {len(retry.get('vms') or [])} VM(s)")
    else:
        output.progress(f"retry {run_id} of run {args.run_id} already exists ({retry.get('runtimeStatus')})")
    for vm in retry.get("notRetried") or []:
        output.warning(f"{_name(vm.get('vmId'))} not retried: {vm.get('outcome')}")
    return _started_or_followed(client, retry, args, output)


def runs_cancel(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("POST", f"chains/{segment(args.chain)}/runs/{segment(args.run_id)}/cancel")
    output.data(body)
    output.text(
        f"cancelled run {body.get('runId')} of {body.get('chain')}; stopped {body.get('stoppedWatchers')} watchers"
    )
    return EXIT_OK


# --- events -----------------------------------------------------------------------------------
def events(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("GET", f"chains/{segment(args.chain)}/runs/{segment(args.run_id)}/events")
    every = list(body.get("events", []))
    recent = every[-args.top :]
    if len(recent) < len(every):
        output.progress(f"showing the newest {len(recent)} of {len(every)} events (--top)")
    output.data({**body, "events": recent})
    rows = [
        [
            e.get("time") or e.get("snapshotCompletedAt"),
            str(e.get("type")),
            _name(e.get("subject")),
            e.get("delivery"),
            e.get("id"),
        ]
        for e in recent
    ]
    output.table(f"Downstream events of run {body.get('runId')}", ["time", "type", "subject", "delivery", "id"], rows)
    undelivered = sum(1 for e in every if e.get("delivery") == "undelivered")
    if undelivered:
        output.warning(f"{undelivered} event(s) of this run not delivered downstream")
    return EXIT_PROBLEM if undelivered else EXIT_OK


# --- gc ---------------------------------------------------------------------------------------
def gc_status(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("GET", "gc")
    output.data(body)
    output.text(
        f"GC {body.get('mode')} (enforce {body.get('enforce')}), scheduler {body.get('scheduler')}, "
        f"next {body.get('next')}"
    )
    rows = []
    for vm in body.get("vms", []):
        check = vm.get("lastCheck") or {}
        window = vm.get("lastWindow") or {}
        rows.append(
            [
                _name(vm.get("vmId")),
                check.get("checkedAt") or "-",
                check.get("protectionState") or "",
                ", ".join(str(f.get("code")) for f in check.get("findings") or []) or ("-" if check else ""),
                ("resumed" if window.get("resumed") else window.get("errorCode") or "") if window else "-",
                (vm.get("lease") or {}).get("phase"),
            ]
        )
    output.table("GC per VM", ["VM", "last check", "protection", "findings", "last window", "lease"], rows)
    return EXIT_OK


def gc_run(args: argparse.Namespace, output: Output) -> int:
    body = _client(args).call("POST", "gc/run", body={"kind": args.kind} if args.kind else {})
    output.data(body)
    output.text(f"started GC {body.get('kind')}: {body.get('instanceId')}")
    return EXIT_OK


def register(commands: Any) -> None:
    """Add this module's sub-commands to ``commands`` (argparse sub-parsers)."""
    parser = _add(
        commands, "chains", "list the configured chains: VMs, window, next window, GC, last run, pause", chains
    )
    parser.add_argument("--vms", action="store_true", help="list every chain's VMs, however many")
    # Optional actions; argparse lets a sub-command's defaults (its ``run``) replace the listing's.
    chain_actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    pause = _add(chain_actions, "pause", "pause a chain: no run starts until it is resumed", chains_pause)
    pause.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    pause.add_argument("--reason", type=_reason, help=f"why (shown with the pause; at most {MAX_REASON_CHARS})")
    resume = _add(chain_actions, "resume", "resume a paused chain: its next window or event runs", chains_resume)
    resume.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")

    runs = commands.add_parser("runs", help="list, show, start, retry and cancel chain runs", description="Chain runs.")
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(runs))
    parser = _add(actions, "list", "recent runs of a chain, newest first", runs_list)
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("--top", type=_top, default=20, help="how many runs (1-500, default 20)")
    parser = _add(
        actions, "show", "one run: each VM's phase, job, Azure error and advice; undelivered events", runs_show
    )
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("run_id", type=_run_id, metavar="RUN_ID", help="the run's id (runs list shows them)")
    parser = _add(actions, "start", "start a run of a chain (idempotent per run id)", runs_start)
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("--run-id", type=_run_id, help="the run's id (default: the app names it h-<UTC time>)")
    parser.add_argument(
        "--vm", type=_vm_id, action="extend", nargs="+", metavar="VM_ID", help="back up only these VMs (resource ids)"
    )
    upstream = parser.add_mutually_exclusive_group()
    upstream.add_argument("--wait-upstream", action="store_true", help="wait for the chain's upstream signal")
    upstream.add_argument(
        "--upstream-status", choices=("Succeeded", "Failed"), help="the upstream outcome, already known"
    )
    parser.add_argument("--wait", action="store_true", help="follow the run until it ends (phases on stderr)")
    parser.add_argument("--wait-timeout", type=_positive, default=4 * 3600.0, help="give up following after (s)")
    parser.add_argument("--poll-seconds", type=_positive, default=10.0, help="read the run this often (s)")
    parser = _add(actions, "retry", "a new run of only the VMs a finished run did not back up", runs_retry)
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("run_id", type=_run_id, metavar="RUN_ID", help="the finished run to retry")
    parser.add_argument("--wait", action="store_true", help="follow the retry until it ends (phases on stderr)")
    parser.add_argument("--wait-timeout", type=_positive, default=4 * 3600.0, help="give up following after (s)")
    parser.add_argument("--poll-seconds", type=_positive, default=10.0, help="read the run this often (s)")
    parser = _add(actions, "cancel", "cancel a running run", runs_cancel)
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("run_id", type=_run_id, metavar="RUN_ID", help="the run's id (runs list shows them)")

    parser = _add(commands, "events", "the downstream events a run published, with their delivery state", events)
    parser.add_argument("chain", type=_chain, help="the chain's name (backup-chain chains lists them)")
    parser.add_argument("run_id", type=_run_id, metavar="RUN_ID", help="the run's id (runs list shows them)")
    parser.add_argument("--top", type=_top, default=50, help="the most recent N events (default 50)")

    gc = commands.add_parser("gc", help="GC enforcement: status, run a check or window now", description="GC.")
    gc_actions = gc.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(gc))
    _add(gc_actions, "status", "per VM: last check, last window, protection lease; the next GC run", gc_status)
    parser = _add(gc_actions, "run", "run a GC check or window now", gc_run)
    parser.add_argument(
        "--kind", choices=("check", "window"), help="default: window in weekend-window mode, else check"
    )
