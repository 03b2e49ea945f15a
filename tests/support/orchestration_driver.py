"""Driving an orchestrator function by hand, step by step, without a host: a fake context whose
tasks are plain records the test answers (or fails), for exception paths and races that the real
stack cannot produce on demand. Signals are collected and sent when the episode ends, as in Durable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class Task:
    kind: str  # "activity", "entity", "timer", "wait", "sub"
    name: str
    operation: str | None = None
    input: Any = None
    result: Any = None


@dataclass
class Context:
    spec: dict[str, Any]
    instance_id: str = "test-instance"
    current_utc_datetime: datetime = datetime(2027, 1, 4, 3, tzinfo=timezone.utc)
    signals: list[tuple[str, str, Any]] = field(default_factory=list)
    custom_status: Any = None

    def get_input(self) -> dict[str, Any]:
        return self.spec

    def wait_for_external_event(self, name: str) -> Task:
        return Task("wait", name)

    def call_entity(self, entity: Any, operation: str, args: Any = None) -> Task:
        return Task("entity", entity.name, operation, args)

    def signal_entity(self, entity: Any, operation: str, args: Any = None) -> None:
        self.signals.append((entity.name, operation, args))

    def call_activity(self, name: str, args: Any) -> Task:
        return Task("activity", name, None, args)

    def call_activity_with_retry(self, name: str, retry: Any, args: Any) -> Task:
        return Task("activity", name, None, args)

    def create_timer(self, when: datetime) -> Task:
        return Task("timer", "timer", None, when)

    def set_custom_status(self, status: Any) -> None:
        self.custom_status = status

    def continue_as_new(self, spec: Any) -> None:
        raise AssertionError("continue-as-new is not driven here")


def user_function(decorated: Any) -> Callable[..., Any]:
    """The generator function behind an ``@bp.orchestration_trigger`` (the SDK wraps it)."""
    handle = decorated._function._func
    return next(c.cell_contents for c in handle.__closure__ or () if c.cell_contents is not handle)


def drive(orchestrator: Callable[..., Any], context: Context, answer: Callable[[Task], Any]) -> Any:
    """Run ``orchestrator`` to its end; ``answer`` gives each task's result, or returns an
    exception instance to fail the task with. Returns the orchestrator's output."""
    steps = orchestrator(context)
    value: Any = None
    failure: BaseException | None = None
    while True:
        try:
            task = steps.throw(failure) if failure is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value
        result = answer(task)
        if isinstance(result, BaseException):
            failure, value = result, None
        else:
            failure, value = None, result
            if isinstance(task, Task):
                task.result = result
