"""Pausing a chain: the ``chain_control`` entity's state and operations, the pause request body,
and the messages of the orchestrations that record a pause and tell downstream about it. Pure:
the entity, the triggers and the orchestrations do the I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

MAX_REASON_CHARS = 500
MAX_BY_CHARS = 256
PAUSED_EVENT = "paused"  # raised into a run waiting for upstream when its chain is paused
SKIPPED_REASON = "paused"  # ChainSkipped ``reason`` when a paused chain skips a run


class PauseRequest(BaseModel):
    """``POST /api/chains/{chain}/pause``: an optional reason (strict: a number is no reason)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Annotated[str | None, Field(default=None, min_length=1, max_length=MAX_REASON_CHARS)] = None


class EmptyBody(BaseModel):
    """A request that takes no fields (resume, retry): an empty body or ``{}``."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass
class ChainControl:
    """A chain's pause state; ``since``/``reason``/``by`` describe the pause while it lasts."""

    paused: bool = False
    since: str | None = None
    reason: str | None = None
    by: str | None = None

    @classmethod
    def from_state(cls, state: Any) -> ChainControl:
        if not isinstance(state, dict):
            return cls()
        return cls(
            paused=bool(state.get("paused")),
            since=state.get("since"),
            reason=state.get("reason"),
            by=state.get("by"),
        )

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    def pause_view(self) -> dict[str, Any] | None:
        """``{since, reason, by}`` while paused, else None (GET /api/chains, ChainSkipped detail)."""
        return {"since": self.since, "reason": self.reason, "by": self.by} if self.paused else None


def paused_refusal(chain: str, control: ChainControl) -> str | None:
    """Why a run of a paused chain is not started (None when the chain is not paused)."""
    if not control.paused:
        return None
    why = f" ({control.reason})" if control.reason else ""
    return f"chain {chain!r} is paused since {control.since}{why}; resume it first (POST /api/chains/{chain}/resume)"


class ControlChange(TypedDict):
    """What a ``pause`` or ``resume`` did: ``changed`` is False when the chain already was in that
    state (nothing recorded, no event); ``before`` and ``state`` are the states around it."""

    changed: bool
    before: dict[str, Any]
    state: dict[str, Any]


def control_apply(control: ChainControl, operation: str, args: dict[str, Any]) -> ControlChange:
    """Apply ``get``, ``pause`` (``at``, ``reason``, ``by``) or ``resume`` to ``control``.
    Pausing a paused chain keeps the first pause (its ``since``); resuming a running one does nothing."""
    before = control.to_state()
    changed = False
    if operation == "pause" and not control.paused:
        control.paused, control.since = True, str(args["at"])
        control.reason, control.by = args.get("reason"), args.get("by")
        changed = True
    elif operation == "resume" and control.paused:
        control.paused, control.since, control.reason, control.by = False, None, None, None
        changed = True
    elif operation not in ("get", "pause", "resume"):
        raise ValueError(f"chain_control has no operation {operation!r}; use get, pause or resume")
    return {"changed": changed, "before": before, "state": control.to_state()}


class ControlInput(TypedDict):
    """``change_chain_control``: record a pause or resume of ``chain`` and publish its event.
    ``label`` names the change (its instance id and its event's ``runId``)."""

    action: Literal["pause", "resume"]
    chain: str
    label: str
    reason: str | None
    by: str | None
    prefix: str
    source: str


class SkipInput(TypedDict):
    """``tell_chain_skipped``: publish ChainSkipped (reason ``paused``) for the run ``runId`` a
    paused chain did not start; ``detail`` is the pause, and what was skipped."""

    chain: str
    runId: str
    detail: dict[str, Any]
    prefix: str
    source: str
