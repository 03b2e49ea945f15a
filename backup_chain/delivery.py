"""The downstream outbox (docs/events.md): events the topic did not accept at once are
kept here, per run, until it does. Pure state and rules; the ``delivery_outbox`` entity holds it
and the ``deliver_events`` orchestration drains it.

An outbox keeps each event as pending (the deliverer is trying it) or undelivered (the topic
refused it for good, or kept failing past the retry horizon); both keep the event. It hands out
pending events oldest first (event time, then lifecycle rank, so per VM BackupTriggered <
SnapshotCompleted < terminal however signals interleave), and once anything is pending it hands
out undelivered ones too, in the same order: an event never overtakes an older one of its run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backup_chain.ids import outbox_run_key

# Lifecycle order within one instant (ties on the orchestration clock).
_RANK = {
    "ChainStarted": 0,
    "UpstreamReceived": 1,
    "UpstreamTimedOut": 1,
    "ChainSkipped": 2,
    "BackupDelayed": 2,
    "BackupTriggered": 3,
    "SnapshotLate": 4,  # after BackupTriggered, before the VM's end (6 would put it after them)
    "SnapshotCompleted": 4,
    "BackupCompleted": 5,
    "BackupFailed": 5,
    "ChainCompleted": 9,
}
# Failures the topic will keep giving until someone changes something: bad credentials or a
# missing "EventGrid Data Sender" role (401/403), a wrong or deleted topic (404), a bad endpoint
# (no such host, bad URL), or an event the topic will never take (400, 413).
PERMANENT_STATUS = frozenset({400, 401, 403, 404, 410, 413})
PERMANENT_CODES = frozenset({"SettingsError", "InvalidEndpoint", "NameResolutionError"})
DELIVERED_KEPT = 2000  # ids remembered after delivery, so a late re-add is not sent twice
BATCH_EVENTS = 100  # events per publish request (far under Event Grid's 1 MB per request)
WAKE_EVENT = "wake"  # raised to a deliverer waiting out a backoff: try now (``{"retry": bool}``)


def outbox_key(event: dict[str, Any]) -> str:
    """One outbox per run: chain and run id from the event's data (GC events have their own run)."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    return outbox_run_key(str((data or {}).get("chain") or "-"), str((data or {}).get("runId") or "-"))


def is_permanent(error: dict[str, Any]) -> bool:
    status = error.get("status")
    return status in PERMANENT_STATUS or error.get("code") in PERMANENT_CODES


def reason_of(error: dict[str, Any]) -> str:
    """``HTTP 403 Forbidden: <message>``, without Event Grid's per-request "Report '<id>' ..." tail."""
    status, code = error.get("status"), error.get("code")
    if status:  # a code errors.failure made up from the status says nothing more than the status
        head = f"HTTP {status}" if code in (None, f"HTTP{status}") else f"HTTP {status} {code}"
    else:
        head = str(code or "error")
    message = str(error.get("message") or "").split(" Report '", 1)[0]
    return f"{head}: {message[:300]}"


def reason_kind(reason: str) -> str:
    """What makes two reasons the same failure (status and code, not the message)."""
    return reason.split(": ", 1)[0]


def backoff_seconds(attempt: int, first: float, cap: float) -> float:
    """Exponential backoff after the ``attempt``-th failure (1-based): first, 2x, 4x ... cap."""
    return float(min(cap, first * (2 ** max(0, min(attempt - 1, 30)))))


def _order(record: dict[str, Any]) -> tuple[str, int, str]:
    event = record["event"]
    kind = str(event.get("type", "")).rsplit(".", 1)[-1]
    return (str(event.get("time", "")), _RANK.get(kind, 6), str(event.get("id", "")))


@dataclass
class Outbox:
    key: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)  # {"event", "state", "reason", "since", "attempts"}
    delivered: list[str] = field(default_factory=list)

    @classmethod
    def from_state(cls, state: Any) -> Outbox:
        if not isinstance(state, dict):
            return cls()
        return cls(str(state.get("key") or ""), list(state.get("records") or []), list(state.get("delivered") or []))

    def to_state(self) -> dict[str, Any]:
        return {"key": self.key, "records": self.records, "delivered": self.delivered}

    def _ids(self) -> set[str]:
        return {str(r["event"]["id"]) for r in self.records}

    def pending(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["state"] == "pending"]

    def undelivered(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["state"] == "undelivered"]

    def add(self, events: list[dict[str, Any]], reason: str | None, at: str) -> int:
        """Keep ``events`` (pending); ids already kept or delivered are ignored. Returns how many were new."""
        known, done = self._ids(), set(self.delivered)
        added = 0
        for event in events:
            event_id = str(event["id"])
            if event_id in known or event_id in done:
                continue
            self.records.append({"event": event, "state": "pending", "reason": reason, "since": at, "attempts": 0})
            known.add(event_id)
            added += 1
        self.records.sort(key=_order)
        return added

    def take(self, limit: int = BATCH_EVENTS) -> list[dict[str, Any]]:
        """The next events to send, oldest first; none unless something is pending."""
        if not self.pending():
            return []
        return [r["event"] for r in self.records[:limit]]

    def head_since(self) -> str | None:
        """When the oldest pending event was first kept (the retry horizon counts from it; events
        already undelivered that go along do not make a new one expire at its first failure)."""
        return min((str(r["since"]) for r in self.pending()), default=None)

    def mark_delivered(self, ids: list[str]) -> int:
        done = set(ids)
        before = len(self.records)
        self.records = [r for r in self.records if str(r["event"]["id"]) not in done]
        self.delivered = (self.delivered + [i for i in ids if i not in self.delivered])[-DELIVERED_KEPT:]
        return before - len(self.records)

    def mark_failed(self, reason: str, *, permanent: bool) -> list[dict[str, Any]]:
        """A send of the head failed. Transient: everything stays pending with the reason. Permanent
        (or past the horizon): every kept event becomes undelivered, since the topic refuses the
        app, not one event. Returns the events that newly became undelivered (or changed reason)."""
        changed: list[dict[str, Any]] = []
        for record in self.records:
            record["attempts"] = int(record.get("attempts", 0)) + (1 if record["state"] == "pending" else 0)
            record["reason"] = reason
            if permanent:
                record["state"] = "undelivered"
                # Reported once per reason: a sweep retrying a still-refused event stays quiet.
                if record.get("reported") != reason_kind(reason):
                    record["reported"] = reason_kind(reason)
                    changed.append(record["event"])
        return changed

    def retry(self) -> int:
        """Make undelivered events pending again (the sweep, the operator route)."""
        count = 0
        for record in self.records:
            if record["state"] == "undelivered":
                record["state"] = "pending"
                count += 1
        return count

    def summary(self) -> dict[str, Any]:
        def brief(record: dict[str, Any]) -> dict[str, Any]:
            event = record["event"]
            return {
                "id": event.get("id"),
                "type": event.get("type"),
                "subject": event.get("subject"),
                "time": event.get("time"),
                "reason": record.get("reason"),
                "since": record.get("since"),
                "attempts": record.get("attempts", 0),
            }

        return {
            "key": self.key,
            "pending": [brief(r) for r in self.pending()],
            "undelivered": [brief(r) for r in self.undelivered()],
        }

    def blocks(self) -> bool:
        """Must a new event of this run wait behind the outbox (anything kept, in any state)?"""
        return bool(self.records)


def outbox_apply(outbox: Outbox, operation: str, args: dict[str, Any]) -> Any:
    """One entity operation on the outbox; returns the operation's result."""
    if operation == "add":
        outbox.key = outbox.key or str(args.get("key") or "")
        return outbox.add(list(args["events"]), args.get("reason"), str(args.get("at") or ""))
    if operation == "take":
        return {
            "events": outbox.take(int(args.get("limit") or BATCH_EVENTS)),
            "since": outbox.head_since(),
            "kept": len(outbox.records),
        }
    if operation == "delivered":
        return outbox.mark_delivered([str(i) for i in args["ids"]])
    if operation == "failed":
        return outbox.mark_failed(str(args["reason"]), permanent=bool(args.get("permanent")))
    if operation == "retry":
        return outbox.retry()
    if operation == "summary":
        return outbox.summary()
    raise ValueError(
        f"delivery_outbox has no operation {operation!r}; use add, take, delivered, failed, retry, summary"
    )


def delivery_outcome(outcome: Any, summary: dict[str, Any]) -> tuple[Any, str]:
    """(the run's outcome as reported, its delivery state). A run whose events are not all
    delivered never reports plain ``completed``."""
    if summary.get("undelivered"):
        state = "undelivered"
    elif summary.get("pending"):
        state = "pending"
    else:
        return outcome, "delivered"
    return (f"{outcome}WithUndeliveredEvents" if outcome == "completed" else outcome), state
