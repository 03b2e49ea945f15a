"""The actions an out-of-proc orchestrator returns (``OrchestratorState.actions``), flattened in the
order the SDK assigned their sequence numbers, for every replay schema the SDK offers:
V1 (a list of action groups) and V2/V3 (one group with WhenAll/WhenAny compound actions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CALL_ACTIVITY = 0
CALL_ACTIVITY_WITH_RETRY = 1
CALL_SUB_ORCHESTRATOR = 2
CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
CONTINUE_AS_NEW = 4
CREATE_TIMER = 5
WAIT_FOR_EXTERNAL_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

KIND = {
    CALL_ACTIVITY: "activity",
    CALL_ACTIVITY_WITH_RETRY: "activity",
    CALL_SUB_ORCHESTRATOR: "suborchestration",
    CALL_SUB_ORCHESTRATOR_WITH_RETRY: "suborchestration",
    CONTINUE_AS_NEW: "continueAsNew",
    CREATE_TIMER: "timer",
    CALL_ENTITY: "entityCall",
    SIGNAL_ENTITY: "entitySignal",
}


class UnsupportedAction(ValueError):
    pass


@dataclass
class Action:
    """One action that consumes a sequence number (external-event waits do not)."""

    type: int
    raw: dict[str, Any]

    @property
    def kind(self) -> str:
        return KIND[self.type]

    @property
    def name(self) -> str:
        """What identifies the action for the non-determinism check."""
        if self.type in (
            CALL_ACTIVITY,
            CALL_ACTIVITY_WITH_RETRY,
            CALL_SUB_ORCHESTRATOR,
            CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ):
            return str(self.raw.get("functionName"))
        if self.type in (CALL_ENTITY, SIGNAL_ENTITY):
            return f"{self.raw.get('instanceId')}#{self.raw.get('operation')}"
        return self.kind

    @property
    def retry_options(self) -> dict[str, Any] | None:
        if self.type in (CALL_ACTIVITY_WITH_RETRY, CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            return dict(self.raw.get("retryOptions") or {})
        return None


def flatten(actions: list[list[dict[str, Any]]]) -> list[Action]:
    """Sequence-number-consuming actions in SDK allocation order."""
    out: list[Action] = []

    def visit(action: dict[str, Any]) -> None:
        kind = action.get("actionType")
        if kind in (WHEN_ANY, WHEN_ALL):
            for child in action.get("compoundActions", []):
                visit(child)
        elif kind == WAIT_FOR_EXTERNAL_EVENT:
            return
        elif kind == CALL_HTTP:
            raise UnsupportedAction("call_http (durable HTTP) is not supported by devhost")
        elif kind in KIND:
            out.append(Action(int(kind), action))
        else:
            raise UnsupportedAction(f"unknown orchestrator action type {kind!r}")

    for group in actions:
        for action in group:
            visit(action)
    return out
