"""History events in the JSON shape the Durable extension hands to out-of-proc SDKs
(DTFx ``HistoryEvent`` properties, PascalCase, ``EventType`` as the integer of
``HistoryEventType``)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from typing import Any

EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_FAILED = 2
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_ORCHESTRATION_CREATED = 7
SUB_ORCHESTRATION_COMPLETED = 8
SUB_ORCHESTRATION_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_SENT = 14
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16
EXECUTION_SUSPENDED = 19
EXECUTION_RESUMED = 20

NAMES = {
    EXECUTION_STARTED: "ExecutionStarted",
    EXECUTION_COMPLETED: "ExecutionCompleted",
    EXECUTION_FAILED: "ExecutionFailed",
    EXECUTION_TERMINATED: "ExecutionTerminated",
    TASK_SCHEDULED: "TaskScheduled",
    TASK_COMPLETED: "TaskCompleted",
    TASK_FAILED: "TaskFailed",
    SUB_ORCHESTRATION_CREATED: "SubOrchestrationInstanceCreated",
    SUB_ORCHESTRATION_COMPLETED: "SubOrchestrationInstanceCompleted",
    SUB_ORCHESTRATION_FAILED: "SubOrchestrationInstanceFailed",
    TIMER_CREATED: "TimerCreated",
    TIMER_FIRED: "TimerFired",
    ORCHESTRATOR_STARTED: "OrchestratorStarted",
    ORCHESTRATOR_COMPLETED: "OrchestratorCompleted",
    EVENT_SENT: "EventSent",
    EVENT_RAISED: "EventRaised",
    CONTINUE_AS_NEW: "ContinueAsNew",
    EXECUTION_SUSPENDED: "ExecutionSuspended",
    EXECUTION_RESUMED: "ExecutionResumed",
}


def ts(epoch: float) -> str:
    """A history timestamp as the extension sends it: the context's history goes through
    Json.NET (OrchestrationContextToString: JArray.FromObject(History)), whose ISO format writes
    the 7-digit tick fraction without trailing zeros, and no fraction at all on a whole second
    (Newtonsoft.Json DateTimeUtils.WriteDefaultIsoDate). The SDK parses every one on every replay;
    the shorter form saves only a few percent of that (measured), so this is for fidelity."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def event(event_type: int, when: float, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": ts(when), **fields}


def execution_started(
    when: float,
    name: str,
    instance_id: str,
    execution_id: str,
    input_: Any,
    parent: dict[str, Any] | None,
    version: str | None,
) -> dict[str, Any]:
    return event(
        EXECUTION_STARTED,
        when,
        Name=name,
        Version=version,  # null when unversioned, as the extension serializes it
        Input=input_,
        OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
        ParentInstance=parent,
    )


def status_history(events: list[dict[str, Any]], *, show_output: bool) -> list[dict[str, Any]]:
    """History as the status API shows it: event types by name, no ``EventId``/``IsPlayed``,
    scheduling events folded into their completions (``FunctionName``, ``ScheduledTime``), results
    only when asked for, and never an input — the extension's DurableClient
    GetDurableOrchestrationStatusAsync removes ``Input`` from every event that has one, whatever
    ``showInput`` says (that flag is the instance's own input)."""
    scheduled = {e["EventId"]: e for e in events if e["EventType"] in (TASK_SCHEDULED, SUB_ORCHESTRATION_CREATED)}
    out: list[dict[str, Any]] = []
    for ev in events:
        kind = ev["EventType"]
        if kind in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED, TASK_SCHEDULED, SUB_ORCHESTRATION_CREATED):
            continue
        view = {k: v for k, v in ev.items() if k not in ("IsPlayed", "EventId")}
        view["EventType"] = NAMES.get(kind, str(kind))
        if kind in (TASK_COMPLETED, TASK_FAILED, SUB_ORCHESTRATION_COMPLETED, SUB_ORCHESTRATION_FAILED):
            origin = scheduled.get(view.pop("TaskScheduledId", None), {})
            view["FunctionName"] = origin.get("Name")
            view["ScheduledTime"] = origin.get("Timestamp")
        if kind == EXECUTION_STARTED:
            view["FunctionName"] = view.pop("Name", None)
            for dropped in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                view.pop(dropped, None)
        if kind == TIMER_FIRED:
            view.pop("TimerId", None)
        view.pop("Input", None)
        if "Result" in view:
            if show_output:
                with contextlib.suppress(json.JSONDecodeError, TypeError):
                    view["Result"] = json.loads(view["Result"])
            else:
                view.pop("Result")
        out.append(view)
    return out
