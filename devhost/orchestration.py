"""One orchestration episode: deliver new events, replay the orchestrator through the SDK's own
entry point, and turn the actions it returns into history and outgoing work — as the Durable
extension's out-of-proc shim does on top of DTFx.

Sequence numbers: the SDK numbers every scheduled task (activities, timers, sub-orchestrations,
entity calls and signals, continue-as-new) in the order it meets them, and numbers a retry's timer
and its rescheduled task when it processes the failure/timer event. To agree with it, an episode
delivers the events that may resume user code first and retry bookkeeping events last: then this
episode's new user actions take the next numbers, and retry timers/reschedules the ones after.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost import actions as act
from devhost import history as h
from devhost.instance_ids import orchestration_id_error
from devhost.store import InstanceRow, Message
from devhost.workers import WorkerLost

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
# Azure's out-of-proc shim sets the custom status through a serializer capped at 16 KB of UTF-16
# (size truncated to whole KB) that throws past it, failing the orchestration and keeping the old
# status (azure-functions-durable-extension: OutOfProcOrchestrationShim.ScheduleDurableTaskEvents →
# SetCustomStatus → MessagePayloadDataConverter.Serialize(value, MaxCustomStatusPayloadSizeInKB = 16)).
MAX_CUSTOM_STATUS_KB = 16


def custom_status_error(value: Any) -> str | None:
    """Azure's error for a custom status over the cap (None when it fits). Like Json.NET, the
    JSON is compact and leaves non-ASCII characters unescaped."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (
        f"The UTF-16 size of the JSON-serialized payload must not exceed {MAX_CUSTOM_STATUS_KB:,} KB. "
        f"The current payload size is {size_kb:,} KB."
    )


@dataclass
class Work:
    """Everything an episode asks to be persisted together."""

    new_history: list[dict[str, Any]] = field(default_factory=list)
    activities: list[tuple[int, str, str | None]] = field(default_factory=list)
    timers: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sub_orchestrations: list[dict[str, Any]] = field(default_factory=list)
    entity_messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: str = "Running"
    output: Any = None
    has_output: bool = False
    custom_status: Any = None
    continue_as_new: dict[str, Any] | None = None
    failure: str | None = None


def new_state() -> dict[str, Any]:
    """Replay bookkeeping: ``tasks`` by sequence number; ``retried_calls`` holds each call made with
    retry options (keyed by its first attempt's number): the options, the attempt count and what
    to call again."""
    return {"next_id": 0, "tasks": {}, "retried_calls": {}}


def _retry_delay_seconds(options: dict[str, Any], attempt: int) -> float:
    first = float(options.get("firstRetryIntervalInMilliseconds", 1000)) / 1000.0
    coefficient = float(options.get("backoffCoefficient", 1.0))
    delay = first * coefficient ** max(0, attempt - 1)
    cap = options.get("maxRetryIntervalInMilliseconds")
    return min(delay, float(cap) / 1000.0) if cap else delay


def _is_allocating(ev: dict[str, Any], state: dict[str, Any]) -> bool:
    """Does the SDK give this event a sequence number of its own (retry bookkeeping) without
    resuming user code?"""
    task = None
    if ev["EventType"] in (h.TASK_FAILED, h.SUB_ORCHESTRATION_FAILED):
        task = state["tasks"].get(str(ev.get("TaskScheduledId")))
        return bool(task and task.get("retried_call") is not None)
    if ev["EventType"] == h.TIMER_FIRED:
        task = state["tasks"].get(str(ev.get("TimerId")))
        if task and task.get("role") == "retryTimer":
            call = state["retried_calls"][str(task["retried_call"])]
            return bool(call["attempt"] < int(call["options"].get("maxNumberOfAttempts", 1)))
    return False


class NonDeterminismError(RuntimeError):
    pass


def _check_replay(flat: list[act.Action], state: dict[str, Any]) -> list[act.Action]:
    """Match replayed actions with the tasks history already holds; return the new actions."""
    user_ids = sorted(int(i) for i, t in state["tasks"].items() if t["origin"] == "user")
    for position, task_id in enumerate(user_ids):
        expected = state["tasks"][str(task_id)]
        if position >= len(flat):
            raise NonDeterminismError(
                f"Non-Deterministic workflow detected: history holds {expected['kind']} "
                f"'{expected['name']}' (task {task_id}) but the orchestrator no longer schedules it. "
                "Orchestrator code must not change the order of scheduled work for running instances."
            )
        action = flat[position]
        if action.kind != expected["kind"] or action.name != expected["name"]:
            raise NonDeterminismError(
                f"Non-Deterministic workflow detected: task {task_id} was {expected['kind']} "
                f"'{expected['name']}' in history but the replay now schedules {action.kind} "
                f"'{action.name}'. Orchestrator code must be deterministic (no clock, randomness or "
                "I/O) and must not change for running instances."
            )
    return flat[len(user_ids) :]


def parse_sdk_result(result: str | BaseException) -> tuple[dict[str, Any], str | None]:
    """The OrchestratorState JSON and, if the orchestrator raised, its error message."""
    if isinstance(result, BaseException):
        text = str(result)
        if OUT_OF_PROC_MARKER in text:
            message, _, payload = text.partition(OUT_OF_PROC_MARKER)
            try:
                return json.loads(payload), message
            except json.JSONDecodeError:
                return {"actions": [], "isDone": False}, message
        return {"actions": [], "isDone": False}, f"{type(result).__name__}: {text}"
    return json.loads(result), None


class Episode:
    """Replays ``inst`` once over ``old_history`` plus the events in ``messages``."""

    def __init__(self, inst: InstanceRow, old_history: list[dict[str, Any]], now: float, schema: int):
        self.inst = inst
        self.old_history = old_history
        self.now = now
        self.schema = schema
        self.state: dict[str, Any] = json.loads(json.dumps(inst.state)) or new_state()
        self.work = Work(custom_status=json.loads(inst.custom_status) if inst.custom_status else None)

    # --- event ordering -----------------------------------------------------------------------
    def order_events(self, messages: list[Message]) -> list[dict[str, Any]]:
        # Arrival order, except that a new execution's start comes first.
        ordered = sorted(messages, key=lambda m: (m.payload.get("order", 0), m.id))
        events = [m.payload["event"] for m in ordered]
        normal = [e for e in events if not _is_allocating(e, self.state)]
        allocating = [e for e in events if _is_allocating(e, self.state)]
        return normal + allocating

    def context_json(self, new_events: list[dict[str, Any]]) -> str:
        played = [{**e, "IsPlayed": True} for e in self.old_history]
        started = h.event(h.ORCHESTRATOR_STARTED, self.now)
        history = [*played, started, *new_events]
        self.work.new_history = [started, *new_events]
        context: dict[str, Any] = {
            "history": history,
            "instanceId": self.inst.instance_id,
            "isReplaying": bool(self.old_history),
            "parentInstanceId": self.inst.parent_instance_id,
            "input": json.loads(self.inst.input) if self.inst.input is not None else None,
            # As the extension sends them: V2 as the base, the newest schema as "New" (the SDK picks
            # the highest it knows). No long-timer settings: like the DTS/MSSQL backends, devhost's
            # timers have no maximum duration, so the SDK schedules every timer as one.
            "upperSchemaVersion": min(self.schema, 1),
        }
        if self.schema >= 2:
            context["upperSchemaVersionNew"] = self.schema
        return json.dumps(context)

    # --- id allocation ------------------------------------------------------------------------
    def _allocate(self, task: dict[str, Any]) -> int:
        task_id = int(self.state["next_id"])
        self.state["next_id"] = task_id + 1
        self.state["tasks"][str(task_id)] = task
        return task_id

    def _schedule_call(
        self, task_id: int, kind: str, name: str, input_: Any, instance_id: str | None, version: str | None = None
    ) -> None:
        if kind == "activity":
            self.work.new_history.append(h.event(h.TASK_SCHEDULED, self.now, task_id, Name=name, Input=input_))
            self.work.activities.append((task_id, name, input_))
        else:
            child_id = instance_id or f"{self.inst.instance_id}:{task_id:04d}"
            self.work.new_history.append(
                h.event(
                    h.SUB_ORCHESTRATION_CREATED,
                    self.now,
                    task_id,
                    Name=name,
                    InstanceId=child_id,
                    Input=input_,
                    Version=version,
                )
            )
            # The requested version (None: the runtime gives the child its defaultVersion).
            self.work.sub_orchestrations.append(
                {"task_id": task_id, "name": name, "instance_id": child_id, "input": input_, "version": version}
            )

    def _schedule_timer(self, task_id: int, fire_at: float, cancelled: bool = False) -> None:
        self.work.new_history.append(h.event(h.TIMER_CREATED, self.now, task_id, FireAt=h.ts(fire_at)))
        if not cancelled:
            fired = h.event(h.TIMER_FIRED, fire_at, TimerId=task_id, FireAt=h.ts(fire_at))
            self.work.timers.append((fire_at, fired))

    def schedule_new(self, new_actions: list[act.Action]) -> None:
        from dateutil.parser import isoparse

        for action in new_actions:
            raw = action.raw
            task: dict[str, Any] = {"kind": action.kind, "name": action.name, "origin": "user"}
            task_id = self._allocate(task)
            if action.kind in ("activity", "suborchestration"):
                options = action.retry_options
                if options is not None:
                    task["retried_call"] = task_id
                    self.state["retried_calls"][str(task_id)] = {
                        "options": options,
                        "attempt": 1,
                        "kind": action.kind,
                        "name": raw.get("functionName"),
                        "input": raw.get("input"),
                        "instance_id": raw.get("instanceId"),
                        "version": raw.get("version"),
                    }
                self._schedule_call(
                    task_id,
                    action.kind,
                    str(raw.get("functionName")),
                    raw.get("input"),
                    raw.get("instanceId"),
                    raw.get("version"),
                )
            elif action.kind == "timer":
                fire_at = isoparse(str(raw["fireAt"])).timestamp()
                self._schedule_timer(task_id, fire_at, bool(raw.get("isCanceled")))
            elif action.kind in ("entityCall", "entitySignal"):
                self._send_entity(task_id, raw, signal=action.kind == "entitySignal")
            # continueAsNew takes its number here; the episode's outcome handles it.

    def _send_entity(self, task_id: int, raw: dict[str, Any], *, signal: bool) -> None:
        scheduler_id = str(raw["instanceId"])
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.inst.instance_id}/{self.inst.execution_id}/{task_id}"))
        request = {
            "id": request_id,
            "op": raw.get("operation"),
            "signal": signal,
            "input": raw.get("input"),
            "parent": None if signal else self.inst.instance_id,
            "parentExecution": None if signal else self.inst.execution_id,
        }
        self.work.new_history.append(
            h.event(
                h.EVENT_SENT,
                self.now,
                task_id,
                InstanceId=scheduler_id,
                Name="op",
                Input=json.dumps(request),
            )
        )
        self.work.entity_messages.append((scheduler_id, request))

    def apply_retry_bookkeeping(self, new_events: list[dict[str, Any]]) -> None:
        """Give retry timers and rescheduled attempts the numbers the SDK gives them."""
        for ev in new_events:
            if not _is_allocating(ev, self.state):
                continue
            if ev["EventType"] in (h.TASK_FAILED, h.SUB_ORCHESTRATION_FAILED):
                call_id = self.state["tasks"][str(ev["TaskScheduledId"])]["retried_call"]
                call = self.state["retried_calls"][str(call_id)]
                timer_id = self._allocate(
                    {
                        "kind": "timer",
                        "name": "timer",
                        "origin": "retry",
                        "role": "retryTimer",
                        "retried_call": call_id,
                    }
                )
                self._schedule_timer(timer_id, self.now + _retry_delay_seconds(call["options"], call["attempt"]))
            else:
                call_id = self.state["tasks"][str(ev["TimerId"])]["retried_call"]
                call = self.state["retried_calls"][str(call_id)]
                call["attempt"] += 1
                task_id = self._allocate(
                    {"kind": call["kind"], "name": call["name"], "origin": "retry", "retried_call": call_id}
                )
                self._schedule_call(
                    task_id, call["kind"], call["name"], call["input"], call["instance_id"], call.get("version")
                )

    # --- the whole episode --------------------------------------------------------------------
    def run(self, messages: list[Message], invoke: Callable[[str], str]) -> Work:
        new_events = self.order_events(messages)
        context = self.context_json(new_events)
        try:
            raw_result: str | BaseException = invoke(context)
        except WorkerLost:
            raise
        except Exception as err:  # the SDK reports orchestrator failures by raising
            raw_result = err
        state, error = parse_sdk_result(raw_result)
        if "customStatus" in state:
            too_big = custom_status_error(state["customStatus"])
            if too_big is not None:  # set before the actions are processed, as the shim does
                return self.fail(f"Orchestrator function '{self.inst.name}' failed: {too_big}")
            self.work.custom_status = state["customStatus"]
        try:
            flat = act.flatten(state.get("actions") or [])
            new_actions = _check_replay(flat, self.state) if error is None else []
        except (NonDeterminismError, act.UnsupportedAction) as err:
            return self.fail(str(err))
        if error is not None:
            return self.fail(f"Orchestrator function '{self.inst.name}' failed: {error}")
        bad_child = _invalid_child_id(new_actions)
        if bad_child is not None:  # the extension's CallSubOrchestratorAsync throws ArgumentException
            return self.fail(f"Orchestrator function '{self.inst.name}' failed: {bad_child}")
        self.schedule_new(new_actions)
        self.apply_retry_bookkeeping(new_events)
        if state.get("isDone"):
            continued = [a for a in flat if a.type == act.CONTINUE_AS_NEW]
            if continued:
                # Events this execution received and no wait consumed end with it: the extension
                # continues an out-of-process orchestrator as new with preserveUnprocessedEvents
                # false (OutOfProcOrchestrationShim calls ContinueAsNew(action.Input); only with true
                # does it RescheduleBufferedExternalEvents). Events still queued reach the next one.
                self.work.continue_as_new = {"input": continued[-1].raw.get("input")}
                self.work.status = "Running"
            else:
                self.work.status = "Completed"
                self.work.output = state.get("output")
                self.work.has_output = True
                # DTFx records the completion in history (ProcessWorkflowCompletedTaskDecision adds
                # ExecutionCompletedEvent before the closing OrchestratorCompleted).
                self.work.new_history.append(
                    h.event(
                        h.EXECUTION_COMPLETED,
                        self.now,
                        OrchestrationStatus="Completed",
                        Result=json.dumps(self.work.output),
                    )
                )
        self.work.new_history.append(h.event(h.ORCHESTRATOR_COMPLETED, self.now))
        return self.work

    def fail_without_running(self, messages: list[Message], message: str) -> Work:
        """Fail the instance over its new events without invoking the orchestrator (as DTFx does for
        a version mismatch under versionFailureStrategy Fail): the events enter history, then the
        failure."""
        self.work.new_history = [h.event(h.ORCHESTRATOR_STARTED, self.now), *self.order_events(messages)]
        return self.fail(message)

    def fail(self, message: str) -> Work:
        self.work.status = "Failed"
        self.work.failure = message
        self.work.output = message
        self.work.has_output = True
        self.work.activities.clear()
        self.work.timers.clear()
        self.work.sub_orchestrations.clear()
        self.work.entity_messages.clear()
        self.work.new_history.append(
            h.event(h.EXECUTION_COMPLETED, self.now, OrchestrationStatus="Failed", Result=json.dumps(message))
        )
        return self.work


def _invalid_child_id(new_actions: list[act.Action]) -> str | None:
    """The extension's refusal of the first sub-orchestration id it would refuse at start."""
    for action in new_actions:
        child_id = action.raw.get("instanceId") if action.kind == "suborchestration" else None
        if isinstance(child_id, str):
            error = orchestration_id_error(child_id)
            if error is not None:
                return error
    return None
