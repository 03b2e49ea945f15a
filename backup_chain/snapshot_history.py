"""What a vault's job-watch board learns about each VM's snapshots, to spend reads where they
matter: the last few Take Snapshot durations (job start to the task's completion) and whether the
last snapshot was covered by a beacon. Pure and JSON-serialisable; part of the ``job_watch``
entity's state (docs/beacon.md, "What the board learns").

Bounded: ``MAX_DURATIONS`` per VM and ``MAX_VMS`` per vault, the least recently learned VM
dropped first. State layout, ~52 bytes per VM in JSON: ``{vm key: [beacon, seconds...]}``, where
``beacon`` says what the last snapshot's beacon did: 0 none arrived, 1 one arrived but did not
cover the completion, 2 + g one covered it and the job showed the snapshot at most g whole
seconds later,
the key a 64-bit hash of the lower-cased VM id (an ARM id is ~150 bytes; 5,000 VMs would collide
with odds of about 1 in 10^12, which costs one VM a plan from another's history, never a read's
truth), durations in whole seconds, oldest first. Python dicts and JSON objects keep insertion
order, so the order of the keys is the recency order."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any

from backup_chain.polling import DENSE_SECONDS, PollPlan

MAX_DURATIONS = 5  # per VM: recent enough to follow a VM that changed, enough for a range
MAX_VMS = 5000  # per vault board
MIN_LEARNED = 2  # durations before a VM's own window replaces the chain's
PADDING = 0.1  # the learned window is [min * 0.9, max * 1.1] (plus the plan's lead on each side)
# A beaconed VM's next beacon is first read this long after it at most: the gap is learned from
# the VM's last beacon, and a gap that shrank by more delays SnapshotCompleted by the difference.
MAX_BEACON_GAP_SECONDS = 30
MAX_SNAPSHOT_SECONDS = 86400.0  # the longest configurable snapshot window (snapshotMinutes <= 1440)


def vm_key(vm_id: str) -> str:
    return hashlib.sha256(vm_id.lower().encode()).hexdigest()[:16]


def plausible_seconds(seconds: Any) -> bool:
    """A snapshot duration the board can learn from: a number in (0, one day]."""
    return (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and 0 < seconds <= MAX_SNAPSHOT_SECONDS
    )


@dataclass(frozen=True)
class VmSnapshots:
    durations: tuple[int, ...]  # seconds, oldest first
    beaconed: bool  # the last snapshot's completion fell within a beacon's hint window
    beacon_gap: float = 0.0  # seconds from that beacon to the job showing the snapshot completed
    beacon_seen: bool = False  # a (not future-dated) beacon arrived for the last snapshot

    @property
    def learned(self) -> bool:
        return len(self.durations) >= MIN_LEARNED

    @property
    def window(self) -> tuple[float, float]:
        return min(self.durations) * (1 - PADDING), max(self.durations) * (1 + PADDING)


class SnapshotHistory:
    def __init__(self, vms: dict[str, list[int]] | None = None) -> None:
        self._vms: dict[str, list[int]] = dict(vms or {})

    @classmethod
    def from_state(cls, raw: Any) -> SnapshotHistory:
        """The board's ``learned`` state; None (a board from before learning) is empty. Only this
        module writes it; an entry of another shape is dropped (it costs that VM its learning, not
        the vault its board)."""
        if not isinstance(raw, dict):
            return cls()
        return cls({k: v for k, v in raw.items() if isinstance(v, list) and len(v) >= 2})

    def to_state(self) -> dict[str, list[int]]:
        return self._vms

    def __len__(self) -> int:
        return len(self._vms)

    def of(self, vm_id: str) -> VmSnapshots | None:
        entry = self._vms.get(vm_key(vm_id))
        if entry is None:
            return None
        return VmSnapshots(tuple(entry[1:]), entry[0] >= 2, float(max(0, entry[0] - 2)), entry[0] >= 1)

    def record(self, vm_id: str, seconds: float, beacon_gap: float | None, beacon_seen: bool = False) -> None:
        """Learn one completed snapshot of ``vm_id``: whether a beacon arrived for it and, when one
        covered it, how long after the beacon the job showed it (``beacon_gap``; None: no beacon
        covered it). Implausible durations are not learned."""
        if not plausible_seconds(seconds):
            return
        key = vm_key(vm_id)
        entry = self._vms.pop(key, [0])  # re-inserted last: the most recently learned
        durations = [*entry[1:], max(1, round(seconds))][-MAX_DURATIONS:]
        if beacon_gap is not None:
            # Rounded up: a beacon's time has whole seconds (the post-script's), so the gap to the
            # task's endTime reads up to a second short, and a read at beacon + the truncated gap
            # came just before the job showed the snapshot (chain_bench: ~1 wasted read per VM).
            beacon = 2 + math.ceil(min(MAX_BEACON_GAP_SECONDS, max(0.0, beacon_gap)))
        else:
            beacon = 1 if beacon_seen else 0
        self._vms[key] = [beacon, *durations]
        while len(self._vms) > MAX_VMS:
            del self._vms[next(iter(self._vms))]

    def plan_for(self, vm_id: str | None, plan: PollPlan, elapsed_s: float = 0.0) -> PollPlan:
        """The plan for a new snapshot watch of ``vm_id``, registered ``elapsed_s`` after its job
        started. With a learned VM, dense from the VM's own shortest snapshot (not the chain's) to
        the later of its longest and the chain's window end, so a slower run than usual is never
        read less than the chain would. On a beacon chain: a VM no beacon reached last time (a
        Windows VM, no post-script, a lost beacon) is read at the dense 5 s, not the 60 s fallback;
        a VM whose last snapshot a beacon covered is not read at all before the earlier of its
        window's end and the chain's (plus the lead), unless its watch began inside that window
        (an adopted job whose beacon came before the watch). Without history, the chain's plan."""
        known = self.of(vm_id) if vm_id is not None else None
        if known is None:
            return plan
        beacon_chain = plan.beacons
        if beacon_chain and not known.beacon_seen:
            # Polled at the fallback's 60 s it would lag ~30 s: read it as a chain without beacons
            # would, until a beacon arrives for one of its snapshots again.
            plan = replace(plan, dense_s=DENSE_SECONDS)
        if not known.learned:
            return plan
        low, high = known.window
        learned = plan.dense_between(low, max(high, plan.snapshot_high_s))
        if beacon_chain and known.beaconed and elapsed_s <= max(0.0, low - plan.lead_s):
            return learned.quiet_until(min(high, plan.snapshot_high_s) + plan.lead_s)
        return learned

    def completed_share(self, vm_id: str | None, plan: PollPlan, elapsed_s: float) -> float:
        """How likely a snapshot that started ``elapsed_s`` ago has completed: the share of the
        VM's learned durations at most that, else where ``elapsed_s`` lies in the plan's window."""
        known = self.of(vm_id) if vm_id is not None else None
        if known is not None and known.learned:
            return sum(1 for d in known.durations if d <= elapsed_s) / len(known.durations)
        low, high = plan.snapshot_low_s, plan.snapshot_high_s
        if elapsed_s >= high:
            return 1.0
        return max(0.0, (elapsed_s - low) / (high - low)) if high > low else 0.0

    def beacon_gap(self, vm_id: str | None) -> float:
        """Seconds after a beacon to read the VM's job first: the gap its last beacon showed
        (the job shows the snapshot a few seconds after the post-script ran), 0 when unknown.
        Reading at once would see the snapshot still running."""
        known = self.of(vm_id) if vm_id is not None else None
        return known.beacon_gap if known is not None and known.beaconed else 0.0
