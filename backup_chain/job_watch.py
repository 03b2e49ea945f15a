"""Shared, budgeted job watching: one board per vault lists the backup jobs orchestrations are
waiting on; a poller takes the reads that are due, within the vault's share of the
subscription's ARM read budget (a token bucket), and reads them in one batch.

ARM throttles reads per subscription, so thousands of per-VM pollers each on their own timer would
overrun it together; the board makes the budget one number and decides who waits when it is
short: snapshot watches first (downstream lag is decided there), then waits and transfers, each
oldest-due first. Pure and JSON-serialisable: the ``job_watch`` entity keeps it as its state.

A snapshot beacon (docs/beacon.md) hints that a VM's snapshot was just taken: its snapshot watch
becomes due at once and is read every ``HINT_READ_SECONDS`` for ``HINT_WINDOW_SECONDS``, ahead of
every unhinted watch, still within the budget. A hint is never truth: the watch ends only when a
read shows Take Snapshot completed, and a stray or forged hint costs at most one window's reads per watch.

The board learns each VM's snapshot durations and whether a beacon covered its last snapshot
(``backup_chain.snapshot_history``, from what the poller hands back with finished watches): a
learned VM's next snapshot watch is dense across the VM's own window, a beaconed one is not read
before that window ends (polling is only the lost-beacon fallback), and when the budget is short
the due snapshot watches most likely to have completed are read first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backup_chain.polling import PollPlan
from backup_chain.snapshot_history import SnapshotHistory

PRIORITY = {"snapshot": 0, "end": 1, "transfer": 2}
BURST_SECONDS = 10.0  # the bucket holds this many seconds of budget, so an idle vault can catch up a little
HINT_READ_SECONDS = 2.0  # a hinted watch is read this often (the poller's tick may space it more)...
HINT_WINDOW_SECONDS = 60.0  # ...for this long after the beacon, then it is back on its plan
# A beacon's time must lie within the watched phase as the Durable clock sees it: not before the
# job began (an earlier backup's beacon), not ahead of the poller's latest round by more than this.
HINT_FUTURE_SECONDS = 300.0
CLOCK_SKEW_SECONDS = 30.0  # the VM's clock (NTP) against the job's start time Azure reports
# A genuine beacon is dated about now; the poller takes a round at least every minute while it
# watches anything (job_poller IDLE_SECONDS), so one dated further ahead of the latest round than
# that plus the skew is still hinted but not learned from (docs/beacon.md).
HINT_TRUSTED_AHEAD_SECONDS = 60.0 + CLOCK_SKEW_SECONDS
STARVED_SECONDS = 30.0  # a due snapshot read kept waiting this long by a short budget goes first
POLLER_WAKE_EVENT = "hint"  # raised into the vault's job_poller after a hint, so it reads at once


# A woken poller stays in its execution, looking at the board every tick, only with a tick this
# short; with a longer one it continues as new at once, to listen for the next beacon's wake.
WAKELESS_TICK_SECONDS = 5.0


def poller_awaits_wake(runtime_status: str | None, custom_status: object) -> bool:
    """Whether a beacon should raise the wake into the vault's poller, given its status. Not into
    a running execution that was woken already: it looks at the board every tick until it
    continues as new, and a wake nobody awaits still costs the poller a replay. Anything else
    (unknown status, a poller not running): raise, and a failure is logged (docs/beacon.md)."""
    woken = isinstance(custom_status, Mapping) and custom_status.get("woken") is True
    return not (runtime_status == "Running" and woken)


@dataclass
class Watch:
    """One job an orchestration waits on. ``key`` is unique per waiter and phase; ``event`` is the
    external event name the waiter listens for; ``announce`` (snapshot watches) carries what the
    poller needs to publish SnapshotCompleted itself."""

    key: str
    owner: str
    event: str
    vault_id: str
    job_id: str
    until: str
    anchor: float  # epoch seconds the watched phase began
    plan: dict[str, Any]  # PollPlan fields
    due: float
    announce: dict[str, Any] | None = None
    hinted_until: float | None = None  # a beacon's dense reads last until then
    hint_ahead: bool = False  # that beacon was dated ahead of the board's clock: not learned from

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (camelCase, as the orchestrators and the poll activity use it)."""
        body = dict(self.__dict__)
        body["vaultId"], body["jobId"] = body.pop("vault_id"), body.pop("job_id")
        hinted_until, ahead = body.pop("hinted_until"), body.pop("hint_ahead")
        if hinted_until is not None:  # most watches are never hinted: keep the entity state small
            body["hintedUntil"] = hinted_until
        if ahead:
            body["hintAhead"] = True
        return body

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Watch:
        body = {k: v for k, v in raw.items() if k not in ("vaultId", "jobId", "hintedUntil", "hintAhead")}
        return cls(
            vault_id=raw["vaultId"],
            job_id=raw["jobId"],
            hinted_until=raw.get("hintedUntil"),
            hint_ahead=bool(raw.get("hintAhead")),
            **body,
        )

    @property
    def vm_id(self) -> str | None:
        """The VM of a snapshot watch (what its SnapshotCompleted names), lower-cased: ARM ids
        compare case-insensitively."""
        vm = (self.announce or {}).get("vmId")
        return vm.lower() if isinstance(vm, str) and self.until == "snapshot" else None

    def hinted(self, now: float) -> bool:
        """Within the beacon's window, which opens at the beacon's time: a beacon dated ahead
        (up to HINT_FUTURE_SECONDS) must not make the watch dense from now until then as well."""
        until = self.hinted_until
        return until is not None and until - HINT_WINDOW_SECONDS <= now < until

    @property
    def beacon_seen(self) -> bool:
        """A beacon, not dated ahead of the board's clock, arrived for this watch."""
        return self.hinted_until is not None and not self.hint_ahead

    def beacon_gap(self, completed_at: float) -> float | None:
        """Seconds from this watch's beacon to the snapshot's completion at ``completed_at``, when
        it fell within the beacon's window (the beacon came first and its dense reads would have
        found it); None otherwise. A beacon at another time, or dated ahead of the board's clock
        (a sender could date it to just before a guessed completion), does not count, so a forged
        one cannot make the VM's next watch quiet."""
        if self.hinted_until is None or self.hint_ahead:
            return None
        beacon_at = self.hinted_until - HINT_WINDOW_SECONDS
        if not beacon_at - CLOCK_SKEW_SECONDS <= completed_at <= self.hinted_until:
            return None
        return max(0.0, completed_at - beacon_at)

    def next_due(self, now: float) -> float:
        if self.hinted(now):
            return now + HINT_READ_SECONDS
        plan = PollPlan.from_dict(self.plan)
        if self.hinted_until is not None and plan.quiet_until_s:
            # The beacon this watch was quiet for came (or one forged ahead of it) and its dense
            # reads are over: read as the lost-beacon fallback from now on, not quietly on.
            plan = plan.quiet_until(0.0)
        return now + plan.delay(self.until, now - self.anchor)


@dataclass
class Board:
    watches: dict[str, Watch] = field(default_factory=dict)
    tokens: float | None = None  # None: a full bucket
    refilled_at: float | None = None
    polled_at: float | None = None  # the latest round the poller took reads for: it is alive
    read_now: list[str] = field(default_factory=list)  # the last take's hinted watches due already (not state)
    history: SnapshotHistory = field(default_factory=SnapshotHistory)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Board:
        if not state:
            return cls()
        return cls(
            watches={k: Watch.from_dict(v) for k, v in state.get("watches", {}).items()},
            tokens=state.get("tokens"),
            refilled_at=state.get("refilledAt"),
            polled_at=state.get("polledAt"),
            history=SnapshotHistory.from_state(state.get("learned")),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "watches": {k: w.to_dict() for k, w in self.watches.items()},
            "tokens": self.tokens,
            "refilledAt": self.refilled_at,
            "polledAt": self.polled_at,
            "learned": self.history.to_state(),
        }

    def watch(self, raw: dict[str, Any], now: float) -> None:
        """Add a watch; a repeated registration (a waiter's fallback, a replayed signal) keeps the
        existing schedule, so nothing is read twice for it. A snapshot watch of a VM the board has
        learned gets the VM's own plan."""
        key = str(raw["key"])
        if key in self.watches:
            return
        entry = Watch.from_dict({**raw, "due": 0.0})
        if entry.until == "snapshot":
            plan = self.history.plan_for(entry.vm_id, PollPlan.from_dict(entry.plan), now - entry.anchor)
            entry.plan = plan.to_dict()
        entry.due = entry.next_due(now)
        self.watches[key] = entry

    def done(self, keys: list[str], learned: dict[str, float] | None = None) -> None:
        """Remove finished watches; ``learned`` gives, per finished snapshot watch, the seconds
        from its job's start (``anchor``) to Take Snapshot's completion, which the board keeps
        for the VM with whether a beacon covered that completion."""
        for key in keys:
            entry = self.watches.pop(key, None)
            seconds = (learned or {}).get(key)
            if entry is not None and entry.vm_id is not None and seconds is not None:
                gap = entry.beacon_gap(entry.anchor + seconds)
                self.history.record(entry.vm_id, seconds, gap, entry.beacon_seen)

    def _refill(self, now: float, per_minute: float) -> float:
        rate = per_minute / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        tokens = capacity if self.tokens is None else self.tokens
        if self.refilled_at is not None and now > self.refilled_at:
            tokens = min(capacity, tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now if self.refilled_at is None else max(now, self.refilled_at)
        return tokens

    def take(self, at: float, per_minute: float, now: float | None = None) -> list[Watch]:
        """The watches to read at ``at`` (due by then), at most what the budget allows, most
        urgent first; each taken watch is rescheduled from ``at`` on its plan. With the poller's
        ``now``: hinted watches already due then are listed in ``read_now`` (read them now, not
        at ``at``) and rescheduled from ``now``."""
        urgent = self.hinted_due(now) if now is not None else set()
        tokens = self._refill(at, per_minute)
        due = sorted(
            (w for w in self.watches.values() if w.due <= at),
            key=lambda w: (not w.hinted(at), PRIORITY.get(w.until, 1), -self._urgency(w, at), w.due),
        )
        taken = due[: max(0, int(tokens + 1e-9))]  # float refill may land a hair under a whole token
        self.read_now = [w.key for w in taken if w.key in urgent]
        for entry in taken:
            entry.due = entry.next_due(now if now is not None and entry.key in urgent else at)
        self.tokens = tokens - len(taken)
        self.polled_at = at if self.polled_at is None else max(self.polled_at, at)
        return taken

    def _urgency(self, watch: Watch, at: float) -> float:
        """For a snapshot watch, how likely its snapshot completed by ``at`` (learned durations,
        else the plan's window), 0..1; a watch kept waiting past ``STARVED_SECONDS`` ranks above
        every likelihood (then oldest due first), so a short budget cannot starve the unlikely
        ones. Other watches keep oldest-due order."""
        if watch.until != "snapshot":
            return 0.0
        if at - watch.due > STARVED_SECONDS:
            return 2.0
        return self.history.completed_share(watch.vm_id, PollPlan.from_dict(watch.plan), at - watch.anchor)

    def hinted_due(self, now: float) -> set[str]:
        """Keys of hinted watches due by ``now``: a poller that took them for a later wake reads
        them at once instead (the hint may have landed after it planned that wake)."""
        return {w.key for w in self.watches.values() if w.hinted(now) and w.due <= now}

    def hint(self, vm_id: str, at: float) -> tuple[list[str], str]:
        """A beacon says ``vm_id`` took its snapshot at ``at``: make its snapshot watch due at
        once and read densely for a while. Returns the watch keys hinted and, when none, why:
        ``unwatched`` (no snapshot watch for that VM), ``implausible`` (``at`` lies outside the
        watched phase on the board's clock) or ``repeated`` (already hinted once: a redelivery or
        forged)."""
        wanted = vm_id.lower()
        watches = [w for w in self.watches.values() if w.vm_id == wanted]
        if not watches:
            return [], "unwatched"
        horizon = self.polled_at + HINT_FUTURE_SECONDS if self.polled_at is not None else None
        plausible = [w for w in watches if at >= w.anchor - CLOCK_SKEW_SECONDS and (horizon is None or at <= horizon)]
        if not plausible:
            return [], "implausible"
        # Once per watch: a snapshot has one post-script run, so a second beacon is a redelivery or
        # forged; re-arming from each beacon's own time would let a sender keep a watch dense forever.
        fresh = [w for w in plausible if w.hinted_until is None]
        ahead = self.polled_at is not None and at > self.polled_at + HINT_TRUSTED_AHEAD_SECONDS
        for entry in fresh:
            entry.hinted_until = at + HINT_WINDOW_SECONDS
            entry.hint_ahead = ahead
            # First read when the job should show the snapshot: the gap the VM's last beacon showed
            # (learned), else at once.
            entry.due = min(entry.due, at + self.history.beacon_gap(entry.vm_id))
        return [w.key for w in fresh], "" if fresh else "repeated"

    def fallback(self, key: str, now: float, silent_seconds: float) -> str:
        """A waiter heard nothing for long: may it read its job itself? ``finished`` — the poller
        finished the watch, so its notice is already on the way; ``watching`` — the poller took
        reads within ``silent_seconds`` (alive, maybe behind): keep waiting; ``withdrawn`` — the
        poller is silent: the watch is removed, so the poller can never announce it as well."""
        if key not in self.watches:
            return "finished"
        if self.polled_at is not None and now - self.polled_at < silent_seconds:
            return "watching"
        del self.watches[key]
        return "withdrawn"

    def next_wake(self, after: float, per_minute: float) -> float | None:
        """When the next read can happen: the earliest due watch, or — when reads are waiting for
        budget — when the bucket holds a token again. None when nothing is watched."""
        if not self.watches:
            return None
        earliest = min(w.due for w in self.watches.values())
        if earliest > after:
            return earliest
        tokens = self.tokens if self.tokens is not None else 1.0
        if tokens >= 1.0 - 1e-9:
            return after
        return after + (1.0 - tokens) / (per_minute / 60.0)
