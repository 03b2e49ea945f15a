"""Runs one seeded fault case on the local stack: start it with the manual clock at the case's
start, start a chain run that waits for its upstream event, deliver that event (at least once),
then move the clock step by step — SIGKILLing devhost at the case's kill points and restarting it
after the clock moved on without it — until the run published ChainCompleted (bounded by the
case's limit). At the case's points it also takes ``Backups_Trigger`` down (503 on every call)
for longer than the app's retries, and makes the downstream topic refuse (401/403/404), drop
publishes or die (SIGKILL of the Event Grid emulator, restarted after with what it kept), then
restores it and lets the app redeliver. In weekend-window mode it then goes on until the weekly
GC window closed, refusing the stop of the case's ``stop_refused`` VMs as it closes.

Nothing here looks inside the app: it talks to the app's HTTP API, the Event Grid emulator and the
Recovery Services emulator's admin API, and reads devhost's host status to time the kills."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from demo.stack import Stack
from harness.chain_stack import PREFIX, chain_completed, deliver_upstream, run_events, start_stack
from harness.faults import invariants
from harness.faults.scenarios import (
    CHAIN,
    UPSTREAM_SUBJECT,
    UPSTREAM_TYPE,
    WEEKEND_WINDOW,
    WINDOW_HOURS,
    DownstreamFault,
    FaultCase,
    Kill,
)

# An ARM outage on the trigger POST: every call answers 503 (the random drops, 429s and 500s are
# off for it meanwhile, so a backup exhausting its retries ends with the outage's code), restored
# to the case's global rates after.
OUTAGE: dict[str, Any] = {"operations": {"Backups_Trigger": {"rate503": 1, "rate429": 0, "rate5xx": 0, "dropRate": 0}}}
LONG_FAULT_STEP_SECONDS = 300.0  # clock step through downstream faults of an hour or more

WINDOW_CLOSE_LIMIT_SECONDS = 2 * 3600.0  # virtual time the window gets to close after its closing time
WINDOW_STEP_SECONDS = 3600.0
# Stack.publish_upstream points REQUESTS_CA_BUNDLE (process-wide) at its stack's CA while it
# publishes: cases run side by side publish one at a time.
_PUBLISHING = threading.Lock()
IN_FLIGHT_WAIT = 5.0  # wall seconds to wait for devhost to report work in progress before a kill


@dataclass
class Driven:
    """What the driver did and saw (the invariant checker reads the rest from the stack)."""

    case: FaultCase
    base: Path
    run_started_at: datetime
    chain_completed: bool = False
    window_closed: bool | None = None
    steps: int = 0
    chain_seconds: float = 0.0  # virtual time from the run's start to ChainCompleted (or giving up)
    kills: list[dict[str, Any]] = field(default_factory=list)
    faults_injected: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # problems of the run itself (reported as violations)
    skipped_kills: list[str] = field(default_factory=list)  # planned kills the run ended before
    mid_violations: list[invariants.Violation] = field(default_factory=list)
    bystanders: dict[str, str] = field(default_factory=dict)  # lower-case name -> protection at run start
    exposed: set[str] = field(default_factory=set)  # VMs not yet triggered when the ARM outage began
    world: list[dict[str, Any]] = field(default_factory=list)  # the ARM / downstream faults carried out
    gc_events: list[dict[str, Any]] = field(default_factory=list)  # weekend-window: the GC window's events


@contextmanager
def case_stack(case: FaultCase, base: Path) -> Iterator[Stack]:
    """The stack for ``case`` (manual clock at ``case.start``), stopped on exit."""
    stack = start_stack(base, case.scenario(), case.chains(), start=case.start, **case.config())
    try:
        yield stack
    finally:
        stack.stop()


def advance_emulators(stack: Stack, seconds: float) -> None:
    """Move the shared manual clock while devhost is down (through the emulators' clock routes)."""
    stack.admin("recoveryservices", "POST", "/admin/clock/advance", params={"seconds": str(seconds)})
    stack.admin("eventgrid", "POST", "/admin/clock/advance", params={"seconds": "0"})


def host_status(stack: Stack) -> dict[str, Any]:
    return dict(stack.admin("devhost", "GET", "/admin/host/status"))


def _kill(stack: Stack, kill: Kill, driven: Driven, published: int, step: float | None = None) -> None:
    """Carry out one kill (with the clock step it replaces: ``step`` seconds, the case's step by
    default) and restart devhost."""
    seen: dict[str, Any] = {}

    def busy_or_idle() -> bool:
        seen.update(host_status(stack))
        return bool(seen["inProgress"] > 0 or seen["idle"])

    if kill.mode == "atRest":
        stack.settle()
        seen.update(host_status(stack))
    else:
        stack.advance(step or driven.case.step_seconds)
        driven.steps += 1
        if kill.mode == "inFlight":
            with contextlib.suppress(AssertionError):  # bounded: kill anyway when it runs out
                stack.wait(busy_or_idle, IN_FLIGHT_WAIT, "devhost to pick up work")
    killed_at = stack.clock.now()
    stack.kill_devhost()
    if kill.down_seconds:
        advance_emulators(stack, kill.down_seconds)
    stack.start_devhost()
    stack.settle()
    driven.kills.append(
        {
            "afterEvents": published,
            "mode": kill.mode,
            "downSeconds": kill.down_seconds,
            "at": killed_at.isoformat(),
            "inProgressAtKill": seen.get("inProgress"),
        }
    )


def _gc_event_count(stack: Stack, kind: str) -> int:
    return sum(
        1 for e in stack.downstream() if e["type"] == PREFIX + kind and str(e.get("subject", "")).startswith("/gc/")
    )


def _protection(stack: Stack, names: list[str]) -> dict[str, str]:
    wanted = {n.lower() for n in names}
    items = stack.admin("recoveryservices", "GET", "/admin/items", params={"limit": "100000"})
    return {str(i["vm"]).lower(): str(i["protectionState"]) for i in items if str(i["vm"]).lower() in wanted}


def _steps(
    stack: Stack,
    driven: Driven,
    seconds: float,
    step: float,
    window_kills: list[str],
    kills: list[Kill] | None = None,
    published: int = -1,
) -> None:
    """Move the clock ``seconds`` in steps of ``step``, letting the work settle after each (the
    SIGKILL as the GC window opens, if still due, lands in the step it opens in). ``kills``: the
    next pending devhost kill, if any, is carried out half-way (with the topic down the run's
    progress cannot be counted, and the run may well end before the topic is back)."""
    began = stack.clock.now()
    while (moved := (stack.clock.now() - began).total_seconds()) < seconds:
        this = min(step, seconds - moved)
        if "open" in window_kills and stack.clock.now() + timedelta(seconds=this) >= driven.case.window_opens:
            window_kills.remove("open")
            _kill(stack, Kill(-1, "inFlight", 0.0), driven, -1, this)
        elif kills and moved >= seconds / 2:
            _kill(stack, kills.pop(0), driven, published, this)
        else:
            stack.advance(this)
            stack.settle()
            driven.steps += 1


def _exposed(case: FaultCase, events: list[dict[str, Any]]) -> set[str]:
    """VMs with neither BackupTriggered nor a terminal event on the topic: they may still call
    Backups_Trigger (a VM whose trigger went through but whose event waits in the outbox is
    counted too, which only widens what the checker allows)."""
    kinds = (PREFIX + "BackupTriggered", PREFIX + "BackupCompleted", PREFIX + "BackupFailed")
    seen = {str(e.get("subject", "")).lower() for e in events if e["type"] in kinds}
    return {p.name for p in case.vms if p.vm_id.lower() not in seen}


def _arm_outage(stack: Stack, driven: Driven, exposed: set[str], published: int, window_kills: list[str]) -> None:
    """Every Backups_Trigger answers 503 for the outage's length; the ``exposed`` VMs may end at
    trigger with ServiceUnavailable."""
    case = driven.case
    outage = case.arm_outage
    assert outage is not None
    driven.exposed = exposed
    began = stack.clock.now()
    stack.admin("recoveryservices", "POST", "/admin/faults", json=OUTAGE)
    _steps(stack, driven, outage.seconds, case.step_seconds, window_kills)
    restore = {k: case.faults[k] for k in OUTAGE["operations"]["Backups_Trigger"]}
    stack.admin("recoveryservices", "POST", "/admin/faults", json={"operations": {"Backups_Trigger": restore}})
    driven.world.append(
        {
            "fault": "armOutage",
            "afterEvents": published,
            "at": began.isoformat(),
            "seconds": outage.seconds,
            "exposed": len(exposed),
        }
    )


def _downstream_fault(
    stack: Stack,
    driven: Driven,
    fault: DownstreamFault,
    published: int,
    window_kills: list[str],
    kills: list[Kill],
    last: bool,
) -> None:
    """The downstream topic refuses / is unreachable / is down for the fault's length; then it is
    restored (the emulator restarted with what it kept) and, if drawn, the operator retry route
    is called. The app's own outbox redelivers the rest (backoff, 15-minute sweep)."""
    case = driven.case
    began = stack.clock.now()
    if fault.kind == "sigkill":
        stack.kill_eventgrid()
    elif fault.kind == "unreachable":
        stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream", "mode": "unreachable"})
    else:
        stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream", "status": int(fault.kind)})
    step = LONG_FAULT_STEP_SECONDS if fault.seconds >= 3600 else case.step_seconds
    _steps(stack, driven, fault.seconds, step, window_kills, kills, published)
    if fault.kind == "sigkill":
        stack.start_eventgrid()
    else:
        stack.admin("eventgrid", "POST", "/admin/faults", json={"topic": "downstream"})
    retried = None
    if fault.retry_route:
        response = stack.api("POST", "deliveries/retry")
        if response.status_code >= 300:
            driven.notes.append(f"POST /api/deliveries/retry: {response.status_code} {response.text[:200]}")
        retried = response.status_code
    if last:
        stack.settle()
    driven.world.append(
        {
            "fault": "downstream",
            "kind": fault.kind,
            "afterEvents": published,
            "at": began.isoformat(),
            "seconds": fault.seconds,
            "retryRoute": retried,
        }
    )


def drive(stack: Stack, case: FaultCase) -> Driven:
    """Run ``case`` on ``stack`` to the end; never raises for a run that does not finish (the
    checker reports that), only for a stack that does not work at all."""
    began = time.monotonic()
    stack.settle()
    driven = Driven(case, stack.base, stack.clock.now())
    driven.bystanders = _protection(stack, [b.name for b in case.bystanders])
    if len(driven.bystanders) != len(case.bystanders):
        raise AssertionError(f"bystanders {driven.bystanders}, the case has {case.bystanders}")
    started = stack.api("POST", f"chains/{CHAIN}/runs", {"runId": case.run_id, "waitForUpstream": True})
    if started.status_code != 202:
        raise AssertionError(f"starting run {case.run_id}: {started.status_code} {started.text}")
    stack.settle()
    event_id = f"upstream-{case.seed}"
    deliveries = case.upstream_deliveries
    outage = case.arm_outage
    window_kills = list(case.window_kills)
    if outage and outage.after_events == 0:
        # the outage begins before the upstream signal: every VM is exposed
        stack.admin("recoveryservices", "POST", "/admin/faults", json=OUTAGE)
    if case.upstream_while_down:
        # Event Grid cannot reach devhost: it retries on the shared clock (10 s, 30 s, ...), which
        # the steps below move; the run must start backing up once a retry gets through.
        stack.kill_devhost()
        with _PUBLISHING:
            stack.publish_upstream(UPSTREAM_TYPE, UPSTREAM_SUBJECT, {"status": "Succeeded"}, event_id)
        stack.start_devhost()
        stack.settle()
        driven.kills.append({"afterEvents": 1, "mode": "upstreamWhileDown", "at": stack.clock.now().isoformat()})
        deliveries -= 1
    for _ in range(deliveries):
        with _PUBLISHING:
            deliver_upstream(stack, UPSTREAM_TYPE, UPSTREAM_SUBJECT, {"status": "Succeeded"}, event_id=event_id)

    if outage and outage.after_events == 0:
        _arm_outage(stack, driven, {p.name for p in case.vms}, 0, window_kills)
        outage = None
    kills = list(case.kills)
    downstream = list(case.downstream_faults)
    max_steps = int(case.limit_seconds / case.step_seconds)
    while True:
        events = run_events(stack, case.run_id)
        if any(e["type"] == PREFIX + "ChainCompleted" for e in events):
            break
        if driven.steps >= max_steps:
            driven.notes.append(f"no ChainCompleted within {case.limit_seconds:.0f} virtual seconds")
            break
        published = len({e["id"] for e in events})
        if kills and published >= kills[0].after_events:
            _kill(stack, kills.pop(0), driven, published)
            continue
        if outage and published >= outage.after_events:
            _arm_outage(stack, driven, _exposed(case, events), published, window_kills)
            outage = None
            continue
        if downstream and published >= downstream[0].after_events:
            while downstream:  # back to back
                _downstream_fault(stack, driven, downstream.pop(0), published, window_kills, kills, not downstream)
            continue
        if "open" in window_kills and stack.clock.now() + timedelta(seconds=case.step_seconds) >= case.window_opens:
            window_kills.remove("open")
            _kill(stack, Kill(published, "inFlight", 0.0), driven, published)
            continue
        stack.advance(case.step_seconds)
        stack.settle()
        driven.steps += 1
    driven.chain_completed = chain_completed(stack, case.run_id)
    driven.chain_seconds = (stack.clock.now() - driven.run_started_at).total_seconds()
    if kills:
        driven.skipped_kills = [f"after {k.after_events} events {k.mode}" for k in kills]
    if "open" in window_kills:
        driven.skipped_kills.append("as the GC window opens")
    if outage:
        driven.skipped_kills.append(f"ARM outage after {outage.after_events} events")
    driven.skipped_kills += [f"downstream {f.kind} after {f.after_events} events" for f in downstream]
    stack.settle()

    if case.gc_mode == WEEKEND_WINDOW:
        # Leases and protection agree with the window open, too (once it has finished opening:
        # with faults, resuming protection VM by VM can outlast the chain run).
        opened = _step_until(stack, case, lambda: _gc_event_count(stack, "GcWindowOpened") >= 1)
        if opened:
            seen = invariants.observe(stack, case, driven.run_started_at, bystanders=driven.bystanders)
            mid = invariants.check_protection(seen, case) + invariants.check_outside_set(seen)
            driven.mid_violations = [
                invariants.Violation(v.invariant, v.vm, "with the GC window open: " + v.detail) for v in mid
            ]
        else:
            driven.notes.append("the weekly GC window did not open")
        if case.stop_refused:
            # Azure refuses to stop these as the window closes (and still the resume-refused ones)
            body = case.refusal_faults(case.resume_refused + case.stop_refused)
            stack.admin("recoveryservices", "POST", "/admin/faults", json=body)
        driven.window_closed = _run_window_to_close(stack, driven, "close" in window_kills)
        if not driven.window_closed:
            driven.notes.append("the weekly GC window did not close")
        stack.admin("recoveryservices", "POST", "/admin/faults", json=case.refusal_faults(()))
        driven.gc_events = [
            e
            for e in stack.downstream()
            if (
                str(e.get("subject", "")).startswith("/gc/")
                and e["type"] in (PREFIX + "GcWindowOpened", PREFIX + "GcWindowClosed")
            )
            or e["type"] == PREFIX + "GcStopFailed"
        ]
    state = stack.admin("recoveryservices", "GET", "/admin/state")
    driven.faults_injected = {str(k): int(v) for k, v in state["faultsInjected"].items()}
    driven.requests = dict(stack.admin("recoveryservices", "GET", "/admin/requests"))
    driven.wall_seconds = time.monotonic() - began
    return driven


def _step_until(stack: Stack, case: FaultCase, done: Callable[[], bool], limit: float = 7200.0) -> bool:
    """Move the clock in the case's steps until ``done()`` (at most ``limit`` virtual seconds)."""
    elapsed = 0.0
    while not done():
        if elapsed >= limit:
            return False
        stack.advance(case.step_seconds)
        stack.settle()
        elapsed += case.step_seconds
    return True


def _run_window_to_close(stack: Stack, driven: Driven, kill_at_close: bool) -> bool:
    """Weekend-window mode: move on an hour at a time up to the window's closing time, then in the
    case's small steps (its durable retries come every few seconds) until it closed — SIGKILLing
    devhost in the step it closes in, if asked — then one lease sweep interval more, so that the
    lease of a holder that died would have been reclaimed."""
    closes = driven.case.window_opens + timedelta(hours=WINDOW_HOURS)
    deadline = closes + timedelta(seconds=WINDOW_CLOSE_LIMIT_SECONDS)
    while _gc_event_count(stack, "GcWindowClosed") < 1:
        now = stack.clock.now()
        if now >= deadline:
            return False
        to_close = (closes - now).total_seconds()
        step = min(WINDOW_STEP_SECONDS, to_close) if to_close > 0 else driven.case.step_seconds
        if kill_at_close and to_close <= step:
            kill_at_close = False
            _kill(stack, Kill(0, "inFlight", 0.0), driven, -1, step)
        else:
            stack.advance(step)
            stack.settle()
    stack.advance(600)
    stack.settle()
    return True


def run_case(case: FaultCase, base: Path) -> tuple[Driven, invariants.Report]:
    """Start the stack, drive ``case`` and check every invariant; the stack is stopped after."""
    with case_stack(case, base) as stack:
        driven = drive(stack, case)
        observed = invariants.observe(
            stack, case, driven.run_started_at, bystanders=driven.bystanders, exposed=driven.exposed
        )
        report = invariants.check(observed, case)
    if case.gc_mode == WEEKEND_WINDOW:
        report.violations += invariants.check_gc_refusals(driven.gc_events, case)
    report.violations[:0] = driven.mid_violations
    for note in driven.notes:
        report.violations.insert(0, invariants.Violation("bounded-run", None, note))
    return driven, report
