"""``job_watch``: one entity per vault holding the board of watched backup jobs and the vault's
read budget (``backup_chain.job_watch``). Backups register with ``watch``; the vault's poller
calls ``take`` for the reads due at its next wake, passing the watches that finished since (and
the snapshot durations they showed, which the board learns per VM); a
backup whose poller stayed silent calls ``fallback`` before reading its job itself; a snapshot
beacon (``triggers/beacon.py``) signals ``hint`` so the VM's snapshot watch is read at once."""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df

from backup_chain.ids import job_watch_key
from backup_chain.job_watch import Board
from backup_chain.snapshot_history import plausible_seconds

bp = df.Blueprint()
log = logging.getLogger("backup_chain")


def watch_entity(vault_id: str) -> df.EntityId:
    return df.EntityId("job_watch", job_watch_key(vault_id))


@bp.entity_trigger(context_name="context")
def job_watch(context: df.DurableEntityContext) -> None:
    board = Board.from_state(context.get_state(lambda: None))
    args: dict[str, Any] = context.get_input() or {}
    operation = context.operation_name or ""
    result: Any = None
    if operation == "watch":
        board.watch(args["watch"], float(args["now"]))
    elif operation == "take":
        board.done(list(args.get("done") or []), _learned(args.get("learned")))
        at, per_minute = float(args["at"]), float(args["readsPerMinute"])
        taken = board.take(at, per_minute, float(args["now"]) if "now" in args else None)
        result = {
            "watches": [w.to_dict() for w in taken],
            "readNow": board.read_now,
            "nextWake": board.next_wake(at, per_minute),
            "watching": len(board.watches),
        }
    elif operation == "hint":
        keys, why = board.hint(str(args["vmId"]), float(args["at"]))
        if keys:
            log.info("beacon %s: snapshot watch %s read at once", args.get("beaconId"), ", ".join(keys))
        else:
            # A hint, never truth: a beacon for a VM in no run, or a forged or late one, changes nothing.
            level = logging.WARNING if why == "implausible" else logging.INFO
            log.log(level, "beacon %s for %s changed nothing: %s", args.get("beaconId"), args["vmId"], why)
        result = {"hinted": keys, "why": why}
    elif operation == "fallback":
        result = board.fallback(str(args["key"]), float(args["now"]), float(args["silentSeconds"]))
    else:
        raise ValueError(f"job_watch has no operation {operation!r}; use watch, take, hint or fallback")
    context.set_state(board.to_state())
    context.set_result(result)


def _learned(raw: Any) -> dict[str, float]:
    """``take``'s ``learned`` (absent from pollers that ran before the board learned): watch keys
    to snapshot seconds. Anything else is refused before the board changes."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and plausible_seconds(v) for k, v in raw.items()):
        raise ValueError(f"job_watch take: learned must map watch keys to seconds in (0, 86400], got {raw!r:.200}")
    return {k: float(v) for k, v in raw.items()}
